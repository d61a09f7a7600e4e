# Two commands on a fresh machine:  `make demo` (the main job) and `make test`.
# The CPU wheel of torch is pinned here (and only here) so that set-up never pulls a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: install demo layers test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,plots]"
	touch $@

install: $(VENV)/.installed

# the main job: a character model on the built-in corpus, two minutes on a CPU, then a sample
demo: install
	rm -rf runs/demo
	$(VENV)/bin/rnnkit charlm train --out runs/demo --time-budget 2m

# the layers at work: every cell kind's fast path against the reference loop
layers: install
	$(VENV)/bin/rnnkit demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/bench_recurrent.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
