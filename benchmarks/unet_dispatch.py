"""The U-Net's training steps dispatched one at a time from Python (what memlab does on CPU,
`Denoiser.loop_on_cpu`) against the same steps inside one compiled scan: XLA's CPU backend runs the
convolutions' gradients several times slower inside a compiled loop. Steps per CPU second of this process
(one thread; the fastest of --repeats rounds), for a few U-Net sizes on 6x6 templates. Sampling (forward
passes only) was measured the same way and gained nothing (0.9-1.0x), so the sampler keeps its scan.
Writes benchmarks/results/unet_dispatch.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unet_dispatch.py [--steps 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "unet_dispatch.json"


def bench(size: int, n_train: int, draws: int, steps: int, repeats: int) -> dict:
    import jax

    import synthetic
    from machine import fastest_cpu_seconds
    from memlab.diffusion.model_config import ModelConfig
    from memlab.diffusion.models import build, init_params, param_count
    from memlab.diffusion.process import default_grid
    from memlab.diffusion.rng import TAG_TRAIN, key_data, seed_key
    from memlab.diffusion.train import Trainer, stack
    from memlab.diffusion.train_config import OptimConfig

    ds = synthetic.make_templates(components=4, n_train=n_train, n_test=8, height=6, width=6, seed=0)
    den = build(ModelConfig(family="unet", size=size, depth=1), ds)
    out = {"size": size, "n_train": n_train, "draws": draws, "rows_per_step": n_train * draws}
    for name, d in (("dispatched", den), ("compiled_scan", dataclasses.replace(den, loop_on_cpu=False))):
        trainer = Trainer(d, OptimConfig(steps=steps, draws=draws, lr=3e-3, final_lr=3e-3), ds.train_NxD, default_grid(), 1, steps)
        params = init_params(d, "random", ds, 0)
        state = stack([trainer.init_state(params, key_data(seed_key(0, TAG_TRAIN)))])
        run = lambda: jax.block_until_ready(trainer.advance(state, steps))
        out[f"{name}_train_steps_per_cpu_s"] = steps / fastest_cpu_seconds(run, repeats, warmup=True)
    out["params"] = param_count(params)
    out["train_speedup"] = out["dispatched_train_steps_per_cpu_s"] / out["compiled_scan_train_steps_per_cpu_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from machine import load_average, machine

    from memlab.io import write_json

    before = load_average()
    results = [bench(size, n, 4, args.steps, args.repeats) for size, n in ((4, 8), (16, 8), (16, 32))]
    for r in results:
        print(f"size {r['size']:3d} N {r['n_train']:3d}: training {r['train_speedup']:.1f}x")
    write_json(args.out, {"steps": args.steps, "repeats": args.repeats, "machine": machine("jax"),
                          "load_average_before": before, "load_average_after": load_average(), "results": results})


if __name__ == "__main__":
    main()
