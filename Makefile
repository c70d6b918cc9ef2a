# The user's vocabulary: sweep, export, pick, ui, bench, test. Every target creates .venv on first use.
PY      := .venv/bin/python
STAMP   := .venv/.installed
ARGS    ?=
WORKERS ?= 1
HOST    ?= 127.0.0.1
PORT    ?=
# where `make ui` serves, so that sweep and export print links to it (PORT: 5000 for ui, 8080 for dashboard)
UI_AT   := SWEEP_UI_HOST=$(HOST) SWEEP_UI_PORT=$(or $(PORT),5000)

.PHONY: help install install-gpu install-ray lock data l2 train baselines sweep export pick ui dashboard bench bench-gpu test test-fast lint clean-results

help:                       ## the commands, what each writes, the overrides people use most
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/'
	@echo; echo 'ARGS="<hydra overrides>" for any target; python -m sweep --help for the overrides'

# The lock (lock/*.txt, written by `make lock`): exact versions with sha256 hashes, installed with --no-deps so
# that pip installs what the lock says and nothing newer; torch by version only (lock/torch.txt says why).
LOCKED  := .venv/bin/pip install -q --require-hashes --no-deps -r
$(STAMP): pyproject.toml lock/base.txt lock/torch.txt
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	$(LOCKED) lock/base.txt
	.venv/bin/pip install -q -r lock/torch.txt
	.venv/bin/pip install -q --no-deps --no-build-isolation -e .
	.venv/bin/pip check
	touch $(STAMP)

install: $(STAMP)           ## .venv with exactly the locked versions (lock/base.txt: the project and its dev extra)

# uv resolves; pip installs. --universal: one lock for every OS and Python >= 3.11; --fork-strategy fewest: the
# same version on each Python where one fits (the GPU machine's 3.12 gets the CPU machine's versions).
UV      := .venv/bin/uv
UV_LOCK := $(UV) pip compile pyproject.toml -q --universal --fork-strategy fewest --generate-hashes \
           --constraints lock/torch.txt --excludes lock/torch-cuda.txt --no-emit-package torch \
           --custom-compile-command "make lock"
$(UV):
	test -d .venv || python3 -m venv .venv
	.venv/bin/pip install -q "$$(grep -oE '^uv==[^ ]+' lock/base.txt || echo uv)"

lock: $(UV)                 ## refresh lock/*.txt after editing pyproject.toml, then commit them; ARGS=--upgrade: newest
	$(UV_LOCK) --extra dev $(ARGS) -o lock/base.txt
	$(UV_LOCK) --extra dev --extra ray --constraints lock/base.txt $(ARGS) -o lock/ray.txt
	$(UV_LOCK) --extra dev --extra gpu --constraints lock/base.txt $(ARGS) -o lock/gpu.txt
	@! grep -HE '^(nvidia-|triton|cuda-)' lock/base.txt lock/ray.txt lock/gpu.txt \
	  || { echo "make lock: torch's CUDA packages above are in the lock: add their names to lock/torch-cuda.txt"; exit 1; }

GPU_STAMP := .venv/.installed-gpu
$(GPU_STAMP): $(STAMP) lock/gpu.txt
	$(LOCKED) lock/gpu.txt
	.venv/bin/pip check
	touch $(GPU_STAMP)

install-gpu: $(GPU_STAMP)   ## .venv plus the gpu extra (accelerate: bench-gpu's Trainer reference); no registry: docs/gpu.md

RAY_STAMP := .venv/.installed-ray
$(RAY_STAMP): $(STAMP) lock/ray.txt
	$(LOCKED) lock/ray.txt
	.venv/bin/pip check
	touch $(RAY_STAMP)

install-ray: $(RAY_STAMP)   ## .venv plus the ray extra (lock/ray.txt), for sweep.launcher=ray; not in make install

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

ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # a test worker per core, one torch thread each

test: $(STAMP)              ## what CI runs, on every core: servers, sweeps and faults one after another (15 slowest)
	$(ONE_THREAD) $(PY) -m pytest -q -n auto --dist loadgroup --durations=15 -m "not ray" $(ARGS)
	$(PY) -m pytest -q --durations=15 -m ray $(ARGS) || [ $$? -eq 5 ]  # the Ray cluster alone (5: none selected)

test-fast: $(STAMP)         ## the edit loop: no server, sweep, subprocess, browser, GPU or fault; on every core
	$(ONE_THREAD) $(PY) -m pytest -q -n auto --durations=10 \
	  -m "not slow and not integration and not browser and not faults and not gpu and not system" $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests

clean-results:              ## delete the local MLflow store, Optuna journals and caches (asks nothing!)
	rm -rf mlruns/mlflow.db mlruns/artifacts mlruns/optuna data/cache
