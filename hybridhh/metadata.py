"""Recording metadata: how a recording was made (amplifier settings, source file, sweeps).

:func:`check_metadata` validates the ``Recording.metadata`` dict. Known keys
(:data:`METADATA`) have a type and a unit; any other key is free text (a string). In a
file the metadata are the attributes of the optional group ``/metadata``, each number with
a ``<name>_units`` attribute (``docs/recording-format.md``).

The recording temperature is not metadata: it is ``/biophysics`` ``temperature``
(``Recording.temperature``, None when the file does not state it), as in every recording.
"""

from __future__ import annotations

import math
import re

from .errors import ConfigError

__all__ = ["METADATA", "check_metadata"]

#: Known keys: name -> (kind, unit or None, meaning).
METADATA: dict[str, tuple[str, str | None, str]] = {
    "liquid_junction_potential": ("number", "mV", "liquid junction potential (not corrected "
                                                  "for unless the description says so)"),
    "lowpass": ("positive", "kHz", "amplifier low-pass (anti-alias) filter cut-off"),
    "bridge_balance": ("non-negative", "MOhm", "series resistance balanced by the "
                                               "amplifier's bridge"),
    "source_file": ("text", None, "the file the data were imported from"),
    "sweeps": ("sweeps", None, "the source file's sweep numbers, one per trace"),
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def check_metadata(metadata, where: str = "metadata") -> dict:
    """A validated copy of ``metadata``.

    Raises
    ------
    ConfigError
        Naming the key, what was expected and the unit, for: a key that is not a name
        (letters, digits, ``_``), one ending in ``_units``, ``temperature`` (it belongs to
        the biophysics), a non-finite or out-of-range number, sweeps that are not
        non-negative integers, free text that is not a string.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ConfigError(f"{where}: expected a dict, got {type(metadata).__name__}")
    out = {}
    for key, value in metadata.items():
        field = f"{where} {key!r}"
        if not isinstance(key, str) or not _NAME.match(key) or key.endswith("_units"):
            raise ConfigError(f"{field}: a key is a name of letters, digits and '_' that "
                              "does not end in '_units'")
        if key == "temperature":
            raise ConfigError(f"{field}: the temperature is the biophysics' (degC; "
                              "Biophysics.temperature, /biophysics temperature), not metadata")
        kind, unit, _ = METADATA.get(key, ("text", None, ""))
        if kind == "text":
            if not isinstance(value, str):
                raise ConfigError(f"{field}: expected a string, got {value!r}")
        elif kind == "sweeps":
            try:
                items = list(value)
            except TypeError:
                raise ConfigError(f"{field}: expected a list of sweep numbers, got "
                                  f"{value!r}") from None
            if not all(_is_int(s) and int(s) >= 0 for s in items):
                raise ConfigError(f"{field}: expected integers >= 0, got {items!r}")
            value = [int(s) for s in items]
        else:
            if isinstance(value, bool) or not hasattr(value, "__float__") \
                    or isinstance(value, str):
                raise ConfigError(f"{field}: expected a number ({unit}), got {value!r}")
            value = float(value)
            if not math.isfinite(value) or (kind == "positive" and not value > 0) \
                    or (kind == "non-negative" and value < 0):
                need = {"number": "a finite number", "positive": "a number > 0",
                        "non-negative": "a number >= 0"}[kind]
                raise ConfigError(f"{field}: expected {need} ({unit}), got {value}")
        out[key] = value
    return out


def _is_int(x) -> bool:
    if isinstance(x, (bool, str, bytes)):
        return False
    try:
        return float(x) == int(x)
    except (TypeError, ValueError, OverflowError):
        return False
