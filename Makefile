# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-slow test-cluster lint format bench install clean

install: $(STAMP)

# Re-install whenever the declared or pinned dependencies change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sphere demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# CI (`.ci/run`) runs lint, the default suite, then the slow tests, so that no red slow test can
# land again; the slow suite includes the two-node Ray cluster test (a few minutes of Ray start-up,
# also alone as `make test-cluster`).
test: lint
	$(PY) -m pytest -m "not slow" -q
	$(PY) -m pytest -m "slow" -q

test-fast: lint
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -q

test-cluster: $(STAMP)
	$(PY) -m pytest -m "cluster" -q

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
