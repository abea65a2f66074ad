"""`Denoiser`: a trainable flax module plus what its raw output means, its training loss and its
activation estimate; `Family`: the base of every family's implementation (build, init).

Every model exposes both x0 and epsilon, so losses can always be computed in x0 units (and converted to
epsilon units with psi_t). Shapes: x_BxD (flattened samples), t_B (one time per row)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.blocked import blocked_sum
from memlab.diffusion.objective import x0_sq_error
from memlab.diffusion.process import eps_from_x0, x0_from_eps

# autodiff models sum their loss over row blocks of about 1 MiB of inputs (rows x d floats): measured best
# on CPU for the MLP (d=50, 4-5k rows per block) and the template mixture (d=192, ~1.4k rows)
AUTODIFF_BLOCK_FLOATS = 2**18
# U-Net and DiT blocks: rows holding ~16 MiB of activations (`row_floats` each; not measured)
NET_BLOCK_FLOATS = 2**22


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """`native` is what the module computes ('x0' for the closed-form mixtures, `predict` for neural nets);
    `predict` is what the model is said to output. The loss: `fused_loss` (a blocked loss with its own
    gradient) or autodiff over row blocks of `block_floats` floats, a row counting `row_floats` floats
    (0: the data dimension d). `activation_width`: the seed-mode choice's estimate of what training holds
    per row, in units of 4 arrays of that many floats (`train.resolve_seed_mode`). `loop_on_cpu`: on CPU,
    train one jitted step at a time instead of a compiled scan over steps (`train.Trainer`)."""

    module: nn.Module
    predict: str  # 'eps' | 'x0'
    native: str  # 'eps' | 'x0'
    family: str
    activation_width: int
    fused_loss: Callable | None = None
    row_floats: int = 0
    block_floats: int = AUTODIFF_BLOCK_FLOATS
    loop_on_cpu: bool = False

    @property
    def dispatch_steps(self) -> bool:
        """Whether training runs its steps from Python, one compiled step at a time: for `loop_on_cpu`
        families on the CPU backend (`train.Trainer`)."""
        return self.loop_on_cpu and jax.default_backend() == "cpu"

    def x0(self, params, x_BxD, t_B):
        raw = self.module.apply({"params": params}, x_BxD, t_B)
        if self.native == "x0":
            return raw
        return x0_from_eps(x_BxD, raw, t_B[:, None])

    def eps(self, params, x_BxD, t_B):
        raw = self.module.apply({"params": params}, x_BxD, t_B)
        if self.native == "eps":
            return raw
        return eps_from_x0(x_BxD, raw, t_B[:, None])

    def output(self, params, x_BxD, t_B):
        """The model's prediction in its `predict` units."""
        return self.eps(params, x_BxD, t_B) if self.predict == "eps" else self.x0(params, x_BxD, t_B)

    def weighted_sq_error(self, params, x0_BxD, eps_BxD, t_B, w_B):
        """sum_b w_b |x0_hat - x0|^2 at x_t = alpha x0 + sigma eps: the training loss before its mean, summed
        and differentiated over row blocks (`memlab.diffusion.blocked`)."""
        return self._blocked_loss(params, x0_BxD, eps_BxD, t_B, w_B)

    def loss_blocks(self, params, rows: int, dim: int) -> int:
        """How many row blocks `weighted_sq_error` runs for `rows` rows of dimension `dim`."""
        return self._blocked_loss.layout(params, jax.ShapeDtypeStruct((rows, dim), jnp.float32))[0]

    @functools.cached_property
    def _blocked_loss(self):
        if self.fused_loss is not None:
            return self.fused_loss

        def block(params, x0_BxD, eps_BxD, t_B, w_B):
            return jnp.sum(w_B * x0_sq_error(self.x0, params, x0_BxD, eps_BxD, t_B))

        per_row = (lambda params, x0_BxD: self.row_floats) if self.row_floats else (lambda params, x0_BxD: x0_BxD.shape[1])
        return blocked_sum(block, per_row, self.block_floats)

    def init_random(self, key, dim: int):
        # one jitted init: eager flax init would compile every primitive separately
        init = jax.jit(lambda k: self.module.init(k, jnp.zeros((1, dim)), jnp.full((1,), 0.5))["params"])
        return init(key)


def param_count(params) -> int:
    return int(sum(np.prod(np.shape(a)) for a in jax.tree_util.tree_leaves(params)))


class Family:
    """A family's implementation: build, init, per-seed diagnostics. Neural families start from flax's random initialisation, whatever
    `init` says ('pmem' is a mixture start)."""

    name: str

    def build(self, cfg, dataset) -> Denoiser:
        raise NotImplementedError

    def init(self, den: Denoiser, init: str, dataset, seed: int) -> dict[str, Any]:
        return den.init_random(jax.random.PRNGKey(seed), dataset.dim)

    def diagnostics(self, params, dataset) -> dict:
        """Family-specific entries of a seed's metrics (none by default)."""
        return {}
