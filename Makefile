# hybridhh — every target works on a fresh clone; `install` is a dependency where needed.
VENV ?= .venv
PY := $(VENV)/bin/python
HYBRIDHH := $(VENV)/bin/hybridhh
# torch is pinned: 2.13.0 is a CPU wheel on local disk; a looser spec downloads a CUDA build.
TORCH := torch==2.13.0
PYTEST_ARGS ?=
# notebooks run top to bottom with a tiny configuration (HYBRIDHH_QUICK=1)
NBTEST := HYBRIDHH_QUICK=1 $(PY) -m pytest --nbmake notebooks

.PHONY: install demo test test-all lint bench suite-quick results notebooks report clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# the whole pipeline on the built-in example: simulate -> fit -> compare -> report
# (the fit uses the default settings: a few minutes on two CPU cores)
demo: install
	$(HYBRIDHH) simulate --out out/example.h5
	$(HYBRIDHH) info out/example.h5
	$(HYBRIDHH) plot out/example.h5 --out out/example.png
	rm -rf out/run
	$(HYBRIDHH) fit out/example.h5 --out out/run
	$(HYBRIDHH) rates out/run
	$(HYBRIDHH) compare out/run --truth out/example.h5
	$(HYBRIDHH) report out/run --truth out/example.h5

test: install
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)
	$(NBTEST)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check hybridhh tests benchmarks

# every benchmark; the generalisation suite (benchmarks/suite.py: one fit per case of
# hybridhh.suite.CASES, recordings made by NEURON) takes about 1 h on 2 cores, fit.py ~20 min
bench: install
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/fit.py
	$(PY) benchmarks/suite.py
	$(PY) benchmarks/noise_bias.py
	$(PY) benchmarks/heldout_sensitivity.py
	$(PY) benchmarks/passive.py
	$(PY) benchmarks/realcell.py
	$(PY) benchmarks/twin.py
	$(PY) benchmarks/nn.py

# the suite's quick subset (hybridhh.suite.QUICK: about 5 min on 2 cores), written outside
# the committed results
suite-quick: install
	$(PY) benchmarks/suite.py --quick --out /tmp/suite-quick.json

# docs/results.md from benchmarks/results/*.json (after a benchmark run; runs no benchmark)
results: install
	$(PY) benchmarks/results_md.py

notebooks: install
	$(NBTEST)

# the HTML report of the demo fit in out/run (make demo first)
report: install
	@test -f out/run/model.pt || { echo "report: no finished fit in out/run; run 'make demo' first" >&2; exit 2; }
	$(HYBRIDHH) report out/run --truth out/example.h5

clean:
	rm -rf out build *.egg-info .pytest_cache .ruff_cache
