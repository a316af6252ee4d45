# ferlab: `make demo` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data/fer2013.csv.gz

.PHONY: setup demo test lint bench bench-train bench-ablation clean

setup: $(STAMP)

# torch first and pinned: its CPU build is what pip finds here; a looser spec pulls CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/ferlab demo

test: setup
	$(BIN)/python -m pytest -rs

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

bench: setup
	$(BIN)/python benchmarks/bench.py --data $(DATA)

bench-train: setup
	$(BIN)/python benchmarks/bench_train.py --data $(DATA)

# the speedrun's ablation table, 3 seeds a row (hours; seeds already trained are read back)
bench-ablation: setup
	$(BIN)/python benchmarks/bench_ablation.py --data $(DATA)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
