"""Time per localizer and the share spent in evaluation (issue 13 item 5): on a default-size run (untrained
tokenizer and model: throughput does not depend on the weights; 64 shapes, 8 planted 4 times, targets = the
duplicates), each method's whole-set localization (and its per-scale table, next-scale), then its yardstick
conditions (k = 1, 5, 10, 20%, factors 0.5 and 0: 8 conditions, 256 samples) stacked
(memlab.iar.yardstick.score_edits). With --run RUN (a trained default-size run, `memlab iar train` defaults),
also the whole benchmark on a fresh copy of it: `memlab iar localizers COPY` (every method, DEL with its random
cloud, where.csv), then INJ with the default 3 seeds and 2 fractions (memlab.iar.inject_recall.run_inj).
CPU seconds of this process (and wall seconds, with the load averages: the machine is shared).
Writes benchmarks/results/localizers.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/localizers.py --threads 1 [--archs next-scale,raster] \
        [--n-samples 256] [--run RUN]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from iar_setting import default_setting
from machine import load_average

from memlab.iar.ablate import select_units
from memlab.iar.config import YARDSTICK_LOCALIZERS, LocalizerConfig
from memlab.iar.interventions import ScaleUnits
from memlab.iar.localizers import localize
from memlab.iar.localizers.scales import localize_scales
from memlab.iar.yardstick import score_edits
from memlab.io import write_json

OUT = Path(__file__).resolve().parent / "results" / "localizers.json"


def bench_arch(arch: str, n_samples: int) -> list[dict]:
    model, data, sets, base = default_setting(arch, n_samples)
    rows = []
    for name in YARDSTICK_LOCALIZERS:
        t0 = time.process_time()
        units = localize(name, model, data, sets, LocalizerConfig())
        t_loc = time.process_time() - t0
        t0 = time.process_time()
        localize_scales(name, model, data, sets, LocalizerConfig())
        t_scales = time.process_time() - t0
        edits = [ScaleUnits(select_units(units, k, "top"), f) for f in (0.5, 0.0) for k in (1, 5, 10, 20)]
        t0 = time.process_time()
        score_edits(model, edits, base)
        t_eval = time.process_time() - t0
        rows.append({"arch": arch, "method": name, "localize_s": t_loc, "evaluate_8_conditions_s": t_eval,
                     "evaluation_share": t_eval / (t_loc + t_eval), "per_scale_s": t_scales,
                     "per_scale_over_whole": t_scales / max(t_loc, 1e-9)})
        print(f"{arch:>10} {name:>22}: localize {t_loc:6.1f} s, 8 conditions {t_eval:6.1f} s "
              f"({100 * t_eval / (t_loc + t_eval):.0f}% evaluation)")
    return rows


def bench_run(run: Path, threads: int) -> dict:
    """The whole benchmark (all methods, DEL, INJ with 3 seeds) on a fresh copy of the trained run `run`."""
    import pandas as pd

    from memlab.cli import main as memlab
    from memlab.iar.config import InjectConfig
    from memlab.iar.inject_recall import run_inj
    from memlab.io import read_json

    keep = ("config.json", "metrics.json", "model", "tokenizer", "checkpoints", "classifier", "state")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        copy.mkdir()
        for name in keep:  # the trained run only: no leaderboard, unit table or injected model to reuse
            if (run / name).is_dir():
                shutil.copytree(run / name, copy / name)
            elif (run / name).is_file():
                shutil.copy2(run / name, copy / name)
        parts, load = {}, {"before": load_average()}
        for part, call in (("localize_and_del", lambda: memlab(["iar", "localizers", str(copy)])),
                           ("inj", lambda: run_inj(copy, list(YARDSTICK_LOCALIZERS), InjectConfig()))):
            c0, w0 = time.process_time(), time.perf_counter()
            result = call()
            if part != "inj" and result != 0:
                raise SystemExit(f"memlab iar localizers {copy} exited {result}")
            parts[part] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}
            load[f"after_{part}"] = load_average()
        board = pd.read_csv(copy / "leaderboard" / "leaderboard.csv")
        loc = {m: float(s) for m, s in zip(board["method"], board["seconds"])}
        seeds = pd.read_csv(copy / "inject" / "inj_seeds.csv")  # one row per block: seconds repeat
        inj_loc = seeds.groupby(["seed", "fraction", "method"])["seconds"].first().groupby("method").sum()
        inj = [read_json(p) for p in sorted((copy / "inject").glob("seed-*/metrics.json"))]
        cfg = read_json(copy / "config.json")
    del_cpu = parts["localize_and_del"]["cpu_s"]
    total = sum(p["cpu_s"] for p in parts.values())
    return {"run": str(run), "arch": cfg["train"]["arch"], "n_train": cfg["data"]["n_train"], "threads": threads,
            "parts": parts, "localizer_wall_s": loc, "localizers_wall_s_total": sum(loc.values()),
            "inj_fine_tunes": [{k: m.get(k) for k in ("seed", "fraction", "epochs", "stopped", "n_reproduced",
                                                      "n_images")} for m in inj],
            "inj_localizer_wall_s": inj_loc.to_dict(),
            "inj_fine_tune_wall_s": parts["inj"]["wall_s"] - float(inj_loc.sum()),
            "total_cpu_s": total, "total_cpu_min": total / 60, "del_share_of_cpu": del_cpu / total,
            "load_average": load}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="next-scale,raster")
    p.add_argument("--n-samples", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run", type=Path, default=None, help="a trained default-size run: also the whole benchmark")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from machine import machine

    load_before = load_average()
    rows = [r for a in args.archs.split(",") if a for r in bench_arch(a, args.n_samples)]
    whole = bench_run(args.run.resolve(), args.threads) if args.run else None
    if whole:
        print(f"whole benchmark on {args.run}: {whole['total_cpu_min']:.1f} CPU min "
              f"({100 * whole['del_share_of_cpu']:.0f}% localize + DEL, the rest INJ); load {whole['load_average']}")
    write_json(args.out, {"threads": args.threads, "n_samples": args.n_samples, "torch": torch.__version__,
                          "timing": "CPU seconds of this process", "results": rows, "whole_run": whole,
                          "machine": {**machine("torch"), "load_average_before": load_before}})


if __name__ == "__main__":
    main()
