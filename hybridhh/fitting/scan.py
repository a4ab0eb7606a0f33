"""Parallel solution of the linear recurrence ``x[k+1] = a[k] x[k] + b[k]``.

Exponential Euler along a recorded voltage makes each gate such a recurrence. A Python loop
over 10⁴ samples is slow to run and slower to back-propagate; this chunked log-space
cumulative sum does it in a handful of vectorised torch ops, recursively over chunks.
"""

from __future__ import annotations

import torch

#: Lower bound on log a per step: a < e^-20 ≈ 2e-9 is indistinguishable from 0 for a gate,
#: and the bound keeps exp(-cumsum) finite within a chunk (32 * 20 = 640 < 709).
LOG_A_MIN = -20.0
CHUNK = 32


def linear_scan(log_a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Solve ``x[k+1] = exp(log_a[k]) x[k] + b[k]`` along the last dimension.

    Parameters
    ----------
    log_a, b
        Shape ``[..., N]``; ``log_a <= 0`` (a decay factor), clamped at ``LOG_A_MIN``.
        ``log_a`` may have fewer leading dimensions than ``b`` (it broadcasts): many
        recurrences with the same decay — e.g. the sensitivities of one gate to many
        parameters — then share its exponentials.
    x0
        Shape ``b.shape[:-1]``, the state before the first step.

    Returns
    -------
    Tensor ``[..., N + 1]``: ``x[0] = x0``, then the state after each step.
    """
    log_a = log_a.clamp(min=LOG_A_MIN, max=0.0)
    N = log_a.shape[-1]
    C = -(-N // CHUNK)
    pad = C * CHUNK - N
    if pad:
        log_a = torch.nn.functional.pad(log_a, (0, pad))
        b = torch.nn.functional.pad(b, (0, pad))
    la = log_a.reshape(*log_a.shape[:-1], C, CHUNK)
    bb = b.reshape(*b.shape[:-1], C, CHUNK)
    cum = la.cumsum(-1)  # log of a[0] ... a[k] within the chunk
    grow, decay = torch.exp(cum), torch.exp(-cum)
    # state after step k of a chunk started from 0: sum_j exp(cum_k - cum_j) b_j
    y = grow * (bb * decay).cumsum(-1)
    if C > 1:
        starts = linear_scan(cum[..., :-1, -1], y[..., :-1, -1], x0)  # [..., C]
    else:
        starts = x0[..., None]
    x = grow * starts[..., None] + y
    x = x.reshape(*x.shape[:-2], C * CHUNK)[..., :N]
    return torch.cat([x0[..., None], x], dim=-1)
