"""The yardstick across training stages (`memlab iar stages RUN`): the run's stages (every saved checkpoint
epoch and the final one) and, for each stage whose yardstick has finished, its table and its random-cloud
curves, drawn as a grid of Pareto panels (one row per stage, one column per cost measure). Reads files only:
no torch. Library code: returns data and figures; the command writes them.

Per stage it reads WORK/yardstick[-TAG]/{metrics.json, yardstick.parquet, curves.csv} (memlab.iar.compare),
WORK being RUN for the final stage and RUN/checkpoints/epoch-NNNN otherwise (memlab.iar.stages)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from memlab.errors import UsageError
from memlab.iar.stages import resolve_stage, saved_epochs
from memlab.iar.verdict import draw_pareto_panel
from memlab.io import legend_outside, new_figure, read_json, read_parquet, read_text

CURVE_COLUMNS = ("cost_measure", "cost", "fit", "lo", "hi", "level", "n_boot")


def yardstick_dir(work: Path, tag: str = "") -> Path:
    return Path(work) / (f"yardstick-{tag}" if tag else "yardstick")


def stage_table(run: str | Path, codebook_size: int, tag: str = "") -> pd.DataFrame:
    """One row per stage, by epoch: the saved checkpoints and (once training has finished) the final weights,
    with train accuracy, target accuracy (teacher-forced top-1), held-out NLL and uniform_nll = log V (nats
    per token), whether it is the memorized / final stage, its work directory (relative to RUN) and whether
    its yardstick (with `tag`) has finished."""
    run = Path(run)
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    finished = isinstance(metrics, dict) and "final" in metrics  # as memlab.iar.stages reads a finished run
    final = resolve_stage(run, codebook_size).epoch if finished else None
    memorized = metrics.get("memorized_epoch") if finished else None
    rows = []
    for epoch in sorted(set(saved_epochs(run)) | ({final} if final is not None else set())):
        st = resolve_stage(run, codebook_size, checkpoint=epoch)
        rows.append({"epoch": epoch, "memorized": epoch == memorized, "final": epoch == final,
                     "train_acc": st.train_acc, "target_acc": st.target_acc, "heldout_nll": st.heldout_nll,
                     "uniform_nll": st.log_v, "work_dir": st.work_dir.relative_to(run).as_posix(),
                     "yardstick": (yardstick_dir(st.work_dir, tag) / "metrics.json").is_file()})
    if not rows:
        raise UsageError(f"{run} has no stages yet: no checkpoint saved and training not finished")
    return pd.DataFrame(rows).astype({"train_acc": float, "target_acc": float, "heldout_nll": float})


def _num(x, fmt: str) -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, fmt)


def stage_label(row) -> str:
    """'epoch 12 (memorized), target acc 0.99, held-out NLL 6.1 / log V 5.5' for one row of stage_table."""
    marks = [m for m in ("memorized", "final") if row[m]]
    return (f"epoch {row['epoch']}" + (f" ({', '.join(marks)})" if marks else "")
            + f", target acc {_num(row['target_acc'], '.2f')}, held-out NLL {_num(row['heldout_nll'], '.3g')}"
            + f" / log V {_num(row['uniform_nll'], '.3g')}")


@dataclass(frozen=True)
class StageYardstick:
    """One stage's finished yardstick: its rows (one per condition), the random cloud's curves (empty when no
    cost measure had a fit), the size of the target set T, and the stage's label."""

    epoch: int
    label: str
    table: pd.DataFrame
    curves: pd.DataFrame
    n_targets: int


def _curves(path: Path) -> pd.DataFrame:
    text = read_text(path, "curves file")
    if not text.strip():  # compare writes an empty table when no cost measure could be fitted
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    try:
        curves = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as e:
        raise UsageError(f"damaged curves file {path}: {str(e).splitlines()[0]}") from None
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise UsageError(f"damaged curves file {path}: lacks column(s) {', '.join(missing)}")
    return curves


def gather(run: str | Path, stages: pd.DataFrame, tag: str = "") -> tuple[list[StageYardstick], list[str]]:
    """-> (the finished yardsticks of the stages in `stages` (stage_table), by epoch; notes on what looks
    stale). A damaged file of a finished yardstick is a UsageError naming it."""
    run, found, notes = Path(run), [], []
    for _, row in stages[stages["yardstick"]].iterrows():
        where = yardstick_dir(run / row["work_dir"], tag)
        metrics = read_json(where / "metrics.json")
        table = read_parquet(where / "yardstick.parquet", what="yardstick table")
        for col in ("method", "T_extracted"):
            if col not in table.columns:
                raise UsageError(f"damaged yardstick table {where / 'yardstick.parquet'}: no column {col!r}")
        if "stage_epoch" not in table.columns:  # a yardstick from before tables carried their stage
            table = table.assign(stage="final" if row["final"] else "epoch", stage_epoch=row["epoch"])
        elif set(table["stage_epoch"]) != {row["epoch"]}:
            notes.append(f"{where} holds the yardstick of epoch(s) {sorted(set(table['stage_epoch']))}, not of "
                         f"epoch {row['epoch']} (was the run trained further since?)")
        sets = metrics.get("sets", {}) if isinstance(metrics, dict) else {}
        found.append(StageYardstick(int(row["epoch"]), stage_label(row), table, _curves(where / "curves.csv"),
                                    len(sets.get("target_ids", ()))))
    return found, notes


def cost_measures(yardsticks: list[StageYardstick]) -> list[str]:
    """Every cost measure with a curve at some stage, in the order the curves list them."""
    return list(dict.fromkeys(c for y in yardsticks for c in y.curves["cost_measure"]))


def _higher_is_better(curve: pd.DataFrame) -> bool:
    # The direction is the fit's (verdict.CloudFit.higher_is_better, set from fit_clouds' `higher_is_better`).
    # The yardstick signs every cost so that higher is more damage (yardstick.COSTS) and fits none reversed;
    # curves.csv records the direction only if a column says so.
    return bool(curve["higher_is_better"].any()) if "higher_is_better" in curve.columns else False


def _panel(ax, y: StageYardstick, cost: str, methods: list[str]) -> None:
    """One Pareto panel of a stage, drawn as the stage's own pareto.png (verdict.draw_pareto_panel)."""
    curve = y.curves[y.curves["cost_measure"] == cost]
    cloud, rest = y.table[y.table["method"] == "random"], y.table[y.table["method"] != "random"]
    has = cost in y.table.columns
    points = {name: (rest.loc[rest["method"] == name, cost], rest.loc[rest["method"] == name, "T_extracted"])
              for name in methods if has and (rest["method"] == name).any()}
    draw_pareto_panel(ax, cost, curve, cloud[cost] if has else [], cloud["T_extracted"] if has else [], points,
                      _higher_is_better(curve))


def stages_figure(yardsticks: list[StageYardstick]):
    """Rows: stages (by epoch); columns: cost measures with a curve at some stage. Each panel: targets
    extracted against cost, as in the stage's own pareto.png. Returns the matplotlib Figure."""
    costs = cost_measures(yardsticks)
    if not yardsticks or not costs:
        raise UsageError("no stage has a yardstick curve to draw")
    methods = list(dict.fromkeys(m for y in yardsticks for m in y.table["method"] if m != "random"))
    fig, axes = new_figure((3.4 * len(costs) + 1.8, 3.2 * len(yardsticks)), len(yardsticks), len(costs),
                           squeeze=False, sharey="row")
    handles = {}
    for axes_row, y in zip(axes, yardsticks):
        for ax, cost in zip(axes_row, costs):
            _panel(ax, y, cost, methods)
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        axes_row[0].set_ylabel(f"targets extracted (of {y.n_targets})" if y.n_targets else "targets extracted")
        axes_row[0].set_title(y.label, loc="left", fontsize=9)
    legend_outside(axes[0, -1], handles=list(handles.values()), labels=list(handles))
    return fig
