"""What a configured network uses of the chip: neurons, synaptic currents and weights.

:meth:`~spikeloop.chips.xylo.XyloLayout.summary` says where the populations sit; the counts
here are read from the registers of a :class:`~spikeloop.chips.xylo.XyloConfig` (after
quantisation, so a weight rounded to 0 is not counted).
"""

from __future__ import annotations

from typing import Any

from spikeloop.checks import check_type
from spikeloop.chips.xylo.config import XyloConfig
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default


def resource_use(config: XyloConfig, spec: XyloSpec | None = None) -> dict[str, Any]:
    """Chip resources that ``config`` occupies.

    Returns a dict: ``hidden`` (hidden neurons, of ``hidden_max``), ``outputs``,
    ``inputs`` (input channels with a non-zero weight), ``synapses`` (hidden neurons that
    receive non-zero weights on 0, 1 or both of their two synaptic currents:
    ``{"none": …, "one": …, "two": …}``), ``weights`` (non-zero integer weights per matrix
    ``in``/``rec``/``out`` and their ``total``), ``fan_in_max`` (the most non-zero weights onto
    one hidden neuron, both currents), ``aliases`` (hidden neurons with an alias target).

    Raises:
        ArgumentTypeError: ``config`` is not a :class:`XyloConfig`, ``spec`` not a
            :class:`XyloSpec`.
    """
    check_type(config, "config", XyloConfig, "a XyloConfig (quantize(...)[0])")
    spec = spec_or_default(spec)
    w_in, w_rec, w_out = (config.weights_in != 0), (config.weights_rec != 0), \
        (config.weights_out != 0)
    per_syn = w_in.sum(0) + w_rec.sum(0)  # [N, 2]: non-zero weights onto each current
    used = (per_syn > 0).sum(-1)
    nonzero = {"in": int(w_in.sum()), "rec": int(w_rec.sum()), "out": int(w_out.sum())}
    return {
        "hidden": int(config.weights_rec.shape[0]), "hidden_max": spec.hidden_max,
        "outputs": int(config.weights_out.shape[1]),
        "inputs": int(w_in.flatten(1).any(1).sum()),
        "synapses": {"none": int((used == 0).sum()), "one": int((used == 1).sum()),
                     "two": int((used == 2).sum())},
        "weights": nonzero | {"total": sum(nonzero.values())},
        "fan_in_max": int(per_syn.sum(-1).max()) if per_syn.numel() else 0,
        "aliases": int((config.aliases >= 0).sum()),
    }
