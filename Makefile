# The two commands a newcomer needs: `make dev` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: dev test lint typecheck pytest node-test venv node clean package test-package mariadb dev-mysql dev-mysql-stop

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
## `make dev STORAGE=mysql`: on a local MariaDB instead (started and migrated here, data in .local/mysql/).
ifeq ($(STORAGE),mysql)
dev: venv dev-mysql
	PORT=$(PORT) STORAGE=mysql MYSQL_HOST=127.0.0.1 MYSQL_PORT=$(MYSQL_DEV_PORT) $(PY) -m local.devserver
else
dev: venv
	PORT=$(PORT) $(PY) -m local.devserver
endif

MYSQL_DEV_DIR := .local/mysql
MYSQL_DEV_PORT ?= 3307

## The dev MariaDB: started unless running (kept running, data kept across restarts), then migrated.
dev-mysql: venv mariadb
	$(PY) -m local.mariadb start $(MYSQL_DEV_DIR) $(MYSQL_DEV_PORT)
	STORAGE=mysql MYSQL_HOST=127.0.0.1 MYSQL_PORT=$(MYSQL_DEV_PORT) $(PY) -m shared.storage.mysql.migrate

dev-mysql-stop:
	@if [ -f $(MYSQL_DEV_DIR)/mysqld.pid ]; then kill $$(cat $(MYSQL_DEV_DIR)/mysqld.pid) && echo "MariaDB stopped"; fi

## Debian's MariaDB for the MySQL tests and `make dev STORAGE=mysql`: installed when missing and we are
## root (CI is). Elsewhere the MySQL tests skip, saying why.
mariadb:
	@if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null; \
		else \
			echo "mariadb-server is not installed (and we are not root): the MySQL tests will be skipped"; \
		fi; \
	fi

## Lint, type-check and run every test.
test: lint typecheck pytest node-test test-package

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# pytest-xdist: one worker per CPU (PYTEST_WORKERS=0 for one process).
PYTEST_WORKERS ?= auto
pytest: venv mariadb
	$(PY) -m pytest --ignore=tests/package -n $(PYTEST_WORKERS)

## Build the deployments, no cloud account needed: AWS into .serverless/ (osls package, Lambda
## wheels in one layer), Tencent SCF into infra/tencent/.build/ (Python 3.10 wheels). Each is rebuilt
## only when what goes into it changed (a digest of its inputs, infra/package_inputs.py).
AWS_INPUTS := .serverless/inputs.sha256
SCF_INPUTS := infra/tencent/.build-inputs.sha256
package: venv node
	@inputs=$$($(PY) infra/package_inputs.py aws) && \
	if [ "$$inputs" = "$$(cat $(AWS_INPUTS) 2>/dev/null)" ]; then \
		echo ".serverless/ is up to date"; \
	else \
		SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off node_modules/.bin/osls package --stage dev && \
		echo "$$inputs" > $(AWS_INPUTS); \
	fi
	@inputs=$$($(PY) infra/package_inputs.py scf) && \
	if [ "$$inputs" = "$$(cat $(SCF_INPUTS) 2>/dev/null)" ]; then \
		echo "infra/tencent/.build/ is up to date"; \
	else \
		rm -f $(SCF_INPUTS) && $(PY) infra/tencent/build.py build && echo "$$inputs" > $(SCF_INPUTS); \
	fi

## Check the real package: cfn-lint, artifact contents, smoke test of each artifact in a clean Python.
# One process: the smoke tests start their functions in parallel already, and xdist's workers cost
# more CPU (each its own moto server) than they save.
test-package: package
	WX_LOGIN_REQUIRE_PACKAGE=1 $(PY) -m pytest tests/package

node-test:
	@if [ -d miniprogram/tests ]; then node --test miniprogram/tests/*.test.js; fi

clean:
	rm -rf $(VENV) node_modules .serverless .requirements-cache infra/tencent/.build $(SCF_INPUTS) .pytest_cache .mypy_cache .ruff_cache

## Load test on 127.0.0.1 (bounded, about 30 s): requests/s, latency, errors, then nothing lost or duplicated.
.PHONY: stress
stress: venv
	$(PY) -m stress --seconds $(or $(STRESS_SECONDS),20) --clients $(or $(STRESS_CLIENTS),16)

## Cold start, warm latency, round trips and size of every function against floors measured in the
## same run (about 2 minutes on 2 idle cores); prints the tables and writes bench/results.md.
.PHONY: bench
bench: venv
	$(PY) -m bench
