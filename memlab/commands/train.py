"""`memlab train`: train a mixture estimator or an MLP denoiser on synthetic data, sample it, and measure
memorization. Argument definitions only here; JAX is imported inside `run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.config import add_data_args, data_config_from_args, from_dict, load_toml
from memlab.diffusion.train_config import (INITS, MODELS, PREDICTS, SAMPLER_NAMES, SEED_MODES, TRAIN_DEFAULTS,
                                           WEIGHTING_NAMES, TrainConfig)
from memlab.errors import UsageError

# option dest -> TrainConfig field, for options that differ in name
_FIELD = {"checkpoints": "n_checkpoints"}


def _seeds(text: str):
    """'3' -> 3 seeds; '0,4,7' -> those seeds."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count or a comma-separated list of integers, got {text!r}") from None
    return parts[0] if len(parts) == 1 and "," not in text else tuple(parts)


def _batch(text: str):
    if text == "full":
        return text  # mapped to None (full batch) in train_config_from_args
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'full', got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a denoiser, sample it, measure memorization",
                              description="Train a mixture estimator or a time-conditioned MLP on synthetic data; "
                                          "write config.json, metrics.json, orbax checkpoints and samples.npy.")
    add_data_args(p)
    g = p.add_argument_group("model and training (defaults from memlab.diffusion.run.TRAIN_DEFAULTS)")
    d = TRAIN_DEFAULTS
    # default=None everywhere: an option given on the command line overrides --config, which overrides defaults
    g.add_argument("--config", help="TOML file whose [train] table sets any TrainConfig field")
    g.add_argument("--model", choices=MODELS, default=None, help=f"denoiser (default {d['model']})")
    g.add_argument("--size", type=int, default=None, help=f"M for mixture, width for mlp (default {d['size']})")
    g.add_argument("--depth", type=int, default=None, help=f"mlp residual blocks (default {d['depth']})")
    g.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {d['steps']})")
    g.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d['lr']})")
    g.add_argument("--warmup-frac", type=float, default=None, help=f"warmup fraction (default {d['warmup_frac']})")
    g.add_argument("--final-lr", type=float, default=None, help=f"learning rate at the end (default {d['final_lr']})")
    g.add_argument("--clip", type=float, default=None, help=f"global gradient-norm clip (default {d['clip']})")
    g.add_argument("--draws", type=int, default=None, help=f"noise draws R per point per step (default {d['draws']})")
    g.add_argument("--batch", type=_batch, default=None, help="training points per step, or 'full' (default full)")
    g.add_argument("--weighting", choices=WEIGHTING_NAMES, default=None, help=f"objective (default {d['weighting']})")
    g.add_argument("--predict", choices=PREDICTS, default=None, help=f"network output (default {d['predict']})")
    g.add_argument("--init", choices=INITS, default=None, help=f"mixture initialisation (default {d['init']})")
    g.add_argument("--samples", type=int, default=None, help=f"samples per seed (default {d['samples']})")
    g.add_argument("--seeds", type=_seeds, default=None, help="seed count, or a comma-separated list (default 1)")
    g.add_argument("--seed-mode", choices=SEED_MODES, default=None, help=f"how seeds run (default {d['seed_mode']})")
    g.add_argument("--checkpoints", type=int, default=None, help=f"log-spaced evaluations (default {d['n_checkpoints']})")
    g.add_argument("--sampler", choices=SAMPLER_NAMES, default=None, help=f"sampler (default {d['sampler']})")
    g.add_argument("--threshold", type=float, default=None, help="memorized when d1 < threshold * d2 (default 1/3)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None, help="run directory (omit to write nothing)")
    o.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    o.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = dict(load_toml(args.config).get("train", {})) if args.config else {}
    for dest in ("model", "size", "depth", "steps", "lr", "warmup_frac", "final_lr", "clip", "draws", "weighting",
                 "predict", "init", "samples", "seeds", "seed_mode", "checkpoints", "sampler", "threshold"):
        value = getattr(args, dest)
        if value is not None:
            values[_FIELD.get(dest, dest)] = value
    if args.batch is not None:
        values["batch"] = None if args.batch == "full" else args.batch
    return from_dict(TrainConfig, values, where=args.config or "options")


def run(args: argparse.Namespace) -> int:
    data_cfg = data_config_from_args(args)
    train_cfg = train_config_from_args(args)
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR (the run to continue)")
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
