"""Speed benchmark of spikeloop against other PyTorch SNN libraries (see ``speed_bench.py``)."""
