"""Biophysical parameters of a single-compartment HH cell (the known part of the cell)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .constants import CONVENTIONS, HH_REFERENCE_TEMPERATURE
from .errors import ConfigError

#: Field name -> unit of :class:`Biophysics` (as spelled in recording files).
BIOPHYSICS_UNITS = {
    "C_m": "uF/cm^2",
    "g_Na": "mS/cm^2",
    "g_K": "mS/cm^2",
    "g_L": "mS/cm^2",
    "E_Na": "mV",
    "E_K": "mV",
    "E_L": "mV",
    "temperature": "degC",
}


@dataclass(frozen=True)
class Biophysics:
    """Membrane capacitance, maximal conductances, reversal potentials and temperature.

    Attributes
    ----------
    C_m : float
        Membrane capacitance, µF/cm².
    g_Na, g_K, g_L : float
        Maximal conductances, mS/cm².
    E_Na, E_K, E_L : float
        Reversal potentials, mV.
    temperature : float
        Temperature, °C.
    """

    C_m: float = 1.0
    g_Na: float = 120.0
    g_K: float = 36.0
    g_L: float = 0.3
    E_Na: float = 50.0
    E_K: float = -77.0
    E_L: float = -54.3
    temperature: float = HH_REFERENCE_TEMPERATURE

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
                raise ConfigError(f"Biophysics.{f.name} must be a finite number, got {v!r}")
            object.__setattr__(self, f.name, float(v))
        if self.C_m <= 0:
            raise ConfigError(f"Biophysics.C_m must be > 0 uF/cm^2, got {self.C_m}")
        for name in ("g_Na", "g_K", "g_L"):
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"Biophysics.{name} must be >= 0 mS/cm^2, got {value}")

    @classmethod
    def standard(cls, convention: str = "modern", temperature: float = HH_REFERENCE_TEMPERATURE):
        """The squid-axon parameters in either convention.

        ``modern``: NEURON ``hh`` values (E_Na=50, E_K=-77, E_L=-54.3 mV).
        ``hh1952``: Hodgkin & Huxley's shifted values (E_Na=115, E_K=-12, E_L=10.613 mV).
        """
        if convention == "modern":
            return cls(temperature=temperature)
        if convention == "hh1952":
            return cls(E_Na=115.0, E_K=-12.0, E_L=10.613, temperature=temperature)
        raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> Biophysics:
        return dataclasses.replace(self, **changes)
