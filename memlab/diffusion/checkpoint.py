"""Orbax checkpoints of the training state (parameters, optimizer state, step, keys, status), one per
log-spaced checkpoint step. Orbax writes into a temporary directory and renames it when complete, so an
interrupted save never leaves a checkpoint that looks finished."""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, directory: Path, keep: int = 2):
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=opts)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """State saved at `step`, with the structure, shapes and dtypes of `like`."""
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(int(step), args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()
