"""`memlab iar mitigations BASE --method NAME=RUN ...`: every mitigation run scored on the base run's yardstick,
beside its unit edits and against its random-edit cloud at matched cost (memlab.iar.mitigate.scoreboard).
Arguments only here; torch is imported once everything given on the command line is checked."""

from __future__ import annotations

import sys
from pathlib import Path

from memlab.errors import UsageError, check_tag


def register(iar_sub) -> None:
    p = iar_sub.add_parser("mitigations", help="score mitigation runs on the base run's yardstick, at matched cost",
                           description="Score each mitigation run (unlearned, MemSinks, pruned, deduplicated, "
                                       "reweighted, merged; its tokenizer must be the base run's) with the base "
                                       "run's yardstick: its evaluation sets, threshold, samples and quality "
                                       "measures, beside the unit edits of a finished yardstick of BASE and "
                                       "against its random-edit cloud at matched cost. Writes "
                                       "BASE/mitigations[-TAG] (mitigations.csv, verdicts.csv, pareto.png).")
    p.add_argument("run", metavar="BASE", help="the base IAR run (from `memlab iar train`), or an external model's "
                                               "work directory (--model diffusers:PATH) with runs unlearned from it")
    p.add_argument("--method", action="append", default=[], metavar="NAME=RUN[,NAME=RUN...]", required=True,
                   help="a mitigation run and the name it gets in the table; repeat, or separate with commas")
    p.add_argument("--edits", default=None, metavar="DIR",
                   help="a finished yardstick of BASE whose random cloud and unit edits the runs are set beside "
                        "(default BASE/yardstick, from `memlab iar ablate BASE --localizer unitmem`)")
    p.add_argument("--tag", default="", help="write to BASE/mitigations-TAG instead of BASE/mitigations")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    from memlab.iar.adapters.loading import PRECISIONS

    g = p.add_argument_group("external model (BASE a work directory of --model diffusers:PATH)")
    g.add_argument("--device", default=None, metavar="{auto,cpu,cuda,cuda:N}",
                   help="where the pipelines run (default auto: CUDA when present)")
    g.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="transformer and text encoder precision (default auto: fp16 on a GPU, fp32 on a CPU)")
    p.set_defaults(func=run_mitigations)


def parse_methods(given: list[str]) -> dict[str, Path]:
    runs: dict[str, Path] = {}
    for item in (part for g in given for part in g.split(",")):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--method must be NAME=RUN, got {item!r}")
        check_tag("--method NAME", name)
        if name in runs or name in ("unedited", "random"):
            raise UsageError(f"--method name {name!r} is {'given twice' if name in runs else 'reserved'}; "
                             "give each run its own name")
        run = Path(path)
        weights = "transformer" if _external(run) else "model"  # an unlearned external model keeps its transformer/
        if not (run / "metrics.json").is_file() or not (run / weights / "config.json").is_file():
            raise UsageError(f"--method {name}: {run} is not a finished IAR run (no metrics.json or {weights}/)")
        runs[name] = run
    return runs


def _external(run: Path) -> bool:
    from memlab.iar.adapters import KIND
    from memlab.rundir import kind_of

    return run.is_dir() and kind_of(run) == KIND


def check_external_methods(base: Path, runs: dict[str, Path]) -> None:
    """An external model's work directory BASE is scored against work directories derived from it (`memlab iar
    unlearn BASE`): the same pipeline and the same captioned image set, only the transformer of their own."""
    from memlab.iar.adapters.external import OWN_WEIGHTS, work_dir_spec

    spec = work_dir_spec(base)
    for name, run in runs.items():
        if not _external(run):
            raise UsageError(f"--method {name}: {run} is a memlab run; BASE {base} is an external model's work "
                             "directory, scored against work directories made from it (memlab iar unlearn BASE)")
        theirs = {k: v for k, v in work_dir_spec(run).items() if k != OWN_WEIGHTS}
        differ = [k for k in spec if k != OWN_WEIGHTS and theirs.get(k) != spec[k]]
        if differ:
            raise UsageError(f"--method {name}: {run} was set up with another {differ[0].replace('_', '-')} than BASE "
                             f"({theirs.get(differ[0])} vs {spec[differ[0]]}); it cannot be scored on BASE's numbers")


def run_mitigations(args) -> int:
    from memlab.rundir import RunDir

    check_tag("--tag", args.tag)
    runs = parse_methods(args.method)
    external = _external(Path(args.run))
    if external:
        check_external_methods(Path(args.run), runs)
    else:
        RunDir.existing(args.run, "iar-train", what="BASE")
        for flag in ("device", "precision"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag} is an option of external models; BASE {args.run} is a memlab run")
    edits = Path(args.edits) if args.edits else Path(args.run) / "yardstick"
    from memlab.iar.mitigate.scoreboard import read_yardstick

    _, _, ecfg, _ = read_yardstick(edits)
    sub = f"mitigations-{args.tag}" if args.tag else "mitigations"
    rd, _ = RunDir.open(Path(args.run) / sub, "iar-mitigations", flag="output directory", continue_same=True)

    from memlab.commands.iar_localize import print_table
    from memlab.iar.batching import tokenize_all
    from memlab.iar.classifier import ensure_classifier
    from memlab.iar.load import load_run, load_run_data, read_run_config
    from memlab.iar.mitigate.scoreboard import check_same_tokens, score_mitigations
    from memlab.iar.pipeline import fold_duplicates
    from memlab.io import to_json

    if external:  # the captioned image set as every command reads it (its copies column included)
        from memlab.iar.adapters.external import load_work_dir

        def load(path):
            return load_work_dir(path, device=args.device or "auto", precision=args.precision or "auto")

        base_model, data = load(args.run)
    else:
        def load(path):
            return load_run(path), None

        base_model, data = load_run(args.run), fold_duplicates(*load_run_data(args.run))
    tokens = tokenize_all(base_model, data.train_images, ecfg.batch_size)
    models = {}
    for name, path in runs.items():  # every run loaded and checked before anything is written
        models[name] = (path, load(path)[0])
        check_same_tokens(models[name][1], tokens, data.train_images, name, ecfg.batch_size)

    def classifier():
        model, info = ensure_classifier(Path(args.run), read_run_config(args.run).data)
        print(f"class-consistency classifier: {info['status']}, held-out accuracy {info['heldout_accuracy']:.3f}",
              file=sys.stderr)
        return model

    metrics = score_mitigations(base_model, data, edits, models, rd, classifier=None if external else classifier,
                                show=print_table)
    if args.json:
        sys.stdout.write(to_json(metrics, indent=None) + "\n")
    return 0
