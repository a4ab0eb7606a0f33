"""Where the tests find the team's real recordings (not in the repository): the
``HYBRIDHH_REALDATA`` folder, else ``../shared/realdata`` beside the repository (as CI lays
it out), else the workplace copy ``/work/shared/realdata``."""

from __future__ import annotations

import os
from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[2] / "shared" / "realdata"
REALDATA = Path(os.environ.get("HYBRIDHH_REALDATA", _BESIDE if _BESIDE.is_dir()
                               else "/work/shared/realdata"))
#: the ABF files
ABF_DIR = REALDATA / "abf"
