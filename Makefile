# One command per task; each creates .venv from the pinned requirements when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist: one worker per core; a test file stays on one worker (the distributed tests start their own processes).
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile
TOL ?= 1e-6
BASE ?= HEAD~1
REV ?= HEAD
# Stage commands say `python`: make it the project's interpreter for dvc and everything it starts.
export PATH := $(abspath $(BIN)):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))

.DEFAULT_GOAL := help
.PHONY: help venv browser repro test test-fast lint format check-repro verify-cache exp-show report offline-charts bench bench-reference bench-scale bench-mlp bench-tables bench-distributed clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip check
	touch $(STAMP)

venv: $(STAMP) ## Create or refresh .venv from requirements.lock

BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
browser: ## Install Debian's chromium (apt-get, as root or through sudo) unless a Chromium or Chrome is there: the offline-chart test draws in it
	@for b in $(BROWSERS); do command -v $$b >/dev/null && exit 0; done; \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q --no-install-recommends chromium >/dev/null; }

repro: $(STAMP) ## Check params.yaml, run the pipeline (dvc repro), and record every stage in DVC's run-cache
	@# params.yaml checked first, as the stages read it: dvc would hang on a file whose aliases stand for 10^9 values
	$(BIN)/python -m stages.params
	$(BIN)/dvc repro
	@# DVC records a stage in its run-cache when it runs it. A fresh clone finds evaluate and plot up to date
	@# (their outputs are in git), so they are recorded here: going back to these params later restores them.
	$(BIN)/dvc commit --force --quiet

test: $(STAMP) browser ## Run the whole test suite, slow end-to-end tests included
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests, skipping the slow end-to-end ones
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

LINTED := stages tests benchmarks .ci

lint: $(STAMP) ## ruff check and ruff format --check on the code; the CI workflow against GitHub's schema
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml

format: $(STAMP) ## Format the code with ruff (what make lint checks)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix --quiet $(LINTED)

check-repro: $(STAMP) ## Reproduce and fail if dvc.lock or any output differs from the commit (TOL=1e-6), or a cache file from its hash
	TOL=$(TOL) $(BIN)/python .ci/check_repro.py
	$(BIN)/python .ci/verify_cache.py

verify-cache: $(STAMP) ## Rehash the DVC cache files a commit needs (REV=HEAD) and name any whose content does not match
	$(BIN)/python .ci/verify_cache.py $(REV)

exp-show: $(STAMP) ## dvc exp show: each model's MSE per split and every param that differs among the experiments (ARGS=-A ...)
	$(BIN)/python .ci/exp_show.py $(ARGS)

offline-charts: $(STAMP) ## Rebuild .dvc/plots/offline.html (the chart page with vega inside) from the pinned npm packages
	$(BIN)/python .ci/offline_charts.py

report: $(STAMP) ## Write report.md: params, metrics and plots against BASE (default HEAD~1; FIGURES_URL= links the figures)
	$(BIN)/python .ci/report.py $(BASE) $(if $(FIGURES_URL),--figures-url '$(FIGURES_URL)')

bench: bench-reference bench-scale bench-mlp bench-tables bench-distributed ## Run the benchmarks (never part of make test)

bench-reference: $(STAMP) ## Time a forced dvc repro against the two reference programs
	$(BIN)/python benchmarks/bench_reference.py

bench-scale: $(STAMP) ## The pipeline against a scikit-learn script on 10^6 and 10^7 rows (BENCH_ARGS=--huge adds 10^8), then on a mixed table
	$(BIN)/python benchmarks/bench_scale.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_mixed.py $(MIXED_ARGS)

bench-mlp: $(STAMP) ## The MLP's test MSE over 30 seeds a side against scikit-learn's, 10^6 rows, both tables
	$(BIN)/python benchmarks/bench_mlp_draws.py $(MLP_ARGS)
	$(BIN)/python benchmarks/bench_mlp_draws.py --plateau-seed 20 $(MLP_ARGS)

bench-tables: $(STAMP) ## Penguins and diamonds, 80/20 into two files: linear and MLP against scikit-learn's ColumnTransformer
	$(BIN)/python benchmarks/bench_tables.py

bench-distributed: $(STAMP) ## train@mlp in one process against two torchrun workers, 10^6 rows (DIST_ARGS=--rows N)
	$(BIN)/python benchmarks/bench_distributed.py $(DIST_ARGS)

clean: ## Remove the virtual environment and Python caches
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
