# Two entry points: `make train` (the main job) and `make test`. Each sets itself up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a GPU user installs a CUDA build first (see README) and
# `make` keeps it, since any torch >= 2.1 satisfies the package.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup train test clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# Trains the default model with the shipped recipe on all 50,000 images, reports on the
# official test set. Extra options: make train ARGS="--seed 1 --out runs/s1"
train: $(STAMP)
	$(BIN)/tinycifar train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
