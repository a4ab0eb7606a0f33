"""Passive properties of the real sample cells (``../shared/realdata``) by ``hybridhh.analysis
.passive``, against the figures their README states.

Each ABF file is imported as it is (``hybridhh.importing.import_recording``: current in pA,
all sweeps) and analysed from all its hyperpolarising steps; ``171116sh_0018`` also from its
-100 pA steps alone (the README's figures come from its -100 pA epoch). Prints a table and
writes ``benchmarks/results/passive.json``. Takes a few seconds.

    python benchmarks/passive.py [--data DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hybridhh.analysis.passive import passive_analysis
from hybridhh.importing import import_recording

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("HYBRIDHH_REALDATA", HERE.parent.parent / "shared" /
                                   "realdata")) / "abf"

#: (file, amplitudes or None, the README's figures: name -> (low, high))
CASES = [
    ("171116sh_0018.abf", [-100.0], {"R_in": (107, 111), "tau_m": (32, 34),
                                     "C_total": (285, 316), "sag": (3.2, 3.5),
                                     "E_L": (-62.9, -61.5)}),
    ("171116sh_0018.abf", None, {}),
    ("File_axon_5.abf", None, {"R_in": (155, 155), "tau_m": (54, 77), "C_total": (340, 500),
                               "sag": (1.6, 1.6), "E_L": (-73.3, -70.5)}),
    ("2019_07_24_0055_fsi.abf", None, {"C_total": (21, 21)}),
]
KEYS = ("R_in", "tau_m", "C_total", "sag", "E_L", "g_L")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the ABF files")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "passive.json")
    args = ap.parse_args(argv)

    rows = []
    for name, amps, readme in CASES:
        path = args.data / name
        if not path.is_file():
            print(f"skip {name}: not in {args.data}", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        p = passive_analysis(import_recording(path), amplitudes=amps)
        d = p.as_dict()
        rows.append({"file": name, "amplitudes": amps, "n_steps": d["n_steps"],
                     **{k: d[k] for k in KEYS},
                     "ranges": {k: d[f"{k}_range"] for k in ("R_in", "tau_m", "sag")},
                     "readme": {k: list(v) for k, v in readme.items()},
                     "units": {k: d["units"][k] for k in KEYS},
                     "seconds": round(time.perf_counter() - t0, 2)})
    head = f"{'file':<24} {'steps':>9} {'n':>3} " + " ".join(f"{k:>8}" for k in KEYS)
    print(head)
    for r in rows:
        which = "all" if r["amplitudes"] is None else ",".join(f"{a:g}" for a in r["amplitudes"])
        print(f"{r['file']:<24} {which:>9} {r['n_steps']:>3} "
              + " ".join(f"{r[k]:>8.4g}" for k in KEYS))
        if r["readme"]:
            print(f"{'  README':<38} " + " ".join(
                f"{'-'.join(f'{x:g}' for x in dict.fromkeys(r['readme'][k])):>8}"
                if k in r["readme"] else f"{'':>8}" for k in KEYS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "passive",
                                    "data": os.path.relpath(args.data, HERE.parent),
                                    "cases": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
