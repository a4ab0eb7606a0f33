"""The project's exception types.

Every error that a user can cause (bad file, bad option, bad argument) is a subclass of
:class:`HybridHHError`, so the CLI can print it as one clear line without a traceback.
Messages name the file, field or argument and say what was expected.
"""

from __future__ import annotations


class HybridHHError(Exception):
    """Base class of all errors raised on purpose by hybridhh."""


class RecordingError(HybridHHError, ValueError):
    """A recording file is missing, malformed or violates the format contract.

    Parameters
    ----------
    path
        The file concerned.
    field
        The HDF5 path of the offending field (``"/voltage"``, ``"/biophysics/g_Na"``...),
        or ``None`` where the problem concerns the whole file.
    message
        What is wrong and what was expected.
    """

    def __init__(self, path, field: str | None, message: str):
        self.path = str(path)
        self.field = field
        where = f"{self.path}" + (f", field {field}" if field else "")
        super().__init__(f"{where}: {message}")


class ConfigError(HybridHHError, ValueError):
    """An option or argument has a value the code cannot use."""


class RunDirError(HybridHHError, ValueError):
    """A run directory is missing files or holds files that do not belong together."""


class SimulationError(HybridHHError, RuntimeError):
    """A simulation produced non-finite values or could not proceed."""
