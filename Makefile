# collapse-lab: two commands for users (make demo, make test); the rest are helpers.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

# CPU build of torch first (from the local wheel cache where the machine has one), so that the torch>=2.4
# requirement never pulls a multi-GB CUDA build; then the package with its test extras and Ray (the
# distributed extra, for the Ray executor's test; the notebooks extra, jupyterlab and ipywidgets, installs
# beside them: pip install -e '.[dev,notebooks,distributed]').
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	sh .ci/install-torch.sh $(PIP)
	$(PIP) install --quiet -e '.[dev,distributed]'
	touch $(STAMP)

# The main job: fetch + prepare MovieLens-100K at run time (never committed), train the `quick` sweep
# (vanilla-mean, KD, DML, KDEF x N in {1, 2, 4}), analyse every run's spectra, aggregate the results and
# render all figures into figures/quick/ (about 6-15 minutes on 2 CPU cores).
demo: install
	$(VENV)/bin/collapse-lab data prepare movielens-100k
	$(VENV)/bin/collapse-lab data info movielens-100k
	$(VENV)/bin/collapse-lab reproduce --preset quick --out sweeps/quick --figures figures/quick

# The whole suite (unit tests, doctests, CLI tests, notebooks). Exit code 5 (nothing collected) is success
# only when a marker expression selected nothing on purpose.
test: install
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check collapse_lab tests bench

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
