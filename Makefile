# Two commands for a newcomer: `make demo` runs the main job, `make test` runs the tests.
# Both create and fill the project virtual environment (.venv) when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lab notebooks figures html book encoder venv lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The demo keeps the shipped encoder frozen (its layers' outputs computed once and cached): 3 min
# on 2 cores instead of 12 for fine-tuning it as the paper does (`ser demo` alone).
demo: $(STAMP)
	$(VENV)/bin/ser demo --set model.encoder_mode=frozen

# One pytest worker per core (pytest-xdist). A file's tests stay on one worker, so its module
# fixtures (a sweep, a book build, a JupyterLab) are built once (tests/conftest.py groups them).
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadgroup --no-loadscope-reorder

# JupyterLab on the notebooks, with the project's kernel registered in .venv ("Python (ser-workbench)").
# On a shared server: make lab LAB_ARGS="--ip=0.0.0.0 --port=8888" (JupyterLab prints the URL with its token).
# As root (containers, CI machines) JupyterLab needs --allow-root.
LAB_ARGS ?=
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root)
# Trusting the project's notebooks lets JupyterLab render their saved widget state (the explorer
# of notebook 04) before anything runs; an untrusted notebook shows the widgets' text fallback.
lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name ser-workbench --display-name "Python (ser-workbench)" >/dev/null
	$(VENV)/bin/jupyter trust notebooks/0*.ipynb >/dev/null
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_ARG) $(LAB_ARGS)

# Execute every notebook in place on its defaults, so the committed notebooks carry outputs and
# widget state (browsable without running them); notebooks 03-05 reuse runs/notebooks.
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))
notebooks: $(STAMP)
	cd notebooks && for nb in $(notdir $(NOTEBOOKS)); do \
		../$(PY) -m papermill --log-level WARNING $$nb $$nb || exit 1; done

# The reference figures in figures/, from one command: the demo's, every figure the executed
# notebooks show (named NN_<section>.png), and the report of each sweep under runs/sweeps (the sweeps
# themselves take hours: `ser sweep --grid grids/NAME.yaml ...`; notebook 06's tiny one is left out).
SWEEPS := $(filter-out runs/sweeps/tiny/,$(dir $(wildcard runs/sweeps/*/sweep.json)))
figures: demo notebooks
	$(VENV)/bin/ser figures $(NOTEBOOKS) --out figures
	for sweep in $(SWEEPS); do $(VENV)/bin/ser report $$sweep --figures figures >/dev/null || exit 1; done

# The executed notebooks as self-contained HTML pages in build/html (widgets render offline).
html: $(STAMP)
	$(VENV)/bin/ser export-html $(NOTEBOOKS) --out build/html

# The course book: a static site in build/book (open build/book/index.html), built offline from the
# committed notebooks (never re-run), book/*.md, figures/ and pages generated from the code
# (book/_ext/serbook.py). Nitpicky and warnings-as-errors: a broken link or a missing figure fails.
BOOK_DIR ?= build/book
SPHINX_OPTS := -b html -n -W --keep-going -q
book: $(STAMP)
	$(PY) -m sphinx $(SPHINX_OPTS) book $(BOOK_DIR)
	@echo "the book: $(BOOK_DIR)/index.html"

# The shipped pretrained encoder (model.encoder=tiny-pretrained), rebuilt from generated speech only:
# unlabelled speech (`ser synth --unlabelled`, pretrain.hours), then `ser pretrain` with the default
# settings (pretrain.*, one torch thread so the result is the same run after run on one machine).
ENCODER_DIR := ser_lib/model/pretrained/tiny-pretrained
encoder: $(STAMP)
	$(VENV)/bin/ser synth --unlabelled --out data/pretrain-speech
	rm -rf build/encoder
	$(VENV)/bin/ser pretrain --manifest data/pretrain-speech/manifest.csv --out build/encoder --set runtime.threads=1
	rm -rf $(ENCODER_DIR) && mkdir -p $(ENCODER_DIR)
	cp build/encoder/config.json build/encoder/model.safetensors build/encoder/pretraining.json \
		build/encoder/pretraining_curves.png $(ENCODER_DIR)/

# Re-resolve the lock after changing dependencies in pyproject.toml (then update environment.yml).
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet torch==2.13.0 -e '.[dev]'
	build/lock-venv/bin/pip freeze --exclude-editable | sed 's/+cpu//' | sort -f > constraints.txt

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
