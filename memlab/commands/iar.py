"""`memlab iar ...`: the PyTorch half. One small function per sub-command; arguments only here, torch is
imported inside each run function so `memlab --help` stays light."""

from __future__ import annotations

import argparse
import sys

from memlab.iar.config import ARCHS, DATA_SOURCES, DEFAULT_EPOCHS, IARTrainConfig, ImageDataConfig


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2,3,4, got {text!r}") from None


def add_image_data_args(p: argparse.ArgumentParser) -> None:
    d = ImageDataConfig()
    g = p.add_argument_group("image set")
    g.add_argument("--data", default=d.data, help=f"image set: {', '.join(DATA_SOURCES)} (default {d.data})")
    g.add_argument("--image-size", type=int, default=d.size, help=f"image height = width in pixels (default {d.size})")
    g.add_argument("--n-train", type=int, default=d.n_train, help=f"training images (default {d.n_train})")
    g.add_argument("--n-heldout", type=int, default=d.n_heldout, help=f"held-out images (default {d.n_heldout})")
    g.add_argument("--duplicates", type=int, default=d.duplicates,
                   help="copies of each planted duplicate in the training set (default 1: none)")
    g.add_argument("--n-duplicated", type=int, default=d.n_duplicated,
                   help="how many training images are duplicated --duplicates times (default 0)")


def image_data_config(args: argparse.Namespace) -> ImageDataConfig:
    return ImageDataConfig(data=args.data, size=args.image_size, n_train=args.n_train, n_heldout=args.n_heldout,
                           duplicates=args.duplicates, n_duplicated=args.n_duplicated, seed=args.seed)


def _register_train(sub) -> None:
    t = IARTrainConfig()
    p = sub.add_parser("train", help="train a tokenizer and an IAR model on an image set",
                       description="Train the tokenizer, then the IAR model, into a run directory (config.json, "
                                   "metrics.json, curves.png, samples.png, tokenizer/, model/). Resumable with --resume.")
    add_image_data_args(p)
    g = p.add_argument_group("model and training")
    g.add_argument("--arch", default=t.arch, help=f"{', '.join(ARCHS)} (default {t.arch})")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"model epochs (default {', '.join(f'{a} {e}' for a, e in DEFAULT_EPOCHS.items())})")
    g.add_argument("--tokenizer-epochs", type=int, default=t.tokenizer_epochs,
                   help=f"tokenizer epochs (default {t.tokenizer_epochs})")
    g.add_argument("--batch-size", type=int, default=t.batch_size, help=f"(default {t.batch_size})")
    g.add_argument("--lr", type=float, default=t.lr, help=f"model peak learning rate (default {t.lr})")
    g.add_argument("--tokenizer-lr", type=float, default=t.tokenizer_lr, help=f"(default {t.tokenizer_lr})")
    g.add_argument("--width", type=int, default=t.width, help=f"transformer width (default {t.width})")
    g.add_argument("--depth", type=int, default=t.depth, help=f"transformer blocks (default {t.depth})")
    g.add_argument("--heads", type=int, default=t.heads, help=f"attention heads (default {t.heads})")
    g.add_argument("--codebook-size", type=int, default=t.codebook_size, help=f"(default {t.codebook_size})")
    g.add_argument("--scales", type=_ints, default=t.scales,
                   help="next-scale token-map sides, ending at image size / 4 (default 1,2,3,4)")
    g.add_argument("--latent-channels", type=int, default=t.latent_channels,
                   help=f"tokenizer latent / code dimension (default {t.latent_channels})")
    g.add_argument("--tokenizer-channels", type=_ints, default=t.tokenizer_channels,
                   help="the tokenizer's 3 encoder/decoder widths, multiples of 8 (default 16,32,32)")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data draw, initialisation and batches (default 0)")
    p.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on stdout")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    import sys

    from memlab.errors import check_positive
    from memlab.iar.config import RunConfig
    from memlab.io import to_json

    if args.threads:
        check_positive("--threads", args.threads)
    cfg = RunConfig(
        data=image_data_config(args),
        train=IARTrainConfig(arch=args.arch, epochs=args.epochs, tokenizer_epochs=args.tokenizer_epochs,
                             batch_size=args.batch_size, lr=args.lr, tokenizer_lr=args.tokenizer_lr,
                             width=args.width, depth=args.depth, heads=args.heads, codebook_size=args.codebook_size,
                             latent_channels=args.latent_channels, tokenizer_channels=tuple(args.tokenizer_channels),
                             scales=tuple(args.scales), seed=args.seed))
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
    p = subparsers.add_parser("iar", help="image-autoregressive models: train (localize, extract, ablate)",
                              description="The PyTorch half: train IAR models, localize and ablate memorization.")
    sub = p.add_subparsers(dest="iar_command", metavar="IAR_COMMAND", parser_class=type(p))
    _register_train(sub)
    from memlab.commands import iar_localize  # localize, extract, ablate (issue 6); arguments only

    iar_localize.register(sub)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
