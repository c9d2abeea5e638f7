# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-core
# torch==2.13.0 is a CPU wheel on local disk on our machines; the find-links entry is harmless elsewhere.
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install demo lint test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -c constraints.txt -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/nextbest simulate --scenario optimus-poc --experiment-dir runs/demo --seed 0

# Lint first: the import layers (pyproject.toml [tool.importlinter]) and ruff, then the suite.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Peer libraries (Stable-Baselines3, Vowpal Wabbit, MABWiser, SDV, …) live in a separate venv so that
# they never touch the pins the library and its tests use.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml constraints.txt constraints-bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --disable-pip-version-check -q $(if $(wildcard /opt/wheels),--find-links /opt/wheels,) -c constraints-bench.txt -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs .pytest_cache
