# One entry point for people and CI. Every target creates .venv on first use, so a fresh clone needs
# nothing but python3 (>= 3.10) and this file.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.snnforge-installed
# Two workers match CI's two cores; override with `make test JOBS=1`.
JOBS   ?= 2

.PHONY: install demo test test-slow clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

## The main job: generate, simulate, lint and synthesize every block, print one summary table.
demo: $(STAMP)
	$(BIN)/snnforge demo

## The default regression (well under 20 minutes on 2 cores).
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q

## Long regressions and full-size place-and-route.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q -m slow

clean:
	rm -rf build .pytest_cache
