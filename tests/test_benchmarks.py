"""The benchmark scripts, their shared helpers (hybridhh.benchmarking) and docs/results.md."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybridhh.benchmarking import count_spikes, heldout_rmse, make_data, spike_threshold_of
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = ["fit", "noise_bias", "heldout_sensitivity", "simulate", "results_md"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results_md():
    return _load("results_md")


# --- docs/results.md ---------------------------------------------------------------------


def test_committed_results_md_is_the_generators_output(results_md):
    """docs/results.md holds no hand-edited numbers: it is exactly what the JSON gives."""
    committed = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert committed == results_md.render(BENCH / "results"), \
        "docs/results.md is out of date: run `python benchmarks/results_md.py`"


def test_check_flag_reports_a_stale_page(results_md, tmp_path):
    out = tmp_path / "results.md"
    assert results_md.main(["--out", str(out)]) == 0
    assert results_md.main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("0.38 mV", "0.37 mV"))
    assert results_md.main(["--out", str(out), "--check"]) == 1


def _fit_json() -> dict:
    return json.loads((BENCH / "results" / "fit.json").read_text())


def test_fit_rows_are_read_from_the_json(results_md, tmp_path):
    """A changed value in fit.json changes exactly that cell of the page."""
    data = _fit_json()
    seed0 = next(r for r in data["rows"] if r["case"] == "default" and r["seed"] == 0)
    seed0["heldout_rmse"] = 0.123456
    seed0["summary"]["tau_p90"] = 0.25  # misses the 10 % target
    (tmp_path / "fit.json").write_text(json.dumps(data))
    text = results_md.render(tmp_path)
    line = next(x for x in text.splitlines() if x.startswith("| 0 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "25.0 %"
    assert cells[6] == "0.12 mV"
    assert cells[8] == "missed: τ p90"
    # only the sections whose files exist
    assert "## Fits" in text and "## Reference simulator" not in text


def test_missed_targets_and_worst_rate(results_md):
    row = copy.deepcopy(next(r for r in _fit_json()["rows"] if r["case"] == "18.5 degC"))
    targets = {"tau_median": 0.05, "tau_p90": 0.10, "xinf_max": 0.03, "rate_median": 0.10}
    assert results_md.missed_targets(row, targets) == "missed: τ p90, α/β median"
    assert results_md.worst_rate(row).endswith("(beta_m)")
    row["summary"] = {k: 0.0 for k in targets}
    assert results_md.missed_targets(row, targets) == "all met"


def test_spike_note_only_for_files_without_thresholds(results_md, tmp_path):
    data = _fit_json()
    note = "were counted as upward crossings of 0 mV"
    (tmp_path / "fit.json").write_text(json.dumps(data))
    assert note in results_md.render(tmp_path)
    for r in data["rows"]:
        r["spike_threshold"] = -15.0
    (tmp_path / "fit.json").write_text(json.dumps(data))
    assert note not in results_md.render(tmp_path)


# --- hybridhh.benchmarking ----------------------------------------------------------------


def test_make_data_train_and_heldout():
    train, test = make_data(duration=10.0)
    assert train.n_traces == 16 and test.n_traces == 4
    assert train.dt == pytest.approx(0.01) and test.duration == pytest.approx(train.duration)
    assert train.truth is not None and test.truth is not None
    assert not np.allclose(train.current[:4], test.current)
    noisy, _ = make_data(noise=1.0, duration=10.0)
    assert np.std(noisy.voltage - train.voltage) == pytest.approx(1.0, rel=0.05)


def test_make_data_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="substeps"):
        make_data(duration=1.0, substeps=0)
    with pytest.raises(ConfigError, match="neuron_hh"):
        make_data(duration=1.0, noise=1.0, simulator="neuron_hh")


def test_count_spikes_uses_rest_plus_50_mV():
    _, test = make_data(duration=10.0)
    threshold = spike_threshold_of(test, HHKinetics("modern"))
    assert threshold == pytest.approx(-65.0 + 50.0, abs=0.1)  # rest of the modern cell
    t = np.arange(0, 20.0, 0.01)
    V = np.full((2, t.size), -65.0)
    V[0, 500:520] = 10.0    # one spike
    V[0, 530:540] = 10.0    # within 1 ms of it: the same spike
    V[1, 500:520] = -10.0   # above -15 mV: a spike (0 mV crossings would miss it)
    V[1, 1500:1520] = -20.0  # below the threshold: none
    assert count_spikes(V, t, threshold) == 2


def test_heldout_rmse():
    _, test = make_data(duration=10.0)
    assert heldout_rmse(test.voltage + 0.5, test) == pytest.approx(0.5)
    V = test.voltage.copy()
    V[0, -1] = np.nan
    assert heldout_rmse(V, test) == float("inf")


# --- the scripts --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_only_the_package(name):
    """Benchmarks import hybridhh, not each other through sys.path."""
    text = (BENCH / f"{name}.py").read_text()
    assert "sys.path" not in text
    imports = [line.split()[1] for line in text.splitlines()
               if line.startswith(("import ", "from "))]
    assert not set(imports) & set(SCRIPTS)
    assert "hybridhh" in {m.split(".")[0] for m in imports}


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_parses_its_arguments(name):
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")
