"""Stimulus protocols: injected current density (µA/cm², positive depolarises) on a time grid.

Every builder takes the time grid ``time`` (ms, uniform, shape ``[T]``) and returns a
:class:`Stimulus` of one or more traces. Stimuli on the same grid add (``a + b``, a single
trace broadcasts over many) and stack (:meth:`Stimulus.concat`). Between samples a stimulus
is piecewise linear, which is how every integrator evaluates it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

__all__ = [
    "Stimulus",
    "time_grid",
    "pulse_train",
    "classic_pulses",
    "steps",
    "ramp",
    "prepulse_step",
    "chirp",
    "ou_noise",
    "from_array",
    "default_protocols",
    "PROTOCOLS",
]


def time_grid(duration: float, dt: float) -> np.ndarray:
    """Uniform grid ``0, dt, ..., duration`` (ms); ``duration`` must be a multiple of ``dt``."""
    if not dt > 0:
        raise ConfigError(f"dt must be > 0 ms, got {dt}")
    if not duration > 0:
        raise ConfigError(f"duration must be > 0 ms, got {duration}")
    n = duration / dt
    if abs(n - round(n)) > 1e-6:
        raise ConfigError(f"duration {duration} ms is not a multiple of dt {dt} ms")
    return np.arange(int(round(n)) + 1, dtype=np.float64) * dt


@dataclass(frozen=True, eq=False)
class Stimulus:
    """Injected current density on a uniform time grid.

    Attributes
    ----------
    time : ndarray, shape (T,)
        Sample times, ms, strictly increasing and uniform.
    current : ndarray, shape (n_traces, T)
        Current density, µA/cm².
    names : tuple of str
        One name per trace.
    """

    time: np.ndarray
    current: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self):
        time = np.asarray(self.time, dtype=np.float64)
        current = np.atleast_2d(np.asarray(self.current, dtype=np.float64))
        if time.ndim != 1 or len(time) < 2:
            raise ConfigError(
                f"stimulus time must be 1-D with >= 2 samples, got shape {time.shape}")
        if current.ndim != 2 or current.shape[1] != len(time):
            raise ConfigError(
                f"stimulus current must have shape (n_traces, {len(time)}), got {current.shape}"
            )
        if not np.all(np.isfinite(current)):
            raise ConfigError("stimulus current has non-finite values")
        names = tuple(str(n) for n in self.names)
        if len(names) != current.shape[0]:
            raise ConfigError(f"{len(names)} names for {current.shape[0]} stimulus traces")
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "current", current)
        object.__setattr__(self, "names", names)

    @property
    def dt(self) -> float:
        return float(self.time[1] - self.time[0])

    @property
    def n_traces(self) -> int:
        return self.current.shape[0]

    def __len__(self) -> int:
        return self.n_traces

    def __add__(self, other: Stimulus) -> Stimulus:
        if not isinstance(other, Stimulus):
            return NotImplemented
        if len(self.time) != len(other.time) or not np.allclose(self.time, other.time):
            raise ConfigError("can only add stimuli on the same time grid")
        if self.n_traces != other.n_traces and 1 not in (self.n_traces, other.n_traces):
            raise ConfigError(
                f"cannot add stimuli of {self.n_traces} and {other.n_traces} traces "
                "(one of them must have 1 trace or both the same number)"
            )
        n = max(self.n_traces, other.n_traces)
        a = self.names * n if self.n_traces == 1 else self.names
        b = other.names * n if other.n_traces == 1 else other.names
        return Stimulus(self.time, self.current + other.current,
                        tuple(f"{x}+{y}" for x, y in zip(a, b, strict=True)))

    @staticmethod
    def concat(stimuli: Sequence[Stimulus]) -> Stimulus:
        """Stack the traces of several stimuli on the same grid."""
        stimuli = list(stimuli)
        if not stimuli:
            raise ConfigError("concat needs at least one stimulus")
        t = stimuli[0].time
        for s in stimuli[1:]:
            if len(s.time) != len(t) or not np.allclose(s.time, t):
                raise ConfigError("can only concatenate stimuli on the same time grid")
        return Stimulus(t, np.concatenate([s.current for s in stimuli]),
                        sum((s.names for s in stimuli), ()))

    def select(self, index) -> Stimulus:
        """A stimulus with the traces ``index`` (int, slice or sequence of ints)."""
        idx = np.atleast_1d(np.arange(self.n_traces)[index])
        return Stimulus(self.time, self.current[idx], tuple(self.names[i] for i in idx))


def _window(time, start, stop):
    return ((time >= start - 1e-9) & (time < stop - 1e-9)).astype(np.float64)


def pulse_train(time, pulses: Sequence[tuple[float, float, float]], name: str = "pulses"):
    """Rectangular pulses ``(start ms, duration ms, amplitude µA/cm²)`` in one trace."""
    time = np.asarray(time, dtype=np.float64)
    i = np.zeros_like(time)
    for start, duration, amplitude in pulses:
        if duration <= 0:
            raise ConfigError(f"pulse duration must be > 0 ms, got {duration}")
        i += amplitude * _window(time, start, start + duration)
    return Stimulus(time, i[None], (name,))


def classic_pulses(time):
    """The classic pair: 150 µA/cm² for 0–1 ms, then 50 µA/cm² for 10–11 ms.

    In the 1952 convention the first pulse fires the well-known spike; the second falls in
    the relative refractory period.
    """
    return pulse_train(time, [(0.0, 1.0, 150.0), (10.0, 1.0, 50.0)], name="classic_pulses")


def steps(time, amplitudes: Sequence[float], start: float = 5.0, stop: float | None = None,
          holding: float = 0.0):
    """One trace per amplitude: ``holding`` outside, ``amplitude`` in ``[start, stop)`` ms."""
    time = np.asarray(time, dtype=np.float64)
    stop = time[-1] + 1.0 if stop is None else stop
    w = _window(time, start, stop)
    amps = np.atleast_1d(np.asarray(amplitudes, dtype=np.float64))
    return Stimulus(time, holding + amps[:, None] * w[None],
                    tuple(f"step_{a:g}" for a in amps))


def ramp(time, amplitude_start: float, amplitude_stop: float, start: float = 0.0,
         stop: float | None = None):
    """A linear ramp from ``amplitude_start`` at ``start`` to ``amplitude_stop`` at ``stop``."""
    time = np.asarray(time, dtype=np.float64)
    stop = time[-1] if stop is None else stop
    if stop <= start:
        raise ConfigError(f"ramp stop ({stop} ms) must be after start ({start} ms)")
    frac = np.clip((time - start) / (stop - start), 0.0, 1.0)
    i = np.where(time < start, 0.0, amplitude_start + frac * (amplitude_stop - amplitude_start))
    return Stimulus(time, i[None], (f"ramp_{amplitude_start:g}_{amplitude_stop:g}",))


def prepulse_step(time, prepulse_amplitude: float, step_amplitudes: Sequence[float],
                  prepulse_start: float = 5.0, prepulse_duration: float = 20.0,
                  step_duration: float | None = None):
    """A (usually hyperpolarising) prepulse, then a step right after it; one trace per step."""
    time = np.asarray(time, dtype=np.float64)
    s0 = prepulse_start + prepulse_duration
    s1 = time[-1] + 1.0 if step_duration is None else s0 + step_duration
    pre = prepulse_amplitude * _window(time, prepulse_start, s0)
    amps = np.atleast_1d(np.asarray(step_amplitudes, dtype=np.float64))
    i = pre[None] + amps[:, None] * _window(time, s0, s1)[None]
    return Stimulus(time, i, tuple(f"prepulse_{prepulse_amplitude:g}_step_{a:g}" for a in amps))


def chirp(time, amplitude: float, f0: float, f1: float, offset: float = 0.0,
          start: float = 0.0, stop: float | None = None):
    """Sine with frequency sweeping linearly from ``f0`` to ``f1`` (1/ms = kHz).

    ``offset + amplitude * sin(phase)`` in ``[start, stop)``, 0 outside.
    """
    time = np.asarray(time, dtype=np.float64)
    stop = time[-1] if stop is None else stop
    if stop <= start:
        raise ConfigError(f"chirp stop ({stop} ms) must be after start ({start} ms)")
    tau = np.clip(time - start, 0.0, stop - start)
    k = (f1 - f0) / (stop - start)
    phase = 2 * np.pi * (f0 * tau + 0.5 * k * tau**2)
    w = (time >= start) & (time <= stop)
    i = np.where(w, offset + amplitude * np.sin(phase), 0.0)
    return Stimulus(time, i[None], (f"chirp_{amplitude:g}_{f0:g}-{f1:g}",))


def ou_noise(time, mean: float, sigma: float, tau: float = 3.0, seed: int = 0, n: int = 1):
    """Ornstein–Uhlenbeck noise current: mean (µA/cm²), stationary SD ``sigma``, ``tau`` (ms).

    Sampled exactly on the grid (AR(1) with ``exp(-dt/tau)``), starting from the stationary
    distribution; deterministic for a given ``seed``.
    """
    time = np.asarray(time, dtype=np.float64)
    if tau <= 0 or sigma < 0:
        raise ConfigError(f"ou_noise needs tau > 0 ms and sigma >= 0, got tau={tau}, sigma={sigma}")
    rng = np.random.default_rng(seed)
    dt = time[1] - time[0]
    a = np.exp(-dt / tau)
    eps = rng.standard_normal((n, len(time)))
    x = np.empty((n, len(time)))
    x[:, 0] = eps[:, 0]
    # AR(1) recursion x_k = a x_{k-1} + sqrt(1-a^2) eps_k, as a vectorised linear filter
    import scipy.signal

    b = np.sqrt(1 - a * a)
    x[:, 1:] = scipy.signal.lfilter([b], [1.0, -a], eps[:, 1:], axis=1,
                                    zi=a * x[:, :1])[0]
    return Stimulus(time, mean + sigma * x,
                    tuple(f"ou_{mean:g}_{sigma:g}_s{seed}_{k}" for k in range(n)))


def from_array(time, current, names: Sequence[str] | None = None):
    """A user-given current array ``(n_traces, T)`` or ``(T,)`` in µA/cm²."""
    current = np.atleast_2d(np.asarray(current, dtype=np.float64))
    names = names if names is not None else [f"user_{k}" for k in range(current.shape[0])]
    return Stimulus(np.asarray(time, dtype=np.float64), current, tuple(names))


def default_protocols(time, seed: int = 0):
    """The default fitting set: drives V across about -90…+50 mV (modern convention).

    Steps (2…60 and -4, -10 µA/cm²), a slow ramp, two hyperpolarising-prepulse protocols,
    a chirp and four Ornstein–Uhlenbeck noise currents (seeded by ``seed``): 16 traces.
    The variety (sub- and supra-threshold, hyperpolarised, tonic firing, noise) is what
    makes all six rates identifiable.
    """
    time = np.asarray(time, dtype=np.float64)
    T = time[-1]
    return Stimulus.concat([
        steps(time, [2.0, 5.0, 10.0, 20.0, 40.0, 60.0, -4.0, -10.0], start=5.0, stop=0.85 * T),
        ramp(time, 0.0, 30.0, start=5.0, stop=T),
        prepulse_step(time, -10.0, [5.0, 15.0], prepulse_start=5.0,
                      prepulse_duration=0.2 * T),
        chirp(time, 8.0, 0.005, 0.15, offset=3.0, start=5.0),
        ou_noise(time, mean=4.0, sigma=8.0, tau=3.0, seed=seed, n=2),
        ou_noise(time, mean=0.0, sigma=12.0, tau=2.0, seed=seed + 1000, n=2),
    ])


#: Protocol builders selectable by name from the CLI.
PROTOCOLS = {
    "classic": classic_pulses,
    "steps": steps,
    "ramp": ramp,
    "prepulse": prepulse_step,
    "chirp": chirp,
    "noise": ou_noise,
    "default": default_protocols,
}
