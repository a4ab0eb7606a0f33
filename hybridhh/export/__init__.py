"""Fitted kinetics for other simulators: ``export_nmodl(run_dir, out)`` writes a NEURON
mechanism (one self-contained ``.mod`` file) of the fitted cell.

Modules: :mod:`.table` (gate tables and their interpolation), :mod:`.channels` (what a
mechanism holds), :mod:`.nmodl` (the writer), :mod:`.api` (from a run directory).
"""

from .api import FORMATS, default_grid, export, export_nmodl, kinetics_nmodl
from .channels import Channel, Gate, hh_channels
from .nmodl import check_suffix, nmodl_text, write_nmodl
from .table import GateTable, Grid, hermite, interpolation_error, tabulate

__all__ = ["FORMATS", "Channel", "Gate", "GateTable", "Grid", "check_suffix", "default_grid",
           "export", "export_nmodl", "hermite", "hh_channels", "interpolation_error",
           "kinetics_nmodl", "nmodl_text", "tabulate", "write_nmodl"]
