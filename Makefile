# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test docs lint bench gpu-check gpu-wheels gpu-check-offline clean

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

# The docs build executes every tutorial (errors and warnings fail it), so pytest leaves them to it here.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=20 -m "not tutorial"
	$(MAKE) docs

DOCS_STAMP := $(VENV)/.docs-stamp

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs]'
	touch $(DOCS_STAMP)

# The site: README as the front page, the docs pages, the API from the docstrings, the tutorials executed in their
# fast mode; any warning fails the build. Open docs/_build/html/index.html.
docs: $(DOCS_STAMP)
	rm -rf docs/_build docs/tutorials
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs docs/_build/html

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# On a machine with CUDA: every model a few steps on the GPU, the GPU test suite, one JSON report.
gpu-check: $(STAMP)
	$(BIN)/python -m pytest -q -x --device cuda tests/test_two_group.py tests/test_trainer.py
	$(BIN)/python benchmarks/gpu_check.py --device cuda

# On a GPU machine without network that has its own Python with a CUDA torch (and numpy, scipy, xarray, pandas,
# matplotlib): here, `make gpu-wheels` downloads everything else as wheels into gpu-wheels/ (for GPU_PYTHON, 3.12
# by default); copy the repository with that folder there and run `make gpu-check-offline PYTHON=python3`. The
# wheels are unpacked (they are zip files) into .gpu-site/ and put on PYTHONPATH: nothing is installed.
GPU_PYTHON ?= 3.12
GPU_WHEELS ?= gpu-wheels
GPU_DEVICE ?= cuda
GPU_PACKAGES ?= pyro-ppl==1.9.2 pyro-api opt_einsum tqdm arviz==0.23.4 xarray-einstats h5netcdf h5py platformdirs \
	scikit-learn joblib cloudpickle threadpoolctl narwhals safetensors torchdiffeq pytest pytest-xdist execnet pluggy iniconfig pygments packaging \
	typing_extensions
GPU_PLATFORMS := --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
	--platform manylinux_2_28_x86_64 --platform any

gpu-wheels:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
		$(GPU_PLATFORMS) -d $(GPU_WHEELS) $(GPU_PACKAGES)

gpu-check-offline:
	rm -rf .gpu-site && mkdir -p .gpu-site
	for w in $(GPU_WHEELS)/*.whl; do $(PYTHON) -m zipfile -e $$w .gpu-site || exit 1; done
	PYTHONPATH=$(CURDIR)/.gpu-site:$(CURDIR) $(PYTHON) -m pytest -q -x -p no:cacheprovider --device $(GPU_DEVICE) \
		tests/test_two_group.py tests/test_trainer.py
	PYTHONPATH=$(CURDIR)/.gpu-site:$(CURDIR) $(PYTHON) benchmarks/gpu_check.py --device $(GPU_DEVICE)

clean:
	rm -rf $(VENV) demo-output docs/_build docs/tutorials .pytest_cache .mypy_cache .ruff_cache .gpu-site $(GPU_WHEELS)
