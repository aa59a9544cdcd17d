# Two commands do all set-up: `make demo` and `make test` each create .venv from
# pyproject.toml when it is missing (or older than pyproject.toml), then run. `make docs` builds
# the documentation site into site/ (tests/test_docs.py builds it too, so `make test` checks it).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs venv clean yinyang-bench bench bench-scaling bench-contention bench-distributed \
	eventprop-bench event-memory event-speed memory-task memory-task-distractors xylo-example xylo-long nir-matrix data fashion-mnist \
	fashion-mnist-fc fashion-mnist-conv fashion-mnist-conv-surrogate fashion-mnist-conv-bn local-learning digits shd spoken-digits spoken-digits-train keywords ambient espeak-ng kws-bench data-bench \
	temporal-audio temporal-audio-eventprop delays-bench robustness

# NIR cross-framework test peers that require torch: installed with --no-deps (their light
# dependencies come from the `test` extra and nir), then torch is checked to be the pinned one.
TEST_NODEPS := norse==1.1.0 nirtorch==2.6

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,test,docs,track]'
	$(PY) -m pip install --quiet --no-deps $(TEST_NODEPS)
	$(PY) -c "import torch; v = torch.__version__; assert v.split('+')[0] == '2.13.0', v"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spikeloop train configs/yinyang.yaml run.name=demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks scripts

# The suite runs in one worker process per core (pytest-xdist), each test file in one worker
# (the tests of a file may share state: one torchrun launch, the property suite's case count);
# `-p no:xdist` runs it in one process. The robustness benchmark's tiny run reads Fashion-MNIST
# (the Debian package, installed when missing, as espeak-ng for the speech tests).
test: lint espeak-ng fashion-mnist
	$(PY) -m pytest -q -n auto --dist loadfile

# The site: strict, so a broken link or reference, or a generated page that fails, is an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --clean --site-dir site

yinyang-bench: $(STAMP)
	$(PY) benchmarks/yinyang_chip.py

# Exact gradients (event backend, EventProp): Yin-Yang over 3 seeds, and memory/time against
# the dense surrogate trainer for growing T.
eventprop-bench: $(STAMP)
	$(PY) benchmarks/yinyang_eventprop.py

event-memory: $(STAMP)
	$(PY) benchmarks/event_memory.py

# The event backend's engines (exact, grid) against the dense trainer on the spoken digits (one
# step at batch 1 and 64, an epoch each, three rounds; needs `make spoken-digits`).
event-speed: $(STAMP) spoken-digits
	$(PY) benchmarks/event_step.py configs/spoken_digits.yaml --batch 1 64 --steps 5 --epoch \
		--rounds 3 --out benchmarks/results/event_speed

# Store-and-recall memory task: LIF against adaptive LIF, 6 models × 3 seeds (docs/memory-task.md).
memory-task: $(STAMP)
	$(PY) benchmarks/memory_task.py

# The same with 2 distractor values in every gap (docs/memory-task.md, "With distractors").
memory-task-distractors: $(STAMP)
	$(PY) benchmarks/memory_task.py --distractors 2

# Device non-idealities (docs/devices.md): ideal- against noise-aware-trained networks on
# crossbars, analog neurons and bit flips; about an hour on one core.
robustness: $(STAMP) fashion-mnist
	OMP_NUM_THREADS=1 $(PY) benchmarks/robustness.py

# Integer (Xylo-like) chip: float / quantised / QAT / in the loop / streaming on the integer sim.
xylo-example: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) examples/xylo_temporal.py --in-the-loop  # results depend on the thread count

# Long inputs on the integer chip: time and peak memory of the xylo backend against sim for growing
# T (the issue-15 case: XYLO_LONG_ARGS="--steps 10000 100000 1000000").
xylo-long: $(STAMP)
	$(PY) benchmarks/xylo_long.py $(XYLO_LONG_ARGS)

# NIR support matrix (docs/nir.md shows it, generated when the site is built), from the
# converter registries.
nir-matrix: $(STAMP)
	$(PY) scripts/nir_support_matrix.py

# Speed benchmark (benchmarks/speed_bench.py). The peers that require torch are installed with
# --no-deps (their light dependencies come from the `bench` extra), then torch is checked to be
# still the pinned one. BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--variants ff".
BENCH_NODEPS := norse==1.1.0 sinabs==3.1.3 spikingjelly==2.0.0 nirtorch==2.6
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) Makefile
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m pip install --quiet --no-deps $(BENCH_NODEPS)
	$(PY) -c "import torch; v = torch.__version__; assert v.split('+')[0] == '2.13.0', v; print('torch', v)"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) spoken-digits  # the shd and shd_scale rows run on the spoken digits
	$(PY) benchmarks/speed_bench.py $(BENCH_ARGS)

bench-scaling: $(BENCH_STAMP)
	$(PY) benchmarks/speed_scaling.py $(BENCH_ARGS)

# Slow-down beside another busy process (`yes`, a second training) for the demo, the EventProp
# epoch and the speed rows; CONTENTION_ARGS passes options, e.g. "--threads auto 2".
bench-contention: $(STAMP)
	$(PY) benchmarks/contention.py $(CONTENTION_ARGS)

# Data-parallel throughput (docs/distributed.md): 1 × 1, 1 × 2 and 2 × 1 processes × threads.
bench-distributed: $(STAMP) spoken-digits
	$(PY) benchmarks/distributed.py configs/yinyang.yaml --matrix --batches 40
	$(PY) benchmarks/distributed.py configs/spoken_digits.yaml --matrix --batches 20 \
		--out benchmarks/results/distributed_spoken_digits

# Data sets (docs/datasets.md): `make data` lists the known ones, where each was found and how to
# get a missing one. `make fashion-mnist` installs the Debian package dataset-fashion-mnist (the
# original IDX files, into /usr/share/datasets/fashion-mnist) unless the files are there already;
# it needs root (sudo when not root). Nothing else is downloaded.
FMNIST_DIR := /usr/share/datasets/fashion-mnist
FMNIST_FILES := $(foreach f,train-images-idx3 train-labels-idx1 t10k-images-idx3 \
	t10k-labels-idx1,$(FMNIST_DIR)/$(f)-ubyte.gz)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

data: $(STAMP)
	$(VENV)/bin/spikeloop data

fashion-mnist:
	@if ls $(FMNIST_FILES) >/dev/null 2>&1; then \
		echo "Fashion-MNIST is installed in $(FMNIST_DIR)"; \
	else \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist; \
	fi

# Results on real data (benchmarks/real_data.py: trains the config and records test accuracy and
# time per epoch in benchmarks/results/real_data.{json,md}, shown in docs/real-data.md).
REAL := $(PY) benchmarks/real_data.py train

fashion-mnist-fc: $(STAMP) fashion-mnist
	$(REAL) configs/fashion_mnist_fc.yaml

fashion-mnist-conv: $(STAMP) fashion-mnist
	$(REAL) configs/fashion_mnist_conv.yaml

fashion-mnist-conv-surrogate: $(STAMP) fashion-mnist
	$(REAL) configs/fashion_mnist_conv_surrogate.yaml

fashion-mnist-conv-bn: $(STAMP) fashion-mnist
	$(REAL) configs/fashion_mnist_conv_bn.yaml

digits: $(STAMP)
	$(REAL) configs/digits.yaml

# Learning without backpropagation through time (docs/local-learning.md): every method's runs,
# recorded next to its paper's figure in benchmarks/results/local_learning.{json,md}; hours of
# compute on 2 cores. SSNN-BP runs twice, the second time as the same network's ANN.
LOCAL := $(PY) benchmarks/local_learning.py train

local-learning: $(STAMP) fashion-mnist
	$(LOCAL) configs/digits_desire.yaml run.threads=1
	$(LOCAL) configs/digits_ssnn.yaml run.threads=1
	$(LOCAL) configs/digits_ssnn.yaml run.threads=1 train.method.stochastic=false run.name=digits_ssnn_ann
	$(LOCAL) configs/digits_vdsp.yaml run.threads=1
	$(LOCAL) configs/fashion_mnist_desire.yaml run.threads=1
	$(LOCAL) configs/fashion_mnist_ssnn.yaml run.threads=1
	$(LOCAL) configs/fashion_mnist_ssnn.yaml run.threads=1 train.method.stochastic=false run.name=fashion_mnist_ssnn_ann
	$(LOCAL) configs/fashion_mnist_vdsp.yaml run.threads=1
	$(LOCAL) configs/fashion_mnist_conv_bn.yaml run.threads=1

# The speech synthesiser of the spoken-digit, keyword and ambient data sets (Debian package
# espeak-ng), installed when missing; `make test` needs it for the tests that synthesise speech.
espeak-ng:
	@command -v espeak-ng >/dev/null || ($(SUDO) apt-get update && \
		$(SUDO) apt-get install -y espeak-ng)

# Spoken digits synthesised here (docs/spoken-digits.md): the 20 SHD classes spoken by espeak-ng
# voices through the inner-ear front end, and the spectrogram-threshold baseline, in the SHD
# layout, into $$SPIKELOOP_DATA/spoken_digits (default data/spoken_digits); skipped when the
# files are there. Installs the Debian package espeak-ng when it is missing.
SPOKEN_DIR := $(or $(SPIKELOOP_DATA),data)/spoken_digits
SPOKEN_FILES := $(foreach e,spoken_digits spoken_digits_spectrogram,\
	$(SPOKEN_DIR)/$(e)_train.h5 $(SPOKEN_DIR)/$(e)_test.h5)

spoken-digits: $(STAMP) espeak-ng
	@if ls $(SPOKEN_FILES) >/dev/null 2>&1; then \
		echo "spoken digits are in $(SPOKEN_DIR)"; \
	else \
		$(PY) scripts/make_spoken_digits.py --out $(SPOKEN_DIR) --encoder cochlea && \
		$(PY) scripts/make_spoken_digits.py --out $(SPOKEN_DIR) --encoder spectrogram; \
	fi

# Keyword spotting synthesised here (docs/keywords.md): 1 s clips of 4 keywords + other and
# continuous 60 s streams with labelled onsets, 16 kHz audio, into $$SPIKELOOP_DATA/keywords
# (default data/keywords); skipped when the files are there. Installs espeak-ng when missing.
KEYWORDS_DIR := $(or $(SPIKELOOP_DATA),data)/keywords
KEYWORDS_FILES := $(KEYWORDS_DIR)/keywords_train.h5 $(KEYWORDS_DIR)/keywords_test.h5

keywords: $(STAMP) espeak-ng
	@if ls $(KEYWORDS_FILES) >/dev/null 2>&1; then \
		echo "keywords are in $(KEYWORDS_DIR)"; \
	else \
		$(PY) scripts/make_keywords.py --out $(KEYWORDS_DIR); \
	fi

# Ambient scenes synthesised from generative models (docs/keywords.md): 1 s clips of 6 classes
# with distractors, into $$SPIKELOOP_DATA/ambient (default data/ambient).
AMBIENT_DIR := $(or $(SPIKELOOP_DATA),data)/ambient

ambient: $(STAMP) espeak-ng
	@if ls $(AMBIENT_DIR)/ambient_train.h5 $(AMBIENT_DIR)/ambient_test.h5 >/dev/null 2>&1; then \
		echo "ambient scenes are in $(AMBIENT_DIR)"; \
	else \
		$(PY) scripts/make_keywords.py --ambient --out $(AMBIENT_DIR); \
	fi

# Keyword spotting from audio to the integer chip (docs/keyword-spotting.md): SynNet, WaveSense
# and a recurrent LIF network, float → quantised → QAT → chip in the loop, three seeds; writes
# benchmarks/results/kws.{json,md}.
kws-bench: $(STAMP) keywords
	OMP_NUM_THREADS=1 $(PY) benchmarks/kws.py --no-progress

# The same network on the front end's spikes and on the spectrogram baseline's.
spoken-digits-train: spoken-digits
	$(REAL) configs/spoken_digits.yaml
	$(REAL) configs/spoken_digits.yaml run.name=spoken_digits_spectrogram \
		data.params.file=spoken_digits_spectrogram

# Issue 17 (docs/temporal-audio.md): recurrent LIF, LIF + learned delays and recurrent adLIF on
# the spoken digits, three seeds each (about an hour on one core).
temporal-audio: $(STAMP) spoken-digits
	$(PY) benchmarks/temporal_audio.py run run.threads=1 --seeds 0 1 2

# The recurrent LIF with loss shaping, by surrogate gradients and by EventProp on the grid (the
# event backend's engine="grid"), three seeds each, into the same table (docs/temporal-audio.md).
temporal-audio-eventprop: $(STAMP) spoken-digits
	$(PY) benchmarks/temporal_audio.py run run.threads=1 --models shaped eventprop --seeds 0 1 2

# The training step with and without learned delays (D = 25 steps) on the SHD-format workload of
# the speed bench (benchmarks/results/delays_speed.{json,md}),
# then the scattered accesses of per-synapse delays alone, in several formulations, and the floor
# they set for that step (benchmarks/results/delay_scatter.{json,md}).
delays-bench: $(STAMP) spoken-digits
	$(PY) benchmarks/speed_bench.py --libs spikeloop spikeloop_delay_axon \
		spikeloop_delay_synapse --variants shd --modes train --threads 1 --rounds 4 \
		--out benchmarks/results/delays_speed
	$(PY) benchmarks/delay_scatter.py --speed benchmarks/results/delays_speed.json

# Data loading against training steps (samples per second, SHD-format and Fashion-MNIST):
# benchmarks/results/data_loading.{json,md}.
data-bench: $(STAMP) spoken-digits fashion-mnist
	$(PY) benchmarks/data_loading.py

# Real SHD: the user puts shd_train.h5 and shd_test.h5 into $$SPIKELOOP_DATA/shd (see `make data`).
shd: $(STAMP)
	$(REAL) configs/shd.yaml

clean:
	rm -rf $(VENV) runs site .pytest_cache
