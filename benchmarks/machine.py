"""What every benchmark records beside its numbers: the machine, its load, the device the timed work ran on.
Benchmarks run as scripts (`python benchmarks/x.py`), so this module is imported by its bare name."""

from __future__ import annotations

import os
import platform
import time


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (runnable processes; above the CPU count means contention)."""
    return [round(v, 2) for v in os.getloadavg()]


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else platform.processor(): hosts of one workplace differ."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine(framework: str) -> dict:
    """cpus, platform, load averages now, and the accelerator `framework` ("jax" or "torch") would use."""
    info = {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "load_average": load_average()}
    if framework == "jax":
        import jax

        dev = jax.devices()[0]
        info.update(jax=jax.__version__, device=f"{dev.platform}:{getattr(dev, 'device_kind', '')}")
    else:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    device=f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu")
    return info


def torch_device() -> str:
    """cuda when present, else cpu: the device the torch benchmarks put their models on."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fastest_cpu_seconds(fn, repeats: int = 1, warmup: bool = False) -> float:
    """Fastest of `repeats` calls of `fn` in CPU seconds of this process (on a shared machine wall time mostly
    measures the neighbours), after one untimed call when `warmup`."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best
