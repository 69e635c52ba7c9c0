# Quick start:  make demo   (the whole flow on the embedded images)   |   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.PHONY: demo test test-fast setup clean

$(STAMP): setup.py requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # first: an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/clearer-nni demo --out runs/quickstart

# the whole suite on one pytest worker per core (pytest-xdist; each test keeps one torch thread)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

# the edit-test loop: unit tests only (no NNI experiment, subprocess, server or wheel: tests/conftest.py)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow" tests

clean:
	rm -rf $(VENV) runs
