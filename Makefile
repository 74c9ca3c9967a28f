# Two commands on a fresh machine: `make demo` and `make test` (see README).
# Both create or refresh .venv; `make test` also installs the Debian servers the
# integration tests talk to (when root with apt, and only if one is missing).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test venv test-servers bench clean

demo: $(STAMP)
	$(BIN)/qualimon demo $(if $(DURATION),--duration $(DURATION))

test: $(STAMP) test-servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

# Reinstall whenever the dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test-servers:
	@scripts/install-test-servers

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
