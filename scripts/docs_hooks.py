"""MkDocs hooks: the pages generated from the code and the result files when the site is built.

``mkdocs.yml`` names this module under ``hooks:``. A page asks for generated content with a
marker on a line of its own, ``<!-- generated: KIND ARGUMENT -->``, which :func:`expand`
replaces (an unknown kind fails the build):

- ``config-reference``: every config key with its type, default and description, read from
  the dataclasses of ``spikeloop/training/config.py`` (descriptions are the attribute
  docstrings under each field), and the names each registry knows;
- ``config-defaults``: the default config as YAML (what ``spikeloop config`` prints);
- ``config-errors``: the one-line messages of common config mistakes, produced by the CLI;
- ``cli-reference``: every subcommand of ``spikeloop.cli._parser()`` with its help;
- ``results NAME``: a file of ``benchmarks/results/`` — a table file's text (its headings
  demoted) or an image, which :func:`on_files` copies into the site as ``results/NAME``;
- ``readme HEADING``: the body of the README section ``## HEADING``;
- ``nir-matrix``: the NIR support matrix (``scripts/nir_support_matrix.py``).

The test suite imports this module too (``tests/test_docs.py``): the same functions check that
every config key has a description and that the README's results table is the benchmark's.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import io
import posixpath
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG_SOURCE = ROOT / "src" / "spikeloop" / "training" / "config.py"
if str(ROOT / "src") not in sys.path:  # document this tree's code, whatever else is installed
    sys.path.insert(0, str(ROOT / "src"))
MARKER = re.compile(r"^<!-- generated: (?P<kind>[a-z-]+)(?: (?P<arg>.*?))? -->$", re.MULTILINE)

REGISTRIES: dict[str, tuple[str, str]] = {
    "data.dataset": ("spikeloop.training", "DATASETS"),
    "data.encoder": ("spikeloop.data", "ENCODERS"),
    "model.neuron": ("spikeloop.nn", "POPULATIONS"),
    "model.readout": ("spikeloop.nn", "POPULATIONS"),
    "model.surrogate": ("spikeloop.dynamics", "SURROGATES"),
    "train.loss": ("spikeloop.training", "LOSSES"),
    "train.backend": ("spikeloop.backends", "BACKENDS"),
    "train.method": ("spikeloop.training", "METHODS"),
}
"""Config keys whose value names a registered object: the reference lists the known names."""

CONFIG_MISTAKES: tuple[tuple[str, ...], ...] = (
    ("config", "configs/yinyang.yaml", "train.epoch=5"),
    ("config", "configs/yinyang.yaml", "train.epochs=0"),
    ("config", "configs/yinyang.yaml", "train.lr=fast"),
    ("config", "configs/yinyang.yaml", "model.hidden=[]"),
    ("config", "configs/yinyang.yaml", "run.threads=0"),
    ("config", "configs/yinyang.yaml", "epochs=5"),
    ("config", "configs/yinyang.yml"),
    ("summary", "configs/yinyang.yaml", "data.encoder.name=latancy"),
    ("summary", "configs/yinyang.yaml", "model.neuron=lfi"),
)
"""Command lines whose error messages the troubleshooting page shows (run from the root)."""


# ----------------------------------------------------------------------------- config reference


@dataclass(frozen=True)
class FieldDoc:
    """One config key as the reference shows it."""

    key: str
    type: str
    default: Any
    description: str


def rst_to_markdown(text: str) -> str:
    """A docstring's reST inline markup as Markdown, on one line: ````x```` → ```x```, roles
    such as ``:class:`~a.B``` → ```B```."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    text = text.replace("``", "`")
    return " ".join(inspect.cleandoc(text).split())


def _attribute_docstrings(class_name: str) -> dict[str, tuple[str, str | None]]:
    """``field → (annotation source, docstring or None)`` of a class in config.py, by ast."""
    source = CONFIG_SOURCE.read_text()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    out: dict[str, tuple[str, str | None]] = {}
    body = cls.body
    for k, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = None
            after = body[k + 1] if k + 1 < len(body) else None
            if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                doc = after.value.value
            annotation = ast.get_source_segment(source, node.annotation) or ""
            out[node.target.id] = (annotation, doc)
    return out


def config_sections() -> list[tuple[str, type]]:
    """``(section name, dataclass)`` of the top-level :class:`~spikeloop.training.Config`."""
    from spikeloop.training.config import Config

    hints = typing.get_type_hints(Config)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(Config)]


def config_fields() -> list[FieldDoc]:
    """Every config key (``section.field``) with its annotation, default and description (the
    attribute docstring; empty when missing)."""
    out = []
    for section, cls in config_sections():
        docs = _attribute_docstrings(cls.__name__)
        for f in dataclasses.fields(cls):
            default = (f.default_factory() if f.default is dataclasses.MISSING  # type: ignore[misc]
                       else f.default)
            annotation, doc = docs[f.name]
            out.append(FieldDoc(f"{section}.{f.name}", annotation, default,
                                rst_to_markdown(doc) if doc else ""))
    return out


def _yaml_value(value: Any) -> str:
    """A value as YAML flow text (what one would write in a config file or an override)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix(
        "\n...").strip()


def _known_names(key: str) -> str:
    if key not in REGISTRIES:
        return ""
    module, name = REGISTRIES[key]
    registry = getattr(importlib.import_module(module), name)
    names = ", ".join(f"`{n}`" for n in sorted(registry.names()))
    return f" Known: {names}."


def _cell(text: str) -> str:
    """Text for a table cell outside code spans: a pipe is escaped."""
    return text.replace("|", "\\|")


def config_reference() -> str:
    """The configuration reference: one table per section, generated from the dataclasses."""
    fields_by_section: dict[str, list[FieldDoc]] = {}
    for f in config_fields():
        if not f.description:
            raise ValueError(f"config key {f.key} has no description: add an attribute "
                             f"docstring under the field in {CONFIG_SOURCE.name}")
        fields_by_section.setdefault(f.key.split(".")[0], []).append(f)
    parts = []
    for section, cls in config_sections():
        intro = rst_to_markdown(cls.__doc__ or "").split(". ")[0].rstrip(".") + "."
        rows = ["| key | type | default | description |", "|---|---|---|---|"]
        for f in fields_by_section[section]:
            # a pipe inside a code span does not split a cell (Python-Markdown's tables)
            rows.append(f"| `{f.key}` | `{f.type}` | `{_yaml_value(f.default)}` "
                        f"| {_cell(f.description + _known_names(f.key))} |")
        parts.append(f"### `{section}`\n\n{intro}\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def config_defaults() -> str:
    """The default config as a YAML block."""
    from spikeloop.training.config import Config

    text = yaml.safe_dump(Config().to_dict(), sort_keys=False)
    return f"```yaml\n{text}```"


def _run_cli(argv: tuple[str, ...]) -> tuple[int, str]:
    """Run ``spikeloop ARGV`` in this process from the repository root: exit code, stderr."""
    from spikeloop.cli import main

    err = io.StringIO()
    with (contextlib.chdir(ROOT), contextlib.redirect_stderr(err),
          contextlib.redirect_stdout(io.StringIO())):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return code, err.getvalue().strip()


def config_errors() -> str:
    """Common config mistakes, each command with the message the CLI prints, as a terminal."""
    lines = []
    for argv in CONFIG_MISTAKES:
        code, message = _run_cli(argv)
        if code == 0 or not message:
            raise ValueError(f"spikeloop {' '.join(argv)} did not fail; change CONFIG_MISTAKES")
        lines += [f"$ spikeloop {' '.join(argv)}", message.splitlines()[-1], ""]
    return "```text\n" + "\n".join(lines[:-1]) + "\n```"


# ----------------------------------------------------------------------------- CLI reference


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of every subcommand of ``parser``, in definition order."""
    out, seen = [], set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out.append((name, helps.get(name, ""), sub))
    return out


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=90)
    return parser.format_help()


def cli_reference() -> str:
    """The command-line reference: the top-level help, then each subcommand's."""
    from spikeloop.cli import _parser

    parser = _parser()
    parts = [f"```text\n{_help(parser)}```"]
    for name, help_text, sub in subcommands(parser):
        parts.append(f"### `spikeloop {name}`\n\n{help_text[:1].upper() + help_text[1:]}.\n\n"
                     f"```text\n{_help(sub)}```")
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- results, README


def results_table(name: str, demote: int = 2) -> str:
    """The text of ``benchmarks/results/NAME`` with its headings demoted by ``demote`` levels."""
    text = (RESULTS / name).read_text()
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + demote) + " ", text,
                  flags=re.MULTILINE).strip()


def first_table(text: str) -> str:
    """The first Markdown table (consecutive lines starting with ``|``) in ``text``."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("|"))
    end = next((k for k in range(start, len(lines)) if not lines[k].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def readme_section(heading: str, page_uri: str = "index.md") -> str:
    """The body of the README section ``## HEADING``, its links to ``docs/`` pages made relative
    to the page ``page_uri`` (a link to anything outside ``docs/`` is an error)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ValueError(f"README.md has no section '## {heading}'")
    body = match.group(1).strip()

    def link(m: re.Match[str]) -> str:
        target = m.group(1)
        if re.match(r"[a-z]+://", target):
            return m.group(0)
        if not target.startswith("docs/"):
            raise ValueError(f"README section {heading!r} links to {target!r}, not a docs page")
        rel = posixpath.relpath(target.removeprefix("docs/"), posixpath.dirname(page_uri) or ".")
        return f"]({rel})"

    return re.sub(r"\]\(([^)]+)\)", link, body)


def nir_matrix() -> str:
    """The NIR support matrix of ``scripts/nir_support_matrix.py`` (from the registries)."""
    path = Path(__file__).with_name("nir_support_matrix.py")
    spec = importlib.util.spec_from_file_location("nir_support_matrix", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.markdown()


def _image(name: str, page_uri: str) -> str:
    rel = posixpath.relpath(f"results/{name}", posixpath.dirname(page_uri) or ".")
    return f"![{Path(name).stem.replace('_', ' ')}]({rel})"


def expand(markdown: str, page_uri: str) -> str:
    """Replace every ``<!-- generated: KIND ARG -->`` marker of a page by its content."""

    def replace(m: re.Match[str]) -> str:
        kind, arg = m.group("kind"), (m.group("arg") or "").strip()
        if kind == "config-reference":
            return config_reference()
        if kind == "config-defaults":
            return config_defaults()
        if kind == "config-errors":
            return config_errors()
        if kind == "cli-reference":
            return cli_reference()
        if kind == "results":
            if not (RESULTS / arg).is_file():
                raise ValueError(f"{page_uri}: no result file benchmarks/results/{arg}")
            return _image(arg, page_uri) if arg.endswith(".png") else results_table(arg)
        if kind == "readme":
            return readme_section(arg, page_uri)
        if kind == "nir-matrix":
            return nir_matrix()
        raise ValueError(f"{page_uri}: unknown generated content {kind!r}")

    return MARKER.sub(replace, markdown)


# ----------------------------------------------------------------------------- MkDocs events


def on_files(files: Any, config: Any) -> Any:
    """Copy the result images into the site as ``results/NAME.png``."""
    from mkdocs.structure.files import File

    for path in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"results/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand the page's generated-content markers."""
    return expand(markdown, page.file.src_uri)
