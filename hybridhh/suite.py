"""Recordings made elsewhere: the generalisation suite (NEURON's ``hh``, many conditions).

The fitter's own benchmark (``benchmarks/fit.py``) uses the project's protocols and
simulator at one sampling. Users bring recordings made with other stimuli, coarser
sampling, fewer and shorter traces, noise, other temperatures, conventions and cells.
This module describes such recordings as :class:`Case` objects and makes them with
NEURON's built-in ``hh`` mechanism (the ``neuron`` extra; not this project's simulator):

* the stimulus is built on the recording's own sample grid (as an amplifier's command
  is) and played into NEURON with linear interpolation between samples;
* NEURON integrates at ``dt / substeps`` (fixed step, exact rates, ``usetable_hh = 0``)
  and V is recorded at every sample;
* Gaussian measurement noise (``Case.noise`` mV, seeded) is added to V afterwards.

Every case comes with a **held-out recording** of the same cell, sampling and simulator
under stimuli of another kind than most training sets (two Ornstein–Uhlenbeck currents
and a step; :func:`heldout_stimulus`), noise-free, for the free-run check.

:data:`CASES` samples the space of conditions rather than filling its grid: one axis at a
time around :data:`BASE`, then random combinations (:func:`random_cases`, seeded).
:data:`QUICK` names the small subset the tests run. Units: ms, mV, µA/cm², mS/cm², °C.

>>> CASES[0].name
'base'
>>> len(CASES) >= 40
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .biophysics import Biophysics
from .errors import ConfigError
from .protocols import Stimulus, chirp, ou_noise, prepulse_step, ramp, steps, time_grid
from .recording import Recording, Truth

__all__ = ["Case", "BASE", "CASES", "QUICK", "FAMILIES", "MAX_SAMPLES", "make_case",
           "stimulus_of", "heldout_stimulus", "random_cases", "get_case"]

#: stimulus families (:func:`stimulus_of`)
FAMILIES = ("mixed", "steps", "steps_ramp", "noise", "chirp", "single")
#: the fitter's target covers recordings up to this many samples (all traces)
MAX_SAMPLES = 200_000


@dataclass(frozen=True)
class Case:
    """One recording condition of the suite (checked when made).

    Attributes
    ----------
    name
        Unique label.
    family
        Stimulus family (:data:`FAMILIES`, :func:`stimulus_of`).
    dt
        Sample interval, ms.
    n_traces, duration
        Traces and length of each, ms (``single``: one trace, whatever ``n_traces``).
    temperature
        °C (NEURON's ``celsius``; rates scaled by q10 = 3 from 6.3 °C).
    convention
        ``"modern"`` (NEURON ``hh``, rest ≈ −65 mV) or ``"hh1952"`` (rest at 0 mV).
    noise
        SD of Gaussian measurement noise on V, mV.
    g_Na, g_K, g_L, E_L
        Maximal conductances (mS/cm²) and leak reversal (mV, modern convention; shifted
        by +65 mV in the 1952 one). E_Na and E_K are the squid values.
    seed
        Seeds the stimulus's random parts and the measurement noise.
    substeps
        NEURON steps per sample.
    """

    name: str
    family: str = "mixed"
    dt: float = 0.025
    n_traces: int = 9
    duration: float = 100.0
    temperature: float = 6.3
    convention: str = "modern"
    noise: float = 0.0
    g_Na: float = 120.0
    g_K: float = 36.0
    g_L: float = 0.3
    E_L: float = -54.3
    seed: int = 0
    substeps: int = 10

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ConfigError(f"case {self.name!r}: family must be one of {FAMILIES}, "
                              f"got {self.family!r}")
        if self.convention not in ("modern", "hh1952"):
            raise ConfigError(f"case {self.name!r}: convention must be 'modern' or 'hh1952', "
                              f"got {self.convention!r}")
        for f in ("dt", "duration", "g_Na", "g_K", "g_L"):
            v = getattr(self, f)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"case {self.name!r}: {f} must be > 0, got {v!r}")
        if not self.noise >= 0:
            raise ConfigError(f"case {self.name!r}: noise must be >= 0 mV, got {self.noise!r}")
        if self.n_traces < 1 or self.substeps < 1:
            raise ConfigError(f"case {self.name!r}: n_traces and substeps must be >= 1")
        k = self.duration / self.dt
        if abs(k - round(k)) > 1e-6:
            raise ConfigError(f"case {self.name!r}: duration ({self.duration} ms) must be a "
                              f"whole number of samples of dt ({self.dt} ms)")

    @property
    def traces(self) -> int:
        """Traces of the training recording."""
        return 1 if self.family == "single" else self.n_traces

    @property
    def samples(self) -> int:
        """Samples of the training recording, all traces."""
        return self.traces * (int(round(self.duration / self.dt)) + 1)

    @property
    def shift(self) -> float:
        """Voltage offset of the convention, mV (0 modern, +65 hh1952)."""
        return 65.0 if self.convention == "hh1952" else 0.0

    def biophysics(self) -> Biophysics:
        bio = Biophysics.standard(self.convention, temperature=self.temperature)
        return bio.replace(g_Na=self.g_Na, g_K=self.g_K, g_L=self.g_L,
                           E_L=self.E_L + self.shift)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _spread(lo: float, hi: float, n: int) -> np.ndarray:
    return np.linspace(lo, hi, n) if n > 1 else np.array([0.5 * (lo + hi)])


def stimulus_of(case: Case) -> Stimulus:
    """The training stimulus of ``case`` on its sample grid (µA/cm²).

    ``mixed``: steps (−5, 2, 5, 10, 20 µA/cm² from 10 % to 90 % of the trace), a 0→30
    ramp, a −10 prepulse then a +7 step, an 8 µA/cm² chirp (0.005→0.15 kHz) and
    Ornstein–Uhlenbeck noise (mean 5, SD 5, tau 2 ms), in that order, ``n_traces`` of
    them (cycling through the list, noise traces with new seeds); ``steps``: steps from
    −6 to 40 µA/cm²; ``steps_ramp``: steps from −5 to 30 and one 0→30 ramp; ``noise``: OU
    currents with means 0…8 and SD 4…10; ``chirp``: chirps of amplitude 5…12 on offsets
    0…4; ``single``: one 10 µA/cm² step from 5 ms (the published neural-ODE fitter's own
    training trace). With ``seed`` > 0 every listed amplitude is scaled by its own factor
    in 0.75–1.25 (seeded), so seeds give other stimuli, not only other noise.
    """
    t = time_grid(case.duration, case.dt)
    T, n, rng = case.duration, case.traces, case.seed
    on, off = round(0.1 * T / case.dt) * case.dt, round(0.9 * T / case.dt) * case.dt
    # seed 0: the amplitudes as listed; another seed scales each by a factor in 0.75-1.25
    jitter = np.random.default_rng([rng, 3]).uniform(0.75, 1.25, size=64) if rng else np.ones(64)
    if case.family == "single":
        return steps(t, [10.0 * jitter[0]], start=5.0)
    if case.family == "steps":
        return steps(t, _spread(-6.0, 40.0, n) * jitter[:n], start=on, stop=off)
    if case.family == "steps_ramp":
        parts = [steps(t, _spread(-5.0, 30.0, max(n - 1, 1)) * jitter[:max(n - 1, 1)],
                       start=on, stop=off)]
        if n > 1:
            parts.append(ramp(t, 0.0, 30.0 * jitter[n], start=on, stop=T))
        return Stimulus.concat(parts)
    if case.family == "noise":
        return Stimulus.concat([ou_noise(t, m, s, 2.0, seed=rng * 1000 + k)
                                for k, (m, s) in enumerate(zip(_spread(0.0, 8.0, n),
                                                               _spread(4.0, 10.0, n),
                                                               strict=True))])
    if case.family == "chirp":
        return Stimulus.concat([chirp(t, a, 0.005, 0.15, offset=o, start=on)
                                for a, o in zip(_spread(5.0, 12.0, n) * jitter[:n],
                                                _spread(0.0, 4.0, n), strict=True)])
    # mixed: the 9-trace set, cycled
    j = jitter
    base = [steps(t, [a * f], start=on, stop=off)
            for a, f in zip((-5.0, 2.0, 5.0, 10.0, 20.0), j, strict=False)]
    base += [ramp(t, 0.0, 30.0 * j[5], start=on, stop=off),
             prepulse_step(t, -10.0 * j[6], [7.0 * j[7]], prepulse_start=on,
                           prepulse_duration=0.2 * T),
             chirp(t, 8.0 * j[8], 0.005, 0.15, start=on)]
    parts = []
    for k in range(n):
        if k % 9 == 8:
            parts.append(ou_noise(t, 5.0, 5.0, 2.0, seed=rng * 1000 + k))
        else:
            parts.append(base[k % 9])
    # the OU trace last, when there is one: the fit's default hold-out is the last trace
    parts.sort(key=lambda s: s.names[0].startswith("ou"))
    stim = Stimulus.concat(parts)
    return Stimulus(stim.time, stim.current, tuple(f"{i}_{nm}" for i, nm in
                                                   enumerate(stim.names)))


def heldout_stimulus(case: Case) -> Stimulus:
    """Held-out stimuli of ``case`` on its sample grid (at least 100 ms): two OU currents
    (mean 4, SD 8, tau 3 ms; mean 0, SD 12, tau 2 ms) and a 15 µA/cm² step."""
    t = time_grid(max(case.duration, 100.0), case.dt)
    return Stimulus.concat([ou_noise(t, 4.0, 8.0, 3.0, seed=case.seed + 7),
                            ou_noise(t, 0.0, 12.0, 2.0, seed=case.seed + 11),
                            steps(t, [15.0], start=round(10.0 / case.dt) * case.dt)])


def _neuron_recording(case: Case, stim: Stimulus, noise: float, what: str) -> Recording:
    from .neuron_reference import simulate_neuron

    bio = case.biophysics()
    V = simulate_neuron(stim, bio, dt=case.dt / case.substeps, convention=case.convention)
    if not np.all(np.isfinite(V)):
        raise ConfigError(f"case {case.name!r}: NEURON's {what} V is not finite")
    measured = V
    if noise > 0:
        rng = np.random.default_rng([case.seed, 2])
        measured = V + noise * rng.standard_normal(V.shape)
    kin = "hh1952" if case.convention == "hh1952" else "hh_modern"
    truth = Truth(kinetics=kin, temperature=case.temperature, q10=3.0,
                  voltage=V if noise > 0 else None,
                  integrator=f"NEURON hh, fixed step {case.dt / case.substeps:g} ms")
    return Recording(stim.time, measured, stim.current, stim.names, bio,
                     source=f"hybridhh.suite case {case.name} ({what}) via NEURON hh",
                     description=f"suite case {case.as_dict()}", truth=truth,
                     noise_sigma=float(noise), noise_seed=case.seed if noise > 0 else None)


def make_case(case: Case) -> tuple[Recording, Recording]:
    """``(train, heldout)`` recordings of ``case``, made by NEURON's ``hh``.

    ``train`` has the case's stimulus, sampling and measurement noise, with ``/truth``;
    ``heldout`` (:func:`heldout_stimulus`) is noise-free. Needs the ``neuron`` extra.
    """
    train = _neuron_recording(case, stimulus_of(case), case.noise, "training")
    test = _neuron_recording(case, heldout_stimulus(case), 0.0, "held-out")
    return train, test


#: the base case: the issue's 9 traces x 100 ms at 0.025 ms, 6.3 °C, squid cell, clean
BASE = Case("base")


def _axes() -> list[Case]:
    """One axis at a time around :data:`BASE`."""
    r = dataclasses.replace
    out = [BASE]
    out += [r(BASE, name=f"dt {dt:g}", dt=dt) for dt in (0.01, 0.05, 0.1)]
    out += [r(BASE, name="steps only", family="steps", n_traces=7, duration=200.0),
            r(BASE, name="steps+ramp", family="steps_ramp", n_traces=6),
            r(BASE, name="noise stimuli", family="noise", n_traces=5),
            r(BASE, name="chirps", family="chirp", n_traces=4, duration=200.0),
            r(BASE, name="single 50 ms", family="single", duration=50.0, dt=0.1),
            r(BASE, name="3 traces", n_traces=3),
            r(BASE, name="16 x 50 ms", n_traces=16, duration=50.0),
            r(BASE, name="4 x 1000 ms", n_traces=4, duration=1000.0, dt=0.05)]
    out += [r(BASE, name=f"{T:g} °C", temperature=T) for T in (10.0, 18.5, 25.0)]
    out += [r(BASE, name="hh1952", convention="hh1952")]
    out += [r(BASE, name=f"noise {s:g} mV", noise=s) for s in (0.5, 1.0, 2.0)]
    out += [r(BASE, name="g_Na 50", g_Na=50.0), r(BASE, name="g_Na 150", g_Na=150.0),
            r(BASE, name="g_K 20", g_K=20.0), r(BASE, name="g_K 50", g_K=50.0),
            r(BASE, name="E_L -70", E_L=-70.0), r(BASE, name="E_L -50", E_L=-50.0)]
    out += [r(BASE, name=f"seed {s}", seed=s) for s in (1, 2, 3)]
    # the generalisation issue's steps-only cell: 22 °C, another cell, 0.05 ms
    out += [Case("steps, other cell", family="steps", n_traces=7, duration=200.0, dt=0.05,
                 temperature=22.0, g_Na=90.0, g_K=30.0, g_L=0.2, E_L=-60.0)]
    return out


def random_cases(n: int, seed: int = 2026) -> list[Case]:
    """``n`` random combinations of every axis (seeded), each at most
    :data:`MAX_SAMPLES` samples."""
    rng = np.random.default_rng(seed)
    out: list[Case] = []
    while len(out) < n:
        family = str(rng.choice(["mixed", "mixed", "steps", "steps_ramp", "noise", "chirp"]))
        dt = float(rng.choice([0.01, 0.025, 0.05, 0.1]))
        n_traces = int(rng.integers(3, 17))
        duration = float(rng.choice([50.0, 100.0, 200.0, 500.0, 1000.0]))
        case = Case(
            name=f"random {len(out)}", family=family, dt=dt, n_traces=n_traces,
            duration=duration, temperature=float(rng.choice([6.3, 10.0, 15.0, 18.5, 25.0])),
            convention=str(rng.choice(["modern", "hh1952"])),
            noise=float(rng.choice([0.0, 0.0, 0.5, 1.0, 2.0])),
            g_Na=float(np.round(rng.uniform(50.0, 150.0))),
            g_K=float(np.round(rng.uniform(20.0, 50.0))),
            E_L=float(np.round(rng.uniform(-70.0, -50.0), 1)),
            seed=int(rng.integers(0, 1000)))
        if case.samples <= MAX_SAMPLES and case.traces * case.duration >= 150.0:
            out.append(case)
    return out


#: the suite: one axis at a time around BASE, then 20 random combinations
CASES: tuple[Case, ...] = tuple(_axes() + random_cases(20))
#: a small subset for the tests and quick checks
QUICK = ("base", "dt 0.1", "steps only", "noise 1 mV", "seed 2")


def get_case(name: str) -> Case:
    """The case called ``name`` in :data:`CASES`."""
    for c in CASES:
        if c.name == name:
            return c
    raise ConfigError(f"no suite case {name!r}; the cases are: "
                      + ", ".join(repr(c.name) for c in CASES))
