"""Units and the standard parameter sets.

Units are fixed project-wide and names carry no unit suffixes:

========================  =========  ====================
quantity                  unit       spelling in files
========================  =========  ====================
time                      ms         ``ms``
membrane potential        mV         ``mV``
current density           µA/cm²     ``uA/cm^2``
conductance density       mS/cm²     ``mS/cm^2``
capacitance               µF/cm²     ``uF/cm^2``
rate constants            1/ms       ``1/ms``
temperature               °C         ``degC``
========================  =========  ====================

With these units ``g [mS/cm²] * V [mV] = µA/cm²`` and ``I / C`` is in mV/ms, so the HH
equations need no conversion factors.
"""

from __future__ import annotations

UNITS = {
    "time": "ms",
    "voltage": "mV",
    "current": "uA/cm^2",
    "conductance": "mS/cm^2",
    "capacitance": "uF/cm^2",
    "rate": "1/ms",
    "temperature": "degC",
}

#: Temperature (°C) at which the 1952 rate functions were measured.
HH_REFERENCE_TEMPERATURE = 6.3
#: Temperature coefficient of the HH rates (per 10 °C).
HH_Q10 = 3.0

GATES = ("m", "h", "n")
RATE_NAMES = ("alpha_m", "beta_m", "alpha_h", "beta_h", "alpha_n", "beta_n")

#: Voltage conventions. ``modern``: absolute membrane potential, rest about -65 mV, as in
#: NEURON's ``hh``. ``hh1952``: Hodgkin & Huxley's displacement from rest with the modern
#: sign (depolarisation positive), rest = 0 mV.
CONVENTIONS = ("modern", "hh1952")
#: Voltage of the modern convention that corresponds to 0 mV of the 1952 convention.
MODERN_REST = -65.0
