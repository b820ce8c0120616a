# Youhu — the two commands are `make demo` and `make test`; everything else is a step of theirs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
YOUHU := $(VENV)/bin/youhu
KAFKA ?= 0
export YOUHU_PORT ?= 8000

.PHONY: demo test venv services stop lint unit integration bench bench-geo bench-pipeline clean

venv:
	@deploy/python-env.sh

services: venv
	@deploy/postgis.sh start >/dev/null
	@deploy/kafka.sh start >/dev/null

## make demo: the platform on http://127.0.0.1:$(YOUHU_PORT) (KAFKA=1: on the real broker, with a worker)
demo: venv
	@export YOUHU_DATABASE_URL="$${YOUHU_DATABASE_URL:-$$(deploy/postgis.sh start)}"; \
	$(YOUHU) db upgrade; \
	$(YOUHU) geo load 440114 >/dev/null; \
	if [ "$(KAFKA)" = 1 ] || [ -n "$${YOUHU_KAFKA_BOOTSTRAP:-}" ]; then \
	  export YOUHU_KAFKA_BOOTSTRAP="$${YOUHU_KAFKA_BOOTSTRAP:-$$(deploy/kafka.sh start)}"; \
	  $(YOUHU) worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT; \
	fi; \
	echo "Youhu 有呼必应: http://127.0.0.1:$(YOUHU_PORT)/docs  (health: /health)"; \
	$(YOUHU) serve --port $(YOUHU_PORT)

## make test: lint, type-check and the whole suite on the real PostGIS and Kafka
test: services lint
	@$(PY) -m pytest

lint: venv
	@$(VENV)/bin/ruff check geo dispatch connectors web tests bench
	@$(VENV)/bin/ruff format --check geo dispatch connectors web tests bench
	@$(VENV)/bin/mypy geo dispatch connectors web

unit: venv
	@$(PY) -m pytest tests/unit

stop:
	@deploy/kafka.sh stop || true
	@deploy/postgis.sh stop || true

## make bench-geo: the engine against naive shapely and against PostGIS (started first)
bench-geo: venv
	@export YOUHU_DATABASE_URL="$${YOUHU_DATABASE_URL:-$$(deploy/postgis.sh start)}"; \
	$(PY) bench/bench_geo.py

## make bench-pipeline: 2 workers end to end on Kafka + PostGIS (started first), vs Kafka's consumer tool and a naive pipeline
bench-pipeline: venv
	@export YOUHU_DATABASE_URL="$${YOUHU_DATABASE_URL:-$$(deploy/postgis.sh start)}"; \
	export YOUHU_KAFKA_BOOTSTRAP="$${YOUHU_KAFKA_BOOTSTRAP:-$$(deploy/kafka.sh start)}"; \
	$(PY) bench/bench_pipeline.py

bench: bench-geo bench-pipeline

clean: stop
	rm -rf .run
