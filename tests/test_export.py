"""The NMODL export (hybridhh.export): tables, the writer, the run path, NEURON agreement.

The NEURON tests compile one folder of mechanisms once per process (nrnivmodl from the
``neuron`` wheel; a library loads once per process, so every suffix here is unique):
the true squid-axon kinetics, the same split into two potassium channels (the generic
channel list), and the tiny fit of ``conftest.fitted`` exported through the CLI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.cli import main
from hybridhh.errors import ConfigError, RunDirError
from hybridhh.export import (
    Channel,
    Gate,
    Grid,
    check_suffix,
    export,
    export_nmodl,
    hh_channels,
    interpolation_error,
    kinetics_nmodl,
    nmodl_text,
    tabulate,
    write_nmodl,
)
from hybridhh.export.table import hermite
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid

HH, SPLIT, FIT = "hyb_test_hh", "hyb_test_split", "hyb_test_fit"


# --- tables ---------------------------------------------------------------------------


def test_hermite_interpolation_error_falls_as_step_to_the_fourth(hh_modern):
    """Against the analytic squid-axon rates: 0.1 mV is ~1e-11 off, and halving the step
    divides the error by ~16 (a linear table would divide it by 4)."""
    errs = [interpolation_error(hh_modern.inf_tau, tabulate(hh_modern.inf_tau, Grid(step=s)))
            for s in (0.2, 0.1)]
    assert errs[1]["x_inf"] < 3e-11 and errs[1]["tau"] < 1e-10
    for q in ("x_inf", "tau"):
        assert 12 < errs[0][q] / errs[1][q] < 20


def test_tables_hold_the_model_at_the_nodes_and_its_slopes(hh_modern):
    grid = Grid(-100.0, 60.0, 0.5)
    tables = tabulate(hh_modern.inf_tau, grid)
    x_ref, tau_ref = hh_modern.inf_tau(grid.V)
    for k, tab in enumerate(tables):
        x, tau = tab(grid.V)
        np.testing.assert_allclose(x, x_ref[:, k], rtol=0, atol=1e-15)
        np.testing.assert_allclose(tau, tau_ref[:, k], rtol=1e-15)
        # autograd slopes = central differences of the analytic rates
        xp, tp = hh_modern.inf_tau(grid.V + 1e-5)
        xm, tm = hh_modern.inf_tau(grid.V - 1e-5)
        np.testing.assert_allclose(tab.dx_inf, (xp - xm)[:, k] / 2e-5, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(tab.dtau, (tp - tm)[:, k] / 2e-5, rtol=1e-6, atol=1e-10)
        # outside the grid: the end values
        lo, hi = tab(np.array([-500.0, 500.0]))
        assert lo[0] == tab.x_inf[0] and lo[1] == tab.x_inf[-1]
        assert hi[0] == tab.tau[0] and hi[1] == tab.tau[-1]


def test_kinetics_without_autograd_get_central_difference_slopes(hh_modern):
    class NumpyKinetics:
        def inf_tau(self, V):
            x, t = hh_modern.inf_tau(np.asarray(V.detach()))
            return torch.as_tensor(x), torch.as_tensor(t)

    grid = Grid(-90.0, 40.0, 1.0)
    for a, b in zip(tabulate(NumpyKinetics().inf_tau, grid), tabulate(hh_modern.inf_tau, grid),
                    strict=True):
        np.testing.assert_allclose(a.dx_inf, b.dx_inf, rtol=1e-6, atol=1e-11)
        np.testing.assert_allclose(a.dtau, b.dtau, rtol=1e-6, atol=1e-10)


def test_grid_and_names_are_checked():
    with pytest.raises(ConfigError, match="divide"):
        Grid(-120.0, 80.0, 0.3)
    with pytest.raises(ConfigError, match="greater"):
        Grid(10.0, -10.0, 0.1)
    with pytest.raises(ConfigError, match="> 0"):
        Grid(step=0.0)
    for bad in ("", "1abc", "a-b", "na ion", "_x", "hh", "pas", "double", None, "ä"):
        with pytest.raises(ConfigError, match="suffix"):
            check_suffix(bad)
    assert check_suffix("my_fit2") == "my_fit2"


def test_writer_rejects_clashing_names(hh_modern, bio_modern):
    chans = hh_channels(hh_modern, bio_modern, Grid(-100.0, 50.0, 1.0))
    n = chans[1].gates[0]
    with pytest.raises(ConfigError, match="'n'"):
        nmodl_text(chans + [Channel("k2", 1.0, -77.0, (n,))], "x1", 6.3)
    with pytest.raises(ConfigError, match="'g_k'"):
        nmodl_text(chans + [Channel("k", 1.0, -77.0)], "x1", 6.3)
    with pytest.raises(ConfigError, match="power"):
        Gate("w", 0, n.table)
    with pytest.raises(ConfigError, match="g must be"):
        Channel("km", -1.0, -80.0)


def test_mechanism_text(hh_modern):
    bio = Biophysics(g_Na=100.0, E_Na=55.0, g_K=30.0, temperature=22.0)
    text = kinetics_nmodl(HHKinetics(temperature=22.0), bio, "hyb_text",
                          Grid(-110.0, 70.0, 0.5))
    assert "SUFFIX hyb_text" in text and "SOLVE states METHOD cnexp" in text
    assert "g_na = 0.1 (S/cm2)" in text and "e_na = 55.0 (mV)" in text
    assert "g_k = 0.03 (S/cm2)" in text and "celsius_fit = 22.0 (degC)" in text
    assert "q10 = 1 (1)" in text and "at 22 degC" in text
    assert "EXTRAPOLATION: below -110 mV and above 70 mV" in text
    assert "i_na = g_na*m*m*m*h*(v - e_na)" in text and "i_k = g_k*n*n*n*n*(v - e_k)" in text
    assert "at 361 voltages" in text
    assert "hoc" not in text.split("ENDCOMMENT")[1]  # no Vectors, no loader
    with pytest.raises(ConfigError, match="temperature"):
        kinetics_nmodl(HHKinetics(temperature=6.3), bio, "hyb_text")


# --- from a run directory -------------------------------------------------------------


def test_run_export_header_has_ranges_bands_and_the_cell(fitted, tmp_path):
    _, _, run = fitted
    path = export_nmodl(run, tmp_path, suffix="hyb_hdr")
    assert path == tmp_path / "hyb_hdr.mod"
    text = path.read_text()
    result = json.loads((run / "result.json").read_text())
    lo, hi = result["voltage_range"]
    assert f"visited V = {lo:.1f} .. {hi:.1f} mV" in text
    for rate, (a, b) in result["constrained"].items():
        assert f"  {rate:8s} {a:7.1f} .. {b:6.1f} mV" in text
    assert "90 % error bands" in text and "tau_n" in text
    assert f"Fit quality verdict: {result['quality']['verdict']}" in text
    bio = result["biophysics"]
    assert f"celsius_fit = {float(bio['temperature'])!r} (degC)" in text
    assert f"g_na = {bio['g_Na'] / 1000.0!r} (S/cm2)" in text
    # the default range: -120 .. 80 mV (the tiny fit stays inside -90 .. 50)
    assert "EXTRAPOLATION: below -120 mV and above 80 mV" in text


def test_bad_inputs_are_clear_errors(fitted, tmp_path, capsys):
    _, _, run = fitted
    with pytest.raises(ConfigError, match="unknown export format 'sbml'"):
        export(run, "sbml", tmp_path)
    with pytest.raises(ConfigError, match="not a valid NMODL name"):
        export_nmodl(run, tmp_path, suffix="3x")
    with pytest.raises(ConfigError, match="divide"):
        export_nmodl(run, tmp_path, step=0.3)
    # a run without a finished model: interrupted (best checkpoint only), or not a run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "model.pt").unlink()
    torch.save({"model": {}}, unfinished / "checkpoint_best.pt")
    with pytest.raises(RunDirError, match="unfinished"):
        export_nmodl(unfinished, tmp_path)
    with pytest.raises(RunDirError, match="missing"):
        export_nmodl(tmp_path, tmp_path / "out")
    extra = tmp_path / "extra"
    shutil.copytree(run, extra)
    res = json.loads((extra / "result.json").read_text())
    (extra / "result.json").write_text(json.dumps({**res, "channels": [{"name": "km"}]}))
    with pytest.raises(RunDirError, match="channels"):
        export_nmodl(extra, tmp_path)
    assert not list(tmp_path.glob("*.mod"))
    for argv, message in ((["--format", "sbml"], "unknown export format"),
                          (["--suffix", "a-b"], "not a valid NMODL name")):
        assert main(["export", str(run), "--out", str(tmp_path), *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["export", str(unfinished), "--out", str(tmp_path)]) == 2
    assert "unfinished" in capsys.readouterr().err


def test_default_suffix_is_the_run_directory_name(fitted, tmp_path):
    _, _, run = fitted
    copy = tmp_path / "2024-cell.A"
    shutil.copytree(run, copy)
    assert export_nmodl(copy, tmp_path / "m").name == "fit_2024_cell_A.mod"


# --- in NEURON ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def h():
    pytest.importorskip("neuron", reason="NEURON not installed: pip install 'hybridhh[neuron]'")
    from neuron import h

    return h


@pytest.fixture(scope="module")
def mechanisms(h, fitted, tmp_path_factory):
    """One compiled folder: HH (true kinetics), SPLIT (the same with K as two channels of
    half the conductance each, the second with its own gate), FIT (the tiny fit, through
    ``hybridhh export``)."""
    import neuron

    _, _, run = fitted
    folder = tmp_path_factory.mktemp("mechanisms")
    hh, bio = HHKinetics("modern"), Biophysics.standard()
    write_nmodl(hh_channels(hh, bio, Grid()), folder, HH, bio.temperature)
    na, k, leak = hh_channels(hh, bio, Grid())
    half = bio.g_K / 2
    n2 = Gate("n2", 4, k.gates[0].table)
    write_nmodl([na, Channel("k", half, bio.E_K, k.gates), Channel("k2", half, bio.E_K, (n2,)),
                 leak], folder, SPLIT, bio.temperature)
    assert main(["export", str(run), "--format", "nmodl", "--out", str(folder),
                 "--suffix", FIT, "-q"]) == 0
    nrnivmodl = Path(sys.executable).parent / "nrnivmodl"
    assert nrnivmodl.exists(), "the neuron wheel installs nrnivmodl beside python"
    done = subprocess.run([str(nrnivmodl), "."], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    neuron.load_mechanisms(str(folder))
    return folder


@pytest.fixture(scope="module")
def stim100():
    """100 ms at dt 0.025 ms: silent, tonic firing, strong drive, noise."""
    t = time_grid(100.0, 0.025)
    return Stimulus.concat([steps(t, [0.0, 10.0, 40.0], start=5.0, stop=80.0),
                            ou_noise(t, mean=5.0, sigma=10.0, tau=3.0, seed=2)])


def _run(stim, mechanism, bio=None, V0=None, q10=None):
    """V [B, T] of NEURON cells with ``mechanism`` instead of ``hh`` (the project's NEURON
    reference set-up: area, IClamp play, fixed step dt 0.025 ms)."""
    from neuron import h

    from hybridhh.neuron_reference import NeuronCells

    cells = NeuronCells(stim.n_traces, bio)
    if mechanism != "hh":
        for sec in cells.sections:
            sec.uninsert("hh")
            sec.insert(mechanism)
    saved = getattr(h, f"q10_{mechanism}", None)
    if q10 is not None:
        setattr(h, f"q10_{mechanism}", q10)
    try:
        return cells.run(stim, dt=0.025, V0=V0)
    finally:
        if q10 is not None:
            setattr(h, f"q10_{mechanism}", saved)


def _spikes_agree(spike_times, V, ref, time, tol):
    counts = []
    for a, b in zip(spike_times(V, time), spike_times(ref, time), strict=True):
        assert len(a) == len(b)
        if len(a):
            assert np.abs(a - b).max() < tol
        counts.append(len(a))
    return counts


@pytest.mark.neuron
def test_units_check_with_modlunit(mechanisms):
    """NEURON's unit checker (shipped in the wheel) accepts every exported file."""
    import neuron

    modlunit = Path(neuron.__file__).parent / ".data" / "bin" / "modlunit"
    assert modlunit.exists(), f"no modlunit in the neuron wheel at {modlunit}"
    for mod in sorted(mechanisms.glob("*.mod")):
        done = subprocess.run([str(modlunit), mod.name], cwd=mechanisms, capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{mod.name}: {done.stdout[-1500:]}{done.stderr[-1500:]}"


@pytest.mark.neuron
def test_true_kinetics_export_reproduces_neuron_hh(mechanisms, stim100, spike_times):
    """The tabulation alone: acceptance 0.05 mV RMS and 0.01 ms; measured 3e-7 mV max."""
    ref = _run(stim100, "hh")  # usetable_hh = 0: exact rates
    V = _run(stim100, HH)
    rms = np.sqrt(np.mean((V - ref) ** 2, axis=1))
    assert rms.max() < 0.05 and np.abs(V - ref).max() < 1e-5
    counts = _spikes_agree(spike_times, V, ref, stim100.time, 0.01)
    assert counts[0] == 0 and min(counts[1:]) >= 5


@pytest.mark.neuron
def test_q10_scales_the_rates_only_when_asked(mechanisms, stim100, spike_times, h):
    warm = Biophysics.standard(temperature=16.3)
    ref = _run(stim100, "hh", warm)  # hh: q10 3 from 6.3 degC
    V = _run(stim100, HH, warm, q10=3.0)
    assert np.abs(V - ref).max() < 1e-5
    _spikes_agree(spike_times, V, ref, stim100.time, 0.01)
    # default q10 = 1: the rates of the recording's temperature whatever celsius says
    np.testing.assert_array_equal(_run(stim100, HH, warm, V0=ref[:, 0]),
                                  _run(stim100, HH, V0=ref[:, 0]))
    assert h.q10_hyb_test_hh == 1.0 and h.celsius_fit_hyb_test_hh == 6.3


@pytest.mark.neuron
def test_channel_list_is_generic(mechanisms, stim100):
    """K as two channels of half the conductance, the second with its own gate n2 (the
    way extra learned channels enter): the same cell, to rounding."""
    np.testing.assert_allclose(_run(stim100, SPLIT), _run(stim100, HH), rtol=0, atol=1e-9)


@pytest.mark.neuron
def test_fitted_export_reproduces_simulate_neuron(mechanisms, fitted, stim100, spike_times):
    """The tiny fit, exported, against simulate(..., method="neuron") of the same RateMLP
    (exact rates, the project's copy of NEURON's fixed step) at dt 0.025 ms: acceptance
    0.01 mV max over 100 ms of spiking; measured ~1e-5 mV."""
    from hybridhh.fitting import load_fit
    from hybridhh.prediction import fitted_cell
    from hybridhh.simulation import simulate

    _, _, run = fitted
    model, bio = load_fit(run).model, fitted_cell(run).biophysics
    ours = simulate(stim100, model, bio, method="neuron").V.numpy()
    V = _run(stim100, FIT, bio, V0=ours[:, 0])  # g, E: the mechanism's defaults
    assert np.abs(V - ours).max() < 0.01
    counts = _spikes_agree(spike_times, V, ours, stim100.time, 0.001)
    assert min(counts[1:]) >= 3


@pytest.mark.neuron
def test_compiled_tables_are_the_python_tables(mechanisms, fitted, h):
    """lookup(k, v) in NEURON = the numpy Hermite formula on the run's tables, inside and
    outside the range; the PARAMETER defaults are the fitted cell."""
    from hybridhh.fitting import load_fit
    from hybridhh.kinetics import inf_tau
    from hybridhh.prediction import fitted_cell

    _, _, run = fitted
    model, bio = load_fit(run).model, fitted_cell(run).biophysics
    tables = tabulate(lambda V: inf_tau(model, V), Grid())
    sec = h.Section(name="hyb_lookup")
    sec.insert(FIT)
    mech = getattr(sec(0.5), FIT)
    V = np.concatenate([np.random.default_rng(0).uniform(-130.0, 90.0, 200), [-120.0, 80.0]])
    for j, tab in enumerate(tables):
        for k, (value, slope) in enumerate(((tab.x_inf, tab.dx_inf), (tab.tau, tab.dtau))):
            got = np.array([mech.lookup(2 * j + k, v) for v in V])
            np.testing.assert_allclose(got, hermite(value, slope, tab.grid, V), rtol=1e-13,
                                       atol=1e-15)
    assert np.isnan(mech.lookup(6, -60.0))
    seg = sec(0.5)
    for c, g, E in (("na", bio.g_Na, bio.E_Na), ("k", bio.g_K, bio.E_K), ("l", bio.g_L, bio.E_L)):
        assert getattr(seg, f"g_{c}_{FIT}") == g / 1000.0
        assert getattr(seg, f"e_{c}_{FIT}") == E
    assert getattr(h, f"celsius_fit_{FIT}") == bio.temperature
