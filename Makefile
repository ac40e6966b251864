# Two entry points (see README): `make run` (main job on embedded data) and `make test` (the test suite).
# TORCH_SPEC pins the CPU build that lies on local disk here; GPU users: make TORCH_SPEC="torch" ... or
# install their CUDA build first (the package itself only asks for a range).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Small models: one torch thread per process is fastest (more threads oversubscribe a busy machine); override freely.
run: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/workbench demo --overwrite

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m pip install -q "hessian-eigenthings>=1.0.0a5"
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/curvature_vs_pyhessian.py --threads 1

clean:
	rm -rf $(VENV) runs
