"""The benchmark's loops, each as a multiple of a bare teacher-forced pass over the same images in the same
run: the yardstick's evaluation of one edit condition (extraction on T and C, samples, every quality measure),
UnitMem's full pass (augmentations, tokenizer, hooked passes, scores), and one localization by each localizer
of the yardstick. The bare pass is `teacher_forced_logits` over the run's training images (tokenized once,
batches of 64). On the default-size setting (benchmarks/iar_setting.py: untrained tokenizer and model,
throughput does not depend on the weights). CPU seconds of this process (fastest of --repeats for the bare
pass and the yardstick; one run for each localizer); the load averages are recorded. Writes
benchmarks/results/loops.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loops.py [--archs next-scale,raster] [--n-samples 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from iar_setting import default_setting
from machine import fastest_cpu_seconds as _cpu, load_average, machine

from memlab.iar.batching import tokenize_all
from memlab.iar.config import YARDSTICK_LOCALIZERS, LocalizerConfig
from memlab.iar.interventions import ScaleUnits
from memlab.iar.localizers import localize
from memlab.iar.yardstick import score_edit
from memlab.io import write_json

OUT = Path(__file__).resolve().parent / "results" / "loops.json"


def bench_arch(arch: str, n_samples: int, repeats: int) -> dict:
    model, data, sets, base = default_setting(arch, n_samples)
    images = data.train_images
    with torch.no_grad():
        tokens = tokenize_all(model, images)
    labels = data.train_labels

    def bare():
        with torch.no_grad():
            for s in range(0, len(tokens), 64):
                model.teacher_forced_logits(tokens[s:s + 64], labels[s:s + 64])

    bare()
    t_bare = _cpu(bare, repeats)
    rng = np.random.default_rng(1)
    edit = ScaleUnits({name: rng.choice(spec.weight.shape[0], max(1, spec.weight.shape[0] // 10), replace=False)
                       for name, spec in model.units().items()}, 0.0)
    t_yard = _cpu(lambda: score_edit(model, edit, base), repeats)
    rows = {"bare_teacher_forced_pass_s": t_bare, "images": len(images), "seq_len": model.seq_len,
            "yardstick_one_condition_s": t_yard, "yardstick_one_condition_over_bare": t_yard / t_bare,
            "localizers": {}}
    for name in YARDSTICK_LOCALIZERS:
        t = _cpu(lambda: localize(name, model, data, sets, LocalizerConfig()))
        rows["localizers"][name] = {"seconds": t, "over_bare": t / t_bare}
        print(f"{arch:>10} {name:>22}: {t:6.2f} s = {t / t_bare:6.1f} bare passes", flush=True)
    rows["unitmem_full_pass_s"] = rows["localizers"]["unitmem"]["seconds"]
    rows["unitmem_full_pass_over_bare"] = rows["localizers"]["unitmem"]["over_bare"]
    print(f"{arch:>10} bare pass {t_bare:.3f} s ({len(images)} images); one yardstick condition {t_yard:.2f} s = "
          f"{t_yard / t_bare:.1f} bare passes", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="next-scale,raster")
    p.add_argument("--n-samples", type=int, default=256, help="samples per yardstick condition")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    results = {a: bench_arch(a, args.n_samples, args.repeats) for a in args.archs.split(",")}
    write_json(args.out, {"timing": "CPU seconds of this process", "n_samples": args.n_samples,
                          "results": results, "machine": {**machine("torch"), "load_average_before": load_before}})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
