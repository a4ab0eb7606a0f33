"""The NMODL writer: a list of :class:`~hybridhh.export.channels.Channel` -> one
self-contained ``.mod`` file for NEURON.

The file needs nothing but ``nrnivmodl DIR`` and ``sec.insert(SUFFIX)``: the gate tables
are C arrays inside it (a ``VERBATIM`` block, no hoc Vectors, no loader script), and the
fitted conductances and reversal potentials are its ``PARAMETER`` defaults. Integration is
NEURON ``hh``'s: ``SOLVE states METHOD cnexp`` (each gate's exact exponential step at the
new voltage), the rates from ``PROCEDURE rates(v)``.

Names in the mechanism (hoc/Python add ``_SUFFIX``): for each channel ``c``, ``g_c``
(S/cm²), ``e_c`` (mV) and the current ``i_c`` (mA/cm², outward positive; a
``NONSPECIFIC_CURRENT``, so the fitted ``e_c`` holds whatever the section's ``ena``/``ek``
are, and ``ina``/``ik`` are not written); for each gate ``x``, the state ``x`` and
``x_inf``, ``tau_x`` (ms); the GLOBALs ``q10`` (1: no temperature dependence) and
``celsius_fit`` (°C, the recording's temperature); ``lookup(k, v)`` reads table ``k``
(gate ``j``: ``2 j`` x_inf, ``2 j + 1`` tau at ``celsius_fit``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import ConfigError
from .channels import Channel, check_name
from .table import Grid

__all__ = ["nmodl_text", "write_nmodl", "check_suffix", "RESERVED_SUFFIXES"]

#: Names a suffix may not take: NEURON's built-in mechanisms and point processes, and C/C++
#: words (the suffix becomes part of C names).
RESERVED_SUFFIXES = frozenset({
    "morphology", "capacitance", "pas", "extracellular", "fastpas", "na_ion", "k_ion",
    "ca_ion", "hh", "IClamp", "AlphaSynapse", "ExpSyn", "Exp2Syn", "SEClamp", "VClamp",
    "OClamp", "APCount", "NetStim", "IntFire1", "IntFire2", "IntFire4", "PointProcessMark",
    "PatternStim", "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if", "int", "long",
    "register", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "class", "new", "delete",
    "namespace", "template", "this", "v", "t", "dt", "celsius", "area", "diam",
})

#: Names the mechanism itself uses (a channel or gate may not produce them).
_OWN = {"q10", "celsius_fit", "tadj", "rates", "states", "lookup", "v", "celsius"}


def check_suffix(suffix) -> str:
    """``suffix`` if it can name a NEURON mechanism; a :class:`ConfigError` saying why not."""
    check_name(suffix, "suffix")
    if suffix in RESERVED_SUFFIXES:
        raise ConfigError(f"suffix {suffix!r} is reserved (a NEURON built-in mechanism or a "
                          "C word); choose another")
    if suffix.startswith("_") or len(suffix) > 64:
        raise ConfigError(f"suffix {suffix!r} must be 1..64 characters")
    return suffix


def _check_channels(channels: list[Channel]) -> list:
    """The gates of all channels, after checking that every generated name is unique."""
    if not channels:
        raise ConfigError("a mechanism needs at least one channel")
    seen: dict[str, str] = {}
    gates = []

    def claim(name, owner):
        if name in _OWN or name in seen:
            raise ConfigError(f"{owner}: the name {name!r} is already used "
                              f"({seen.get(name, 'by the mechanism itself')})")
        seen[name] = owner

    for c in channels:
        if not isinstance(c, Channel):
            raise ConfigError(f"expected Channel objects, got {type(c).__name__}")
        for name in (f"g_{c.name}", f"e_{c.name}", f"i_{c.name}"):
            claim(name, f"channel {c.name}")
        for gate in c.gates:
            for name in (gate.name, f"{gate.name}_inf", f"tau_{gate.name}"):
                claim(name, f"gate {gate.name} of channel {c.name}")
            gates.append(gate)
    if gates and any(g.table.grid != gates[0].table.grid for g in gates):
        raise ConfigError("all gates of a mechanism must be tabulated on the same grid")
    return gates


def _num(x: float) -> str:
    return repr(float(x))


def _c_array(name: str, rows: list) -> str:
    """``static const double NAME[len(rows)][n] = {...};`` with 6 numbers a line."""
    out = [f"static const double {name}[{len(rows)}][{len(rows[0])}] = {{"]
    for row in rows:
        out.append("  {")
        for i in range(0, len(row), 6):
            out.append("    " + ", ".join(_num(x) for x in row[i:i + 6]) + ",")
        out.append("  },")
    out.append("};")
    return "\n".join(out)


def _comment_text(text: str) -> str:
    # a COMMENT block ends at the first ENDCOMMENT; nothing the caller passes may end it
    return re.sub(r"ENDCOMMENT", "END-COMMENT", text)


def _header(channels, gates, suffix, temperature, grid, notes, title) -> list[str]:
    lines = [title, "", "Use:  nrnivmodl DIR   (DIR holding this file), then in Python",
             f"      sec.insert('{suffix}')   -- the fitted values below are the defaults.",
             "The mechanism does not set the membrane capacitance: set sec.cm yourself.", "",
             "Units: v mV, t ms, conductances S/cm2, currents mA/cm2 (outward positive),",
             "tau ms. The currents are NONSPECIFIC: they use the e_* PARAMETERs below, not",
             "the section's ena/ek, and do not write ina/ik.", "", "Channels:"]
    for c in channels:
        factor = "".join(f" {g.name}" + (f"^{g.power}" if g.power > 1 else "")
                         for g in c.gates)
        lines.append(f"  i_{c.name} = g_{c.name}{factor} (v - e_{c.name})"
                     + (f"   {c.description}" if c.description else ""))
        lines.append(f"      g_{c.name} = {c.g / 1000.0:.10g} S/cm2 ({c.g:.10g} mS/cm2), "
                     f"e_{c.name} = {c.E:.10g} mV")
    if gates:
        n = len(gates)
        lines += [
            "", f"Temperature: the rates are those of the recording, at {temperature:g} degC",
            "(GLOBAL celsius_fit). By default (GLOBAL q10 = 1) they do not change with",
            "celsius. Set q10 (e.g. q10_" + suffix + " = 3) to scale every tau by",
            "q10^(-(celsius - celsius_fit)/10); x_inf does not change.", "",
            f"Tables: x_inf and tau of the {n} gate(s) at {grid.n} voltages, "
            f"{grid.vmin:g} .. {grid.vmax:g} mV",
            f"every {grid.step:g} mV, with their slopes (the model's own derivative), read",
            "by cubic Hermite interpolation: its error falls as step^4 (linear",
            "interpolation: step^2; on the squid-axon rates at 0.1 mV, 1e-11 against 3e-6).",
            f"EXTRAPOLATION: below {grid.vmin:g} mV and above {grid.vmax:g} mV each x_inf "
            "and tau holds",
            "its end value. That is not kinetics the model has there: it is an",
            "extrapolation, as is every curve outside the ranges the data constrain.",
            "lookup(k, v) returns table k at v (gate j: k = 2j x_inf, 2j+1 tau at",
            "celsius_fit); gates in order: " + ", ".join(g.name for g in gates) + "."]
    lines += [""] + list(notes)
    return lines


def nmodl_text(channels: list[Channel], suffix: str, temperature: float, *,
               notes: tuple[str, ...] = (), title: str = "hybridhh fitted kinetics") -> str:
    """The ``.mod`` file of ``channels`` as one string.

    Parameters
    ----------
    channels
        The mechanism's currents (:func:`~hybridhh.export.channels.hh_channels` and any
        extra ones); all gates on one :class:`~hybridhh.export.table.Grid`.
    suffix
        The mechanism's name (:func:`check_suffix`).
    temperature
        °C at which the tabulated rates hold (the recording's).
    notes
        Lines for the header comment (where the kinetics come from, what the data
        constrain, error bands).
    title
        The ``TITLE`` line.
    """
    check_suffix(suffix)
    gates = _check_channels(channels)
    grid: Grid | None = gates[0].table.grid if gates else None
    out = [f"TITLE {title}: {suffix}", "", "COMMENT"]
    out += [_comment_text(s).rstrip() for s in
            _header(channels, gates, suffix, temperature, grid, notes, title)]
    out += ["ENDCOMMENT", "", "NEURON {", f"    SUFFIX {suffix}",
            "    NONSPECIFIC_CURRENT " + ", ".join(f"i_{c.name}" for c in channels),
            "    RANGE " + ", ".join(f"g_{c.name}, e_{c.name}" for c in channels)]
    if gates:
        out += ["    RANGE " + ", ".join(f"{g.name}_inf, tau_{g.name}" for g in gates),
                "    GLOBAL q10, celsius_fit"]
    out += ["    THREADSAFE", "}", "", "UNITS {", "    (mA) = (milliamp)",
            "    (mV) = (millivolt)", "    (S) = (siemens)", "}", "", "PARAMETER {"]
    for c in channels:
        out.append(f"    g_{c.name} = {_num(c.g / 1000.0)} (S/cm2) <0,1e9>")
        out.append(f"    e_{c.name} = {_num(c.E)} (mV)")
    if gates:
        out += ["    q10 = 1 (1)", f"    celsius_fit = {_num(temperature)} (degC)"]
    out += ["}", "", "ASSIGNED {", "    v (mV)", "    celsius (degC)"]
    out += [f"    i_{c.name} (mA/cm2)" for c in channels]
    for g in gates:
        out += [f"    {g.name}_inf (1)", f"    tau_{g.name} (ms)"]
    out.append("}")
    if gates:
        out += ["", "STATE { " + " ".join(g.name for g in gates) + " }"]
    out += ["", "BREAKPOINT {"]
    if gates:
        out.append("    SOLVE states METHOD cnexp")
    for c in channels:
        factor = "".join("*" + "*".join([g.name] * g.power) for g in c.gates)
        out.append(f"    i_{c.name} = g_{c.name}{factor}*(v - e_{c.name})")
    out.append("}")
    if gates:
        out += ["", "INITIAL {", "    rates(v)"]
        out += [f"    {g.name} = {g.name}_inf" for g in gates]
        out += ["}", "", "DERIVATIVE states {", "    rates(v)"]
        out += [f"    {g.name}' = ({g.name}_inf - {g.name})/tau_{g.name}" for g in gates]
        out += ["}", "", "PROCEDURE rates(v (mV)) {", "    LOCAL tadj",
                "    tadj = q10^((celsius - celsius_fit)/(10 (degC)))"]
        for j, g in enumerate(gates):
            out += [f"    {g.name}_inf = lookup({2 * j}, v)",
                    f"    tau_{g.name} = lookup({2 * j + 1}, v)*(1 (ms))/tadj"]
        out += ["}", "", "FUNCTION lookup(k, v (mV)) {", "VERBATIM",
                f"    if (_lk >= 0 && _lk < {2 * len(gates)}) "
                f"_llookup = _hyb_hermite_{suffix}((int) _lk, _lv);",
                "    else _llookup = NAN;  /* no such table */", "ENDVERBATIM", "}"]
        out = out[:_verbatim_at(out)] + _tables(gates, grid, suffix) + \
            out[_verbatim_at(out):]
    return "\n".join(out) + "\n"


def _verbatim_at(lines: list[str]) -> int:
    """Where the table block goes: just before the first PROCEDURE (file scope)."""
    return lines.index("PROCEDURE rates(v (mV)) {")


def _tables(gates, grid: Grid, suffix: str) -> list[str]:
    values, slopes = [], []
    for g in gates:
        t = g.table
        values += [t.x_inf, t.tau]
        # slopes per grid step: what the Hermite formula uses
        slopes += [t.dx_inf * grid.step, t.dtau * grid.step]
    n = grid.n
    return ["VERBATIM",
            f"/* the gate tables: {len(values)} quantities at {n} voltages "
            f"{grid.vmin!r} + {grid.step!r} * i mV */",
            _c_array(f"_hyb_value_{suffix}", values),
            "/* slopes times the step (per node) */",
            _c_array(f"_hyb_slope_{suffix}", slopes),
            f"static double _hyb_hermite_{suffix}(int _hyb_k, double _hyb_v) {{",
            "    /* C names start with _hyb: no NMODL name (a letter first) can be a macro"
            " of them */",
            f"    const double* _hyb_y = _hyb_value_{suffix}[_hyb_k];",
            f"    const double* _hyb_d = _hyb_slope_{suffix}[_hyb_k];",
            f"    double _hyb_x = (_hyb_v - ({grid.vmin!r})) / {grid.step!r};",
            "    double _hyb_s, _hyb_dy;",
            "    int _hyb_i;",
            "    if (!(_hyb_x > 0.0)) return _hyb_y[0];  /* below the table (or NaN) */",
            f"    if (_hyb_x >= {n - 1}) return _hyb_y[{n - 1}];  /* above the table */",
            "    _hyb_i = (int) _hyb_x;",
            "    _hyb_s = _hyb_x - _hyb_i;",
            "    _hyb_dy = _hyb_y[_hyb_i + 1] - _hyb_y[_hyb_i];",
            "    return _hyb_y[_hyb_i] + _hyb_s * (_hyb_d[_hyb_i] + _hyb_s * ((3.0 * _hyb_dy"
            " - 2.0 * _hyb_d[_hyb_i] - _hyb_d[_hyb_i + 1])",
            "        + _hyb_s * (_hyb_d[_hyb_i] + _hyb_d[_hyb_i + 1] - 2.0 * _hyb_dy)));",
            "}",
            "ENDVERBATIM", ""]


def write_nmodl(channels: list[Channel], out_dir, suffix: str, temperature: float,
                **kwargs) -> Path:
    """Write ``OUT_DIR/SUFFIX.mod`` (:func:`nmodl_text`) atomically; returns the path."""
    text = nmodl_text(channels, suffix, temperature, **kwargs)
    return atomic_write_text(Path(out_dir) / f"{suffix}.mod", text)
