"""The host's memory for the offload tiers: `--host-memory SIZE`, or `auto` read from this machine.

`auto` reads MemTotal from /proc/meminfo and lowers it to the cgroup's limit where one is set (cgroup v2
`memory.max`, v1 `memory/memory.limit_in_bytes`; "max" or v1's huge sentinel: no limit), and reads the size of
/dev/shm (statvfs). The paths are parameters, so tests read fake files. Pure Python; no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kvplan.core.units import parse_size
from kvplan.errors import Text, UsageError

AUTO = "auto"
_V1_UNLIMITED = 2**62  # cgroup v1 reports "no limit" as a page-rounded LONG_MAX (9223372036854771712)


@dataclass(frozen=True)
class HostMemory:
    """Host RAM per node, where it came from, and /dev/shm's size where read (None: not known)."""

    bytes: int
    source: str
    shm_bytes: int | None = None


def _meminfo_total(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                value, *unit = line.split(":", 1)[1].split()
                return int(value) * (1024 if unit and unit[0].lower() == "kb" else 1)
    except (OSError, ValueError):
        return None
    return None


def _cgroup_limit(root: Path) -> tuple[int, str] | None:
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            continue
        return None if value >= _V1_UNLIMITED else (value, str(root / name))
    return None


def _shm_size(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize


def read_host(
    meminfo: str | Path = "/proc/meminfo", cgroup: str | Path = "/sys/fs/cgroup", shm: str | Path = "/dev/shm"
) -> HostMemory:
    """This machine's memory: MemTotal, lowered to the cgroup limit where one is set; /dev/shm's size."""
    total = _meminfo_total(Path(meminfo))
    if total is None:
        raise UsageError(
            Text("{host_memory} auto: cannot read MemTotal from {path}", path=str(meminfo)),
            hint="pass the host's memory, e.g. --host-memory 512GiB",
            field="host_memory",
        )
    source = f"MemTotal ({meminfo})"
    limit = _cgroup_limit(Path(cgroup))
    if limit is not None and limit[0] < total:
        total, source = limit[0], f"the cgroup limit ({limit[1]})"
    return HostMemory(total, source, _shm_size(Path(shm)))


def host_memory(value: int | str | None, profile_bytes: int | None = None) -> HostMemory | None:
    """The host memory a plan is judged against: `value` (a size, or auto), else the GPU profile's
    `host_memory_bytes`, else None (unknown: a note, never a guess)."""
    if value is None:
        return None if profile_bytes is None else HostMemory(profile_bytes, "the GPU profile's host_memory_bytes")
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return read_host()
    size = parse_size(value)
    if size <= 0:
        raise UsageError(Text("{host_memory} must be positive"), hint="pass e.g. 512GiB", field="host_memory")
    return HostMemory(size, "given")
