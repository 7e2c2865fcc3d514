# `make run` and `make test` each do their own set-up: a .venv with the package (and, for the
# tests, the test and dask extras), re-installed when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-fast bench format clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/backprop train configs/digits.toml

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The inner loop: everything but the tests marked slow (long learning runs, experiments, the
# estimator checks), in under a minute. CI runs `make test`, which runs them all.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow"

bench: $(VENV)/.installed-run
	$(BIN)/backprop bench

# The documentation site, warnings as errors; the gallery and the tutorial notebook run during
# the build. Open docs/_build/html/index.html.
docs: $(VENV)/.installed-docs
	rm -rf docs/_build docs/generated docs/auto_examples docs/jupyter_execute
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	rm -rf docs/_build docs/generated docs/auto_examples docs/jupyter_execute
