# codegen-mcp: `make run` starts the product, `make test` runs every test tier that can run here.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(TOOLS)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
PYTEST := $(PY) -m pytest

.PHONY: help run deps deps-system lint unit integration test-integration chart test-chart container test-container e2e-kind bench images test clean

help:
	@echo "make run        start the coordinator with an embedded worker on 127.0.0.1:8080"
	@echo "make test       lint + unit + integration + chart + container tiers"
	@echo "make deps-system  Debian packages, helm/kubectl and the MCP Inspector (into .tools/), as make test does"
	@echo "make bench      benchmarks, written to docs/benchmarks.md"
	@echo "make images     build the coordinator and worker images"
	@echo "make e2e-kind   create a kind cluster, install the chart, run tests/e2e"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,redis]'
	touch $@

deps: $(VENV)/.installed

# System packages, helm and the MCP Inspector: everything a fresh machine lacks.
deps-system:
	bash ci/install-deps.sh

run: deps
	@mkdir -p .workspaces
	$(VENV)/bin/coordinator --transport http $(ARGS)

lint: deps
	$(VENV)/bin/ruff check coordinator worker tests bench
	$(VENV)/bin/mypy
	shellcheck ci/*.sh .ci/run

unit: deps
	$(PYTEST) tests/unit -q

integration test-integration: deps
	$(PYTEST) tests/integration -q

chart test-chart: deps
	$(PYTEST) tests/chart -q

container test-container: deps
	$(PYTEST) tests/container -q

e2e-kind: deps
	bash ci/kind-e2e.sh

bench: deps
	$(PY) -m bench

images:
	bash ci/build-images.sh

test: deps-system deps lint
	$(PYTEST) tests/unit tests/integration tests/chart tests/container tests/e2e -q

clean:
	rm -rf $(VENV) $(TOOLS) .workspaces
