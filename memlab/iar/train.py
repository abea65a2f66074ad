"""Train an IAR run: the tokenizer first, then the model (AdamW, linear warmup + cosine decay), each epoch
checkpointed so that `resume=True` continues from the last finished epoch with the same final numbers.

Every random draw of epoch e of a stage comes from a generator seeded by (seed, stage, e), so an epoch does
not depend on whether the run was interrupted before it.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.optimization import get_cosine_schedule_with_warmup
from tqdm import tqdm

from memlab.iar.batching import teacher_forced_scores
from memlab.iar.checkpoint import copy_published, latest_epoch, load_pretrained, load_stage, publish, save_stage
from memlab.iar.config import RunConfig
from memlab.iar.data import image_set_tensors, num_classes as data_num_classes
from memlab.iar.figures import plot_curves, plot_samples
from memlab.iar.load import read_run_config
from memlab.iar.models import MODEL_CLASSES
from memlab.iar.mitigate.memsinks import training_masks
from memlab.iar.stages import checkpoint_dir, checkpoint_epochs, first_reaching, saved_epochs
from memlab.iar.tokenizer import ImageTokenizer
from memlab.errors import UsageError
from memlab.io import read_json, save_figure, write_json
from memlab.iar.mitigate import cartography, trainset
from memlab.rundir import STATE, RunDir

STAGES = ("tokenizer", "model")
# Per epoch, state/history.json is written before the checkpoint: a crash in between leaves a row past the
# checkpoint, which resume drops (rows are truncated to the checkpoint's epoch) and recomputes. metrics.json
# is written once, last.


def epoch_generator(seed: int, stage: str, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + STAGES.index(stage) * 10_007 + epoch)


def build_tokenizer(cfg: RunConfig) -> ImageTokenizer:
    t = cfg.train
    scales = MODEL_CLASSES[t.arch].tokenizer_scales(cfg)
    return ImageTokenizer(sample_size=cfg.data.size, scales=scales, codebook_size=t.codebook_size,
                          latent_channels=t.latent_channels, block_out_channels=tuple(t.tokenizer_channels),
                          norm_type=t.tokenizer_norm)


def build_model(cfg: RunConfig, num_classes: int):
    """A freshly initialised model of the run's architecture and sizes."""
    return MODEL_CLASSES[cfg.train.arch].from_run_config(cfg, num_classes)


def _batches(n: int, batch_size: int, g: torch.Generator):
    perm = torch.randperm(n, generator=g)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


@torch.no_grad()
def _eval_tokenizer(tok: ImageTokenizer, train_x, heldout_x) -> dict:
    tok.eval()
    out = {}
    for name, x in (("train", train_x), ("heldout", heldout_x)):
        tokens = torch.cat([tok.tokenize(x[i:i + 256]) for i in range(0, len(x), 256)])
        recon = torch.cat([tok.decode(tokens[i:i + 256]) for i in range(0, len(x), 256)])
        out[f"{name}_mse"] = float(F.mse_loss(recon, x))
        if name == "train":
            out["codes_used"] = int(tokens.unique().numel())
    tok.train()
    return out


@torch.no_grad()
def eval_model(model, tr, ho, target_rows: torch.Tensor) -> dict:
    """An epoch's row: train / held-out NLL and top-1 accuracy, and the targets' accuracy on the positions the
    attack must produce. `tr`, `ho`: (tokens, labels); the model is left in train mode."""
    model.eval()
    out = {}
    for name, (tokens, labels) in (("train", tr), ("heldout", ho)):
        nll, acc = model.token_nll(tokens, labels)
        out[f"{name}_nll"], out[f"{name}_acc"] = float(nll.mean()), float(acc.mean())
        if name == "train":  # over the tokens the extraction attack has to produce from its default prefix
            positions_L = model.ranking_positions(model.default_prefix())
            target_acc, _ = teacher_forced_scores(model, tokens[target_rows], labels[target_rows], positions_L)
            out["target_acc"] = float(target_acc.mean())
    model.train()
    return out


def target_rows(ids: list[str], targets: tuple[str, ...]) -> tuple[torch.Tensor, str]:
    """Rows of the training set whose teacher-forced accuracy defines 'memorized' (on the positions the attack
    must produce: the first raster token, predicted from the class alone, cannot reach 0.99), and where they come from:
    the given image ids (one row per id), else the planted duplicates (one row each), else every row."""
    base = [str(i).split("#copy")[0] for i in ids]
    first: dict[str, int] = {}
    for r, b in enumerate(base):
        first.setdefault(b, r)
    if targets:
        unknown = [t for t in targets if t not in first]
        if unknown:
            raise UsageError(f"--targets: image {unknown[0]!r} is not in the training set (ids like {base[0]!r})")
        return torch.tensor([first[t] for t in dict.fromkeys(targets)]), "given ids"
    counts = Counter(base)
    dup = [r for b, r in first.items() if counts[b] > 1]
    if dup:
        return torch.tensor(dup), "planted duplicates"
    return torch.arange(len(ids)), "all training images"


TOKENIZER_FIELDS = ("sample_size", "scales", "codebook_size", "latent_channels", "block_out_channels", "norm_type")


def reused_tokenizer(cfg: RunConfig) -> ImageTokenizer:
    """--tokenizer-from RUN (by default --prune-from RUN: a pruned retraining is compared with RUN on RUN's
    tokens): RUN's tokenizer, refused (one line) when it is missing or is not the tokenizer this run would
    train (another image size, scale list or codebook)."""
    t = cfg.train
    flag, run = ("--tokenizer-from", t.tokenizer_from) if t.tokenizer_from else ("--prune-from", t.prune_from)
    src = Path(run) / "tokenizer"
    if not (src / "config.json").is_file():
        raise UsageError(f"{flag} {run}: no trained tokenizer there "
                         f"({src / 'config.json'} is missing); give a finished `memlab iar train` run")
    tok = load_pretrained(ImageTokenizer, src, "tokenizer").eval()
    want = build_tokenizer(cfg).config
    for key in TOKENIZER_FIELDS:
        have, need = tok.config[key], want[key]
        if (list(have) if isinstance(have, (list, tuple)) else have) != (list(need) if isinstance(need, (list, tuple)) else need):
            raise UsageError(f"{flag} {run}: its tokenizer has {key} {have}, this run "
                             f"needs {need}; train with the same image size, scales and tokenizer options")
    return tok


class _Stage:
    """One optimisation stage: fresh or restored module, AdamW + warmup/cosine, per-epoch checkpoint."""

    def __init__(self, run: Path, name: str, cls, fresh, lr: float, cfg: RunConfig, steps_per_epoch: int,
                 epochs: int):
        self.dir, self.name, self.epochs = run / STATE / name, name, epochs
        t = cfg.train
        total = max(1, steps_per_epoch * epochs)
        opt_factory = lambda m: torch.optim.AdamW(m.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=t.weight_decay)
        sched_factory = lambda o: get_cosine_schedule_with_warmup(o, int(t.warmup_frac * total), total)
        if latest_epoch(self.dir) > 0:
            self.module, self.opt, self.sched, self.start = load_stage(self.dir, cls, opt_factory, sched_factory)
        else:
            with torch.random.fork_rng():  # initial weights, without reseeding the caller's generator
                torch.manual_seed(t.seed + STAGES.index(name))
                self.module = fresh()
            self.opt, self.start = opt_factory(self.module), 0
            self.sched = sched_factory(self.opt)
        self.module.train()

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)
        self.opt.step()
        self.sched.step()

    def finish(self, run: Path) -> None:
        """Publish the final weights as run/<name> (save to a temporary folder, then rename)."""
        publish(self.module, run / self.name)


def _prepare(run: Path, cfg: RunConfig, resume: bool):
    """Validate the output directory before anything is written; -> (RunDir, per-epoch history so far)."""
    rd, mode = RunDir.open(run, "iar-train", resume=resume)
    if mode == "fresh":
        return rd, {}
    if read_run_config(run) != cfg:  # compared as configs: a field added since the run takes its default
        rd.require_config(cfg.to_dict())
    if _history(rd).is_file():
        return rd, read_json(_history(rd))
    legacy = read_json(rd.metrics_file) if rd.is_done() else {}  # before run kinds: rewritten every epoch
    return rd, legacy if isinstance(legacy, dict) and "final" not in legacy else {}


def _finished(rd: RunDir) -> dict | None:
    metrics = rd.finished_metrics()
    return metrics if metrics is not None and "final" in metrics else None


def _history(rd: RunDir) -> Path:
    return rd.state / "history.json"


def train_run(cfg: RunConfig, out: str | Path, resume: bool = False, progress: bool = True,
              figures: bool = True) -> dict:
    """Train tokenizer then model into run directory `out`; -> metrics dict (also in out/metrics.json).
    figures=False skips curves.png / samples.png (tests)."""
    run = Path(out)
    rd, metrics = _prepare(run, cfg, resume)
    if _finished(rd) is not None:
        return _finished(rd)
    train_x, train_y, heldout_x, heldout_y, ids = image_set_tensors(cfg.data)  # data errors before any write
    t = cfg.train
    targets, target_source = target_rows(ids, t.targets)
    subset = trainset.select(t, train_x, ids)  # dedup / --prune-from (issue 14): errors before any write
    if len(subset.keep) < len(ids):
        targets = torch.as_tensor(trainset.remap(targets.tolist(), subset.keep))
        train_x, train_y, ids = train_x[subset.keep], train_y[subset.keep], [ids[r] for r in subset.keep]
        if not len(targets):
            targets, target_source = target_rows(ids, ())
    records = t.cartography or t.reweight_below is not None  # reweighting reads the last epoch's losses
    reused = reused_tokenizer(cfg) if t.tokenizer_from or t.prune_from else None  # checked before any write
    if not rd.config_file.is_file():
        rd.start(cfg.to_dict())
    n_batches = len(range(0, len(train_x), t.batch_size))
    metrics.setdefault("tokenizer", [])
    metrics.setdefault("model", [])

    # --- stage 1: tokenizer (reconstruction MSE + VQ codebook/commitment loss) ---
    if reused is not None and not (run / "tokenizer" / "config.json").is_file():
        copy_published(Path(t.tokenizer_from or t.prune_from) / "tokenizer", run / "tokenizer")  # byte for byte
        metrics["tokenizer"] = [{"epoch": 0, "reused_from": t.tokenizer_from or t.prune_from,
                                 **_eval_tokenizer(reused, train_x, heldout_x)}]
        write_json(_history(rd), metrics)
    if not (run / "tokenizer" / "config.json").is_file():
        st = _Stage(run, "tokenizer", ImageTokenizer, lambda: build_tokenizer(cfg), t.tokenizer_lr, cfg,
                    n_batches, t.tokenizer_epochs)
        metrics["tokenizer"] = metrics["tokenizer"][: st.start]
        if st.start == 0:
            st.module.init_codebook(train_x[:256], epoch_generator(t.seed, "tokenizer", 10**6))
        bar = tqdm(range(st.start, t.tokenizer_epochs), desc="tokenizer", file=sys.stderr, disable=not progress)
        for ep in bar:
            g = epoch_generator(t.seed, "tokenizer", ep)
            used = torch.zeros(t.codebook_size, dtype=torch.bool)
            total = 0.0
            for idx in _batches(len(train_x), t.batch_size, g):
                recon, q_loss, tokens, residuals = st.module(train_x[idx])
                loss = F.mse_loss(recon, train_x[idx]) + q_loss
                st.step(loss)
                used[tokens.flatten()] = True
                total += float(loss.detach()) * len(idx)
            restarted = st.module.restart_dead_codes(used, residuals, g)
            row = {"epoch": ep + 1, "loss": total / len(train_x), "restarted_codes": restarted,
                   **_eval_tokenizer(st.module, train_x, heldout_x)}
            metrics["tokenizer"].append(row)
            write_json(_history(rd), metrics)
            save_stage(st.dir, ep + 1, st.module, st.opt, st.sched)
            bar.set_postfix(mse=f"{row['train_mse']:.4f}", codes=row["codes_used"])
        st.finish(run)
    tok = load_pretrained(ImageTokenizer, run / "tokenizer", "tokenizer").eval()

    # --- stage 2: the IAR model on the frozen tokenizer's tokens ---
    with torch.no_grad():
        tr = (tok.tokenize(train_x), train_y)
        ho = (tok.tokenize(heldout_x), heldout_y)
    num_classes = max(int(max(train_y.max(), heldout_y.max())) + 1, data_num_classes(cfg.data) or 0)
    cls = MODEL_CLASSES[t.arch]
    st = _Stage(run, "model", cls, lambda: build_model(cfg, num_classes), t.lr, cfg, n_batches, t.epochs)
    metrics["model"] = metrics["model"][: st.start]
    schedule = set(checkpoint_epochs(t.epochs))
    memorized = first_reaching([r.get("target_acc", 0.0) for r in metrics["model"]], t.memorized_acc)
    weights = subset.weights
    if records and st.start > 0 and t.reweight_below is not None:  # resumed: the weights of the next epoch
        weights = trainset.reweighted(subset.weights, ids, cartography.read_table(run, upto=st.start),
                                      t.reweight_below, t.reweight_factor)
    bar = tqdm(range(st.start, t.epochs), desc=f"{t.arch} model", file=sys.stderr, disable=not progress)
    for ep in bar:
        if memorized is not None and t.stop_when_memorized is not None:
            break  # a resumed run that had reached the accuracy stops where it stopped
        g = epoch_generator(t.seed, "model", ep)
        total = 0.0
        for idx in _batches(len(train_x), t.batch_size, g):
            with training_masks(st.module, [ids[i] for i in idx.tolist()]):  # MemSinks: each image's own sinks
                loss = trainset.weighted_loss(st.module, tr[0][idx], tr[1][idx], g, None if weights is None else weights[idx])
            st.step(loss)
            total += float(loss.detach()) * len(idx)
        row = {"epoch": ep + 1, "loss": total / len(train_x), "lr": st.sched.get_last_lr()[0],
               **eval_model(st.module, tr, ho, targets)}
        metrics["model"].append(row)
        if records:  # before the checkpoint, as history.json: a resumed run continues the same table
            st.module.eval()
            table = cartography.append(run, cartography.epoch_records(st.module, tr[0], tr[1], ids, ep + 1))
            st.module.train()
            if t.reweight_below is not None:
                weights = trainset.reweighted(subset.weights, ids, table, t.reweight_below, t.reweight_factor)
        if memorized is None and row["target_acc"] >= t.memorized_acc:
            memorized = ep + 1
        stop = t.stop_when_memorized is not None and memorized == ep + 1  # its weights are the final ones
        if (ep + 1 in schedule or memorized == ep + 1) and ep + 1 < t.epochs and not stop:
            publish(st.module, checkpoint_dir(run, ep + 1) / "model")  # before the epoch counts as done
        write_json(_history(rd), metrics)
        save_stage(st.dir, ep + 1, st.module, st.opt, st.sched)
        bar.set_postfix(train_nll=f"{row['train_nll']:.3f}", heldout_nll=f"{row['heldout_nll']:.3f}",
                        target_acc=f"{row['target_acc']:.3f}")
        if stop:
            break
    last = metrics["model"][-1]["epoch"] if metrics["model"] else 0
    if not (run / "model" / "config.json").is_file() or st.start < last:
        st.finish(run)
    if figures:
        model = st.module.eval()
        model.attach_tokenizer(tok)
        plot_curves(metrics, run / "curves.png")
        plot_samples(model, train_x[:8], train_y[:8], model.default_prefix(), run / "samples.png")  # the attack's
        if t.cartography:
            per_image = cartography.scores(cartography.read_table(run), t.forget_threshold, t.difficulty_epochs)
            save_figure(cartography.quadrant_figure(per_image, f"{t.arch}, seed {t.seed}"), run / cartography.FIGURE)
    metrics["final"] = {"tokenizer": metrics["tokenizer"][-1] if metrics["tokenizer"] else {},
                        "model": metrics["model"][-1] if metrics["model"] else {}}
    metrics["memorized_acc"], metrics["memorized_epoch"] = t.memorized_acc, memorized
    metrics["stopped_epoch"] = last if t.stop_when_memorized is not None and memorized == last < t.epochs else None
    metrics["targets"] = {"source": target_source, "n": len(targets)}
    metrics["checkpoints"] = saved_epochs(run)
    if subset.info:
        metrics["training_set"] = {"rows": len(ids), **subset.info}
    rd.finish(metrics)  # last: marks the run finished
    return metrics
