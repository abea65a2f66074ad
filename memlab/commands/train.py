"""`memlab train`: train a denoiser of any registered family (mixture estimator, MLP, U-Net, DiT) on
synthetic data, sample it, and measure memorization. Argument definitions only here; JAX is imported inside
`run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.config import DATA_SECTION
from memlab.diffusion.train_config import SECTIONS as TRAIN_SECTIONS
from memlab.diffusion.train_config import TrainConfig, sections
from memlab.errors import UsageError
from memlab.options import add_config_flag, add_section, load_config_file, resolve

SECTIONS = [DATA_SECTION, *TRAIN_SECTIONS]


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a denoiser, sample it, measure memorization",
                              description="Train a denoiser (mixture estimator, MLP, U-Net or DiT) on synthetic data; "
                                          "write config.json, metrics.json, orbax checkpoints and samples.npy. "
                                          "Losses are in x0 units.")
    add_config_flag(p, [s.name for s in SECTIONS])
    for section in SECTIONS:
        add_section(p, section)
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None, help="run directory (omit to write nothing)")
    o.add_argument("--resume", action="store_true",
                   help="continue the run in --out with the config saved there (flags given again must agree)")
    o.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def configs_from_args(args: argparse.Namespace):
    """-> (DataConfig, TrainConfig, RunDir or None, mode): everything checked, nothing written. TOML files
    and saved configs with a flat [train] table (the layout before the model/optim/eval split) are read."""
    from memlab.diffusion.run import saved_run_config
    from memlab.rundir import RunDir

    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR (the run to continue)")
    toml = sections(load_config_file(args), str(getattr(args, "config", None)))
    rd, mode, saved = None, "none", None
    if args.out is not None:
        rd, mode = RunDir.open(args.out, "train", resume=args.resume)
        if mode != "fresh":
            saved = saved_run_config(rd)
    cfg = resolve(args, SECTIONS, toml=toml, saved=saved, saved_where=str(rd.config_file) if rd else "")
    return cfg["data"], TrainConfig(cfg["model"], cfg["optim"], cfg["eval"]), rd, mode


def run(args: argparse.Namespace) -> int:
    data_cfg, train_cfg, rd, mode = configs_from_args(args)
    from memlab.diffusion.compile_cache import enable_compilation_cache  # JAX from here on
    from memlab.diffusion.run import train_and_evaluate
    from memlab.io import to_json

    enable_compilation_cache()

    metrics = train_and_evaluate(data_cfg, train_cfg, args.out, resume=args.resume, progress=not args.quiet)
    _table(metrics)
    if args.json:
        print(to_json(metrics, indent=None))
    return 0


def _table(m: dict) -> None:
    """A short human summary on stderr."""
    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    iv = m["interval"] or [None, None]
    print(f"status {m['status']}  model {m['model']} size {m['size']}  params {m['param_count']}  "
          f"seeds ok {m['n_seeds_ok']}/{len(m['seeds'])}", file=sys.stderr)
    print(f"memorization ratio {fmt(m['memorization_ratio'])}  95% CI [{fmt(iv[0])}, {fmt(iv[1])}]", file=sys.stderr)
    print(f"{'step':>8} {'mem ratio':>10} {'train x0':>10} {'test x0':>10}", file=sys.stderr)
    for c in m["checkpoints"]:
        print(f"{c['step']:>8} {fmt(c['memorization_ratio']):>10} {fmt(c['train_loss']):>10} "
              f"{fmt(c['test_loss']):>10}", file=sys.stderr)
