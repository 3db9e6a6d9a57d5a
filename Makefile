# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench gpu-check clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/pyrogen demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check pyrogen tests benchmarks tutorials
	$(BIN)/ruff format --check pyrogen tests benchmarks tutorials
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# On a machine with CUDA: every model a few steps on the GPU, the GPU test suite, one JSON report.
gpu-check: $(STAMP)
	$(BIN)/python -m pytest -q -x --device cuda tests/test_two_group.py tests/test_trainer.py
	$(BIN)/python benchmarks/gpu_check.py --device cuda

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
