# The two commands a newcomer needs: `make dev` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: dev test lint typecheck pytest node-test venv node clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Serve the whole API on 127.0.0.1:$(PORT) with in-memory DynamoDB and a WeChat simulator.
dev: venv
	PORT=$(PORT) $(PY) -m local.devserver

## Lint, type-check and run every test.
test: lint typecheck pytest node-test

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest

node-test:
	@if [ -d miniprogram/tests ]; then node --test miniprogram/tests/*.test.js; fi

clean:
	rm -rf $(VENV) node_modules .serverless .pytest_cache .mypy_cache .ruff_cache
