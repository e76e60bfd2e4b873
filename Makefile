# Convenience targets; the README's two commands work without make.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q

.PHONY: setup demo test check unit lint format bench layers synth clean

$(VENV)/bin/activate:
	python3 -m venv $(VENV)

setup: $(VENV)/bin/activate
	$(PIP) install -c constraints.txt -e '.[dev]'

demo: $(VENV)/bin/activate
	$(PIP) install -c constraints.txt -e '.[local]'
	$(VENV)/bin/flywheel demo

test: setup
	$(PY) -m pytest

# Static checks, the same as the pre-commit hooks (.pre-commit-config.yaml).
check:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy && $(VENV)/bin/lint-imports

# The quick tests: domain logic and the backend contracts (in memory, and DynamoDB/S3 on
# in-process moto). No moto server, no CDK synth, no CLI processes: under a minute on 2 cores.
unit:
	$(PY) -m pytest tests/unit tests/contract

lint: check

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench:
	$(PY) bench/training_figures.py && $(PY) bench/typed_features.py && $(PY) bench/explain.py && $(PY) bench/serving.py && $(PY) bench/drift.py && $(PY) bench/features.py

layers:
	$(PY) layers/build.py

synth:
	npm ci --silent && npx cdk synth --quiet

clean:
	rm -rf cdk.out layers/build reports .flywheel .pytest_cache .mypy_cache .ruff_cache
