"""Kinetics tabulated on a uniform voltage grid and interpolated linearly (what the fitter
simulates: an MLP evaluated once per grid voltage, not at every sample). Units: mV, ms.
"""

from __future__ import annotations

import torch

__all__ = ["StackedKinetics", "TabulatedKinetics"]


class TabulatedKinetics:
    """Kinetics given on a uniform voltage grid, linearly interpolated (flat outside).

    ``x_inf`` and ``tau`` have shape ``[n_grid, 3]``; ``vmin`` and ``step`` in mV.
    """

    def __init__(self, vmin: float, step: float, x_inf: torch.Tensor, tau: torch.Tensor):
        self.vmin, self.step = float(vmin), float(step)
        self.x_inf, self.tau = x_inf, tau
        self.n = x_inf.shape[0]
        self._packed = None  # [x_inf, 1/tau], built on first use by inf_rate

    def weights(self, V):
        """Grid index and interpolation weight for voltages ``V`` (reusable for fixed V)."""
        # NaN (a diverged simulation) maps to the first node; the NaN itself propagates
        # through V and is caught by the caller
        s = torch.nan_to_num((V - self.vmin) / self.step, nan=0.0).clamp(0.0, self.n - 1 - 1e-9)
        k = s.floor().long()
        return k, (s - k).to(self.x_inf.dtype)

    def lookup(self, k, w):
        """``(x_inf, tau)`` at precomputed ``weights``; shape ``k.shape + (3,)``."""
        flat = k.reshape(-1)
        w = w.reshape(-1, 1)
        out = []
        for table in (self.x_inf, self.tau):
            lo = table.index_select(0, flat)
            hi = table.index_select(0, flat + 1)
            out.append((lo + (hi - lo) * w).reshape(*k.shape, 3))
        return tuple(out)

    def inf_tau(self, V):
        return self.lookup(*self.weights(torch.as_tensor(V, dtype=self.x_inf.dtype)))

    def inf_rate(self, V):
        """``(x_inf, 1/tau)`` at ``V`` (1-D), from one table ``[n_grid, 6]``: the fewest
        torch operations, for right-hand sides called thousands of times per loss (the
        neural-ODE stage). ``1/tau`` is interpolated linearly, not ``tau``: on the 0.05 mV
        grid the two differ by O(step²)."""
        if self._packed is None:
            self._packed = torch.cat([self.x_inf, 1.0 / self.tau], 1)
        k, w = self.weights(V)
        lo = self._packed.index_select(0, k)
        val = lo + (self._packed.index_select(0, k + 1) - lo) * w[:, None]
        return val[:, :3], val[:, 3:]

    def rates(self, V):
        x_inf, tau = self.inf_tau(V)
        return x_inf / tau, (1.0 - x_inf) / tau


class StackedKinetics(TabulatedKinetics):
    """Several :class:`TabulatedKinetics` on the same grid, one per block of ``rows``
    consecutive cells: cell ``i`` of a batch of ``len(tables) * rows`` uses table
    ``i // rows``. Simulating K models this way is one batched run, which costs what one
    model's run costs (a fixed-step simulation's cost is its number of steps)."""

    def __init__(self, tables: list[TabulatedKinetics], rows: int):
        first = tables[0]
        if any((t.vmin, t.step, t.n) != (first.vmin, first.step, first.n) for t in tables):
            raise ValueError("StackedKinetics needs tables on the same voltage grid")
        super().__init__(first.vmin, first.step, torch.cat([t.x_inf for t in tables]),
                         torch.cat([t.tau for t in tables]))
        self.n = first.n  # the grid of one table; the offsets select the table
        self._offset = torch.arange(len(tables)).repeat_interleave(rows) * first.n

    def weights(self, V):
        k, w = super().weights(V)
        return k + self._offset.reshape((-1,) + (1,) * (k.dim() - 1)), w
