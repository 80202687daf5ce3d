# Every target creates or reuses .venv and installs the pinned dependencies
# (constraints.txt) first, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow lint format bench bench-e2e bench-anchors bench-cluster chaos cluster-test soak fuzz clean

$(STAMP): pyproject.toml setup.py constraints.txt src/venuefeed/_kernel.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "venuefeed needs Python 3.11+")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/venuefeed demo

# The suite minus the long end-to-end runs (marked `slow`: the quick chaos suite, kills
# and outages of real processes, the 200k-market archive), which `make test-slow` runs;
# CI runs both. The book's per-frame loops run in C when the optional extension built;
# the second pass runs the book and venue tests again on the pure-Python fallback
# (about 25 s), which is what an install without a C compiler runs.
PURE_TESTS := tests/test_book.py tests/test_book_kernel.py tests/venues/test_checks.py \
	tests/venues/binance/test_parse.py tests/venues/binance/test_feed.py \
	tests/venues/binance/test_stream.py tests/venues/binance/test_sim_conformance.py \
	tests/venues/polymarket/test_polymarket_parse.py tests/venues/polymarket/test_polymarket_feed.py \
	tests/venues/polymarket/test_polymarket_stream.py tests/venues/polymarket/test_polymarket_e2e.py \
	tests/venues/polymarket/test_polymarket_conformance.py
test: $(STAMP)
	$(PY) -m pytest -m "not slow"
	VENUEFEED_PURE_PYTHON=1 $(PY) -m pytest -q -m "not slow" $(PURE_TESTS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

# Hot-path micro-benchmarks (µs per frame against the "typed decode + plain dict
# book" baseline), sink throughput, then the end-to-end run. Figures only.
bench: $(STAMP)
	$(PY) bench/bench_binance_depth.py
	$(PY) bench/bench_polymarket_parse.py
	$(PY) bench/bench_kalshi_parse.py
	$(PY) bench/bench_polygon_parse.py
	$(PY) bench/bench_recorder.py
	$(PY) bench/bench_sinks.py
	$(PY) bench/bench_e2e.py

# A million seeded mutations of the recorded captures through every venue's parsers
# and frame consumers; exits non-zero on any escaped exception or accepted invalid
# value. Reproduce one input with: $(PY) -m venuefeed.testing.fuzz --replay <venue>:<entry>:<index>
FUZZ_FRAMES ?= 1000000
FUZZ_SEED ?= 1
FUZZ_SECONDS ?= 1800
fuzz: $(STAMP)
	$(PY) -m venuefeed.testing.fuzz --frames $(FUZZ_FRAMES) --seed $(FUZZ_SEED) --seconds $(FUZZ_SECONDS)

bench-e2e: $(STAMP)
	$(PY) bench/bench_e2e.py

# The shared anchor harness (cryptofeed, nautilus_trader and the CPython floor on
# the same generated Binance and Polymarket streams) with venuefeed's rows
# (bench/anchors_row.py) in the same run; prints the table, ratios to the floor.
# The harness folder may be read-only: its venv, streams and results go to
# ANCHORS_WORK. About 6 minutes on 2 quiet cores. Figures only.
ANCHORS ?= $(firstword $(wildcard ../shared/bench/anchors ../../shared/bench/anchors))
ANCHORS_WORK ?= $(HOME)/.cache/venuefeed-anchors
bench-anchors:
	@test -n "$(ANCHORS)" || { echo "no anchor harness: set ANCHORS=<shared>/bench/anchors"; exit 1; }
	@test -x $(ANCHORS_WORK)/venv/bin/python || $(PYTHON) -m venv $(ANCHORS_WORK)/venv
	$(ANCHORS_WORK)/venv/bin/pip install --quiet --disable-pip-version-check -r $(ANCHORS)/requirements.txt
	$(ANCHORS_WORK)/venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	ANCHORS_WORK=$(ANCHORS_WORK) EXTRA_BENCHES=$(CURDIR)/bench/anchors_row.py $(ANCHORS)/run_all.sh

# The fault suite at the issue's scale (about 12 minutes): kills, venue faults,
# PostgreSQL/NATS stalls, a full disk; prints the table, exits 1 on any missing
# or duplicated trade. `make test` runs a seconds-long version (tests/chaos).
chaos: $(STAMP)
	$(PY) -m venuefeed.chaos

# `venuefeed run` against simulator processes (300 events/s per venue) for
# SOAK_MINUTES: RSS, latency and health every 10 s, then the RSS slope. Figures only.
SOAK_MINUTES ?= 10
soak: $(STAMP)
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES)

# The long cluster scenarios (a few minutes of real processes: a NATS node killed and
# restarted, a writer killed with a batch in hand, a worker added and removed, with
# thousands of simulated instruments). `make test` runs the kill -9 and pause ones.
cluster-test: $(STAMP)
	VF_CLUSTER_LONG=1 $(PY) -m pytest tests/cluster -m cluster_long -q -s

# Events/s with 1, 2 and 3 workers, and failover times over repeated kills. Figures only.
bench-cluster: $(STAMP)
	$(PY) bench/bench_cluster.py

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/venuefeed/_kernel.*.so
