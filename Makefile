# SalesFlow Pipelines. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSDEPS := $(VENV)/.system-deps
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run test dev bench clean help ui-check

help:
	@echo "make run    - set up, run the whole pipeline once against the emulator with demo data"
	@echo "make test   - set up and run every test"
	@echo "make dev    - emulator (live sales) + dagster dev on http://127.0.0.1:3000"
	@echo "make bench  - run the benchmarks (figures go to BENCHMARKS.md by hand)"
	@echo "make ui-check - start emulator + dagster dev, check the UI over GraphQL and in headless Chromium"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	@touch $@

setup: $(STAMP) $(SYSDEPS) .env $(DAGSTER_HOME)/dagster.yaml

# Debian packages (chromium, poppler-utils): installed once; the stamp is written only when
# they are present, so a machine without root or sudo is reminded on the next `make`.
$(SYSDEPS): scripts/system-deps.sh
	@sh scripts/system-deps.sh
	@if command -v chromium >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then \
		mkdir -p $(VENV) && touch $@; fi

.env:
	cp .env.example .env

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: setup
	$(BIN)/python -m pipelines.demo

test: setup
	$(BIN)/python -m pytest -n 2 -q

dev: setup
	$(BIN)/python -m pipelines.demo --dev

ui-check: setup
	$(BIN)/python scripts/ui_check.py $(UI_CHECK_ARGS)

bench: setup
	$(BIN)/python benchmarks/extract.py

clean:
	rm -rf data exports .dagster_home
