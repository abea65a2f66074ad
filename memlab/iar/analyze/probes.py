"""Linear probes of what an IAR model represents (issue 18, the internal view): does a block's hidden state
hold an image's shape, colour, position and size, and does a probe that learned a factor on trained
combinations read it on combinations the model never saw?

Features (`block_features`): the MLP hidden units of every block (`IARModel.units()`, the units every
localizer scores, after the nonlinearity) under a teacher-forced pass on the image's own tokens, mean-pooled
over token positions (all of them by default): one N x U array per block (site 'units'). Site 'mlp_in' is the
input of the same MLPs (the pre-module's input, through the interface too): the residual stream after the
block's attention as the MLP reads it (after the block's LayerNorm in our pre-LN models), width D. The
residual stream at other points is not part of the interface, so it is not probed. The mean over positions
asks for a code of the factor that does not depend on where in the sequence it is read, and it hides where a
unit fires: `pool="quadrants"` keeps the means over each quadrant of each token map instead (an object's
position is read from those, hardly from the mean). References (`reference_features`, no label involved): the
pooled pixels, and the tokenizer's reconstruction (what the tokens keep of the image).

The class label is an input of that pass. A factor the label determines (shape and colour, for a
factor-determined label) can be read off the label's embedding without the model having looked at the image,
and with a factorized embedding that holds for held-out combinations too (their label is the sum of a shape
and a colour vector the model did train). So `internal_view` probes every split twice: with each image's own
label (`labels="own"`; held-out combinations get their factorized combination label) and with one constant
label for every image (`labels="constant"`), where the label carries nothing about any factor and whatever
a probe finds came from the tokens (that label contradicts most images, an input the model never trained on;
the probe asks what the tokens put into the hidden state, not how the model behaves). Position and size are in
no label, so both passes are fair for them; for shape and colour, read the constant-label rows. With a joint
(not factorized) class embedding, a held-out combination's own label is a vector no training step touched.

Probes (`probe_accuracy`, `probe_table`): logistic regression on standardized features, stratified K-fold
cross-validation; the accuracy is the share of correct out-of-fold predictions (every image predicted once,
by the probe that did not see it), its 95% interval the Wilson binomial interval over those N predictions
(treated as independent). The control is the same probe on the factor's values permuted over images (a
seeded permutation); chance is the majority-class rate. A transfer probe (`split` "train->novel") is fit on
every image of one set and scored on another (here the held-out combinations' images); its chance is the
majority-class rate of the scored set (the best any constant guess does there), and its baseline the same
transfer to new images of trained combinations ("train->heldout"), which separates "a new combination" from
"an image the model never trained on"."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from memlab.errors import UsageError, check_int
from memlab.iar.batching import decode_all, tokenize_all
from memlab.iar.hooks import capture
from memlab.iar.interface import IARModel, pooled_pixels

LABEL_PASSES = ("own", "constant")
SITES = ("units", "mlp_in")  # block_features: MLP hidden units, or the MLP's input
POOLS = ("mean", "quadrants")  # block_features: over all positions, or per quadrant of each token map
REFERENCE = "reference"  # the site of reference_features' rows (label pass "none")
REFERENCE_BLOCKS = ("pixels", "reconstruction")  # their blocks, block_index -2 and -1 in internal_view
PROBES = ("real", "control")
COLUMNS = ["site", "labels", "split", "block", "block_index", "factor", "probe", "accuracy", "lo", "hi", "chance", "n",
           "n_classes", "folds", "converged"]
MAX_ITER = 1000
CONTROL_SALT = 1803  # the control's permutation: rng [seed, CONTROL_SALT]


@contextmanager
def _mlp_inputs(model: IARModel) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward pass records the input of every unit layer's pre-module (the Linear that
    computes the units' pre-activations), B x L x D; the hooks are removed also when the body raises."""
    acts: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_module, inputs):
            acts[name] = inputs[0].detach()
        return hook

    try:
        for name, spec in model.units().items():
            handles.append(spec.pre_module.register_forward_pre_hook(make_hook(name)))
        yield acts
    finally:
        for h in handles:
            h.remove()


def quadrant_groups(model: IARModel) -> list[torch.Tensor]:
    """Bool L masks of the positions to pool for `pool='quadrants'`: each scale's token map (scale_slices, read
    row-major, the tokenizers' layout) split into its four quadrants (a 1 x 1 map, or one that is not square,
    stays one group)."""
    groups = []
    for sl in model.scale_slices():
        n = sl.stop - sl.start
        side = int(round(n ** 0.5))
        idx = torch.arange(model.seq_len)
        inside = (idx >= sl.start) & (idx < sl.stop)
        if side * side != n or side == 1:
            groups.append(inside)
            continue
        r, c = (idx - sl.start) // side, (idx - sl.start) % side
        for q in range(4):
            groups.append(inside & ((r >= side / 2) == bool(q // 2)) & ((c >= side / 2) == bool(q % 2)))
    return groups


@torch.no_grad()
def block_features(model: IARModel, images_Nx3xHxW: torch.Tensor, labels_N, batch_size: int = 64, *,
                   positions_L: torch.Tensor | None = None, site: str = "units",
                   pool: str = "mean") -> dict[str, np.ndarray]:
    """Unit-layer name ('block.3.mlp', in block order) -> float64 N x U: under a teacher-forced pass on each
    image's own tokens with `labels_N` as the class input, the block's MLP hidden units after the nonlinearity
    (`site` 'units', U = the layer's unit count) or the MLP's input (`site` 'mlp_in', U = the model width: the
    residual stream after the block's attention as the MLP reads it, after the block's LayerNorm where the
    architecture has one), averaged over the token positions `positions_L` (bool L; default every position).
    `pool` 'mean' asks for a code of the factor that does not depend on where in the sequence it is read;
    'quadrants' keeps where: the means over each quadrant_groups mask, concatenated (N x U * groups; no
    positions_L). The label is an input: pass a constant label to keep label information out (module
    docstring). Runs in eval mode (restored after); the result does not depend on `batch_size`."""
    check_int("batch_size", batch_size, 1)
    if site not in SITES:
        raise UsageError(f"unknown probe site {site!r}; allowed: {', '.join(SITES)}")
    if pool not in POOLS or (pool != "mean" and positions_L is not None):
        raise UsageError(f"pool must be one of {', '.join(POOLS)} (positions_L only with mean), got {pool!r}")
    images = torch.as_tensor(images_Nx3xHxW, dtype=torch.float32)
    labels_N = torch.as_tensor(np.asarray(labels_N), dtype=torch.long)
    if images.ndim != 4 or images.shape[1] != 3 or len(labels_N) != len(images) or labels_N.ndim != 1:
        raise UsageError(f"block_features needs images N x 3 x H x W and N labels, got images "
                         f"{tuple(images.shape)} and labels {tuple(labels_N.shape)}")
    if positions_L is not None and (positions_L.shape != (model.seq_len,) or not bool(positions_L.any())):
        raise UsageError(f"positions_L must be a bool mask of the {model.seq_len} token positions with at least "
                         f"one position, got shape {tuple(positions_L.shape)}")
    groups = [positions_L if positions_L is not None else torch.ones(model.seq_len, dtype=torch.bool)] \
        if pool == "mean" else quadrant_groups(model)
    specs = model.units()
    was_training = model.training
    model.eval()
    try:
        tokens_NxL = tokenize_all(model, images.to(model.device), batch_size)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in specs}
        with (capture(model) if site == "units" else _mlp_inputs(model)) as acts:
            for i in range(0, len(images), batch_size):
                model.teacher_forced_logits(tokens_NxL[i:i + batch_size],
                                            labels_N[i:i + batch_size].to(model.device))
                for name in specs:
                    act_BxLxU = acts[name].double()
                    parts[name].append(torch.cat([act_BxLxU[:, g.to(act_BxLxU.device)].mean(1) for g in groups],
                                                 1).cpu().numpy())
    finally:
        model.train(was_training)
    out = {}
    for name, spec in specs.items():
        u = spec.weight.shape[0 if site == "units" else 1] * len(groups)
        out[name] = np.concatenate(parts[name]) if parts[name] else np.zeros((0, u))
        assert out[name].shape == (len(images), u), f"{name}: {out[name].shape} != ({len(images)}, {u})"
    return out


@torch.no_grad()
def reference_features(model: IARModel, images_Nx3xHxW: torch.Tensor, batch_size: int = 64,
                       side: int = 16) -> dict[str, np.ndarray]:
    """What the input shows, as references for the blocks (no label involved): 'pixels', the images average-
    pooled to side x side (N x 3 side^2, pixels in [0, 1]), and 'reconstruction', the same of
    decode(tokenize(images)): what survives the tokenizer, so what a teacher-forced pass can know at most."""
    check_int("batch_size", batch_size, 1)
    images = torch.as_tensor(images_Nx3xHxW, dtype=torch.float32)
    recon = decode_all(model, tokenize_all(model, images.to(model.device), batch_size), batch_size).cpu()
    return dict(zip(REFERENCE_BLOCKS, (pooled_pixels(images, side).double().numpy(),
                                       pooled_pixels(recon, side).double().numpy())))


def _check_probe_input(features_NxU, y_N, folds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(features_NxU, dtype=np.float64), np.asarray(y_N)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise UsageError(f"a probe needs features N x U and N factor values, got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        raise UsageError("probe features must be finite (found NaN or infinity)")
    if len(np.unique(y)) < 2:
        raise UsageError(f"a probe needs at least 2 factor values, got {len(np.unique(y))}")
    if folds is not None:
        check_int("folds", folds, 2)
        if len(y) < folds:
            raise UsageError(f"{folds} folds need at least {folds} images, got {len(y)}")
    return X, y


def _probe(seed: int, C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=MAX_ITER, random_state=seed))


def fit_probe(X, y, seed: int = 0, C: float = 1.0):
    """(fitted probe, converged): standardize, then logistic regression, fit on (X, y); sklearn's
    ConvergenceWarning becomes the flag."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = _probe(seed, C).fit(X, y)
    return probe, bool(np.all(probe[-1].n_iter_ < MAX_ITER))


def scored_values(y_N, seed: int, shuffled: bool) -> np.ndarray:
    """The values a probe is fit and scored on: the factor itself, or (the control) a seeded permutation."""
    y = np.asarray(y_N)
    return np.random.default_rng([seed, CONTROL_SALT]).permutation(y) if shuffled else y


def chance_rate(y_N) -> float:
    """The majority-class rate: what always guessing the commonest value scores."""
    _, counts = np.unique(np.asarray(y_N), return_counts=True)
    return float(counts.max() / counts.sum())


def out_of_fold(features_NxU, y_N, *, folds: int = 5, seed: int = 0, shuffled: bool = False,
                C: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(predictions_N, fold_N, scored values_N, every fit converged): stratified `folds`-fold cross-validation
    (shuffled split, seeded); each image is predicted by the probe fit on the other folds. A value with fewer
    images than folds is spread over as many folds as it has images."""
    from sklearn.model_selection import StratifiedKFold

    X, y = _check_probe_input(features_NxU, y_N, folds)
    y = scored_values(y, seed, shuffled)
    pred, fold = np.empty_like(y), np.empty(len(y), dtype=np.int64)
    converged = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    for k, (tr, te) in enumerate(splits):
        if len(np.unique(y[tr])) < 2:  # only when one value holds almost every image: guess it
            pred[te], ok = y[tr][0], True
        else:
            probe, ok = fit_probe(X[tr], y[tr], seed, C)
            pred[te] = probe.predict(X[te])
        fold[te], converged = k, converged and ok
    return pred, fold, y, converged


def probe_accuracy(features_NxU, y_N, *, folds: int = 5, seed: int = 0, shuffled: bool = False,
                   C: float = 1.0) -> tuple[float, np.ndarray, float]:
    """(accuracy, per-fold accuracies, chance) of a logistic-regression probe of `y_N` from `features_NxU`,
    cross-validated (`out_of_fold`). accuracy: correct out-of-fold predictions / N (the per-fold accuracies'
    mean weighted by fold size). `shuffled`: the control, on y permuted with a seeded rng. chance: majority-
    class rate of y."""
    pred, fold, y, _ = out_of_fold(features_NxU, y_N, folds=folds, seed=seed, shuffled=shuffled, C=C)
    hit = pred == y
    per_fold = np.array([hit[fold == k].mean() for k in np.unique(fold)])
    return float(hit.mean()), per_fold, chance_rate(y)


def transfer_accuracy(train_NxU, train_y_N, test_MxU, test_y_M, *, seed: int = 0, shuffled: bool = False,
                      C: float = 1.0) -> tuple[int, int, float, bool]:
    """(correct, M, chance on the test set, converged) of a probe fit on all of (train_NxU, train_y_N) and
    scored on (test_MxU, test_y_M). `shuffled`: the control, fit on permuted training values (scored against
    the true test values)."""
    X, y = _check_probe_input(train_NxU, train_y_N)
    Xt, yt = np.asarray(test_MxU, dtype=np.float64), np.asarray(test_y_M)
    if Xt.ndim != 2 or Xt.shape[1] != X.shape[1] or len(Xt) != len(yt) or len(yt) == 0:
        raise UsageError(f"transfer needs test features M x {X.shape[1]} and M >= 1 values, got {Xt.shape} and "
                         f"{yt.shape}")
    probe, ok = fit_probe(X, scored_values(y, seed, shuffled), seed, C)
    return int((probe.predict(Xt) == yt).sum()), len(yt), chance_rate(yt), ok


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate k / n."""
    from scipy.stats import norm

    if n == 0:
        return float("nan"), float("nan")
    z, p = float(norm.ppf(0.5 + level / 2)), k / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)
    return float(min(max(lo, 0.0), p)), float(max(min(hi, 1.0), p))  # rounding never leaves p outside


def _row(block, b, factor, probe, k, n, chance, n_classes, folds, converged, split):
    lo, hi = wilson_interval(k, n)
    return {"site": "", "labels": "", "split": split, "block": block, "block_index": b, "factor": factor,
            "probe": probe, "accuracy": k / n if n else float("nan"), "lo": lo, "hi": hi, "chance": chance, "n": n,
            "n_classes": n_classes, "folds": folds, "converged": converged}


def probe_table(features_by_block: Mapping[str, np.ndarray], factors_NxF, factor_names: Sequence[str], *,
                folds: int = 5, seed: int = 0, split: str = "train", C: float = 1.0,
                transfer: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray]] | None = None,
                labels: str = "", site: str = "") -> pd.DataFrame:
    """One row per (block, factor, probe in real | control) of the cross-validated probe on this set (`split`),
    and for each `transfer` set (name -> (features by block, factors M x F)) the same rows of the transfer probe,
    fit on all of this set and scored on that one (split '<split>-><name>'). Columns COLUMNS: accuracy with its
    Wilson 95% interval [lo, hi] over the n scored predictions, chance, n, the factor's n_classes on this set,
    folds (0 for transfer), whether every fit converged; `labels` and `site` name the label pass and the site
    the features came from. A factor with a single value in this set gets no rows (nothing to probe)."""
    F_NxF = np.asarray(factors_NxF)
    if F_NxF.ndim != 2 or F_NxF.shape[1] != len(factor_names):
        raise UsageError(f"factors must be N x {len(factor_names)} ({', '.join(factor_names)}), got {F_NxF.shape}")
    transfer = {name: (feats, np.asarray(F)) for name, (feats, F) in (transfer or {}).items()}
    for name, (feats, F) in transfer.items():
        if set(feats) != set(features_by_block) or F.ndim != 2 or F.shape[1] != len(factor_names):
            raise UsageError(f"transfer set {name!r} needs features of the blocks {', '.join(features_by_block)} "
                             f"and factors M x {len(factor_names)}, got blocks {', '.join(feats)} and {F.shape}")
    rows = []
    for b, (block, X) in enumerate(features_by_block.items()):
        if len(X) != len(F_NxF):
            raise UsageError(f"{block}: {len(X)} feature rows but {len(F_NxF)} factor rows")
        for f, factor in enumerate(factor_names):
            y = F_NxF[:, f]
            if len(np.unique(y)) < 2:
                continue
            for probe in PROBES:
                pred, _, ys, ok = out_of_fold(X, y, folds=folds, seed=seed, shuffled=probe == "control", C=C)
                rows.append(_row(block, b, factor, probe, int((pred == ys).sum()), len(ys), chance_rate(ys),
                                 len(np.unique(y)), folds, ok, split))
                for name, (feats, F) in transfer.items():
                    if len(F):
                        k, n, chance, ok = transfer_accuracy(X, y, feats[block], F[:, f], seed=seed,
                                                             shuffled=probe == "control", C=C)
                        rows.append(_row(block, b, factor, probe, k, n, chance, len(np.unique(y)), 0, ok,
                                         f"{split}->{name}"))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["labels"], table["site"] = labels, site
    return table


def pass_labels(own_N, mode: str, constant_label: int = 0) -> np.ndarray:
    """The class inputs of a label pass: the images' own labels ('own') or `constant_label` for all ('constant')."""
    if mode not in LABEL_PASSES:
        raise UsageError(f"unknown label pass {mode!r}; allowed: {', '.join(LABEL_PASSES)}")
    own_N = np.asarray(own_N, dtype=np.int64)
    return own_N if mode == "own" else np.full(len(own_N), constant_label, dtype=np.int64)


def distinct_rows(ids: Sequence[str]) -> np.ndarray:
    """Indices of the training rows that are not planted copies: a copy in another fold would let a probe
    recognise the image instead of reading its factor."""
    return np.array([i for i, name in enumerate(ids) if "#copy" not in name], dtype=np.int64)


def probe_rows(train_ids: Sequence[str], max_images: int | None = None, seed: int = 0) -> np.ndarray:
    """The training rows the probes use: distinct images, at most `max_images` of them (a seeded draw), sorted."""
    rows = distinct_rows(train_ids)
    if max_images is not None and len(rows) > max_images:
        rows = np.sort(np.random.default_rng([seed, 1804]).choice(rows, max_images, replace=False))
    return rows


def internal_view(model: IARModel, image_set, *, batch_size: int = 64, folds: int = 5, seed: int = 0,
                  constant_label: int = 0, max_images: int | None = None, C: float = 1.0,
                  label_passes: Sequence[str] = LABEL_PASSES, sites: Sequence[str] = ("units",),
                  references: bool = True, reference_side: int = 16, pool: str = "mean") -> pd.DataFrame:
    """The probe table of one model on a `factors` ImageSet (synthetic.images.ImageSet with `.factors`), for
    each of `label_passes` (`labels` own | constant, module docstring) and `sites` (block_features). Splits:
    'train' (distinct training images, planted copies dropped; at most `max_images`, a seeded draw), 'arbitrary'
    (those of them with an arbitrary label, when there are at least 2 x folds: their own label says nothing of
    any factor) and 'novel' (the held-out combinations' images, when there are at least 2 x folds), each
    cross-validated with `folds` folds; and the transfer probes fit on 'train' and scored on the held-out
    images of trained combinations ('train->heldout': new images, known combinations, the baseline) and on
    the novel ones ('train->novel': new combinations). Real and control probes, every block and factor. Read
    shape and colour from the constant-label rows, and 'train->novel' beside 'train->heldout'. `references`:
    the same probes of reference_features at `reference_side` (site 'reference', labels 'none', block_index -2
    and -1). `pool` (block_features) is the table's column 'pool' (empty for the references)."""
    from memlab.iar.data import to_tensor

    info = image_set.factors
    if info is None:
        raise UsageError(f"the composition probes need the factors image set (--data factors), got "
                         f"{image_set.name!r}")
    check_int("constant_label", constant_label, 0, len(image_set.class_names) - 1)
    check_int("folds", folds, 2)
    bad = [p for p in label_passes if p not in LABEL_PASSES]
    if bad or not label_passes:
        raise UsageError(f"unknown label pass {bad[0] if bad else 'none'!r}; allowed: {', '.join(LABEL_PASSES)}")
    bad = [s for s in sites if s not in SITES]
    if bad or not sites:
        raise UsageError(f"unknown probe site {bad[0] if bad else 'none'!r}; allowed: {', '.join(SITES)}")
    if max_images is not None:
        check_int("max_images", max_images, 2 * folds)
    check_int("reference_side", reference_side, 1)
    if pool not in POOLS:
        raise UsageError(f"unknown pool {pool!r}; allowed: {', '.join(POOLS)}")
    rows = probe_rows(image_set.train_ids, max_images, seed)
    images, own = to_tensor(image_set.train_NxHxWx3[rows]), np.asarray(image_set.train_labels)[rows]
    facts, arbitrary = np.asarray(info.train_NxF)[rows], np.asarray(info.train_arbitrary)[rows]
    unseen = {name: (to_tensor(imgs), np.asarray(labels), np.asarray(F)) for name, imgs, labels, F in (
        ("heldout", image_set.heldout_NxHxWx3, image_set.heldout_labels, info.heldout_NxF),
        ("novel", info.novel_NxHxWx3, info.novel_labels, info.novel_NxF)) if len(F)}
    names, tables = tuple(info.names), []
    passes = list(itertools.product(dict.fromkeys(sites), dict.fromkeys(label_passes)))
    for site, mode in passes + ([(REFERENCE, "none")] if references else []):
        def features(imgs, own_N):
            if site == REFERENCE:
                return reference_features(model, imgs, batch_size, reference_side)
            return block_features(model, imgs, pass_labels(own_N, mode, constant_label), batch_size, site=site,
                                  pool=pool)
        feats = features(images, own)
        transfer = {name: (features(imgs, labels), F) for name, (imgs, labels, F) in unseen.items()}
        common = dict(folds=folds, seed=seed, C=C, labels=mode, site=site)
        tables.append(probe_table(feats, facts, names, split="train", transfer=transfer, **common))
        if arbitrary.sum() >= 2 * folds:
            tables.append(probe_table({b: x[arbitrary] for b, x in feats.items()}, facts[arbitrary], names,
                                      split="arbitrary", **common))
        if "novel" in transfer and len(transfer["novel"][1]) >= 2 * folds:
            tables.append(probe_table(*transfer["novel"], names, split="novel", **common))
    table = pd.concat(tables, ignore_index=True)
    table.loc[table.site == REFERENCE, "block_index"] -= len(REFERENCE_BLOCKS)
    table.insert(1, "pool", np.where(table.site == REFERENCE, "", pool))
    return table
