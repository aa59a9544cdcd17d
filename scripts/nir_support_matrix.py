"""Print the NIR support matrix (node × direction) as a markdown table.

The rows come from the converter registries of :mod:`spikeloop.interop`
(:func:`spikeloop.interop.support_matrix`), so the table cannot drift from the code:

    .venv/bin/python scripts/nir_support_matrix.py
"""

from __future__ import annotations

from spikeloop.interop import support_matrix


def markdown() -> str:
    """The support matrix as a markdown table."""
    lines = ["| NIR node | export (spikeloop → NIR) | import (NIR → spikeloop) |",
             "|---|---|---|"]
    lines += [f"| {node} | {exp} | {imp} |" for node, exp, imp in support_matrix()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
