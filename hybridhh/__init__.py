"""hybridhh: learn Hodgkin–Huxley rate functions from current-clamp recordings.

The pipeline, one module per step::

    protocols ─► simulate ─► recording ─► fit ─► run directory ─► predict / compare / report
                  import ─┘                                         └─► export (NEURON)

Quick start::

    import hybridhh as hh
    rec = hh.simulate_recording(hh.default_protocols(hh.time_grid(100.0, 0.01)))
    result = hh.fit(rec, run_dir="out/run")
    hh.compare("out/run", truth=rec)

Units everywhere: ms, mV, µA/cm², mS/cm², µF/cm², 1/ms, °C. The names below are imported
lazily, so ``import hybridhh`` (and ``hybridhh --help``) does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    # protocols and simulation
    "Stimulus": "hybridhh.protocols",
    "time_grid": "hybridhh.protocols",
    "default_protocols": "hybridhh.protocols",
    "simulate": "hybridhh.simulation",
    "Biophysics": "hybridhh.biophysics",
    "HHKinetics": "hybridhh.kinetics",
    "get_kinetics": "hybridhh.kinetics",
    # recordings
    "Recording": "hybridhh.recording",
    "read_recording": "hybridhh.recording",
    "write_recording": "hybridhh.recording",
    "simulate_recording": "hybridhh.recording",
    "import_recording": "hybridhh.importing",
    "Cell": "hybridhh.cell",
    "passive_analysis": "hybridhh.analysis.passive",
    # fitting
    "fit": "hybridhh.fitting",
    "FitConfig": "hybridhh.fitting",
    "FitResult": "hybridhh.fitting",
    "load_fit": "hybridhh.fitting",
    "free_run": "hybridhh.fitting",
    "predict": "hybridhh.prediction",
    "export_nmodl": "hybridhh.export",
    # analysis
    "compare": "hybridhh.analysis",
    "write_report": "hybridhh.report",
    # errors
    "HybridHHError": "hybridhh.errors",
    "ConfigError": "hybridhh.errors",
    "RecordingError": "hybridhh.errors",
    "RunDirError": "hybridhh.errors",
    "SimulationError": "hybridhh.errors",
}

#: public submodules
_MODULES = {"protocols": "hybridhh.protocols"}

__all__ = ["__version__", *_PUBLIC, *_MODULES]


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'hybridhh' has no attribute {name!r}")
    globals()[name] = value  # cached: later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC) | set(_MODULES))
