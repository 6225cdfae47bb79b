# Plimsoll: `make demo` runs the reference use case, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PLIMSOLL_HOME ?= $(CURDIR)/.plimsoll
export DAGSTER_HOME ?= $(PLIMSOLL_HOME)/dagster
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: install lock demo test test-slow lint ui mlflow-ui bench pin clean k8s-tools k8s-check ai-ci nightly obs-tools ui-tools ui-check

install: $(VENV)/.installed

# Every package comes from requirements.lock, pinned with its hashes; `make lock` writes it
# from pyproject.toml and tests/test_dependency_pins.py fails when the two disagree. The lock
# is the whole resolution, so pip installs it as it stands (--no-deps: nothing is resolved
# again at install time), then the project itself.
#
# The antlr4 conflict, resolved on purpose (dagster-io/dagster#27487): DVC depends on
# hydra-core and omegaconf 2.3, which pin antlr4-python3-runtime 4.9; Dagster's asset
# selection parser needs 4.13. The lock holds antlr4 4.13.2 for Dagster and omegaconf 2.4.0,
# which vendors its own antlr runtime (requirements-overrides.txt; `pip check` reports the
# hydra-core pin, as expected). Only hydra's parser stays on 4.9, and only
# `dvc exp` with hydra composition uses it, which Plimsoll never runs (hydra's pytest
# plugin is disabled in pyproject.toml). tests/test_dependency_pins.py runs a real
# `dagster asset materialize --select` and a real DVC add/push/pull to prove it.
PIP_VERSION := 26.3
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'pip==$(PIP_VERSION)'
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# `make lock` upgrades on purpose: it resolves pyproject.toml afresh to the newest versions it
# allows (Python 3.11, x86_64 Linux) and writes every pin with its hashes, in three locks of
# one resolution:
#   requirements.lock             make install: the dependencies and the dev extra, torch's
#                                 CPU build from the machine's disk (PIP_FIND_LINKS)
#   k8s/image/requirements.lock   the image: the same pins, the s3 extra instead of dev, and
#                                 PyPI's torch, so the GPU image gets the CUDA build
#   k8s/image/mlflow-server.lock  the image's mlflow target, at the same pins
# `make lock LOCK_UPGRADE='--upgrade-package mlflow'` moves one package and keeps the rest.
UV_VERSION := 0.13.8
LOCK_UPGRADE ?= --upgrade
LOCK_FIND_LINKS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --custom-compile-command 'make lock' $(LOCK_UPGRADE)
# name==version of each pin in a lock, without torch's +cpu, as constraints for the next lock.
LOCKED_VERSIONS = sed -n 's/^\([A-Za-z0-9][^ ]*==[^ +]*\).*/\1/p'
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(UV_COMPILE) pyproject.toml --extra dev --override requirements-overrides.txt \
		--find-links $(LOCK_FIND_LINKS) -o requirements.lock
	$(LOCKED_VERSIONS) requirements.lock > $(VENV)/locked-versions.txt
	$(UV_COMPILE) pyproject.toml --extra s3 --override requirements-overrides.txt \
		--constraint $(VENV)/locked-versions.txt -o k8s/image/requirements.lock
	$(LOCKED_VERSIONS) k8s/image/requirements.lock > $(VENV)/image-versions.txt
	$(UV_COMPILE) k8s/image/mlflow-server.in --constraint $(VENV)/image-versions.txt \
		-o k8s/image/mlflow-server.lock

demo: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m platform_defs.demo

# pytest in two workers that take work from each other, one torch thread each: about a
# quarter faster on 2 cores than one process with two threads (most tests wait on
# subprocesses, servers and storage part of the time). `make test PYTEST_WORKERS=0` runs
# it in one process.
PYTEST_WORKERS ?= 2
PYTEST_ENV = $(if $(filter 0,$(PYTEST_WORKERS)),,OMP_NUM_THREADS=1)
test: install k8s-check ui-tools
	$(BIN)/ruff check .
	$(BIN)/python tools/promptlint.py prompts/
	$(BIN)/plimsoll alerts render --check
	$(PYTEST_ENV) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

# The AI checks of CI on a real candidate: build one with the demo, then the 50-question
# eval at a fixed seed against policies/slos.yaml, then the OWASP threat checks (red-team
# set through the guarded query path). `make test` runs the prompt lint.
THREAT_CATEGORIES := prompt_injection,indirect_injection,jailbreak,system_prompt_extraction,data_exfiltration,encoded_payload,benign
# CI's candidate is trained with `--quick` (one epoch, no mining, no early stopping) to stay
# in CI's time; `make demo` and the nightly job train with the full recipe.
ai-ci: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m platform_defs.demo --quick
	$(BIN)/python tools/run_eval.py --limit 50 --model models:/plimsoll-docs-assistant/latest --seed 42 --json $(PLIMSOLL_HOME)/ci-eval.json
	$(BIN)/python tools/threat_checks.py --categories $(THREAT_CATEGORIES) --model models:/plimsoll-docs-assistant/latest --json $(PLIMSOLL_HOME)/ci-threats.json

# Nightly: the full eval set, the full red-team set and the guard on the attack corpus.
nightly: demo ui-tools
	$(BIN)/python tools/run_eval.py --limit 0 --evalset evalsets/python_docs_nightly.jsonl --model models:/plimsoll-docs-assistant/latest --seed 42
	$(BIN)/python tools/threat_checks.py --model models:/plimsoll-docs-assistant/latest
	$(BIN)/python benchmarks/guard_quality.py
	$(BIN)/python benchmarks/guard_quality.py --corpus evalsets/guard_heldout
	$(BIN)/python tools/ui_check.py

test-slow: install
	$(BIN)/pytest -m slow

# checkov pins packaging<24, networkx 2.x and cachetools 5.x: it gets a venv of its own.
k8s-tools: k8s/.checkov-venv/.installed
k8s/.checkov-venv/.installed: k8s/checkov-requirements.txt
	test -x k8s/.checkov-venv/bin/python || $(PYTHON) -m venv k8s/.checkov-venv
	k8s/.checkov-venv/bin/pip install --quiet -r k8s/checkov-requirements.txt
	touch $@

# promtool and prometheus (Debian's prometheus package): the alert rules' unit tests, the
# PrometheusRule check of k8s-check and the scrape test. Installed only when promtool is
# missing, as root or through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
obs-tools:
	command -v promtool >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# Debian's chromium for `make ui-check` (Python Playwright drives it; no browser download).
ui-tools:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) env \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# The reviewer's pages in a real browser, after `make demo`: the MLflow UI and the Dagster
# webserver on the embedded stores, the version page and the eval_report and candidate_model
# asset pages checked for what a person must see, screenshots in $(PLIMSOLL_HOME)/ui-check.
UI_CHECK_ARGS ?=
ui-check: install ui-tools
	$(BIN)/python tools/ui_check.py $(UI_CHECK_ARGS)

# Render the overlays, strict schemas (PrometheusRules through promtool), Gatekeeper policy
# suites, exception expiry, checkov.
k8s-check: install k8s-tools obs-tools
	$(BIN)/python tools/k8s_check.py

lint: install
	$(BIN)/ruff check .

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

mlflow-ui: install
	mkdir -p $(PLIMSOLL_HOME)/mlflow
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(PLIMSOLL_HOME)/mlflow/mlflow.db \
		--default-artifact-root $(PLIMSOLL_HOME)/mlflow/artifacts --port 5000

bench: install
	-$(BIN)/python benchmarks/embedding_speed.py
	-$(BIN)/python benchmarks/finetune_speed.py
	$(BIN)/python benchmarks/rollback_speed.py
	$(BIN)/python benchmarks/serving_speed.py
	$(BIN)/python benchmarks/guard_quality.py

pin: install
	$(BIN)/plimsoll data pin

clean:
	rm -rf $(PLIMSOLL_HOME)
