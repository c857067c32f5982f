"""The device a profile runs on: synchronising, reading memory (GPU: torch.cuda; CPU: the heap meter), memory
caps, timestamps and recognising out-of-memory errors. Imports torch; used by kvplan.profiling.profiler only."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import time
from collections.abc import Iterator
from typing import Any

import torch

from kvplan.errors import UsageError
from kvplan.profiling.memory import HeapMeter, address_space_limit, malloc_trim

__all__ = ["Clock", "Device", "default_gpus", "describe", "is_oom"]


class Device:
    """Where the model runs and how its memory is read."""

    def __init__(self, gpus: tuple[int, ...], meter: HeapMeter | None) -> None:
        self.gpus = gpus
        self.meter = meter
        self.cuda = bool(gpus)
        self.main = torch.device(f"cuda:{gpus[0]}") if gpus else torch.device("cpu")
        self.base = 0  # memory in use before the model was loaded (set by the Profiler)
        if self.cuda:
            torch.cuda.set_device(self.main)  # contexts, streams (offloaded caches) and events on the chosen GPU

    # memory ---------------------------------------------------------------------------------------------
    def sync(self) -> None:
        if self.cuda:
            for g in self.gpus:
                torch.cuda.synchronize(g)

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
        else:
            malloc_trim()

    def in_use(self) -> int:
        if self.cuda:
            return sum(torch.cuda.memory_allocated(g) for g in self.gpus)
        assert self.meter is not None
        return self.meter.reset()

    def reset_peak(self) -> int:
        if self.cuda:
            for g in self.gpus:
                torch.cuda.reset_peak_memory_stats(g)
            return sum(torch.cuda.memory_allocated(g) for g in self.gpus)
        assert self.meter is not None
        return self.meter.reset()

    def peak(self) -> int:
        if self.cuda:
            return sum(torch.cuda.max_memory_allocated(g) for g in self.gpus)
        assert self.meter is not None
        return self.meter.peak()

    def phase_peaks(self) -> dict[str, tuple[int, int | None]]:
        """Per device, (peak allocated, peak reserved) since the last reset_peak; the CPU: (heap peak, None)."""
        if self.cuda:
            return {
                f"cuda:{g}": (int(torch.cuda.max_memory_allocated(g)), int(torch.cuda.max_memory_reserved(g)))
                for g in self.gpus
            }
        assert self.meter is not None
        return {"cpu": (self.meter.peak(), None)}

    def device_used(self) -> int | None:
        """Device-level use as NVML sees it (CUDA context and other processes included)."""
        if not self.cuda:
            return None
        used = 0
        for g in self.gpus:
            free, total = torch.cuda.mem_get_info(g)
            used += total - free
        return used

    def total_memory(self) -> int | None:
        if self.cuda:
            return sum(torch.cuda.get_device_properties(g).total_memory for g in self.gpus)
        return None

    @contextlib.contextmanager
    def capped(self, limit: int | None) -> Iterator[None]:
        """Apply the memory limit (total bytes for weights + cache + activations) for one piece of work."""
        if limit is None:
            yield
            return
        if self.cuda:
            per_gpu = limit // len(self.gpus)
            for g in self.gpus:
                total = torch.cuda.get_device_properties(g).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, per_gpu / total), g)
            try:
                yield
            finally:
                for g in self.gpus:
                    torch.cuda.set_per_process_memory_fraction(1.0, g)
            return
        self.free()
        with address_space_limit(limit - (self.in_use() - self.base)):
            yield

    @contextlib.contextmanager
    def untimed(self) -> Iterator[None]:
        if self.meter is not None:
            with self.meter.paused():
                yield
        else:
            yield


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# -------------------------------------------------------------------------------------------------- model


class Clock:
    """Timestamps without stalling the GPU: CUDA events on one GPU (read after a final synchronise), else
    `time.perf_counter` after synchronising every device."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.events = device.cuda and len(device.gpus) == 1
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.events:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device.main))
            self.marks.append(event)
        else:
            self.device.sync()
            self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        """Each mark's time since the first, in seconds."""
        if self.events:
            self.device.sync()
            return [self.marks[0].elapsed_time(e) / 1000 for e in self.marks]
        return [t - self.marks[0] for t in self.marks]


def default_gpus(device: str | None) -> tuple[int, ...]:
    """GPU 0 when CUDA is available (or --device cuda), else () = the CPU."""
    if torch.cuda.is_available():
        return (0,)
    if device is not None and device.strip().lower() == "cuda":
        raise UsageError("--device cuda: torch sees no CUDA device", hint="use --device cpu")
    return ()


def describe(gpus: tuple[int, ...]) -> str:
    if gpus:
        return ", ".join(f"cuda:{g} {torch.cuda.get_device_name(g)}" for g in gpus)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
