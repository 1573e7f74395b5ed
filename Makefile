# The two commands a newcomer needs (see README.md):
#   make demo   — install, then run marketd against an in-process fake exchange (UI/metrics on :8080)
#   make test   — install everything, lint, type-check, and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup system-deps demo run test lint protos bench chaos mutate clean

# Debian packages the tests use, as command:package: Chromium (UI tests), promtool
# (metrics/rules checks), systemd-analyze (unit verification), Java and Maven (the test
# Kafka broker), Podman with runc, buildah, mmdebstrap and slirp4netns (the container image
# test, tests/ops/test_podman.py). Installed only when missing; needs root (CI is root).
SYSTEM_TOOLS = chromium:chromium promtool:prometheus systemd-analyze:systemd \
               java:default-jre-headless mvn:maven \
               podman:podman runc:runc buildah:buildah mmdebstrap:mmdebstrap \
               slirp4netns:slirp4netns

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

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

test: lint system-deps
	$(BIN)/python -m marketd.testing.devkafka fetch
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/bench_codec.py
	$(BIN)/python bench/bench_kafka.py
	$(BIN)/python bench/bench_books.py
	$(BIN)/python bench/bench_detector.py
	$(BIN)/python bench/bench_fanout.py
	$(BIN)/python bench/bench_spool.py
	$(BIN)/python bench/bench_recorder.py
	$(BIN)/python bench/bench_replay.py
	$(BIN)/python bench/bench_backtest.py
	$(BIN)/python bench/bench_pipeline.py

# The chaos suite (also part of `make test`) with its table rewritten into docs/CHAOS.md.
chaos: setup
	$(BIN)/python -m marketd.testing.devkafka fetch
	$(BIN)/python scripts/chaos_report.py

# Mutation testing of the pure cores (docs/TESTING.md): not part of make test. MODULES picks
# some (paths under daemon/marketd/), e.g. make mutate MODULES="books/sync.py books/book.py".
mutate: setup
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,mutate]'
	$(BIN)/python scripts/mutate.py $(MODULES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/mutate*
