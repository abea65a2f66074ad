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
    p.add_argument("run", metavar="BASE", help="the base IAR run (from `memlab iar train`)")
    p.add_argument("--method", action="append", default=[], metavar="NAME=RUN[,NAME=RUN...]", required=True,
                   help="a mitigation run and the name it gets in the table; repeat, or separate with commas")
    p.add_argument("--edits", default=None, metavar="DIR",
                   help="a finished yardstick of BASE whose random cloud and unit edits the runs are set beside "
                        "(default BASE/yardstick, from `memlab iar ablate BASE --localizer unitmem`)")
    p.add_argument("--tag", default="", help="write to BASE/mitigations-TAG instead of BASE/mitigations")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
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
        if not (run / "metrics.json").is_file() or not (run / "model" / "config.json").is_file():
            raise UsageError(f"--method {name}: {run} is not a finished IAR run (no metrics.json or model/)")
        runs[name] = run
    return runs


def run_mitigations(args) -> int:
    from memlab.rundir import RunDir

    check_tag("--tag", args.tag)
    runs = parse_methods(args.method)
    RunDir.existing(args.run, "iar-train", what="BASE")
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

    base_model = load_run(args.run)
    data = fold_duplicates(*load_run_data(args.run))
    tokens = tokenize_all(base_model, data.train_images, ecfg.batch_size)
    models = {}
    for name, path in runs.items():  # every run loaded and checked before anything is written
        models[name] = (path, load_run(path))
        check_same_tokens(models[name][1], tokens, data.train_images, name, ecfg.batch_size)

    def classifier():
        model, info = ensure_classifier(Path(args.run), read_run_config(args.run).data)
        print(f"class-consistency classifier: {info['status']}, held-out accuracy {info['heldout_accuracy']:.3f}",
              file=sys.stderr)
        return model

    metrics = score_mitigations(base_model, data, edits, models, rd, classifier=classifier, show=print_table)
    if args.json:
        sys.stdout.write(to_json(metrics, indent=None) + "\n")
    return 0
