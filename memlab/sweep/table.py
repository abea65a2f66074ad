"""The phase summary for people: a rich Table of observed vs predicted transitions, and which configurations
had not stopped moving when training ended. Returns values; the caller prints."""

from __future__ import annotations

# a configuration counts as not converged when the mean memorization ratio of one of its sizes still moved
# by more than this between the last two training checkpoints (ratio units, in [0, 1]); issue 16 set 0.02,
# the GMM diagrams' criterion
CONVERGED_CHANGE = 0.02


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _interval(iv, open_, source: str | None = None) -> str:
    lo = "<grid" if open_[0] else _fmt(iv[0])
    hi = ">grid" if open_[1] else _fmt(iv[1])
    return f"[{lo}, {hi}]" + (" grid step" if source == "grid step" else "")


def data_label(rec: dict) -> str:
    """'gmm d=30 K=4' (no d for data without one)."""
    d = f" d={rec['dim']:g}" if rec.get("dim") else ""
    return f"{rec['dataset']}{d} K={rec['components']}"


def weighting_name(summary: list[dict]) -> str:
    """The prediction's loss weighting(s) of a summary ('eps', 'x0-uniform', ...; 'unrecorded' if none)."""
    names = {r["predicted"].get("weighting") for r in summary} - {None}
    return "/".join(sorted(names)) if names else "unrecorded"


def unconverged(summary: list[dict], tol: float = CONVERGED_CHANGE) -> list[dict]:
    """The summary records whose `max_change_last_checkpoint` exceeds `tol` (unknown changes are not counted)."""
    return [r for r in summary if (r["observed"].get("max_change_last_checkpoint") or 0.0) > tol]


def largest_change(summary: list[dict]) -> float | None:
    """The largest `max_change_last_checkpoint` of a summary (None when no configuration records one)."""
    known = [r["observed"]["max_change_last_checkpoint"] for r in summary
             if r["observed"].get("max_change_last_checkpoint") is not None]
    return max(known) if known else None


def converged(summary: list[dict], tol: float = CONVERGED_CHANGE) -> bool | None:
    """False when a configuration had not converged, True when every known change is within `tol`, None
    when no configuration records one (runs without checkpoints)."""
    return None if largest_change(summary) is None else not unconverged(summary, tol)


def convergence_note(summary: list[dict], tol: float = CONVERGED_CHANGE) -> str | None:
    """One line naming the configurations that had not converged, or None when all had (or none is known)."""
    bad = unconverged(summary, tol)
    if not bad:
        return None
    names = "; ".join(f"{data_label(r)} N={r['n_train']} (moved {r['observed']['max_change_last_checkpoint']:.2f})"
                      for r in bad)
    return (f"not converged: the memorization ratio still moved by more than {tol:g} between the last two "
            f"checkpoints in {len(bad)} of {len(summary)} configurations: {names}")


def convergence_line(summary: list[dict], tol: float = CONVERGED_CHANGE) -> tuple[str, bool] | None:
    """(text, converged) for the foot of a figure: the note when a configuration had not converged, else how
    little the ratio still moved; None when no configuration records a change."""
    note, change = convergence_note(summary, tol), largest_change(summary)
    if note:
        return note, False
    if change is None:
        return None
    text = f"converged: the memorization ratio moved by at most {change:.3f} between the last two checkpoints"
    return f"{text} (tolerance {tol:g})", True


def convergence(summary: list[dict], tol: float = CONVERGED_CHANGE) -> dict:
    """What a summary file records about convergence: converged (True / False / None for unknown), the note,
    the tolerance and the data keys of the configurations still moving."""
    return {"converged": converged(summary, tol), "convergence_note": convergence_note(summary, tol),
            "converged_change": tol, "not_converged": [r["data_key"] for r in unconverged(summary, tol)]}


def summary_table(summary: list[dict]):
    """rich.table.Table: one row per data configuration."""
    from rich.table import Table

    t = Table(title="observed transition (ratio = 0.5) vs predicted crossover M*/N "
                    f"({weighting_name(summary)} weighting)")
    for col in ("data", "N", "model", "sizes", "observed M/N", "95% interval", "bracket [<0.1, >=0.9]",
                "predicted M*/N", "pred. interval", "in interval", "last-checkpoint change"):
        t.add_column(col)
    for r in summary:
        o, p = r["observed"], r["predicted"]
        bracket = o.get("bracket", [None, None])
        t.add_row(data_label(r), str(r["n_train"]), str(r["model"]), str(len(o["sizes"])),
                  _fmt(o.get("m_over_n")) if o.get("m_over_n") is not None else o.get("where", "-"),
                  _interval(o.get("interval", [None, None]), o.get("interval_open", [False, False]),
                            o.get("interval_from")),
                  f"[{_fmt(bracket[0])}, {_fmt(bracket[1])}]",
                  _fmt(p.get("m_over_n")) if not p.get("error") else f"error: {p['error'][:40]}",
                  f"[{_fmt(p['interval'][0])}, {_fmt(p['interval'][1])}]",
                  {True: "yes", False: "no", None: "-"}[r.get("prediction_in_interval")],
                  _fmt(o.get("max_change_last_checkpoint")))
    if any(r["observed"].get("interval_from") == "grid step" for r in summary):
        t.caption = ("grid step: the ratio jumps from < 0.1 to >= 0.9 across one step of the size grid, so the "
                     "transition is known only to lie in that step (a finer grid would place it)")
    return t
