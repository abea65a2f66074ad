"""`memlab iar unlearn RUN --method NAME --out DIR`: fine-tune the run's model to forget the yardstick's targets,
scored on the yardstick every few steps, into a new run directory DIR that loads like a trained one
(memlab.iar.mitigate.unlearn). Arguments only here (no torch at import); everything is checked before DIR
is created."""

from __future__ import annotations

import sys
from pathlib import Path

from memlab.commands.iar_localize import EXTRACT, _common, _configs, _emit, print_table
from memlab.errors import UsageError, check_int
from memlab.iar.mitigate.unlearn_config import METHODS, UnlearnConfig
from memlab.options import Section

UNLEARN = Section("unlearn", UnlearnConfig, title="unlearning")
SECTIONS = [*EXTRACT, UNLEARN]


def register(iar_sub) -> None:
    p = iar_sub.add_parser("unlearn", help=f"unlearn the targets by fine-tuning ({', '.join(METHODS)}); a new run",
                           description="Fine-tune a copy of RUN's model to forget its targets (RUN/evalsets.json: "
                                       "the planted duplicates), retain set: a seeded sample of the other training "
                                       "images. Every --eval-every steps the model is scored on the yardstick "
                                       "against the original model's threshold (DIR/trajectory.csv, .png); it stops "
                                       "once no target is extractable or after --steps. DIR is a new run "
                                       "(tokenizer copied, model/ unlearned) that `memlab iar localize/ablate/"
                                       "localizers DIR` read like a trained one. Resumable with --resume. On an "
                                       "external model's work directory (--model diffusers:PATH) DIR is a work "
                                       "directory whose transformer/ is the unlearned UVit2DModel (fine-tuned in "
                                       "fp32) and whose other components stay in PATH (docs/iar_amused.md).")
    _common(p, SECTIONS)
    p.add_argument("--out", required=True, help="the new run directory (or the one to continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the unlearning in --out from its last point")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.set_defaults(func=run_unlearn)


def run_unlearn(args) -> int:
    check_int("--threads", args.threads, 0)
    if getattr(args, "sinks", "off") == "on":
        raise UsageError("--sinks on is a diagnosis mode; unlearning works on the deployed model (leave it off)")
    from memlab.iar.adapters import is_external

    if is_external(args):
        return _run_external(args)
    cfgs = _configs(args, SECTIONS)
    cfg, ext = cfgs["unlearn"], cfgs["extract"]
    from memlab.iar.load import model_run, read_run_config, run_stage
    from memlab.rundir import RunDir

    base = model_run(args.run)
    stage = run_stage(args.run, args.checkpoint, args.stage)
    rd, mode = RunDir.open(args.out, "iar-unlearn", resume=args.resume)
    import torch  # only now: the arguments are valid

    from memlab.iar import evalsets
    from memlab.iar.classifier import DIRNAME, ensure_classifier
    from memlab.iar.compare import choose_sets
    from memlab.iar.extract import attack_prefix
    from memlab.iar.load import load_run, load_run_data
    from memlab.iar.mitigate.unlearn import check_retain, derived_config, run_unlearning
    from memlab.iar.pipeline import fold_duplicates

    if args.threads:
        torch.set_num_threads(args.threads)
    reference = load_run(args.run, stage if stage.name != "final" else None)
    attack_prefix(reference, ext.prefix)
    data = fold_duplicates(*load_run_data(args.run))
    saved = evalsets.load(stage.work_dir)
    sets = saved if saved is not None else choose_sets(reference, data, None, ext, (), cfg.seed)
    check_retain(len(data.train_ids), len(sets.target_ids), cfg)
    config = derived_config(base.saved_config(), args.run, stage.columns(), cfg, ext, sets)
    if mode != "fresh":
        rd.require_config(config)
    if saved is None:  # fixed in the base run, as every yardstick command on it does
        evalsets.fix(stage.work_dir, sets)
    run_cfg = read_run_config(args.run)
    classifier, info = ensure_classifier(Path(args.run), run_cfg.data)
    print(f"class-consistency classifier: {info['status']}", file=sys.stderr)
    copies = {"tokenizer": Path(args.run) / "tokenizer", evalsets.FILE: stage.work_dir / evalsets.FILE,
              DIRNAME: Path(args.run) / DIRNAME}
    metrics = run_unlearning(reference, data, sets, ext, cfg, rd, config, copies, classifier)
    _show(metrics)
    print(f"unlearned run: {args.out}", file=sys.stderr)
    return _emit(args, metrics)


def training_precision(args, what: str) -> None:
    """Fine-tuning an external model runs in fp32 (Adam's moments and epsilon underflow in half precision, and
    frozen weights would turn NaN): --precision may only be left out or say fp32."""
    if vars(args).get("precision") not in (None, "auto", "fp32"):
        raise UsageError(f"--precision {args.precision}: {what} fine-tunes the transformer in fp32 (Adam's state "
                         "underflows in half precision); leave --precision out or give fp32")
    args.precision = "fp32"


def _run_external(args) -> int:
    """Unlearning an external model's work directory RUN into a derived work directory --out (memlab.iar.
    adapters.external): DIR/transformer the unlearned UVit2DModel, the rest read from RUN's pipeline."""
    from dataclasses import asdict

    from memlab.iar.adapters import KIND
    from memlab.iar.adapters.external import OWN_WEIGHTS, check_external, load_external
    from memlab.rundir import RunDir

    training_precision(args, "unlearning")
    cfgs = _configs(args, SECTIONS)
    cfg, ext = cfgs["unlearn"], cfgs["extract"]
    prep = check_external(args)
    if Path(args.out).absolute() == prep.run.path.absolute():
        raise UsageError(f"--out {args.out} is RUN itself; the unlearned model goes into a new directory")
    rd, mode = RunDir.open(args.out, KIND, resume=args.resume)
    import torch  # only now: the arguments are valid

    from memlab.iar import evalsets
    from memlab.iar.compare import choose_sets
    from memlab.iar.extract import attack_prefix
    from memlab.iar.mitigate.unlearn import check_retain, run_unlearning

    if args.threads:
        torch.set_num_threads(args.threads)
    fixed = evalsets.load(prep.run.path)
    if fixed is not None:  # bad retain settings before the pipeline is loaded
        check_retain(len(prep.captions.split("train")), len(fixed.target_ids), cfg)
    reference, data, stage = load_external(prep)
    attack_prefix(reference, ext.prefix)
    saved = evalsets.load(stage.work_dir)
    sets = saved if saved is not None else choose_sets(reference, data, None, ext, (), cfg.seed)
    check_retain(len(data.train_ids), len(sets.target_ids), cfg)
    config = {"external": {**prep.spec, OWN_WEIGHTS: OWN_WEIGHTS},
              "derived": {"from": "unlearn", "base_run": str(prep.run.path.resolve()), "stage": stage.columns(),
                          "unlearn": asdict(cfg), "extract": asdict(ext), "sets": sets.to_json()}}
    if mode != "fresh":
        rd.require_config(config)
    if saved is None:
        evalsets.fix(stage.work_dir, sets)
    metrics = run_unlearning(reference, data, sets, ext, cfg, rd, config, {evalsets.FILE: stage.work_dir / evalsets.FILE},
                             None, model_dir=OWN_WEIGHTS)
    _show(metrics)
    print(f"unlearned work directory: {args.out} (its transformer/; the other components stay in "
          f"{prep.spec['model']})", file=sys.stderr)
    return _emit(args, metrics)


def _show(metrics: dict) -> None:
    import pandas as pd

    u = metrics["unlearn"]
    cols = ["T_extracted", "C_extracted", "heldout_nll", "sample_nll", "fd", "class_consistency"]
    table = pd.DataFrame([{"model": "original", **{c: u["baseline"][c] for c in cols}},
                          {"model": f"{u['method']}, {u['steps']} steps", **{c: u["final"][c] for c in cols}}])
    print_table(f"unlearning ({u['method']}): {u['stopped']}, {u['train_seconds']:.1f} s of training", table)
