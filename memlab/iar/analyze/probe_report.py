"""What a probe table (memlab.iar.analyze.probes) says, short: a summary per factor and split for JSON, and a
figure of accuracy per block."""

from __future__ import annotations

import pandas as pd

from memlab.iar.analyze.probes import LABEL_PASSES, REFERENCE, SITES


def probe_summary(table: pd.DataFrame) -> list[dict]:
    """Per (site, labels, split, factor): the block where the real probe is most accurate, its accuracy and
    interval, the control's at that block, chance, and whether the real interval lies above the control's
    (`above_control`). The best of several blocks is a selection; the table has every block."""
    out = []
    for (site, labels, split, factor), g in table.groupby(["site", "labels", "split", "factor"], sort=False):
        real, control = g[g.probe == "real"], g[g.probe == "control"].set_index("block")
        best = real.loc[real.accuracy.idxmax()]
        ctl = control.loc[best.block]
        out.append({"site": site, "labels": labels, "split": split, "factor": factor, "block": best.block,
                    "accuracy": float(best.accuracy), "lo": float(best.lo), "hi": float(best.hi),
                    "control": float(ctl.accuracy), "control_hi": float(ctl.hi), "chance": float(best.chance),
                    "n": int(best.n), "above_control": bool(best.lo > ctl.hi)})
    return out


def _block_tick(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "block" else {"reconstruction": "recon"}.get(name, name)


def probe_figure(table: pd.DataFrame, title: str = ""):
    """Accuracy per block (x) for each factor (columns) and each (site, label pass) (rows): real probes solid
    with their 95% intervals, controls dashed with open markers, chance dotted, one colour per split; the
    reference rows (pixels, reconstruction), when present, left of block 0 in every row. Returns the Figure."""
    from memlab.io import legend_outside, new_figure, shifted

    order = {p: i for i, p in enumerate(SITES + LABEL_PASSES)}
    refs = table[table.site == REFERENCE]
    blocks_tab = table[table.site != REFERENCE]
    panels = sorted(set(zip(blocks_tab["site"], blocks_tab["labels"])),
                    key=lambda sl: (order.get(sl[0], 9), order.get(sl[1], 9))) or [(REFERENCE, "none")]
    factors = list(dict.fromkeys(table["factor"]))
    splits = list(dict.fromkeys(table["split"]))
    colours = {s: f"C{i}" for i, s in enumerate(splits)}
    fig, axes = new_figure((3.0 * len(factors) + 1.6, 2.6 * len(panels) + 0.6), len(panels), len(factors),
                           squeeze=False, sharey=True)
    ticks = table.drop_duplicates("block_index").sort_values("block_index")
    for r, (site, mode) in enumerate(panels):
        mine = pd.concat([refs, table[(table["site"] == site) & (table["labels"] == mode)]])
        for c, factor in enumerate(factors):
            ax = axes[r][c]
            for i, split in enumerate(splits):
                g = mine[(mine.factor == factor) & (mine.split == split)]
                for probe, style, face in (("real", "o-", None), ("control", "s--", "none")):
                    for part in (g[g.site == REFERENCE], g[g.site != REFERENCE]):  # references drawn apart
                        h = part[part.probe == probe].sort_values("block_index")
                        if len(h):  # splits side by side (3 points apart), so their intervals do not hide each other
                            ax.errorbar(h.block_index, h.accuracy, yerr=[h.accuracy - h.lo, h.hi - h.accuracy],
                                        fmt=style, ms=4, mfc=face, capsize=2, color=colours[split],
                                        transform=shifted(ax, 3.0 * (i - (len(splits) - 1) / 2), h.block_index,
                                                          h.accuracy),
                                        label=f"{split} {probe}" if part.site.iloc[0] != REFERENCE else None)
                if len(g):
                    ax.axhline(g.chance.iloc[0], ls=":", lw=1, color=colours[split])
            if len(refs):
                ax.axvline(-0.5, color="0.7", lw=0.8)
            ax.set(ylim=(0, 1.05), title=f"{factor} ({site}, labels {mode})", xlabel="block",
                   xticks=list(ticks.block_index), xticklabels=[_block_tick(b) for b in ticks.block])
            if c == 0:
                ax.set_ylabel("probe accuracy")
        legend_outside(axes[r][-1])
    fig.suptitle(title or "linear probes per block (dotted: chance; bars: 95% Wilson intervals; left of the line: "
                          "pixels and tokenizer reconstruction)")
    return fig
