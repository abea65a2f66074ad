"""Orbax checkpoints of the training state (parameters, optimizer state, step, keys, status), one per
log-spaced checkpoint step. Orbax writes into a temporary directory and renames it when complete, so an
interrupted save never leaves a checkpoint that looks finished. A checkpoint damaged afterwards (truncated,
overwritten or missing files) is a UsageError naming its directory; nothing is written before it is raised."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import types
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from memlab.errors import UsageError
from memlab.io import error_reason


@contextlib.contextmanager
def _quiet_failed_reads():
    """Keep a failed restore to its one exception. orbax reads the arrays in tasks of a private event loop and
    closes that loop when the first read fails, leaving the other reads behind. Each would later print a
    traceback to stderr: as tensorstore completes it into the closed loop ('Event loop is closed'), as the
    garbage collector closes it (orbax's `except BaseException` turns GeneratorExit into an error), or as
    asyncio reports a read that failed too ('Task exception was never retrieved'). While the restore runs,
    those reports are dropped; after a failure, what is left on closed loops is settled."""
    previous = sys.unraisablehook

    def hook(report):
        stray_read = isinstance(report.object, types.CoroutineType) and "orbax" in report.object.cr_code.co_filename
        closed_loop = isinstance(report.exc_value, RuntimeError) and str(report.exc_value) == "Event loop is closed"
        if not (stray_read or closed_loop):
            previous(report)

    def unretrieved_read(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("exception was never retrieved" in message and "orbax" in message)

    asyncio_log = logging.getLogger("asyncio")
    sys.unraisablehook = hook
    asyncio_log.addFilter(unretrieved_read)
    try:
        yield
    except Exception:
        _settle_closed_loop()
        raise
    finally:
        sys.unraisablehook = previous
        asyncio_log.removeFilter(unretrieved_read)


def _settle_closed_loop() -> None:
    """Futures and tasks of a closed event loop can never run again: settle them now, quietly."""
    for obj in gc.get_objects():
        # type(), not isinstance(): that would also ask lazy module proxies for __class__ (torch warns)
        if not (issubclass(type(obj), asyncio.Future) and obj.get_loop().is_closed()):
            continue
        obj.get_loop().call_soon_threadsafe = lambda *args, **kwargs: None  # late tensorstore completions
        if obj.done():
            if not obj.cancelled():
                obj.exception()  # retrieved: no "... exception was never retrieved" when it is collected
        elif isinstance(obj, asyncio.Task):
            obj._log_destroy_pending = False
            try:
                obj.get_coro().close()
            except Exception:
                pass


def _reason(e: Exception) -> str:
    # tensorstore appends its whole spec as JSON to a message that already names the file
    return error_reason(e).split(" [tensorstore_spec", 1)[0]


class Checkpoints:
    def __init__(self, directory: Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise UsageError(f"the orbax checkpoint directory {self.directory} exists and is not a directory")
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=opts)
        except Exception as e:  # orbax raises bare Exception, ValueError, OSError, JSON errors...
            raise UsageError(f"cannot open the orbax checkpoints in {self.directory}: {_reason(e)}") from None

    def latest_step(self) -> int | None:
        try:
            return self.manager.latest_step()
        except Exception as e:
            raise UsageError(f"cannot list the orbax checkpoints in {self.directory}: {_reason(e)}") from None

    def save(self, step: int, state) -> None:
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """State saved at `step`, with the structure, shapes and dtypes of `like`. A damaged checkpoint is a
        UsageError naming DIR/<step> and the first line of what orbax (or tensorstore) found wrong."""
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
        try:
            with _quiet_failed_reads():
                return self.manager.restore(int(step), args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax raises bare Exception too; KeyboardInterrupt and SystemExit pass through
            where = self.directory / str(int(step))
            # without its item folder orbax only says "Must provide `args` of type `Composite`..."
            reason = _reason(e) if (where / "default").is_dir() else "its item folder 'default' is missing"
            raise UsageError(f"cannot restore the orbax checkpoint {where}: {reason}") from None

    def close(self) -> None:
        self.manager.close()
