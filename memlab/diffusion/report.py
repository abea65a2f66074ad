"""PNG figures of one training run: the curve over training time (memorization ratio with its interval,
train and test x0 loss) and the final per-t train/test x0 losses."""

from __future__ import annotations

from pathlib import Path

from memlab.io import pyplot, save_figure


def plot_run(metrics: dict, out: Path) -> None:
    plt = pyplot()

    ck = [c for c in metrics["checkpoints"] if c.get("memorization_ratio") is not None]
    fig, (ax_m, ax_l) = plt.subplots(1, 2, figsize=(9, 3.4))
    if ck:
        x = [max(c["step"], 1) for c in ck]  # step 0 drawn at 1 on the log axis
        ax_m.plot(x, [c["memorization_ratio"] for c in ck], "o-", color="C3")
        ax_m.fill_between(x, [c["interval"][0] for c in ck], [c["interval"][1] for c in ck], color="C3", alpha=0.2)
        ax_l.plot(x, [c["train_loss"] for c in ck], "o-", label="train")
        ax_l.plot(x, [c["test_loss"] for c in ck], "s-", label="test")
        ax_l.legend()
    for ax in (ax_m, ax_l):
        ax.set_xscale("log")
        ax.set_xlabel("training step")
    ax_m.set_ylim(-0.02, 1.02)
    ax_m.set_ylabel("memorization ratio (95% CI)")
    ax_l.set_ylabel("x0 loss, mean over the t grid")
    fig.suptitle(f"{metrics['model']} size {metrics['size']}, N={metrics['n_train']}, status {metrics['status']}")
    save_figure(fig, Path(out) / "curve.png")
    plt.close(fig)

    if metrics["per_t"]:
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        t = [r["t"] for r in metrics["per_t"]]
        ax.plot(t, [r["train_loss"] for r in metrics["per_t"]], "o-", ms=3, label="train")
        ax.plot(t, [r["test_loss"] for r in metrics["per_t"]], "s-", ms=3, label="test")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("t (noise level)")
        ax.set_ylabel("x0 loss")
        ax.legend()
        save_figure(fig, Path(out) / "per_t.png")
        plt.close(fig)
