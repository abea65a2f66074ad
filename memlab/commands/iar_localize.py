"""`memlab iar localize|extract|ablate RUN`: UnitMem per unit and layer, the extraction attack, and the
top-k% unit edit beside random and bottom controls. Arguments only here (no torch at import); each
command validates everything before it loads the run or creates its output directory
(RUN/localize, RUN/extract, RUN/ablate)."""

from __future__ import annotations

import argparse
import sys

from memlab.errors import UsageError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="IAR run directory (from `memlab iar train --out RUN`)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")


def _extract_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("extraction")
    g.add_argument("--candidates", type=int, default=32, help="training images attacked (default 32)")
    g.add_argument("--prefix", type=int, default=None,
                   help="tokens (raster, masked) or scales (next-scale) given; default L/4 or half the scales")
    g.add_argument("--fpr", type=float, default=0.05, help="held-out false-positive rate of the threshold (default 0.05)")
    g.add_argument("--nn-ratio", type=float, default=1 / 3,
                   help="also require d(own) < ratio x d(nearest other training image) (default 1/3)")


def register(iar_sub) -> None:
    """Add the three commands to the `memlab iar` sub-parsers."""
    p = iar_sub.add_parser("localize", help="UnitMem per unit, block and scale; heat-maps",
                           description="Score every MLP unit by how selectively it fires for one training image.")
    _common(p)
    p.add_argument("--n-aug", type=int, default=10, help="augmentations per image, A (default 10)")
    p.add_argument("--max-shift", type=int, default=1, help="largest shift in pixels (default 1)")
    p.add_argument("--jitter", type=float, default=0.05, help="colour jitter amplitude (default 0.05)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    p.add_argument("--rest", choices=("mean", "median"), default="mean",
                   help="summary of mu over the other images (default mean)")
    p.add_argument("--top-pct", type=float, default=10.0, help="k of the top-k%% share per block (default 10)")
    p.add_argument("--seed", type=int, default=0, help="augmentation seed (default 0)")
    p.set_defaults(func=run_localize)

    p = iar_sub.add_parser("extract", help="which training images the model regurgitates",
                           description="Teacher-forced ranking, greedy continuation from a prefix, threshold "
                                       "calibrated on held-out images.")
    _common(p)
    _extract_args(p)
    p.set_defaults(func=run_extract)

    p = iar_sub.add_parser("ablate", help="edit the top-k%% UnitMem units; re-extract and re-measure quality",
                           description="Scale the incoming weights of the top-k%% units by --factor, beside the "
                                       "same edit on random and bottom units. Uses RUN/localize (computed if "
                                       "missing). Resumes finished edits when the config is unchanged.")
    _common(p)
    p.add_argument("--top", type=float, default=10.0, help="k, percent of units edited, in (0, 100] (default 10)")
    p.add_argument("--factor", type=float, default=0.5, help="weight factor in [0, 1] (default 0.5; 0 removes)")
    p.add_argument("--controls", default="random,bottom", help="comma list of: random, bottom (default both)")
    p.add_argument("--n-random", type=int, default=3, help="draws of the random control (default 3)")
    p.add_argument("--sweep", default="1,5,10,20", help="extra k values for the curves (default 1,5,10,20)")
    p.add_argument("--rank", choices=("global", "per-block"), default="global",
                   help="rank units over the model or within every block (default global)")
    p.add_argument("--no-by-block", action="store_true", help="skip the one-block-at-a-time edits")
    p.add_argument("--n-generate", type=int, default=64, help="samples for the Frechet distance (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of random controls and samples (default 0)")
    p.add_argument("--tag", default="", help="write to RUN/ablate-TAG instead of RUN/ablate (keep several edits)")
    _extract_args(p)
    p.set_defaults(func=run_ablate)


def _floats(name: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{name} must be a comma list of numbers, got {text!r}") from None


def _extract_config(args):
    from memlab.iar.extract import ExtractConfig

    return ExtractConfig(n_candidates=args.candidates, prefix=args.prefix, fpr=args.fpr, nn_ratio=args.nn_ratio,
                         batch_size=args.batch_size)


def _open(run: str, sub: str):
    """Validate RUN, load model and data, then create RUN/sub (nothing is written before this)."""
    from pathlib import Path

    from memlab.iar.load import load_run, load_run_data, read_run_config
    from memlab.iar.pipeline import fold_duplicates

    read_run_config(run)
    model = load_run(run)
    data = fold_duplicates(*load_run_data(run))
    out = Path(run) / sub
    out.mkdir(parents=True, exist_ok=True)
    return model, data, out


def _emit(args, metrics: dict) -> int:
    if args.json:
        from memlab.io import to_json

        sys.stdout.write(to_json(metrics, indent=None) + "\n")
    return 0


def run_localize(args) -> int:
    from memlab.iar.augment import AugmentConfig
    from memlab.iar.unitmem import UnitMemConfig

    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=args.n_aug, max_shift=args.max_shift, flip=not args.no_flip,
                                              jitter=args.jitter, seed=args.seed),
                        batch_size=args.batch_size, rest=args.rest, top_pct=args.top_pct)
    from memlab.iar.pipeline import localize

    model, data, out = _open(args.run, "localize")
    return _emit(args, localize(model, data, cfg, out))


def run_extract(args) -> int:
    cfg = _extract_config(args)
    from memlab.iar.pipeline import extraction

    model, data, out = _open(args.run, "extract")
    return _emit(args, extraction(model, data, cfg, out))


def run_ablate(args) -> int:
    from memlab.iar.ablate import AblateConfig
    from memlab.iar.quality import QualityConfig

    controls = tuple(c.strip() for c in args.controls.split(",") if c.strip())
    cfg = AblateConfig(top_pct=args.top, factor=args.factor, controls=controls, n_random=args.n_random,
                       sweep=_floats("--sweep", args.sweep), rank=args.rank, by_block=not args.no_by_block,
                       seed=args.seed)
    ext_cfg = _extract_config(args)
    q_cfg = QualityConfig(n_generate=args.n_generate, seed=args.seed, batch_size=args.batch_size)
    if args.tag and not args.tag.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"--tag must be letters, digits, '-' or '_', got {args.tag!r}")
    from pathlib import Path

    from memlab.iar.pipeline import ablation, load_units

    model, data, out = _open(args.run, f"ablate-{args.tag}" if args.tag else "ablate")
    units = load_units(model, data, Path(args.run) / "localize")
    return _emit(args, ablation(model, data, units, cfg, ext_cfg, q_cfg, out))
