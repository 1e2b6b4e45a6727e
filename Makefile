# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@command -v java >/dev/null || { echo "need Java 17 (java on PATH) for Spark"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned: pip takes the CPU wheel from the local wheel folder.
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup   ## generate a day, train first models if none, run the nightly DAG, show results
	$(VENV)/bin/percolate demo

test: setup   ## the whole test suite (CI runs this)
	$(PY) -m pytest -q

test-fast: setup   ## tests that need no JVM, training or video encoding
	$(PY) -m pytest -q -m "not slow and not spark and not airflow and not integration"

bench: setup
	$(PY) benchmarks/bench_sampler.py

clean:
	rm -rf var .pytest_cache
