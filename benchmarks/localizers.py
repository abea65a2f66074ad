"""Time per localizer and the share spent in evaluation (issue 13 item 5): on a default-size run (untrained
tokenizer and model: throughput does not depend on the weights; 64 shapes, 8 planted 4 times, targets = the
duplicates), each method's whole-set localization, then its yardstick conditions (k = 1, 5, 10, 20%, factors 0.5
and 0: 8 conditions, 256 samples) stacked (memlab.iar.yardstick.score_edits). CPU seconds of this process.
Writes benchmarks/results/localizers.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/localizers.py [--archs next-scale,raster] [--n-samples 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from iar_setting import default_setting

from memlab.iar.ablate import select_units
from memlab.iar.config import YARDSTICK_LOCALIZERS, LocalizerConfig
from memlab.iar.interventions import ScaleUnits
from memlab.iar.localizers import localize
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
        edits = [ScaleUnits(select_units(units, k, "top"), f) for f in (0.5, 0.0) for k in (1, 5, 10, 20)]
        t0 = time.process_time()
        score_edits(model, edits, base)
        t_eval = time.process_time() - t0
        rows.append({"arch": arch, "method": name, "localize_s": t_loc, "evaluate_8_conditions_s": t_eval,
                     "evaluation_share": t_eval / (t_loc + t_eval)})
        print(f"{arch:>10} {name:>22}: localize {t_loc:6.1f} s, 8 conditions {t_eval:6.1f} s "
              f"({100 * t_eval / (t_loc + t_eval):.0f}% evaluation)")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="next-scale,raster")
    p.add_argument("--n-samples", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from machine import load_average, machine

    load_before = load_average()
    rows = [r for a in args.archs.split(",") for r in bench_arch(a, args.n_samples)]
    write_json(args.out, {"threads": args.threads, "n_samples": args.n_samples, "torch": torch.__version__,
                          "timing": "CPU seconds of this process", "results": rows,
                          "machine": {**machine("torch"), "load_average_before": load_before}})


if __name__ == "__main__":
    main()
