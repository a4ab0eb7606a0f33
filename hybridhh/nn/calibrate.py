"""Put ODE units in place of a trained network's activation, without retraining.

Under a constant drive each unit is a one-dimensional function ``F(drive)`` (its f–I curve,
:meth:`~hybridhh.nn.layers.ODELayer.response_curve`). :func:`calibrate` finds the input gain
and bias and the output scale and offset that make ``scale * F(gain * z + bias) + offset``
closest (least squares) to the activation ``act(z)`` over the range of ``z`` the network
actually feeds it, sets them, and swaps the activation for the ODE layer.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.optimize
import torch
from torch import nn

from ..errors import ConfigError
from .layers import ODELayer

__all__ = ["Calibrated", "calibrate"]


class Calibrated(nn.Module):
    """``scale * layer(x) + offset``: an ODE layer with an affine output map."""

    def __init__(self, layer: ODELayer, scale: float, offset: float):
        super().__init__()
        self.layer = layer
        dtype = layer.gain.dtype
        self.scale = nn.Parameter(torch.tensor(float(scale), dtype=dtype))
        self.offset = nn.Parameter(torch.tensor(float(offset), dtype=dtype))

    def forward(self, x):
        return self.scale * self.layer(x) + self.offset


def _fit(F_drive, F, z, target):
    """Least squares over the drive interval ``[d0, d1]`` that ``[z.min, z.max]`` maps to;
    scale and offset solved linearly at each candidate. Returns (d0, d1, scale, offset)."""
    zlo, zhi = float(z.min()), float(z.max())
    u = (z - zlo) / (zhi - zlo)
    A1 = np.ones_like(u)

    def solve(d):
        pred = np.interp(d[0] + u * (d[1] - d[0]), F_drive, F)
        A = np.stack([pred, A1], 1)
        coef, *_ = np.linalg.lstsq(A, target, rcond=None)
        return coef, float(np.mean((A @ coef - target) ** 2))

    lo, hi = float(F_drive[0]), float(F_drive[-1])
    cand = np.linspace(lo, hi, 41)
    best = None
    for d0 in cand:
        for d1 in cand:
            if d0 == d1:
                continue
            _, err = solve((d0, d1))
            if best is None or err < best[1]:
                best = ((d0, d1), err)

    def objective(d):
        d = np.clip(d, lo, hi)
        return solve(d)[1]

    res = scipy.optimize.minimize(objective, np.array(best[0]), method="Nelder-Mead",
                                  options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 2000})
    d = np.clip(res.x, lo, hi) if res.fun < best[1] else np.array(best[0])
    coef, _ = solve(d)
    return float(d[0]), float(d[1]), float(coef[0]), float(coef[1]), zlo, zhi


def calibrate(model: nn.Module, name: str, layer: ODELayer, inputs: torch.Tensor, *,
              drive_range: tuple[float, float] | None = None, points: int = 201,
              table_points: int = 801, check_points: int = 101):
    """A copy of ``model`` whose activation ``name`` is replaced by calibrated ODE units.

    Parameters
    ----------
    model
        A trained network (left unchanged).
    name
        The activation submodule's name in ``model`` (``model.get_submodule(name)``, e.g.
        ``"1"`` in an ``nn.Sequential``). It must map each element independently (sigmoid,
        tanh, ...) and its input's last dimension must be ``layer.n_units``.
    layer
        An :class:`~hybridhh.nn.FHNLayer` or :class:`~hybridhh.nn.HHLayer`; its gain and bias
        are overwritten (the same for all units).
    inputs
        Model inputs whose pass records the range of ``z`` that the activation sees.
    drive_range
        The drives (before any gain) over which the unit's f–I curve is tabulated and the
        fit may place the input range; default ``layer.drive_range``.
    points
        Fit points: this many quantiles of the observed ``z`` plus as many evenly spaced.
    table_points
        Drives at which the f–I curve is simulated (linear interpolation between them).
    check_points
        Evenly spaced ``z`` at which the finished layer itself is run to measure the error.

    Returns
    -------
    (model, info)
        The new model, and a dict: ``gain``, ``bias``, ``scale``, ``offset``, ``z_range``,
        and the error of ``scale * layer(z) + offset`` against ``act(z)`` on the evenly
        spaced check points: ``rms``, ``max`` (in the activation's output units).
    """
    if not isinstance(layer, ODELayer):
        raise ConfigError(f"layer must be an FHNLayer or HHLayer, got {type(layer).__name__}")
    try:
        act = model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise ConfigError(f"model has no submodule {name!r}; its submodules are "
                          f"{names}") from None
    drive_range = drive_range or layer.drive_range
    for arg, v, low in (("points", points, 2), ("table_points", table_points, 2),
                        ("check_points", check_points, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{arg} must be an integer >= {low}, got {v!r}")
    if len(drive_range) != 2 or not drive_range[0] < drive_range[1]:
        raise ConfigError(f"drive_range must be (low, high) with low < high, got {drive_range}")
    seen = []
    handle = act.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        handle.remove()
    if not seen:
        raise ConfigError(f"model({tuple(inputs.shape)} inputs) never called {name!r}")
    z_all = torch.cat([s.reshape(-1, s.shape[-1]) for s in seen])
    if z_all.shape[-1] != layer.n_units:
        raise ConfigError(f"{name!r} sees {z_all.shape[-1]} features but layer.n_units = "
                          f"{layer.n_units}; build the layer with n_units={z_all.shape[-1]}")
    z_flat = z_all.reshape(-1).double().numpy()
    if not np.isfinite(z_flat).all() or z_flat.min() == z_flat.max():
        raise ConfigError(f"the inputs of {name!r} are constant or not finite: nothing to fit")
    zq = np.quantile(z_flat, np.linspace(0.0, 1.0, points))
    z_fit = np.concatenate([zq, np.linspace(z_flat.min(), z_flat.max(), points)])
    with torch.no_grad():
        target = act(torch.as_tensor(z_fit, dtype=z_all.dtype)).double().numpy()
    drive = np.linspace(drive_range[0], drive_range[1], table_points)
    F = layer.response_curve(torch.as_tensor(drive)).double().numpy()
    d0, d1, scale, offset, zlo, zhi = _fit(drive, F, z_fit, target)
    gain = (d1 - d0) / (zhi - zlo)
    bias = d0 - gain * zlo
    layer = copy.deepcopy(layer)
    with torch.no_grad():
        layer.gain.fill_(gain)
        layer.bias.fill_(bias)
    new_act = Calibrated(layer, scale, offset)
    # the error of the layer itself (not the table) on evenly spaced z
    z_chk = torch.linspace(zlo, zhi, check_points, dtype=layer.gain.dtype)
    with torch.no_grad():
        out = new_act(z_chk[:, None].expand(-1, layer.n_units).contiguous())
        err = (out - act(z_chk.to(z_all.dtype)).to(out.dtype)[:, None]).abs()
    info = {"gain": gain, "bias": bias, "scale": scale, "offset": offset,
            "z_range": [zlo, zhi], "drive_range": [d0, d1],
            "rms": float(err.pow(2).mean().sqrt()), "max": float(err.max())}
    new = copy.deepcopy(model)
    parent_name, _, leaf = name.rpartition(".")
    parent = new.get_submodule(parent_name) if parent_name else new
    setattr(parent, leaf, new_act)
    return new, info
