# Developer commands. `make chat` and `make test` work on a fresh clone: they create .venv if it is
# missing and (re)install the project only when pyproject.toml has changed since the last install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
EVAL_FILES ?= ../shared/eval/*.jsonl

.DEFAULT_GOAL := help
.PHONY: help chat test validate eval bench clean distclean

help:
	@echo "make chat       talk to the bot in this terminal (no token, no network)"
	@echo "make test       run the test suite"
	@echo "make validate   check the content: hubbot validate && hubbot test"
	@echo "make eval       measure the bot on $(EVAL_FILES)"
	@echo "make bench      print throughput and latency figures"
	@echo "make clean      remove build artefacts and caches (keeps .venv and databases)"
	@echo "make distclean  clean, and remove .venv too"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: each records that an install finished after the last change to pyproject.toml.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

# The test extra includes the project itself, so it satisfies the plain install too.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	touch $@ $(VENV)/.installed

chat: $(VENV)/.installed
	$(BIN)/hubbot chat

# pytest's exit status is the recipe's: a failing or empty test run fails `make test`.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

validate: $(VENV)/.installed
	$(BIN)/hubbot validate && $(BIN)/hubbot test

eval: $(VENV)/.installed
	$(BIN)/hubbot eval $(EVAL_FILES)

bench: $(VENV)/.installed
	$(BIN)/hubbot bench

clean:
	rm -rf build dist *.egg-info .eggs .pytest_cache .hypothesis .coverage htmlcov
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
