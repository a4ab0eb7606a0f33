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
SCRIPTS = ["fit", "suite", "noise_bias", "heldout_sensitivity", "simulate", "results_md",
           "passive", "realcell", "twin", "nn"]


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



# --- docs/results.md: the generalisation suite (suite.json) -------------------------------


def _suite_row(name: str, tau_p90: float, xinf: float, *, rate: float = 0.05,
               heldout: float = 0.3, basin: bool = True, quality=None, coverage=None) -> dict:
    """A hand-made row of benchmarks/suite.py for the case ``name``."""
    from hybridhh.suite import get_case

    case = get_case(name)
    errors = {g: {"tau_median": 0.5 * tau_p90, "tau_p90": tau_p90, "xinf_max": xinf,
                  "alpha_median": 0.01, "beta_median": 0.01} for g in "mhn"}
    errors["n"]["beta_median"] = rate
    return {"case": name, "data": case.as_dict(), "samples": case.samples, "wall": 56.13,
            "seed": 0, "summary": {"tau_median": 0.5 * tau_p90, "tau_p90": tau_p90,
                                   "xinf_max": xinf, "rate_median": rate},
            "errors": errors, "heldout_rmse": heldout, "spikes_model": 18, "spikes_true": 19,
            "basin": basin, "quality": quality, "coverage": coverage}


def _suite_json() -> dict:
    cov = {"min": 0.9, "worst": "tau_h"}
    rows = [
        _suite_row("base", 0.05, 0.01, quality={"verdict": "ok"}, coverage=cov),  # meets all
        _suite_row("dt 0.01", 0.15, 0.01),                        # clean: misses tau p90
        {"case": "hh1952", "data": {"name": "hh1952", "convention": "hh1952"},
         "error": "RuntimeError('a | b')"},                       # clean: an error
        _suite_row("steps, other cell", 0.02, 0.005),             # clean: meets all
        _suite_row("noise 1 mV", 0.19, 0.049, quality={"verdict": "failed"},
                   coverage={"min": 0.5, "worst": "alpha_h"}),    # noise: meets both
        _suite_row("dt 0.1", 0.37, 0.12, basin=False, quality={"verdict": "failed"}),
        _suite_row("single 50 ms", 1.5, 0.3, heldout=float("inf"), basin=False,
                   quality={"verdict": "ok"}),                    # a wrong basin read as ok
    ]
    return {"machine": {"cpus": 2, "torch_threads": 2, "torch": "2.13.0", "platform": "x"},
            "set": {}, "basin": {"tau_median": 0.3, "xinf_max": 0.1}, "rows": rows}


def _cells(text: str, first: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_suite_rows_are_read_from_the_json(results_md, tmp_path):
    (tmp_path / "suite.json").write_text(json.dumps(_suite_json()))
    text = results_md.render(tmp_path)
    assert "## Generalisation suite (`benchmarks/suite.py`" in text and "## Fits" not in text
    assert _cells(text, "base") == [
        "base", "mixed, 0.025 ms, 9 × 100 ms, 6.3 °C, modern, clean", "56", "2.5 %", "5.0 %",
        "0.010", "5.0 % (beta_n)", "0.30 mV", "18/19", "yes", "`ok`", "90 % (tau_h)"]
    assert _cells(text, "dt 0.01")[-2:] == ["-", "-"]  # no verdict, no bands
    assert _cells(text, "steps, other cell")[1] == (
        "steps, 0.05 ms, 7 × 200 ms, 22 °C, modern, clean, g_Na 90, g_K 30, g_L 0.2, E_L -60")
    assert _cells(text, "noise 1 mV")[1].endswith("modern, noise 1 mV")
    assert _cells(text, "single 50 ms")[1].startswith("single, 0.1 ms, 1 × 50 ms")
    assert _cells(text, "single 50 ms")[7] == "diverged"
    assert _cells(text, "single 50 ms")[9] == "NO"
    error = _cells(text, "hh1952")
    assert error[1].endswith("hh1952, clean") and error[2] == "error: `RuntimeError('a \\| b')`"
    assert len(error) == len(results_md.SUITE_HEADER)
    assert "| `suite.py` | 6 fits | 5.6 min |" in text  # run times: the fitted rows' walls


def test_suite_target_groups_are_counted_from_the_json(results_md, tmp_path):
    data = _suite_json()
    (tmp_path / "suite.json").write_text(json.dumps(data))
    lines = [x for x in results_md.render(tmp_path).splitlines() if x.startswith("- **")]
    assert lines[0].endswith(
        "every target met in 2 of 4; τ p90 < 10 %: 2/4, x∞ max < 0.03: 3/4, α/β median < "
        "10 %: 3/4, held-out V < 1 mV: 3/4, right basin: 3/4; 1 of them ended with an error.")
    assert lines[1].endswith("every target met in 1 of 1; τ p90 < 20 %: 1/1, "
                             "x∞ max < 0.05: 1/1.")
    assert lines[2].endswith("every target met in 0 of 2; τ p90 ≤ 37 %: 1/2, "
                             "x∞ max ≤ 0.11: 0/2.")  # the limits of this group are inclusive
    assert ("2 of 6 fitted cases; the verdict says `failed` or `suspect` for 1, `ok` for 1, "
            "nothing for 0. Cases in the right basin with the verdict `failed`: 1.") in lines[3]
    assert "2 of 6 fitted cases have bands; in 1 of them" in lines[4]
    data["rows"][1]["summary"]["tau_p90"] = 0.05  # dt 0.01 now meets every target
    data["rows"] = [r for r in data["rows"] if not r["case"].startswith("noise")]
    (tmp_path / "suite.json").write_text(json.dumps(data))
    lines = [x for x in results_md.render(tmp_path).splitlines() if x.startswith("- **")]
    assert "every target met in 3 of 4" in lines[0]
    assert lines[1] == ("- **1 mV noise, same data** (τ p90 < 20 %, x∞ max < 0.05): no case "
                        "of this group in the file.")


def test_no_suite_json_no_suite_section(results_md, tmp_path):
    (tmp_path / "fit.json").write_text(json.dumps(_fit_json()))
    text = results_md.render(tmp_path)
    assert "Generalisation suite" not in text and "`suite.py`" not in text


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
