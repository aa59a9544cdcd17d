# Two commands do all set-up: `make demo` and `make test` each create .venv from
# pyproject.toml when it is missing (or older than pyproject.toml), then run.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean yinyang-bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spikeloop train configs/yinyang.yaml run.name=demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks

test: lint
	$(PY) -m pytest -q

yinyang-bench: $(STAMP)
	$(PY) benchmarks/yinyang_chip.py

clean:
	rm -rf $(VENV) runs .pytest_cache
