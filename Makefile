# Two commands for a newcomer: `make demo` runs the main job, `make test` runs the tests.
# Both create and fill the project virtual environment (.venv) when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ser demo

test: $(STAMP)
	$(PY) -m pytest

# Re-resolve the lock after changing dependencies in pyproject.toml (then update environment.yml).
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet torch==2.13.0 -e '.[dev]'
	build/lock-venv/bin/pip freeze --exclude-editable | sed 's/+cpu//' | sort -f > constraints.txt

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
