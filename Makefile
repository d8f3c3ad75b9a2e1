# nmc_assets front door. `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the data root: DATA=..., else $NMC_DATA_DIR from the environment, else ./data
DATA   ?= $(or $(NMC_DATA_DIR),$(CURDIR)/data)
PYTEST_ARGS ?=

export NMC_DATA_DIR := $(DATA)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: env demo test test-fast ui check-defs check-contract bench clean-data

# torch is installed first and pinned exactly: a loose torch pulls several GB of CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

env: $(STAMP)

## demo: simulate the default scans (if data/incoming is empty) and materialize every asset into data/dagster_home
demo: env
	$(BIN)/python -m nmc_assets.demo

## test: the whole test suite (what CI runs)
test: env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: env
	$(BIN)/python -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)

## ui: the Dagster UI (webserver + daemon) on the demo's instance, http://127.0.0.1:3000
ui: env
	mkdir -p $(DATA)/dagster_home
	test -f $(DATA)/dagster_home/dagster.yaml || cp deploy/local/dagster.yaml $(DATA)/dagster_home/dagster.yaml
	DAGSTER_HOME=$(DATA)/dagster_home $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

check-defs: env
	$(BIN)/python -c "import dagster as dg; from nmc_assets.definitions import defs; dg.Definitions.validate_loadable(defs()); print('definitions load')"

## check-contract: check data/ against the data contract (after make demo)
check-contract: env
	$(BIN)/python ../shared/tools/check_contract.py $(DATA)

bench: env
	for b in benchmarks/bench_*.py; do echo "== $$b"; PYTHONPATH=$(CURDIR) $(BIN)/python $$b || exit 1; done

clean-data:
	rm -rf $(DATA)/incoming $(DATA)/warehouse $(DATA)/published $(DATA)/dagster_home $(DATA)/models/grain_model
