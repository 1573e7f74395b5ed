# The two commands a newcomer needs (see README.md):
#   make demo   — install, then run marketd against an in-process fake exchange (UI/metrics on :8080)
#   make test   — install everything, lint, type-check, and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup demo run test lint protos bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/marketd demo

run: setup
	$(BIN)/marketd run $(if $(CONFIG),--config $(CONFIG))

protos: setup
	$(BIN)/python scripts/gen_protos.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/gen_protos.py --check

test: lint
	$(BIN)/python -m marketd.devkafka fetch
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/bench_codec.py
	$(BIN)/python bench/bench_kafka.py
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
