"""The layering rule: **every import points down the layer list (or stays within its layer)**.

Layers, bottom to top (docs/architecture.md draws them)::

    bottom     errors, checks, observables, registry, _runtime, _files
    data, viz  data sets, encoders, plots          (may import the bottom only)
    dynamics   pure step functions, model descriptions, surrogates
    kernels    time loop, fused loops, event projections, functional layer ops
    ir         description-only graph
    nn         modules users compose; each describes itself into the IR
    backends   protocol, registry, executor, in-the-loop bridge, sim, event
    chips      analog/, xylo/: register themselves with the backend registry
    network    Network, GraphNetwork, blocks: the user's containers
    interop    NIR export/import
    training   trainer, losses, configs, experiments
    interfaces cli, the top-level package

The test reads every module's imports with :mod:`ast` — module-level and function-level
``import`` / ``from … import`` statements, and module paths held in strings (e.g. a registry's
lazy ``add_lazy("name", "spikeloop.x.y")``) — and fails on an arrow that points up, and on
backends or chips importing ``spikeloop.nn`` (they read the IR).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = ("bottom", "data", "dynamics", "kernels", "ir", "devices", "nn", "backends", "chips",
          "network", "interop", "training", "interfaces")
"""Bottom to top."""

ONLY_BOTTOM = {"data"}
"""Layers that may import nothing but the bottom (and themselves)."""

NEVER = {("backends", "nn"), ("chips", "nn")}
"""Arrows that point down but are still forbidden: backends and chips read the IR, never the
modules users compose."""

PREFIXES = {
    "spikeloop.errors": "bottom", "spikeloop.checks": "bottom", "spikeloop.observables": "bottom",
    "spikeloop.registry": "bottom", "spikeloop._runtime": "bottom", "spikeloop._files": "bottom",
    "spikeloop.data": "data", "spikeloop.viz": "data",
    "spikeloop.dynamics": "dynamics", "spikeloop.kernels": "kernels", "spikeloop.ir": "ir",
    "spikeloop.devices": "devices",
    "spikeloop.nn": "nn", "spikeloop.backends": "backends", "spikeloop.chips": "chips",
    "spikeloop.network": "network", "spikeloop.interop": "interop",
    "spikeloop.training": "training", "spikeloop.cli": "interfaces",
    "spikeloop": "interfaces",  # the top-level package re-exports the entry points
}

_MODULE_STRING = re.compile(r"^spikeloop(\.[A-Za-z_]\w*)+$")


def layer_of(module: str) -> str:
    """The layer of a dotted module name (longest matching prefix)."""
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return PREFIXES[prefix]
    raise KeyError(f"{module}: no layer; add it to PREFIXES")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every spikeloop module that ``path`` imports or names."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from spikeloop import dynamics` imports a submodule
                sub = f"{base}.{alias.name}"
                exists = any((root / Path(*sub.split("."))).with_suffix(s).exists()
                             for s in (".py",)) or (root / Path(*sub.split("."))).is_dir()
                out.append((node.lineno, sub if exists else base))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE_STRING.match(node.value):
            out.append((node.lineno, node.value))
    return [(line, m) for line, m in out if m == "spikeloop" or m.startswith("spikeloop.")]


def up_arrows(root: Path) -> list[str]:
    """Every import under ``root/spikeloop`` that points to a higher layer."""
    bad = []
    for path in sorted((root / "spikeloop").rglob("*.py")):
        me = module_name(path, root)
        mine = layer_of(me)
        for line, target in imports_of(path, root):
            theirs = layer_of(target)
            allowed = LAYERS.index(theirs) <= LAYERS.index(mine)
            if mine in ONLY_BOTTOM:
                allowed = theirs in ("bottom", mine)
            if (mine, theirs) in NEVER:
                allowed = False
            if not allowed:
                bad.append(f"{path.relative_to(root)}:{line}: {me} ({mine}) imports {target} "
                           f"({theirs})")
    return bad


def test_every_import_points_down() -> None:
    """Rule: a module imports only its own layer and the layers below it."""
    assert up_arrows(SRC) == []


def test_every_module_has_a_layer() -> None:
    for path in (SRC / "spikeloop").rglob("*.py"):
        layer_of(module_name(path, SRC))


def test_the_checker_sees_function_level_and_string_imports(tmp_path: Path) -> None:
    """The rule would catch an up-arrow hidden in a function or held as a registry string."""
    pkg = tmp_path / "spikeloop"
    for sub in ("kernels", "nn", "backends"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels" / "fused.py").write_text(
        "def f():\n    from spikeloop.nn.populations import require_finite\n")
    (pkg / "backends" / "reg.py").write_text('REG.add_lazy("chip", "spikeloop.chips.analog")\n')
    (pkg / "nn" / "net.py").write_text("from ..backends import get_backend\n")
    (pkg / "backends" / "sim.py").write_text("import spikeloop.nn.projections\n")
    found = up_arrows(tmp_path)
    assert len(found) == 4, found
    assert any("backends.sim (backends) imports spikeloop.nn.projections" in f for f in found)
    assert any("kernels.fused (kernels) imports spikeloop.nn.populations" in f for f in found)
    assert any("backends.reg (backends) imports spikeloop.chips.analog" in f for f in found)
    assert any("nn.net (nn) imports spikeloop.backends" in f for f in found)


def test_the_architecture_page_draws_these_layers() -> None:
    """docs/architecture.md's picture lists LAYERS top to bottom, and its table of the files a
    new neuron model touches names files that exist."""
    page = (SRC.parent / "docs" / "architecture.md").read_text()
    picture = page.split("```")[1].splitlines()
    drawn = [line.split()[0] for line in picture[3:] if line and not line.startswith(" " * 13)]
    assert drawn == list(reversed(LAYERS))
    files = re.findall(r"^\| `([^`]+)` \|", page, flags=re.M)
    assert files and all((SRC.parent / f).exists() for f in files), files


def test_the_chips_are_found_by_entry_points_that_name_existing_chip_modules() -> None:
    """The backend registry finds the chips through pyproject's entry points (group
    ``spikeloop.backends``), so ``spikeloop.backends`` never names a chip."""
    import tomllib

    config = tomllib.loads((SRC.parent / "pyproject.toml").read_text())
    points = config["project"]["entry-points"]["spikeloop.backends"]
    assert {"chip", "analog", "xylo"} <= set(points)
    for target in points.values():
        module = target.partition(":")[0]
        assert layer_of(module) == "chips", target
        assert (SRC / Path(*module.split("."))).with_suffix(".py").exists(), target
