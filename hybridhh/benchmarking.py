"""Shared pieces of the scripts in ``benchmarks/``: the benchmark data and its evaluation.

The fit benchmark (``benchmarks/fit.py``), the noise-bias study (``benchmarks/noise_bias.py``)
and the held-out sensitivity (``benchmarks/heldout_sensitivity.py``) all work on the same
synthetic cell: the default protocols of :func:`hybridhh.protocols.default_protocols`
(100 ms at 0.01 ms) for training, and four new Ornstein–Uhlenbeck noise stimuli for the
held-out test. :func:`make_data` builds both; :func:`evaluate` measures a fitted model against
the truth and the held-out recording; :func:`count_spikes` counts spikes with the package's
one spike definition (:mod:`hybridhh.analysis.spikes`).

Units: ms, mV, µA/cm², °C.
"""

from __future__ import annotations

import numpy as np

from .analysis.metrics import (
    kinetics_errors,
    meets_targets,
    rate_errors_in_ranges,
    summarize_errors,
)
from .analysis.spikes import spike_threshold, spike_times
from .biophysics import Biophysics
from .errors import ConfigError, SimulationError
from .hh import resting_potential
from .kinetics import HHKinetics
from .protocols import Stimulus, default_protocols, ou_noise, time_grid
from .recording import Recording, simulate_recording

__all__ = [
    "WALL_TARGET",
    "HELDOUT_RMSE_TARGET",
    "SIMULATORS",
    "heldout_stimulus",
    "make_data",
    "spike_threshold_of",
    "count_spikes",
    "heldout_rmse",
    "evaluate",
    "case_group",
]

#: Wall-time target of one fit of the default set, s (issue 4).
WALL_TARGET = 120.0
#: Target of the free-running V RMSE on the held-out stimulus, mV (issue 4).
HELDOUT_RMSE_TARGET = 1.0
#: Simulators :func:`make_data` accepts besides the integrators of
#: :func:`hybridhh.simulation.simulate`.
SIMULATORS = ("neuron_hh",)


def heldout_stimulus(time: np.ndarray, seed: int = 0) -> Stimulus:
    """The held-out stimulus: four Ornstein–Uhlenbeck noise traces on ``time`` (ms).

    Two with mean 4 and SD 8 µA/cm² (correlation time 3 ms, noise seed ``seed + 7``) and two
    with mean 0 and SD 12 µA/cm² (2 ms, seed ``seed + 11``): stimuli the fit never sees.
    """
    return Stimulus.concat([ou_noise(time, 4.0, 8.0, 3.0, seed=seed + 7, n=2),
                            ou_noise(time, 0.0, 12.0, 2.0, seed=seed + 11, n=2)])


def make_data(noise: float = 0.0, seed: int = 0, duration: float = 100.0, dt: float = 0.01,
              convention: str = "modern", temperature: float = 6.3,
              simulator: str = "rk4", substeps: int = 1) -> tuple[Recording, Recording]:
    """The benchmark's training recording and its held-out recording.

    Parameters
    ----------
    noise
        SD of Gaussian measurement noise added to the training V, mV (0: none).
    seed
        Seed of the protocols' noise traces and of the measurement noise.
    duration, dt
        Length of every trace and sampling step, ms.
    convention, temperature
        Voltage convention (``"modern"`` or ``"hh1952"``) and temperature, °C, of the
        reference cell (:meth:`Biophysics.standard`, :class:`HHKinetics`).
    simulator
        An integrator name of :func:`hybridhh.simulation.simulate`, or ``"neuron_hh"``:
        NEURON's own ``hh`` mechanism (needs the ``neuron`` extra).
    substeps
        Integration steps per sample: the simulator steps at ``dt / substeps`` and records
        every ``dt``. Above about 20 °C RK4 needs substeps (at 25 °C tau_m falls to 0.003 ms).

    Returns
    -------
    (train, test)
        ``train``: the default protocols (:func:`default_protocols`, seed ``seed``);
        ``test``: :func:`heldout_stimulus`, always simulated by RK4 at the same step
        (for NEURON-made data: at ``dt``). Both carry ``/truth``.

    Raises
    ------
    ConfigError
        For measurement noise on NEURON-made data (not implemented) or ``substeps < 1``.
    """
    if int(substeps) != substeps or substeps < 1:
        raise ConfigError(f"substeps: {substeps!r} is not allowed; use a whole number >= 1")
    if noise and simulator == "neuron_hh":
        raise ConfigError(f"noise: {noise!r} mV is not allowed with simulator='neuron_hh'; "
                          "measurement noise is implemented for the torch integrators only")
    t = time_grid(duration, dt)
    bio = Biophysics.standard(convention, temperature=temperature)
    kin = HHKinetics(convention, temperature=temperature)
    stim = default_protocols(t, seed=seed)
    step = None if substeps == 1 else dt / substeps  # None: the sample step
    if simulator == "neuron_hh":
        from .neuron_reference import simulate_neuron

        V = simulate_neuron(stim, bio, dt=dt / substeps, convention=convention)
        train = Recording(stim.time, V, stim.current, stim.names, bio,
                          source="benchmarks/fit.py via NEURON hh")
    else:
        train = simulate_recording(stim, bio, kin, method=simulator, dt=step,
                                   noise_sigma=noise, seed=seed, source="benchmarks/fit.py")
    test = simulate_recording(heldout_stimulus(t, seed), bio, kin, method="rk4",
                              dt=None if simulator == "neuron_hh" else step,
                              source="benchmarks/fit.py held-out")
    return train, test


def spike_threshold_of(recording: Recording, truth) -> float:
    """The spike threshold of a recording with known kinetics, mV.

    :func:`hybridhh.analysis.spikes.spike_threshold` of the true resting potential (the
    steady state of ``truth`` with the recording's biophysics at zero current), so that
    both voltage conventions work.
    """
    return spike_threshold(resting_potential(truth, recording.biophysics))


def count_spikes(V, time: np.ndarray, threshold: float) -> int:
    """Number of spikes in ``V`` (mV, ``[n_traces, n_samples]``) on ``time`` (ms), all traces.

    Spikes as everywhere in the package: upward crossings of ``threshold`` (mV), one per
    refractory period (:func:`hybridhh.analysis.spikes.spike_times`).
    """
    return int(sum(len(s) for s in spike_times(np.asarray(V), time, threshold)))


def heldout_rmse(V, test: Recording) -> float:
    """Root-mean-square difference of ``V`` (mV) from the held-out recording's V, mV.

    ``inf`` where ``V`` is not finite (a free run that diverged).
    """
    rmse = float(np.sqrt(np.mean((np.asarray(V) - test.voltage) ** 2)))
    return rmse if np.isfinite(rmse) else float("inf")


def evaluate(result, test: Recording, truth) -> dict:
    """Measure a fit against the true kinetics and the held-out recording.

    Parameters
    ----------
    result
        :class:`hybridhh.FitResult`.
    test
        The held-out recording of :func:`make_data`.
    truth
        The true kinetics (a kinetics object with ``rates`` and ``inf_tau``).

    Returns
    -------
    dict
        ``errors`` (:func:`kinetics_errors` over the fit's visited range ``result.voltage_range``),
        ``summary`` (worst gate of each), ``meets_targets``, ``heldout_rmse`` (mV, free run of
        the fitted model under the held-out stimulus by RK4, exp_euler if RK4 diverges),
        ``spikes_model``, ``spikes_true`` (:func:`count_spikes` at
        :func:`spike_threshold_of`), ``spike_threshold`` (mV), ``rates_constrained`` (each
        rate's errors over the range where the fit found the data constrain it),
        ``rate_median_constrained``, ``rate_p90_constrained`` (worst rate; ``None`` without
        constrained ranges).
    """
    from .fitting import free_run  # the fitting package only where a fit is evaluated
    from .fitting.data import TraceData

    errs = kinetics_errors(result.model, truth, *result.voltage_range)
    td = TraceData.from_recording(test)
    try:
        V = free_run(result.model, td, method="rk4").numpy()
    except SimulationError:  # the fitted model's free run diverges under RK4
        V = free_run(result.model, td, method="exp_euler").numpy()
    threshold = spike_threshold_of(test, truth)
    own = rate_errors_in_ranges(result.model, truth, result.constrained) \
        if result.constrained else {}
    return {"errors": errs, "summary": summarize_errors(errs),
            "meets_targets": meets_targets(errs), "heldout_rmse": heldout_rmse(V, test),
            "spikes_model": count_spikes(V, test.time, threshold),
            "spikes_true": count_spikes(test.voltage, test.time, threshold),
            "spike_threshold": threshold, "rates_constrained": own,
            "rate_median_constrained": max((e["median"] for e in own.values()), default=None),
            "rate_p90_constrained": max((e["p90"] for e in own.values()), default=None)}


def case_group(case: str) -> str:
    """The ``benchmarks/fit.py --cases`` group of a result row's ``case`` name.

    ``"default"`` -> ``"seeds"``, ``"noise 1 mV"`` -> ``"noise"``, ``"prior 1"`` ->
    ``"priors"``, ``"alpha_beta"``; every other case (``"NEURON hh"``, ``"18.5 degC"``, ...)
    -> ``"elsewhere"``.
    """
    if case == "default":
        return "seeds"
    if case.startswith("noise"):
        return "noise"
    if case.startswith("prior"):
        return "priors"
    return "alpha_beta" if case == "alpha_beta" else "elsewhere"
