"""The fit's quality verdict: ``ok`` / ``suspect`` / ``failed``, with reasons and numbers.

(Stub; being written.)
"""

from __future__ import annotations

__all__ = ["assess"]


def assess(*, model, train, held, heldout, history, noise, bands, config, context,
           teacher_model=None):
    """The verdict dict for ``result.json``'s ``quality``. Stub: returns None."""
    return None
