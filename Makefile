# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TASKARITH := $(VENV)/bin/taskarith
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-all bench clean

# torch first, pinned to the CPU wheel, so pip never pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(TASKARITH) run configs/demo.yaml

# The integration tests read the real embedded model and corpora from the cache; fetch them first.
test: install
	-$(TASKARITH) data fetch
	$(PY) -m pytest

test-all: install
	-$(TASKARITH) data fetch
	$(PY) -m pytest -m ""

# Each benchmark prints ratios measured side by side in one process and ends with one JSON line.
bench: install
	-$(TASKARITH) data fetch
	for b in step_time eval_sweep disentangle_grid utilisation; do $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) runs
