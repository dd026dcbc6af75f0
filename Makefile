# Two entry points: `make train` (the main job) and `make test`. Each sets itself up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, pinned: on this project's machines pip takes the CPU build of
# 2.13.0 from a local wheel. Elsewhere, PyPI's Linux wheel is the CUDA build; for a CPU-only
# laptop use TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu". A GPU user
# installs a CUDA build first (see README) and `make` keeps it: any torch >= 2.1 works.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: setup train test check clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)" $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e ".[test,export,sweep,tflite,tflite-export,dev,docs]"
	touch $(STAMP)

setup: $(STAMP)

# Trains the default model with the shipped recipe on all 50,000 images, reports on the
# official test set. Extra options: make train ARGS="--seed 1 --out runs/s1"
train: $(STAMP)
	$(BIN)/tinycifar train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# Lint, types, the layering contracts (pyproject.toml) and the manual's strict build.
check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
