# Two commands on a fresh machine with Python 3.11:
#   make demo   installs into .venv, then runs the main job on the built-in default
#   make test   installs into .venv, then runs the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -c constraints.txt -e '.[envlogger,test,torch]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rlstore demo --out demo_run

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

clean:
	rm -rf $(VENV) demo_run
