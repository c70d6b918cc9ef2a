# The user's vocabulary: sweep, export, pick, ui, bench, test. Every target creates .venv on first use.
PY      := .venv/bin/python
STAMP   := .venv/.installed
ARGS    ?=
WORKERS ?= 1
HOST    ?= 127.0.0.1
PORT    ?=
# where `make ui` serves, so that sweep and export print links to it (PORT: 5000 for ui, 8080 for dashboard)
UI_AT   := SWEEP_UI_HOST=$(HOST) SWEEP_UI_PORT=$(or $(PORT),5000)

.PHONY: help install install-gpu data l2 train baselines sweep export pick ui dashboard bench bench-gpu test lint clean-results

help:                       ## the commands, what each writes, the overrides people use most
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/'
	@echo; echo 'ARGS="<hydra overrides>" for any target; python -m sweep --help for the overrides'

$(STAMP): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU build on this project's CI disk; elsewhere pip takes it from PyPI.
	.venv/bin/pip install -q torch==2.13.0
	.venv/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

GPU_STAMP := .venv/.installed-gpu
$(GPU_STAMP): $(STAMP)
	.venv/bin/pip install -q -e '.[dev,gpu]'
	touch $(GPU_STAMP)

install-gpu: $(GPU_STAMP)   ## .venv plus the gpu extra (accelerate: bench-gpu's Trainer reference); no registry: docs/gpu.md

data: $(STAMP)              ## fetch and split the default data (the CFPB sample)
	$(PY) -m sweep data $(ARGS)

l2: $(STAMP)                ## choose the head's l2 once: unweighted fits, lowest validation log-loss (prints a table)
	$(PY) -m sweep l2 $(ARGS)

train: $(STAMP)             ## one tracked run: make train ARGS="model=tfidf_linear weighting.alpha=0.5"
	$(PY) -m sweep train $(ARGS)

baselines: $(STAMP)         ## the table that frames every decision (test split)
	$(PY) -m sweep baselines $(ARGS)

sweep: $(STAMP)             ## the multi-objective study: make sweep ARGS="sweep.n_trials=20" WORKERS=2
	$(UI_AT) $(PY) -m sweep sweep sweep.workers=$(WORKERS) $(ARGS)

export: $(STAMP)            ## pareto.csv, pareto_meeting.md/.csv, pareto_report/ (per_class.md, plots): ARGS="study=<name>"
	$(UI_AT) $(PY) -m sweep export $(ARGS)

pick: $(STAMP)              ## best macro-F1 under a constraint: make pick ARGS="min_accuracy=0.8"
	$(PY) -m sweep pick $(ARGS)

ui: $(STAMP)                ## the MLflow UI on the store, a link to each study's front first: PORT=5001 make ui
	$(UI_AT) $(PY) -m sweep ui $(ARGS)

dashboard: $(STAMP)         ## Optuna Dashboard on the study storage (Pareto front), 127.0.0.1:8080 unless HOST/PORT
	$(PY) -m sweep dashboard host=$(HOST) port=$(or $(PORT),8080) $(ARGS)

bench: $(STAMP)             ## harness vs naive sweep at the same converged answer (prints a table)
	$(PY) -m sweep bench $(ARGS)

# NO_VENV=1 PY=python3: a python that already has torch, transformers and accelerate (no registry: docs/gpu.md)
bench-gpu: $(if $(NO_VENV),,$(GPU_STAMP)) ## fine-tuning throughput vs the Hugging Face Trainer (needs a CUDA GPU)
	$(PY) -m sweep.bench.gpu $(ARGS)

test: $(STAMP)              ## what CI runs
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests

clean-results:              ## delete the local MLflow store, Optuna journals and caches (asks nothing!)
	rm -rf mlruns/mlflow.db mlruns/artifacts mlruns/optuna data/cache
