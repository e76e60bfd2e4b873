# Convenience targets; the README's two commands work without make.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q

.PHONY: setup demo test lint format bench layers synth clean

$(VENV)/bin/activate:
	python3 -m venv $(VENV)

setup: $(VENV)/bin/activate
	$(PIP) install -c constraints.txt -e '.[dev]'

demo: $(VENV)/bin/activate
	$(PIP) install -c constraints.txt -e '.[local]'
	$(VENV)/bin/flywheel demo

test: setup
	$(PY) -m pytest

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy && $(VENV)/bin/lint-imports

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench:
	$(PY) bench/training_figures.py && $(PY) bench/serving.py && $(PY) bench/drift.py && $(PY) bench/features.py

layers:
	$(PY) layers/build.py

synth:
	npm ci --silent && npx cdk synth --quiet

clean:
	rm -rf cdk.out layers/build reports .flywheel .pytest_cache .mypy_cache .ruff_cache
