"""``python -m spikeloop``: the command line (what ``torchrun … -m spikeloop train`` starts in
every process)."""

import sys

from spikeloop.cli import main

if __name__ == "__main__":
    sys.exit(main())
