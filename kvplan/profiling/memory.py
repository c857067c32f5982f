"""How much memory a profiled run really uses: host heap via glibc `mallinfo2`, GPU via torch.cuda and NVML's view.

Host (CPU runs): plain RSS over-reads by 1.7-2.5x because glibc keeps freed activation memory mapped
(shared/notes/transformers-cache.md §5.3). glibc's `mallinfo2()` counts the bytes malloc has handed out and
not yet got back (`uordblks + hblkhd`); sampled every millisecond on a thread, its peak matched the torch
profiler's peak allocation exactly there, at no measurable cost. On a libc without `mallinfo2` (musl, macOS)
the meter falls back to RSS from /proc and says so in `method`.

GPU runs: `torch.cuda.max_memory_allocated` / `max_memory_reserved` per device (reset per phase) and the
device-level use `total - free` from `torch.cuda.mem_get_info` (what NVML / nvidia-smi see, including the
CUDA context and other processes).

Also here: `address_space_limit`, the CPU memory cap used by `kvplan profile --memory-limit`, which makes a
too-large allocation fail inside torch (a real `DefaultCPUAllocator: can't allocate memory`) instead of
waking the kernel's OOM killer.

torch is imported lazily (only the GPU functions need it).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
import time
from collections.abc import Iterator

__all__ = [
    "HeapMeter",
    "address_space_limit",
    "available_memory_bytes",
    "heap_in_use_bytes",
    "large_allocations_mapped",
    "malloc_trim",
    "map_large_allocations",
    "process_rss_bytes",
]


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - no C library to load
        return None
    return libc


_LIBC = _libc()
_MALLINFO2 = getattr(_LIBC, "mallinfo2", None) if _LIBC is not None else None
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _Mallinfo2
    _MALLINFO2.argtypes = []


def heap_in_use_bytes() -> int:
    """Bytes malloc has handed out and not had back (glibc), else the process RSS."""
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        return int(info.uordblks + info.hblkhd)
    return process_rss_bytes()


def _proc_bytes(path: str, key: str) -> int | None:
    """A `Key:   N kB` line of a /proc file, in bytes; None when absent (or not Linux)."""
    try:
        with open(path, encoding="ascii") as proc:
            for line in proc:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def process_rss_bytes() -> int:
    rss = _proc_bytes("/proc/self/status", "VmRSS")
    if rss is not None:
        return rss
    import resource  # pragma: no cover - not Linux

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # pragma: no cover


def available_memory_bytes() -> int | None:
    """What the kernel reckons can still be allocated without swapping (MemAvailable)."""
    return _proc_bytes("/proc/meminfo", "MemAvailable")


def _vm_size_bytes() -> int:
    size = _proc_bytes("/proc/self/status", "VmSize")
    if size is None:
        raise OSError("no VmSize in /proc/self/status")
    return size


def malloc_trim() -> None:
    """Give freed heap memory back to the system (glibc only; a no-op elsewhere)."""
    trim = getattr(_LIBC, "malloc_trim", None) if _LIBC is not None else None
    if trim is not None:
        trim(0)


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MAP_THRESHOLD_BYTES = 64 * 1024


def map_large_allocations() -> bool:
    """Make glibc map every allocation of 64 KiB or more on its own and unmap it when freed (a fixed
    M_MMAP_THRESHOLD, which also ends glibc's dynamic threshold for the life of the process).

    With the dynamic threshold, freed tensors up to 32 MiB go back to the heap, which then holds address space
    that no tensor uses; under `address_space_limit` that slack counts against the cap, so a run fails
    well before its heap reaches the limit. Mapped one by one, address space follows the heap in use. Each
    large allocation then costs page faults (10-25 % slower passes here), so it is meant for untimed work such
    as `kvplan profile`'s search probes. False where there is no glibc mallopt."""
    global _MAPPED
    mallopt = getattr(_LIBC, "mallopt", None) if _LIBC is not None else None
    if mallopt is None or _MALLINFO2 is None:
        return False
    if not _MAPPED:
        _MAPPED = bool(mallopt(_M_MMAP_THRESHOLD, MAP_THRESHOLD_BYTES))
    return _MAPPED


def large_allocations_mapped() -> bool:
    """Whether map_large_allocations() has taken effect in this process (it lasts for the process's life)."""
    return _MAPPED


_MAPPED = False


class HeapMeter:
    """Samples the host heap every `interval_s` on one daemon thread for the meter's whole life.

    `reset()` starts a new phase (peak = now), `peak()` reads the highest value since; `paused()` stops the
    sampling (so timed passes do not share the interpreter with it). Started once, before any memory cap,
    so a cap never prevents its thread from starting.
    """

    method = (
        "glibc mallinfo2 (uordblks + hblkhd) sampled every 1 ms"
        if _MALLINFO2 is not None
        else "process RSS sampled every 1 ms (no mallinfo2 here: over-reads freed memory)"
    )

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._peak = heap_in_use_bytes()
        self._running = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HeapMeter:
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="kvplan-heap-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._closed.is_set():
            self._running.wait()
            self._sample()
            time.sleep(self.interval_s)

    def _sample(self) -> int:
        value = heap_in_use_bytes()
        with self._lock:
            if value > self._peak:
                self._peak = value
        return value

    def reset(self) -> int:
        """Start a phase: the peak becomes the current heap, which is returned."""
        value = heap_in_use_bytes()
        with self._lock:
            self._peak = value
        return value

    def peak(self) -> int:
        """Highest heap seen since `reset()` (a last sample included)."""
        self._sample()
        with self._lock:
            return self._peak

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._running.clear()
        try:
            yield
        finally:
            self._running.set()


@contextlib.contextmanager
def address_space_limit(extra_bytes: int | None) -> Iterator[None]:
    """Cap the process so that at most `extra_bytes` more heap can be allocated (None: no cap).

    Sets RLIMIT_AS to the current address-space size + the bytes still allowed, so that a larger
    allocation fails with ENOMEM, which torch reports as an out-of-memory RuntimeError; the previous soft
    limit is restored on exit. Linux only.
    """
    if extra_bytes is None:
        yield
        return
    import resource

    old = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size_bytes() + max(0, extra_bytes)
    if old[1] != resource.RLIM_INFINITY:
        cap = min(cap, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)
