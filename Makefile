# Youhu — the two commands are `make demo` and `make test`; everything else is a step of theirs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
YOUHU := $(VENV)/bin/youhu
KAFKA ?= 0
export YOUHU_PORT ?= 8000

.PHONY: demo test venv services stop lint unit integration bench bench-geo bench-pipeline bench-ws frontend mobile browser clean

venv:
	@deploy/python-env.sh

services: venv
	@deploy/postgis.sh start >/dev/null
	@deploy/kafka.sh start >/dev/null

## make demo: the platform on http://127.0.0.1:$(YOUHU_PORT) (KAFKA=1: on the real broker, with a worker),
## with the five simulated source systems (SIM_RATE records per minute each; SIM_RATE=0: none)
SIM_RATE ?= 6
SIM_BASE_PORT ?= 9101
demo: venv frontend mobile
	@export YOUHU_DATABASE_URL="$${YOUHU_DATABASE_URL:-$$(deploy/postgis.sh start)}"; \
	$(YOUHU) db upgrade; \
	$(YOUHU) geo load 440114 >/dev/null; \
	$(YOUHU) accounts demo; \
	pids=""; trap 'for p in $$pids; do kill $$p 2>/dev/null || true; done; wait' EXIT; \
	if [ "$(SIM_RATE)" != 0 ]; then \
	  export YOUHU_SOURCE_ENDPOINTS="$${YOUHU_SOURCE_ENDPOINTS:-$$($(YOUHU) simulate --print-endpoints --base-port $(SIM_BASE_PORT))}"; \
	  $(YOUHU) simulate --sources all --rate $(SIM_RATE) --base-port $(SIM_BASE_PORT) \
	    --youhu-url http://127.0.0.1:$(YOUHU_PORT) & pids="$$pids $$!"; \
	  echo "simulated source systems: $$YOUHU_SOURCE_ENDPOINTS"; \
	fi; \
	if [ "$(KAFKA)" = 1 ] || [ -n "$${YOUHU_KAFKA_BOOTSTRAP:-}" ]; then \
	  export YOUHU_KAFKA_BOOTSTRAP="$${YOUHU_KAFKA_BOOTSTRAP:-$$(deploy/kafka.sh start)}"; \
	  $(YOUHU) worker & pids="$$pids $$!"; \
	  $(YOUHU) connector run & pids="$$pids $$!"; \
	fi; \
	echo "Youhu 有呼必应: command center http://127.0.0.1:$(YOUHU_PORT)/ · inspector app /m/ · API /docs · /health"; \
	$(YOUHU) serve --port $(YOUHU_PORT)

## make test: lint, type-check and the whole suite on the real PostGIS and Kafka at the real time, then
## the clock-sensitive tests (marker `clock`) again at chosen Beijing instants: a working Wednesday at
## 10:00, 12:30 (lunch) and 20:00, a Saturday, a make-up working Saturday (调休) and the eve of National Day
## (two runs at a time: CLOCK_JOBS)
CLOCK_INSTANTS ?= 2026-12-02T10:00:00+08:00 2026-12-02T12:30:00+08:00 2026-12-02T20:00:00+08:00 \
  2026-11-28T10:00:00+08:00 2026-10-10T10:00:00+08:00 2026-09-30T16:30:00+08:00
test: services lint frontend mobile browser
	@$(PY) -m pytest
	@tests/at_instants.sh $(CLOCK_INSTANTS)

## make mobile: the inspector app (web/mobile, TypeScript) built into web/static/mobile, served at /m/
mobile:
	@web/mobile/build.sh

lint: venv
	@$(VENV)/bin/ruff check geo dispatch connectors web tests bench
	@$(VENV)/bin/ruff format --check geo dispatch connectors web tests bench
	@$(VENV)/bin/mypy geo dispatch connectors web

## make frontend: the command center's page (npm ci + vite build → web/static/center/, served at /)
frontend:
	@deploy/browser.sh frontend

# Chromium and CJK fonts for the browser end-to-end tests (tests/browser)
browser:
	@deploy/browser.sh chromium >/dev/null

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

## make bench-ws: the live-map hub (uvicorn + web.app) on Kafka + PostGIS (started first): 1,000 WebSocket
## clients, 500 case deltas/s (BENCH_WS_CLIENTS, BENCH_WS_RATE, BENCH_WS_SECONDS), vs a bare broadcast
bench-ws: venv
	@export YOUHU_DATABASE_URL="$${YOUHU_DATABASE_URL:-$$(deploy/postgis.sh start)}"; \
	export YOUHU_KAFKA_BOOTSTRAP="$${YOUHU_KAFKA_BOOTSTRAP:-$$(deploy/kafka.sh start)}"; \
	$(PY) bench/bench_ws.py

bench: bench-geo bench-pipeline bench-ws

clean: stop
	rm -rf .run
