"""`memlab iar stages RUN`: the run's training stages, and the yardstick of every stage that has one, gathered
into one table and one Pareto grid (RUN/stages.csv, RUN/stages_yardstick[-TAG].csv,
RUN/stages_pareto[-TAG].png). Reads files only: torch is never imported. Everything is read and checked before
anything is written."""

from __future__ import annotations

import sys
from pathlib import Path

from memlab.errors import check_tag


def register(iar_sub) -> None:
    p = iar_sub.add_parser("stages", help="list the run's training stages; gather their yardsticks and Pareto figures",
                           description="List every saved checkpoint epoch and the final one (train and target "
                                       "accuracy, held-out NLL beside the uniform log V; memorized and final "
                                       "marked) into RUN/stages.csv, then gather each stage's finished "
                                       "yardstick (`memlab iar ablate RUN --localizer NAME --checkpoint EPOCH`) "
                                       "into RUN/stages_yardstick[-TAG].csv and a grid of Pareto panels, one row "
                                       "per stage and one column per cost measure (RUN/stages_pareto[-TAG].png).")
    p.add_argument("run", metavar="RUN", help="IAR run directory (from `memlab iar train --out RUN`)")
    p.add_argument("--tag", default="", help="gather the yardsticks written with `ablate --tag TAG`")
    p.add_argument("--json", action="store_true", help="print the stages and the files written as JSON on stdout")
    p.set_defaults(func=run_stages)


def _suffix(tag: str) -> str:
    return f"-{tag}" if tag else ""


def run_stages(args) -> int:
    check_tag("--tag", args.tag)
    from memlab.iar.load import read_run_config
    from memlab.iar.stage_report import cost_measures, gather, stage_table, stages_figure
    from memlab.io import save_figure, to_json, write_text
    from memlab.rundir import RunDir

    from memlab.commands.iar_localize import print_table

    run = Path(args.run)
    RunDir.existing(run, "iar-train")
    stages = stage_table(run, read_run_config(run).train.codebook_size, args.tag)
    yardsticks, notes = gather(run, stages, args.tag)
    fig = stages_figure(yardsticks) if yardsticks and cost_measures(yardsticks) else None

    files = {"stages": run / "stages.csv", "yardstick": None, "figure": None}
    write_text(files["stages"], stages.to_csv(index=False))
    shown = stages.assign(stage=[", ".join(m for m in ("memorized", "final") if r[m]) for _, r in stages.iterrows()])
    print_table(f"training stages of {run}", shown[["epoch", "stage", "train_acc", "target_acc", "heldout_nll",
                                                   "uniform_nll", "yardstick"]])
    where = f"yardstick{_suffix(args.tag)}"
    if not yardsticks:
        print(f"no finished yardstick ({where}) at any stage; run `memlab iar ablate {run} --localizer NAME"
              f"{' --tag ' + args.tag if args.tag else ''} --checkpoint EPOCH` first", file=sys.stderr)
    else:
        import pandas as pd

        files["yardstick"] = run / f"stages_yardstick{_suffix(args.tag)}.csv"
        write_text(files["yardstick"], pd.concat([y.table for y in yardsticks], ignore_index=True).to_csv(index=False))
        if fig is not None:
            files["figure"] = run / f"stages_pareto{_suffix(args.tag)}.png"
            save_figure(fig, files["figure"])
        else:
            notes.append("no stage has a cost measure with a curve: no figure")
        print(f"{where} of epoch(s) {', '.join(str(y.epoch) for y in yardsticks)} -> {files['yardstick']}"
              + (f", {files['figure']}" if files["figure"] else ""), file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        records = stages.astype(object).where(stages.notna(), None).to_dict(orient="records")
        sys.stdout.write(to_json({"run": str(run), "tag": args.tag, "stages": records,
                                  "yardstick_epochs": [y.epoch for y in yardsticks], "notes": notes,
                                  "files": {k: None if v is None else str(v) for k, v in files.items()}},
                                 indent=None) + "\n")
    return 0
