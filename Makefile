# Two commands for a newcomer:  make lab  (start the course)   make test  (run the test suite)
# Both create .venv if missing and install the kit with its extras; nothing else needs installing by hand.
# No kernel is registered per user: JupyterLab from .venv runs notebooks on its own python3 kernel (.venv's Python).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAB_ARGS ?=
# LAB_DIR: the folder JupyterLab opens (tests/test_lab.py opens copies of notebooks elsewhere)
LAB_DIR  ?= .
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)  # Jupyter refuses root unless told

.PHONY: lab test setup clean lock

setup: $(STAMP)

# constraints.txt: the exact versions CI ran (a lock); pyproject.toml keeps the ranges for `pip install` elsewhere.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --progress-bar off -c constraints.txt -e ".[lab,test]"
	@touch $(STAMP)

# my_work/ (git-ignored): the student's own copies of the exercises; made once, never overwritten.
lab: $(STAMP)
	@mkdir -p my_work && for f in exercises/*.ipynb; do [ -e "my_work/$${f##*/}" ] || cp "$$f" my_work/; done
	$(BIN)/jupyter lab --notebook-dir=$(LAB_DIR) $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports  # the layer contract in pyproject.toml: the core never imports the course layer
	$(BIN)/python -m pytest

# Refresh the lock: resolve pyproject's ranges in a fresh venv, then record exactly what was installed.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --progress-bar off -e ".[lab,test]"
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable; } > constraints.tmp
	mv constraints.tmp constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache
