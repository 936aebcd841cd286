# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TASKARITH := $(VENV)/bin/taskarith
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install lint demo test test-all bench bench-export clean

# torch first, pinned to the CPU wheel, so pip never pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(TASKARITH) run configs/demo.yaml

# The package's lint and types, checked before any test.
lint: install
	$(VENV)/bin/ruff check src
	$(VENV)/bin/mypy src/taskarith

# The integration tests read the real embedded model and corpora from the cache; fetch them first.
test: lint
	-$(TASKARITH) data fetch
	$(PY) -m pytest

test-all: lint
	-$(TASKARITH) data fetch
	$(PY) -m pytest -m ""

# Every benchmark but merge_export (bench-export): each prints ratios measured side by side in one process and
# ends with one JSON line. scale, the demo's fine-tunes four ways, takes about 35 min alone on a 2-core CPU.
BENCHMARKS := cli_startup step_time eval_sweep disentangle_grid utilisation merge_methods scale
bench: install
	-$(TASKARITH) data fetch
	for b in $(BENCHMARKS); do $(PY) benchmarks/$$b.py || exit 1; done

# The export against the naive way and mergekit, in mergekit's own environment (torch pinned there too).
# About an hour alone on a 2-core CPU, 25 GB of free disk for the models it builds (see docs/performance.md).
MERGEKIT_VENV ?= .venv-mergekit
$(MERGEKIT_VENV)/.installed:
	python3 -m venv $(MERGEKIT_VENV)
	$(MERGEKIT_VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	echo torch==2.13.0 > $(MERGEKIT_VENV)/constraints.txt
	$(MERGEKIT_VENV)/bin/pip install -q --disable-pip-version-check -c $(MERGEKIT_VENV)/constraints.txt mergekit==0.1.5
	touch $@

bench-export: install $(MERGEKIT_VENV)/.installed
	$(PY) benchmarks/merge_export.py --mergekit $(MERGEKIT_VENV)/bin/mergekit-yaml

clean:
	rm -rf $(VENV) $(MERGEKIT_VENV) runs
