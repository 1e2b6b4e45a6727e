# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PIPLOG := $(VENV)/pip.log
# pip is quiet unless it fails: its output goes to $(PIPLOG), shown on failure
QUIET   = > $(PIPLOG) 2>&1 || { cat $(PIPLOG); echo "pip failed (log: $(PIPLOG))"; exit 1; }

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@command -v java >/dev/null || { echo "need Java 17 (java on PATH) for Spark"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) from requirements.lock (a few minutes the first time)"
	@# exact versions, no resolving; torch==2.13.0 is the CPU wheel from the local wheel folder.
	@# Bytecode is compiled once here, on every core (pip's own compile step is serial): where
	@# PYTHONDONTWRITEBYTECODE is set, Python never caches what it compiles, and every Airflow
	@# task, Spark driver and Python worker would compile torch and Great Expectations again
	@# (measured: a 2-call DAG run's Spark jobs 10-15 s faster each; docs/development.md).
	@$(PY) -m pip install --no-compile --no-deps -r requirements.lock $(QUIET)
	@# (a few files in the wheels are Python 2 or 3.12 syntax, never imported: their errors are ignored)
	@$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
		> $(VENV)/compile.log 2>&1 || true
	@$(PY) -m pip install --no-deps -e . $(QUIET)
	@$(PY) -m pip check $(QUIET)
	@# the Spark drivers' class archive (percolate/io/jvm_archive.py): every job's JVM starts
	@# 6-10 CPU-s cheaper with it (docs/tuning.md); without it (a failed build) they start as before
	@echo "building the Spark drivers' class archive (about a minute)"
	@$(PY) -m percolate.io.jvm_archive > $(VENV)/jvm-archive.log 2>&1 || cat $(VENV)/jvm-archive.log
	@touch $(STAMP)

setup: $(STAMP)

demo: setup   ## generate a day, run the nightly DAG with the shipped models, show results
	$(VENV)/bin/percolate demo

# Two pytest-xdist workers, a test module at a time, longest modules first (tests/conftest.py):
# the learning loop runs on one worker while the other takes the rest (docs/development.md).
TEST_WORKERS ?= 2
test: setup   ## the whole test suite (CI runs this)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test-fast: setup   ## tests that need no JVM, training or video encoding
	$(PY) -m pytest -q -m "not slow and not spark and not airflow and not integration"

bench: setup   ## the cost benchmark (docs/cost.md); the other benchmarks/bench_*.py run by hand
	$(PY) benchmarks/bench_cost.py

clean:
	rm -rf var .pytest_cache
