"""Stage 0: the generic prior, refined on the data before the MLP is trained on top of it.

The prior (:class:`~hybridhh.learned.GatePrior`) knows only which gates activate and
which inactivate, placed relative to the resting potential; the user may move it. Its 9
numbers (half-activation voltage, slope, peak time constant of each gate) are fitted to
the teacher-forcing loss first, from the given prior and from ``starts - 1`` seeded
perturbations of it; the best fit becomes the MLP's starting point. With 9 unknowns this
is cheap and its basins are few, so priors placed far apart end at the same two-state
fit, and the fit that follows no longer depends on how close the prior was (measured in
docs/method.md).

Stage 0 contributes no optimisation phase: :func:`fitted_prior` runs before the trainer,
and :func:`hybridhh.fitting.model.build_model` puts the MLP on its result, the model
every later stage trains.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..learned import GatePrior, PriorKinetics
from .data import TraceData
from .model import generic_prior
from .teacher import TeacherForcing
from .trainer import progress_lines

if TYPE_CHECKING:
    from .config import FitConfig

__all__ = ["refine_prior", "fitted_prior"]


def _perturbed(prior: GatePrior, gen: torch.Generator, spread) -> GatePrior:
    dv, dslope, dtau = spread
    e = torch.randn(3, 3, generator=gen, dtype=torch.float64).tolist()
    return GatePrior(
        V_half=tuple(v + dv * x for v, x in zip(prior.V_half, e[0], strict=True)),
        slope=tuple(s * math.exp(dslope * x) for s, x in zip(prior.slope, e[1], strict=True)),
        tau_max=tuple(t * math.exp(dtau * x) for t, x in zip(prior.tau_max, e[2], strict=True)),
    )


def _fit_one(tf: TeacherForcing, prior: GatePrior, iterations: int, robust):
    pk = PriorKinetics(prior)
    opt = torch.optim.LBFGS(pk.parameters(), lr=1.0, max_iter=iterations, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = tf.loss(pk, robust)
        if torch.isfinite(loss):
            loss.backward()
        return loss

    try:
        opt.step(closure)
    except (IndexError, RuntimeError):
        # a non-finite loss inside torch's strong-Wolfe line search: a failed start
        return math.inf, prior
    with torch.no_grad():
        value = float(tf.loss(pk, robust))
    ok = math.isfinite(value) and all(torch.isfinite(p).all() for p in pk.parameters())
    return (value if ok else math.inf), pk.to_prior()


def refine_prior(tf: TeacherForcing, prior: GatePrior, starts: int, iterations: int,
                 seed: int = 0, robust: float | None = 1.0,
                 spread=(15.0, 0.5, 1.0), tau_floor: float = 0.0,
                 callback=None) -> tuple[GatePrior, float]:
    """Fit the two-state prior's 9 numbers to the teacher-forcing loss ``tf``.

    Parameters
    ----------
    tf
        The teacher-forcing loss (coarse steps are enough: this only finds the basin).
    prior
        Where to start; the other ``starts - 1`` starts are seeded perturbations of it:
        V_half by ``spread[0]`` mV (SD), slope and tau_max by factors ``exp(spread[1] z)``
        and ``exp(spread[2] z)``.
    iterations
        L-BFGS iterations per start.
    robust
        Cauchy scale (see :meth:`TeacherForcing.loss`) of a last L-BFGS run from the best
        start. The starts themselves use the plain squared loss: under the Cauchy loss
        most starts end in a basin that gives up on the spikes (Na current off; 10 of 12
        starts for fit seed 2 on the default set), under the squared loss 5-7 of 12 find
        the basin with spikes.
    tau_floor
        Lower bound on the refined peak taus (ms): the squared loss on coarse steps lets a
        fast gate's tau collapse towards 0 (m's did), which the steps cannot resolve anyway.
    callback
        ``callback(start, loss)`` after each start.

    Returns
    -------
    The best refined prior and its loss (the given prior itself if no start gave a
    finite loss).
    """
    gen = torch.Generator().manual_seed(seed)
    best, best_value = prior, math.inf
    for k in range(starts):
        start = prior if k == 0 else _perturbed(prior, gen, spread)
        value, refined = _fit_one(tf, start, iterations, None)
        if callback is not None:
            callback(k, value)
        if value < best_value:
            best, best_value = refined, value
    if robust is not None and math.isfinite(best_value):
        value, refined = _fit_one(tf, best, iterations, robust)
        if math.isfinite(value):
            best, best_value = refined, value
    if tau_floor:
        best = dataclasses.replace(best, tau_max=tuple(max(t, tau_floor) for t in best.tau_max))
    return best, best_value


def fitted_prior(data: TraceData, config: FitConfig, quiet: bool = True, cell=None
                 ) -> GatePrior:
    """Stage 0: the generic prior refined on the data (:func:`refine_prior`), or the
    generic prior itself when ``config.prior.refine_starts`` is 0. ``cell``: the fit's
    :class:`~hybridhh.fitting.cellfit.CellEstimate`, solved for with the prior."""
    prior, p = generic_prior(data, config), config.prior
    if not p.refine_starts:
        return prior
    stride = data.stride(p.refine_dt)
    tf = TeacherForcing(data, window=config.teacher.window, stride=stride, cell=cell)
    t0, lines = time.perf_counter(), progress_lines(quiet)
    with tqdm(total=p.refine_starts, desc="prior", disable=quiet or lines, leave=False) as bar:
        def tick(k, value):
            bar.set_postfix(loss=f"{value:.3g}")
            bar.update()
        refined, value = refine_prior(tf, prior, p.refine_starts, p.refine_iter,
                                      seed=config.seed, robust=config.teacher.robust,
                                      tau_floor=0.5 * stride * data.dt, callback=tick)
    if lines:
        print(f"prior: {p.refine_starts} starts, loss {value:.3e}, "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return refined

