# The two commands of README.md: `make run` (set up + dvc repro) and `make test`.
# Each creates or reuses the virtual environment .venv by itself.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 5000
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
# params.yaml's backend: (tensorflow | jax | torch); its packages come from requirements-<backend>.txt
BACKEND := $(or $(shell sed -n 's/^backend:[[:space:]]*\([a-z]*\).*/\1/p' params.yaml),tensorflow)

.PHONY: help setup run test smoke docs docs-check gpu-params ui server server-stop clean

help:  ## lists the targets with what each does
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) $(VENV)/.installed-$(BACKEND)  ## creates .venv with requirements.txt and params.yaml's backend

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# One stamp per backend: switching params.yaml's backend installs that backend's packages on the next run.
$(VENV)/.installed-%: requirements-%.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r $<
	touch $@

run: setup  ## the whole pipeline (dvc repro), then where to look
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
	@$(BIN)/python -m inspectcnn.run_summary --reports reports

test: setup $(VENV)/.installed-jax $(VENV)/.installed-torch $(VENV)/.installed-test  ## the test extras, then the whole test suite (PYTEST_ARGS= to pass options)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

gpu-params: $(STAMP)  ## params.gpu.yaml: the full-size configuration (native input sizes, full widths)
	$(BIN)/python -m pipeline.gpu_params params.yaml > params.gpu.yaml
	@echo "wrote params.gpu.yaml; review it, then: cp params.gpu.yaml params.yaml && make run"

ui: $(STAMP)  ## prints the URL of the experiment's runs table, then serves the UI (no job runner, one worker)
	$(BIN)/python -m inspectcnn.ui --store $(MLFLOW_TRACKING_URI) --host $(HOST) --port $(PORT)

# The team's tracking server: PostgreSQL (Debian's postgresql package) + mlflow server with proxied artifacts,
# on $(HOST) only; then: export MLFLOW_TRACKING_URI=http://$(HOST):$(PORT) and make run as usual.
DB_PORT ?= 5433
server: $(STAMP)  ## starts PostgreSQL and the MLflow server in .mlflow-server/ (stop: make server-stop)
	$(BIN)/python -m inspectcnn.team_server start --folder .mlflow-server --port $(PORT) --db-port $(DB_PORT)

server-stop: $(STAMP)  ## stops make server's PostgreSQL and MLflow (their data stays)
	$(BIN)/python -m inspectcnn.team_server stop --folder .mlflow-server

smoke: setup  ## CI's first step: the pipeline on tiny data in the run environment, every default export ok
	$(BIN)/python .ci/smoke_pipeline.py

docs: $(STAMP)  ## writes every run figure of README.md and docs/ from the committed result files
	$(BIN)/python docs/generate.py

docs-check: $(STAMP)  ## fails when a figure in README.md or docs/ differs from the result files
	$(BIN)/python docs/generate.py --check

clean:  ## removes .venv (results, data and the MLflow store stay)
	rm -rf $(VENV) .pytest_cache
