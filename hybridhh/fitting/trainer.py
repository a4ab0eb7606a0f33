"""The training loop shared by every phase: steps, checkpoints, NaN rollback, progress.

A fit is a list of :class:`Phase` objects run in order. Each step of a phase is one
optimiser step on its loss. The loop

- keeps an in-memory copy of the last good state (model + optimiser); a non-finite loss
  or parameter rolls back to it and halves the phase's step size, never touching the
  best model saved so far;
- writes ``checkpoint_last.pt`` (atomically) every ``checkpoint_every`` steps and at each
  phase end, and ``checkpoint_best.pt`` (the model after the last completed phase:
  losses of different phases are not comparable, and a phase never ends on a
  non-finite state);
- resumes exactly from ``checkpoint_last.pt``: same phase, step, optimiser state, RNG;
- appends to ``metrics.jsonl`` and drives a tqdm progress bar (silenced by ``quiet``).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from . import rundir

__all__ = ["OPTIMIZERS", "Phase", "Trainer", "make_optimizer", "progress_lines"]


@dataclass
class Phase:
    """One optimisation phase.

    Attributes
    ----------
    name
        Shown in the progress bar and in ``metrics.jsonl``.
    params
        Callable returning the parameters to optimise (evaluated when the phase starts).
    loss
        Callable ``loss(step) -> Tensor`` (the step lets stochastic losses seed themselves).
    steps
        Number of optimiser steps.
    optimizer
        ``"adam"``, ``"lbfgs"`` or ``"select"``: then ``loss(step)`` returns
        ``(loss value, model state)`` of one candidate, and the phase keeps the candidate
        with the lowest loss (a multi-start).
    lr
        Step size (Adam learning rate; L-BFGS initial step).
    options
        Extra optimiser keyword arguments.
    """

    name: str
    params: Callable
    loss: Callable
    steps: int
    optimizer: str = "adam"
    lr: float = 1e-3
    options: dict = field(default_factory=dict)


def progress_lines(quiet: bool) -> bool:
    """Progress as one line per phase instead of a bar: where stderr is not a terminal
    (logs, CI) and not ``quiet``."""
    return not quiet and not sys.stderr.isatty()


#: the optimisers :func:`make_optimizer` makes (a phase may also be ``"select"``)
OPTIMIZERS = ("adam", "lbfgs")


def make_optimizer(kind: str, params, lr: float, options: dict | None = None):
    """Adam, or L-BFGS with a strong-Wolfe line search and no early stop on tolerances."""
    options = dict(options or {})
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, **options)
    if kind == "lbfgs":
        opts = {"max_iter": 10, "history_size": 50, "line_search_fn": "strong_wolfe",
                "tolerance_grad": 0.0, "tolerance_change": 0.0}
        opts.update({k: v for k, v in options.items() if k != "restart_every"})
        return torch.optim.LBFGS(params, lr=lr, **opts)
    raise ConfigError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")


def _make_optimizer(phase: Phase, params, lr):
    return make_optimizer(phase.optimizer, params, lr, phase.options)


class Trainer:
    """Runs phases on a model with checkpoints in ``run_dir`` (None: in memory only)."""

    def __init__(self, model: torch.nn.Module, phases: list[Phase], run_dir=None,
                 checkpoint_every: int = 20, quiet: bool = False,
                 monitor: Callable | None = None, monitor_every: int = 10,
                 context: dict | None = None):
        self.model = model
        #: tensors phases share with later phases (e.g. a denoised V); saved in checkpoints
        self.context = context if context is not None else {}
        self.phases = phases
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.quiet = quiet
        self._lines = progress_lines(quiet)
        self.monitor = monitor
        self.monitor_every = monitor_every
        self.phase_index = 0
        self.step = 0
        self.lr_scale = 1.0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.best_loss = math.inf
        self.rollbacks = 0
        self._opt = None
        self._opt_state = None
        #: consecutive non-finite steps after which a phase ends early
        self.max_failures = 6
        #: model state at the end of each phase, by phase name
        self.snapshots: dict[str, dict] = {}

    # -- checkpoints ---------------------------------------------------------------
    def state(self) -> dict:
        return {
            "phase_index": self.phase_index,
            "step": self.step,
            "lr_scale": self.lr_scale,
            "elapsed": self.elapsed,
            "best_loss": self.best_loss,
            "rollbacks": self.rollbacks,
            "model": self.model.state_dict(),
            "snapshots": self.snapshots,
            "context": self.context,
            "optimizer": self._opt.state_dict() if self._opt is not None else {},
            "rng": torch.get_rng_state(),
        }

    def load_state(self, st: dict) -> None:
        self.phase_index = int(st["phase_index"])
        self.step = int(st["step"])
        self.lr_scale = float(st["lr_scale"])
        self.elapsed = float(st["elapsed"])
        self.best_loss = float(st["best_loss"])
        self.rollbacks = int(st["rollbacks"])
        self.model.load_state_dict(st["model"])
        self.snapshots = dict(st["snapshots"])
        self.context.clear()
        self.context.update(st.get("context", {}))
        self._opt_state = st["optimizer"] or None
        torch.set_rng_state(st["rng"])

    def _save_last(self):
        if self.run_dir is not None:
            rundir.save_torch(self.run_dir / rundir.LAST, self.state())

    # -- progress ------------------------------------------------------------------
    def _bar(self, phase: Phase):
        """A tqdm bar on a terminal; elsewhere (logs, CI) no bar but one line per phase."""
        return tqdm(total=phase.steps, initial=self.step, desc=phase.name,
                    disable=self.quiet or self._lines, leave=False, dynamic_ncols=True)

    def _record(self, rec: dict) -> None:
        """One step's record: into the history and ``metrics.jsonl``."""
        self.history.append(rec)
        if self.run_dir is not None:
            rundir.append_metrics(self.run_dir, rec)

    def _phase_line(self, phase: Phase) -> None:
        if self._lines:
            losses = [h["loss"] for h in self.history
                      if h["phase"] == phase.name and h.get("loss") is not None]
            loss = f"{losses[-1]:.3e}" if losses else "n/a"
            print(f"{phase.name}: {self.step}/{phase.steps} steps, loss {loss}, "
                  f"{self.elapsed:.1f} s", file=sys.stderr, flush=True)

    # -- the loop ------------------------------------------------------------------
    def run(self) -> list[dict]:
        t_start = time.perf_counter() - self.elapsed
        for pi in range(self.phase_index, len(self.phases)):
            phase = self.phases[pi]
            if pi != self.phase_index:
                self.phase_index, self.step, self.lr_scale = pi, 0, 1.0
                self._opt_state = None
            self._run_phase(phase, t_start)
            self.elapsed = time.perf_counter() - t_start
            self._phase_line(phase)
            self.snapshots[phase.name] = copy.deepcopy(self.model.state_dict())
            self._opt, self._opt_state = None, None
            if self.run_dir is not None:
                rundir.save_torch(self.run_dir / rundir.BEST, {
                    "phase": phase.name, "model": self.model.state_dict()})
        self.phase_index = len(self.phases)
        self.elapsed = time.perf_counter() - t_start
        return self.history

    def _run_select(self, phase: Phase, t_start: float):
        if self.step == 0:
            self.best_loss = math.inf
        bar = self._bar(phase)
        while self.step < phase.steps:
            value, state = phase.loss(self.step)
            if math.isfinite(value) and value < self.best_loss:
                self.best_loss = value
                self.model.load_state_dict(state)
            self.step += 1
            self.elapsed = time.perf_counter() - t_start
            rec = {"phase": phase.name, "step": self.step, "loss": value,
                   "best": self.best_loss, "elapsed": round(self.elapsed, 3)}
            if self.monitor is not None:
                rec.update(self.monitor(self.model))
            self._record(rec)
            bar.set_postfix(loss=f"{value:.3e}", best=f"{self.best_loss:.3e}")
            bar.update(1)
            self._save_last()
            enough = phase.options.get("enough")
            if enough is not None and enough(self.best_loss, self.step):
                break  # the phase's own stopping rule (e.g. a good enough candidate)
        bar.close()
        if not math.isfinite(self.best_loss):
            raise FloatingPointError(f"{phase.name}: no candidate gave a finite loss")

    def _run_phase(self, phase: Phase, t_start: float):
        if phase.optimizer == "select":
            return self._run_select(phase, t_start)
        model = self.model
        params = list(phase.params())
        opt = _make_optimizer(phase, params, phase.lr * self.lr_scale)
        if self._opt_state:
            opt.load_state_dict(self._opt_state)
        self._opt = opt
        good = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
        failures = 0  # consecutive non-finite steps
        bar = self._bar(phase)
        last_loss = math.nan
        while self.step < phase.steps:
            k = self.step

            def closure(opt=opt, k=k):
                opt.zero_grad()
                loss = phase.loss(k)
                if torch.isfinite(loss):
                    loss.backward()
                return loss

            try:
                loss = opt.step(closure)
                loss_value = float(loss.detach())
            except (RuntimeError, ValueError):  # e.g. NaN inside a line search
                loss_value = math.nan
            finite = math.isfinite(loss_value) and all(
                torch.isfinite(p).all() for p in params)
            if not finite:
                # roll back to the last good state, halve the step size, retry this step
                model.load_state_dict(good[0])
                self.lr_scale *= 0.5
                self.rollbacks += 1
                failures += 1
                opt = _make_optimizer(phase, params, phase.lr * self.lr_scale)
                self._opt = opt
                if failures >= self.max_failures:
                    # the good state itself gives no finite loss here (e.g. a model whose
                    # free run diverges): end the phase, keeping that state
                    rec = {"phase": phase.name, "step": self.step, "loss": None,
                           "skipped": f"{failures} consecutive non-finite steps",
                           "elapsed": round(time.perf_counter() - t_start, 3)}
                    self._record(rec)
                    if not self.quiet:
                        tqdm.write(f"warning: {phase.name}: {failures} consecutive "
                                   "non-finite steps; phase ended early, model kept")
                    self.step = phase.steps
                    break
                continue
            failures = 0
            last_loss = loss_value
            self.step += 1
            restart = phase.options.get("restart_every") if phase.optimizer == "lbfgs" else None
            if restart and self.step % restart == 0:  # fresh curvature history
                opt = _make_optimizer(phase, params, phase.lr * self.lr_scale)
                self._opt = opt
            good = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
            self.elapsed = time.perf_counter() - t_start
            rec = {"phase": phase.name, "step": self.step, "loss": loss_value,
                   "elapsed": round(self.elapsed, 3)}
            if self.monitor is not None and (self.step % self.monitor_every == 0
                                             or self.step == phase.steps):
                rec.update(self.monitor(model))
            self._record(rec)
            bar.set_postfix(loss=f"{loss_value:.3e}", t=f"{self.elapsed:.0f}s")
            bar.update(1)
            if self.step % self.checkpoint_every == 0:
                self._save_last()
        bar.close()
        self._save_last()
        return last_loss
