"""The same cells in NEURON: an independent reference for the simulator (optional).

:class:`NeuronCells` builds ``n`` single-compartment NEURON sections with the built-in
``hh`` mechanism, each driven by an ``IClamp`` whose amplitude is played from one trace of a
:class:`~hybridhh.protocols.Stimulus`; :func:`simulate_neuron` is the one-call form. NEURON
is imported lazily: without it these raise :class:`~hybridhh.errors.ConfigError`.

How the two models are made identical
-------------------------------------
* **Area and current.** Every section is a cylinder with ``L = diam = sqrt(1e5 / pi)`` µm,
  so its area is ``pi * L * diam = 1e5 µm² = 1e-3 cm²`` and an electrode current of
  ``1 nA = 1e-3 µA`` spreads to ``1 µA/cm²``. The factor used is computed from the area
  NEURON reports (``amp [nA] = J [µA/cm²] * area [µm²] * 1e-5``), equal to 1 to rounding.
* **Stimulus.** ``Vector.play(IClamp.amp, tvec, continuous=1)`` interpolates linearly
  between the samples, and NEURON's fixed step evaluates it at ``t + dt/2`` -- the same
  piecewise-linear stimulus at the same times as our ``neuron`` and ``exp_euler``
  integrators.
* **Parameters.** ``cm = C_m`` (µF/cm²), ``gnabar_hh = g_Na * 1e-3`` (mS/cm² -> S/cm², same
  for ``gkbar_hh``, ``gl_hh``), ``ena``, ``ek``, ``el_hh`` from the reversal potentials,
  ``celsius = temperature``, fixed step ``h.dt``, ``secondorder = 0``, CVode off.
* **Rates.** ``usetable_hh = 0`` by default, so the rates are computed exactly (NEURON's
  ``vtrap`` uses ``x / (exp(x) - 1)`` and a first-order series for ``|x| < 1e-6``, ours
  ``exprel``: they differ by ~1e-12 relative). ``usetable=True`` is NEURON's default: rates
  interpolated from a 1 mV table, faster and less accurate.
* **Initial state.** ``v`` set to ``V0`` (default: our resting potential) and the gates at
  their steady state there (``hh``'s INITIAL block).
* **Convention.** NEURON's ``hh`` is in the modern convention; for ``convention="hh1952"``
  the reversal potentials and ``V0`` are shifted by -65 mV on the way in and the voltage by
  +65 mV on the way out.

NEURON's global settings (``dt``, ``celsius``, ``usetable_hh``, ``secondorder``) are restored
after each run; the sections live as long as the :class:`NeuronCells` object. NEURON
advances every section of the process at once: keep one :class:`NeuronCells` alive at a
time (other sections would be simulated, and timed, along with it).
"""

from __future__ import annotations

import math

import numpy as np

from .biophysics import Biophysics
from .errors import ConfigError, SimulationError
from .kinetics import HHKinetics, convention_offset
from .protocols import Stimulus

__all__ = ["NeuronCells", "simulate_neuron", "neuron_available", "CELL_DIAMETER"]

#: Length and diameter (µm) of every section: area ``pi * d * d = 1e5 µm² = 1e-3 cm²``.
CELL_DIAMETER = math.sqrt(1e5 / math.pi)

_INSTALL_HINT = "install the optional extra: pip install 'hybridhh[neuron]'"


def _neuron_h():
    try:
        from neuron import h
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError(f"the NEURON simulator is not available ({e}); {_INSTALL_HINT}") from e
    return h


def neuron_available() -> bool:
    """Whether ``import neuron`` works."""
    try:
        _neuron_h()
    except ConfigError:
        return False
    return True


class NeuronCells:
    """``n`` single-compartment NEURON cells with ``hh``, one ``IClamp`` each.

    Parameters
    ----------
    n
        Number of cells (sections).
    biophysics
        Default: :meth:`Biophysics.standard` of ``convention``.
    convention
        Voltage convention of ``biophysics``, of ``V0`` and of the returned voltages.
    """

    def __init__(self, n: int, biophysics: Biophysics | None = None,
                 convention: str = "modern"):
        if int(n) != n or n < 1:
            raise ConfigError(f"need at least one cell, got n={n}")
        self.h = h = _neuron_h()
        self.n = int(n)
        self.convention = convention
        self.offset = convention_offset(convention)  # mV added to get the modern convention
        self.biophysics = Biophysics.standard(convention) if biophysics is None else biophysics
        bio = self.biophysics
        self.sections, self.clamps = [], []
        for i in range(self.n):
            sec = h.Section(name=f"hybridhh_cell_{id(self)}_{i}")
            sec.nseg = 1
            sec.L = sec.diam = CELL_DIAMETER
            sec.cm = bio.C_m
            sec.insert("hh")
            sec.gnabar_hh = bio.g_Na * 1e-3
            sec.gkbar_hh = bio.g_K * 1e-3
            sec.gl_hh = bio.g_L * 1e-3
            sec.el_hh = bio.E_L + self.offset
            sec.ena = bio.E_Na + self.offset
            sec.ek = bio.E_K + self.offset
            clamp = h.IClamp(sec(0.5))
            clamp.delay = 0.0
            clamp.dur = 1e9
            clamp.amp = 0.0
            self.sections.append(sec)
            self.clamps.append(clamp)
        #: nA of electrode current per µA/cm² of current density (1 to rounding)
        self.nA_per_density = h.area(0.5, sec=self.sections[0]) * 1e-5

    def run(self, stimulus: Stimulus, dt: float | None = None, V0=None,
            usetable: bool = False) -> np.ndarray:
        """Simulate every cell under its trace of ``stimulus`` with NEURON's fixed step.

        Parameters
        ----------
        stimulus
            Current density (µA/cm²); one trace per cell (``stimulus.n_traces == n``).
        dt
            NEURON's fixed time step (ms); must divide the stimulus step into a whole number
            of steps. Default: the stimulus step.
        V0
            Initial voltage (mV, scalar or one per cell; in this object's convention).
            Default: the resting potential of the HH model with these biophysics.
        usetable
            Use ``hh``'s rate tables (NEURON's default) instead of exact rates.

        Returns
        -------
        ndarray, shape (n, T)
            Membrane potential (mV) on ``stimulus.time``.
        """
        h = self.h
        if stimulus.n_traces != self.n:
            raise ConfigError(f"stimulus has {stimulus.n_traces} traces for {self.n} cells")
        dts = stimulus.dt
        dt = dts if dt is None else float(dt)
        n_sub = dts / dt
        if not dt > 0 or abs(n_sub - round(n_sub)) > 1e-6 or round(n_sub) < 1:
            raise ConfigError(f"NEURON dt ({dt} ms) must divide the stimulus step ({dts} ms) "
                              "into a whole number of steps")
        n_sub = int(round(n_sub))
        if V0 is None:
            from .hh import resting_potential

            kin = HHKinetics(self.convention, temperature=self.biophysics.temperature)
            V0 = resting_potential(kin, self.biophysics)
        V0 = np.broadcast_to(np.asarray(V0, dtype=np.float64), (self.n,)) + self.offset

        tvec = h.Vector(stimulus.time - stimulus.time[0])
        plays, records = [], []
        for clamp, sec, current in zip(self.clamps, self.sections, stimulus.current,
                                       strict=True):
            ivec = h.Vector(current * self.nA_per_density)
            ivec.play(clamp._ref_amp, tvec, 1)  # 1: continuous (linear interpolation)
            rec = h.Vector()
            rec.record(sec(0.5)._ref_v)  # every fixed step, from t = 0
            plays.append(ivec)
            records.append(rec)

        saved = {k: getattr(h, k) for k in ("dt", "celsius", "usetable_hh", "secondorder")}
        cvode = h.CVode()
        cvode_was_active = cvode.active()
        try:
            cvode.active(0)
            h.secondorder = 0
            h.celsius = self.biophysics.temperature
            h.usetable_hh = 1 if usetable else 0
            h.dt = dt
            for sec, v in zip(self.sections, V0, strict=True):
                sec.v = float(v)
            h.finitialize()  # no argument: keep each section's v, gates to steady state
            for _ in range((len(stimulus.time) - 1) * n_sub):
                h.fadvance()
            V = np.array([rec.as_numpy()[::n_sub] for rec in records]) - self.offset
        finally:
            for k, v in saved.items():
                setattr(h, k, v)
            cvode.active(cvode_was_active)
            for ivec in plays:
                ivec.play_remove()
            for rec in records:
                rec.play_remove()
        if V.shape != stimulus.current.shape:
            raise SimulationError(f"NEURON returned {V.shape} samples, expected "
                                  f"{stimulus.current.shape}")
        return V


def simulate_neuron(stimulus: Stimulus, biophysics: Biophysics | None = None,
                    dt: float | None = None, V0=None, usetable: bool = False,
                    convention: str = "modern") -> np.ndarray:
    """Membrane potential ``[B, T]`` (mV) of NEURON ``hh`` cells under ``stimulus``.

    One call of :class:`NeuronCells` ``(stimulus.n_traces, biophysics, convention).run(...)``;
    see there for the parameters.
    """
    return NeuronCells(stimulus.n_traces, biophysics, convention).run(
        stimulus, dt=dt, V0=V0, usetable=usetable)
