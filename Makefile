# hybridhh — every target works on a fresh clone; `install` is a dependency where needed.
VENV ?= .venv
PY := $(VENV)/bin/python
HYBRIDHH := $(VENV)/bin/hybridhh
# torch is pinned: 2.13.0 is a CPU wheel on local disk; a looser spec downloads a CUDA build.
TORCH := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-all lint bench notebooks report clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(HYBRIDHH) simulate --out out/example.h5
	$(HYBRIDHH) info out/example.h5
	$(HYBRIDHH) plot out/example.h5 --out out/example.png
	@echo "demo: wrote out/example.h5 and out/example.png"

test: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check hybridhh tests benchmarks

bench: install
	$(PY) benchmarks/simulate.py

clean:
	rm -rf out build *.egg-info .pytest_cache .ruff_cache
