"""`memlab iar ...`: the PyTorch half. One small function per sub-command; arguments only here, torch is
imported inside each run function so `memlab --help` stays light."""

from __future__ import annotations

import argparse
import sys

from memlab.iar.config import IARTrainConfig, ImageDataConfig
from memlab.options import Section, add_config_flag, add_section, load_config_file, resolve


SECTIONS = [Section("data", ImageDataConfig, title="image set"),
            Section("train", IARTrainConfig, follow={"seed": ("data", "seed")}, title="model and training")]


def _register_train(sub) -> None:
    p = sub.add_parser("train", help="train a tokenizer and an IAR model on an image set",
                       description="Train the tokenizer, then the IAR model, into a run directory (config.json, "
                                   "metrics.json, curves.png, samples.png, tokenizer/, model/). Resumable with "
                                   "--resume --out RUN, which reads the config saved in RUN.")
    add_config_flag(p, [s.name for s in SECTIONS])
    for section in SECTIONS:
        add_section(p, section)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last finished epoch, with the config saved there")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on stdout")
    p.set_defaults(func=run_train)


def train_config_from_args(args: argparse.Namespace):
    """-> (RunConfig, RunDir, mode): everything checked, nothing written."""
    from memlab.errors import check_int
    from memlab.iar.config import RunConfig
    from memlab.rundir import RunDir

    check_int("--threads", args.threads, 0)
    toml = load_config_file(args)
    rd, mode = RunDir.open(args.out, "iar-train", resume=args.resume)
    saved = rd.saved_config() if mode != "fresh" else None
    cfg = resolve(args, SECTIONS, toml=toml, saved=saved, saved_where=str(rd.config_file))
    return RunConfig(data=cfg["data"], train=cfg["train"]), rd, mode


def run_train(args: argparse.Namespace) -> int:
    from memlab.io import to_json

    cfg, rd, mode = train_config_from_args(args)
    import torch  # only now: the config is valid

    from memlab.iar.train import train_run

    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = train_run(cfg, args.out, resume=args.resume)
    fin = metrics["final"]
    tok, mod = fin["tokenizer"], fin["model"]
    print(f"{'stage':<10} {'train':>10} {'held-out':>10}", file=sys.stderr)
    if tok:
        print(f"{'tok mse':<10} {tok['train_mse']:>10.4f} {tok['heldout_mse']:>10.4f}", file=sys.stderr)
    if mod:
        print(f"{'nll':<10} {mod['train_nll']:>10.3f} {mod['heldout_nll']:>10.3f}", file=sys.stderr)
        print(f"{'top-1 acc':<10} {mod['train_acc']:>10.3f} {mod['heldout_acc']:>10.3f}", file=sys.stderr)
    print(f"run directory: {args.out}", file=sys.stderr)
    if args.json:
        print(to_json({"out": str(args.out), "config": cfg.to_dict(), "final": fin}, indent=None))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("iar", help="image-autoregressive models: train, localize, extract, ablate, localizers, stages, unlearn, analyze",
                              description="The PyTorch half: train IAR models, localize and ablate memorization.")
    sub = p.add_subparsers(dest="iar_command", metavar="IAR_COMMAND", parser_class=type(p))
    _register_train(sub)
    from memlab.commands import iar_localize, iar_localizers, iar_stages  # localize/extract/ablate; stages; leaderboard

    iar_localize.register(sub)
    iar_stages.register(sub)
    iar_localizers.register(sub)
    from memlab.commands import iar_where  # where each localizer puts memorization (blocks, scales)

    iar_where.register(sub)
    from memlab.commands import iar_analyze  # which images get memorized (issue 15)

    iar_analyze.register(sub)
    from memlab.commands import iar_unlearn  # unlearning: a new run

    iar_unlearn.register(sub)
    from memlab.commands import iar_merge  # checkpoint merging (a new run); the over-memorization monitor

    iar_merge.register(sub)
    from memlab.commands import iar_mitigations  # mitigation runs on the base run's yardstick (issue 14)

    iar_mitigations.register(sub)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
