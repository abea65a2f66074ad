"""Weightings of the per-noise-level losses, shared with training (`memlab.diffusion.objective`), so that
a prediction and a trained model weigh noise levels alike. Returned normalized to sum to 1 (M* does not
depend on the overall scale). Losses are in x0 units; `eps` turns them into the epsilon objective."""

from __future__ import annotations

import numpy as np

from memlab.diffusion.train_config import WEIGHTING_NAMES as WEIGHTINGS  # no JAX: `memlab --help` stays light
from memlab.errors import UsageError


def weights(spec, t_T: np.ndarray) -> np.ndarray:
    """`spec`: 'x0-uniform' (every t alike), 'eps' (psi_t: the epsilon training objective), 'elbo'
    (-d psi/dt dt / 2 = dt / t^3, the continuous-time ELBO in x0 units), 'min-snr' (min(psi_t, 5)), 'v'
    (1 + psi_t: the v-prediction loss), or a sequence of one non-negative weight per t."""
    t = np.asarray(t_T, dtype=float)
    if isinstance(spec, str):
        spec = parse_weighting(spec, len(t))  # a name stays a name; a list of numbers becomes a tuple
    if isinstance(spec, str):
        from memlab.diffusion.objective import grid_weights

        w = grid_weights(spec, t)
    else:
        w = np.asarray(spec, dtype=float)
        if w.shape != t.shape:
            raise UsageError(f"--weighting list must have one weight per noise level ({len(t)}), got {w.size}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UsageError("--weighting weights must be finite, non-negative and not all zero")
    return w / w.sum()


def parse_weighting(text: str, n_levels: int):
    """A weighting name, or a comma-separated list of n_levels numbers."""
    if text in WEIGHTINGS:
        return text
    try:
        values = tuple(float(v) for v in text.split(","))
        if len(values) == 1:
            raise ValueError(text)  # one number is neither a name nor a list
    except ValueError:
        raise UsageError(f"unknown weighting {text!r}; allowed: {', '.join(WEIGHTINGS)}, "
                         f"or a comma-separated list of {n_levels} non-negative numbers") from None
    if len(values) != n_levels:
        raise UsageError(f"--weighting list must have one weight per noise level ({n_levels}), got {len(values)}")
    return values
