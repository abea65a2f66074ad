# Set-up is part of every target: a fresh machine needs only python3.11 and make.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= demo_out

.PHONY: demo test test-slow bench notebooks clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch trap: without a torch present, pip resolves `torch` to a multi-GB CUDA build.
	@# The CPU wheel 2.13.0 is on disk here; take it first, then the project.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m memlab.demo --out $(OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m slow

bench: $(STAMP)
	@# each writes JSON under benchmarks/results/
	for b in crossover train unet_dispatch iar localize edits localizers loops sweep gmm_sweep amused; do HF_HUB_OFFLINE=1 $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) $(OUT)
