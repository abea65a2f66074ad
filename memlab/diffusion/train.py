"""Training loop (optax): Adam with global-norm clipping and a linear-warmup-then-linear-decay schedule.

Steps run in a jitted `lax.scan` over a fixed chunk length; each scan step is gated by `i < n_active`, so
any stretch between two checkpoints reuses one compiled chunk. Families whose compiled loops run slowly on CPU
(`Denoiser.loop_on_cpu`, the U-Net) instead dispatch one compiled step at a time there. The state of every seed carries its own
key and step counter; the key of step s is fold_in(key, s), so a resumed run draws exactly the noise an
uninterrupted one would. A non-finite loss or parameter freezes that seed at its last finite state and
records the step (status 'diverged'), instead of training on garbage.

Seeds: 'vmap' trains all seeds in one vectorised chunk, 'sequential' runs them one after another; 'auto'
picks vmap while the seeds' stacked activations stay under a size limit: device memory on an accelerator,
and on CPU a limit measured on 2 cores (benchmarks/results/train.json, seed modes timed in alternating
rounds): vmap was 1.4x faster for the smallest stack measured (29 MB, mixture M=40, R=25, 4 seeds), and
0.8x to 0.95x for stacks of 84 MB and more (MLPs at R=100, the mixture at M=160), with one exception
(mixture M=80, R=50, 83 MB: 1.2x). Every loss runs over cache-sized row blocks, and vmap multiplies
each block by the number of seeds."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memlab.diffusion.objective import training_objective
from memlab.diffusion.rng import wrap

MAX_CHUNK = 256
VMAP_BYTES = 2**31  # accelerators: the stacked activations must fit in device memory
CPU_VMAP_BYTES = 64 * 2**20  # CPU: beyond this vmap was mostly slower than one seed after another


def lr_schedule(lr: float, steps: int, warmup_frac: float, final_lr: float):
    """0 -> lr linearly over warmup_frac * steps, then linearly down to final_lr at `steps` (optax)."""
    warm = int(round(warmup_frac * steps))
    decay = optax.linear_schedule(lr, final_lr, max(steps - warm, 1))
    if warm == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), decay], [warm])


def make_optimizer(optim) -> optax.GradientTransformation:
    """Adam on the schedule of an OptimConfig (lr resolved), after global-norm clipping."""
    sched = lr_schedule(optim.lr, optim.steps, optim.warmup_frac, optim.final_lr)
    return optax.chain(optax.clip_by_global_norm(optim.clip), optax.adam(sched))


def resolve_seed_mode(mode: str, n_seeds: int = 1, rows: int = 0, width: int = 0, backend: str | None = None) -> str:
    """'auto': vmap when there are several seeds and their stacked activations (about 4 arrays of rows x
    width floats per seed; width: the denoiser's `activation_width`) fit the backend's limit (VMAP_BYTES,
    or CPU_VMAP_BYTES on CPU), else sequential."""
    if mode != "auto":
        return mode
    if n_seeds <= 1:
        return "sequential"
    limit = CPU_VMAP_BYTES if (backend or jax.default_backend()) == "cpu" else VMAP_BYTES
    return "vmap" if n_seeds * rows * width * 16 <= limit else "sequential"


def chunk_length(steps: int, n_checkpoints: int) -> int:
    return int(min(MAX_CHUNK, max(1, steps // max(n_checkpoints, 1))))


def checkpoint_steps(steps: int, n_checkpoints: int) -> list[int]:
    """Step 0, then log-spaced steps up to `steps` (fewer when they coincide at small step counts)."""
    if steps == 0:
        return [0]
    m = max(n_checkpoints - 1, 1)
    # geomspace with one point returns its start: the last checkpoint must always be the final step
    pts = [steps] if m == 1 else np.unique(np.round(np.geomspace(1, steps, m)).astype(int))
    return [0] + [int(p) for p in pts]


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)


class Trainer:
    """Owns the optimizer, the objective and the compiled chunk for one configuration."""

    def __init__(self, den, optim, train_NxD, grid_T, n_seeds: int = 1, length: int = MAX_CHUNK):
        """optim: an OptimConfig with its lr resolved; length: steps per compiled chunk (`chunk_length`)."""
        self.den, self.optim = den, optim
        self.tx = make_optimizer(optim)
        self.noise, self.objective = training_objective(den.weighted_sq_error, optim.weighting, grid_T, optim.draws,
                                                        optim.batch, *np.shape(train_NxD))
        self.train_NxD = jnp.asarray(train_NxD, jnp.float32)
        self.length = int(length)
        n = np.shape(train_NxD)[0]
        self.mode = resolve_seed_mode(optim.seed_mode, n_seeds, (optim.batch or n) * optim.draws, den.activation_width)
        one, chunk = self._step_fns()  # families that run slowly inside compiled loops dispatch single steps
        self._chunk = _dispatched(jax.jit(one)) if den.dispatch_steps else jax.jit(chunk)

    def init_state(self, params, key) -> dict:
        """key: raw key data (memlab.diffusion.rng.key_data), so orbax can store it."""
        return {"params": params, "opt": self.tx.init(params), "step": jnp.zeros((), jnp.int32),
                "ok": jnp.ones((), bool), "diverged_at": jnp.full((), -1, jnp.int32), "key": key,
                "loss": jnp.full((), jnp.nan, jnp.float32)}

    def _step_fns(self) -> tuple[Callable, Callable]:
        """(one step of the state, a chunk of `length` steps gated by `i < n_active`)."""
        tx, objective, noise = self.tx, self.objective, self.noise

        def draw(st):
            return noise(jax.random.fold_in(wrap(st["key"]), st["step"]))

        def update(st, nz, train_NxD):
            loss, grads = jax.value_and_grad(objective)(st["params"], nz, train_NxD)
            updates, opt = tx.update(grads, st["opt"], st["params"])
            params = optax.apply_updates(st["params"], updates)
            finite = jnp.isfinite(loss) & _all_finite(params) & _all_finite(opt)
            good = st["ok"] & finite
            return {"params": _select(good, params, st["params"]), "opt": _select(good, opt, st["opt"]),
                    "step": st["step"] + 1, "ok": good,
                    "diverged_at": jnp.where(st["ok"] & ~finite, st["step"], st["diverged_at"]),
                    "key": st["key"], "loss": jnp.where(good, loss, st["loss"])}

        def step(st, train_NxD):
            return update(st, draw(st), train_NxD)

        def step_seeds(st_S, train_NxD):
            # draws unrolled per seed (not vmapped), the arithmetic vmapped: same numbers as 'sequential'
            n_seeds = st_S["step"].shape[0]
            nz_S = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[draw(unstack(st_S, i)) for i in range(n_seeds)])
            return jax.vmap(update, in_axes=(0, 0, None))(st_S, nz_S, train_NxD)

        one = step_seeds if self.mode == "vmap" else step

        def chunk(state, n_active, train_NxD):
            def body(st, i):
                return jax.lax.cond(i < n_active, lambda s: one(s, train_NxD), lambda s: s, st), None

            return jax.lax.scan(body, state, jnp.arange(self.length))[0]

        return one, chunk

    def advance(self, state_S: dict, n_steps: int, on_steps: Callable[[int], None] | None = None) -> dict:
        """Run n_steps more steps on every seed of the stacked state (leading axis S)."""
        n_seeds = int(state_S["step"].shape[0])
        if self.mode == "vmap":
            done = 0
            while done < n_steps:
                n = min(self.length, n_steps - done)
                state_S = self._chunk(state_S, jnp.int32(n), self.train_NxD)
                done += n
                if on_steps:
                    on_steps(n * n_seeds)
            return state_S
        seeds = [jax.tree_util.tree_map(lambda a: a[i], state_S) for i in range(n_seeds)]
        for i, st in enumerate(seeds):
            done = 0
            while done < n_steps:
                n = min(self.length, n_steps - done)
                if bool(st["ok"]):  # a diverged seed stays frozen; just count its steps
                    st = self._chunk(st, jnp.int32(n), self.train_NxD)
                else:
                    st = {**st, "step": st["step"] + n}
                done += n
                if on_steps:
                    on_steps(n)
            seeds[i] = st
        return stack(seeds)


def _dispatched(step: Callable) -> Callable:
    """A chunk with the compiled chunk's signature that dispatches `step` n_active times from Python."""

    def chunk(state, n_active, train_NxD):
        for _ in range(int(n_active)):
            state = step(state, train_NxD)
        return state

    return chunk


def stack(states: list) -> dict:
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)


def unstack(state_S: dict, i: int) -> dict:
    return jax.tree_util.tree_map(lambda a: a[i], state_S)
