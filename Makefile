# Everything a newcomer needs: `make sim` and `make test` set themselves up on a fresh machine
# (Python 3, Node and make preinstalled; the rest comes from PyPI and npm into .venv/ and
# tools/wasm/node_modules/).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
NODE_DEPS := tools/wasm/node_modules/.deps-installed
ARGS ?=

.PHONY: setup test test-cpython test-micropython test-wasm sim bench fuzz torture clean

setup: $(DEPS) $(NODE_DEPS)

$(DEPS): requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(NODE_DEPS): tools/wasm/package.json tools/wasm/package-lock.json
	cd tools/wasm && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# All tests on all three runtimes: CPython (pytest: host and portable tests), the MicroPython
# unix port and the 32-bit MicroPython WebAssembly port (portable tests). Fails if any runtime
# fails or runs no test.
test: setup
	$(PY) tools/test_all.py

test-cpython: setup
	$(PY) -m pytest host_tests -q

test-micropython: setup
	$(PY) tools/run_portable.py --runtime micropython

test-wasm: setup
	$(PY) tools/run_portable.py --runtime wasm

# The meter on this PC: `make sim ARGS='--pty --unit-id 18'`; `make sim ARGS=--help` lists flags.
sim: setup
	$(PY) tools/sim.py $(ARGS)

# Figures, not assertions: throughput, RAM and code size on MicroPython unix and CPython.
bench: setup
	$(PY) tools/bench.py

# Fuzzing (tools/fuzz.py, README "Fuzzing"): a million mutation cases through HDLC and the TCP
# wrapper into the application layer, each checked and followed by a recovery session; about
# 8 min on two cores (CPython). Others:
#   make fuzz FUZZ_ARGS='--runtime micropython --cases 1000000 --jobs 2'   (about 13 min)
#   make fuzz FUZZ_ARGS='--engine hypothesis --cases 20000 --seed 3'
FUZZ_ARGS ?= --cases 1000000 --jobs 2 --seed 1
fuzz: setup
	$(PY) tools/fuzz.py $(FUZZ_ARGS)

# Power-cut torture: SIGKILL the simulated meter 1000 times (about 14 minutes) at random moments
# of backfill, recording, serving and clock sets; check what it serves after every restart.
# `make torture SEED=7 ARGS='--cuts 200 --runtime cpython'`.
SEED ?= 1
torture: setup
	$(PY) tools/torture.py --cuts 1000 --seed $(SEED) $(ARGS)

clean:
	rm -rf $(VENV) tools/wasm/node_modules build .pytest_cache
include mk/boards.mk
