"""The run directory of a fit: config, atomic checkpoints, metrics, the fitted model.

::

    RUN_DIR/
      config.json          the FitConfig, the model's construction parameters, the data
      checkpoint_last.pt   everything needed to resume exactly (model, optimiser, phase, step)
      checkpoint_best.pt   the best model so far (lowest loss of the current stage)
      metrics.jsonl        one JSON object per logged step
      model.pt             the final model (state dict + construction parameters)
      result.json          summary: losses, held-out V error, constrained voltage range

Checkpoints are written to a temporary file and renamed, so an interrupted write never
leaves a broken file; they are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..errors import RunDirError

CONFIG = "config.json"
LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"
METRICS = "metrics.jsonl"
MODEL = "model.pt"
RESULT = "result.json"


def save_torch(path, obj) -> None:
    """``torch.save`` atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(path, obj) -> None:
    """Write JSON atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")
    atomic_write(path, write)


def load_torch(path):
    """``torch.load(weights_only=True)`` with a clear error for a missing/corrupt file."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: file not found")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        # not a checkpoint (pickle), truncated (zip reader), empty, unreadable
        raise RunDirError(f"{path}: not a readable checkpoint ({e})") from e


def load_json(path):
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: not valid JSON ({e})") from e


def append_metrics(run_dir, record: dict) -> None:
    """Append one JSON line to ``metrics.jsonl`` (flushed at once)."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_metrics(run_dir) -> list[dict]:
    """All records of ``metrics.jsonl`` (empty list if there is none)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RunDirError(f"{path}, line {i}: not valid JSON ({e})") from e
    return out


def check_run_dir(run_dir, need=(CONFIG, MODEL)) -> Path:
    """The run directory as a Path, or a :class:`RunDirError` saying what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory (expected a run directory made by "
                          "'hybridhh fit ... --out RUN_DIR')")
    missing = [n for n in need if not (run_dir / n).exists()]
    if missing:
        raise RunDirError(f"{run_dir}: missing {', '.join(missing)}; is this a finished "
                          "'hybridhh fit' run? (an interrupted one resumes with --resume)")
    return run_dir


def model_file(run_dir) -> Path:
    """The file the run's model is loaded from: ``model.pt`` of a finished fit, else
    ``checkpoint_best.pt`` (an unfinished fit's best model so far)."""
    run_dir = Path(run_dir)
    return run_dir / MODEL if (run_dir / MODEL).exists() else run_dir / BEST
