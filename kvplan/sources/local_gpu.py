"""`--gpu-profile auto`: the local GPU, as `nvidia-smi`, `rocm-smi` or torch names it, matched to a profile.

Tried in order, each only when present: `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader`,
`rocm-smi --showproductname --csv`, then torch in a child process (`torch.cuda.get_device_name(0)`: torch is
never imported into kvplan's own process). The device name is matched to a profile by its id or aliases (the
shipped aliases are the names these tools print, e.g. "NVIDIA H100 80GB HBM3"). Nothing detected, or a name no
profile knows, is a one-line ProfileError. The first GPU is used; a machine with different GPUs says so.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass

from kvplan.errors import ProfileError

AUTO = "auto"
TIMEOUT_S = 15


@dataclass(frozen=True)
class LocalGpu:
    """A detected GPU: its name as the tool prints it, how many GPUs the tool listed, and which tool it was."""

    name: str
    count: int
    tool: str
    names: tuple[str, ...] = ()


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _nvidia_smi() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]) or ""
    return [row[0].strip() for row in csv.reader(io.StringIO(out)) if row and row[0].strip()]


def _rocm_smi() -> list[str]:
    if shutil.which("rocm-smi") is None:
        return []
    out = _run(["rocm-smi", "--showproductname", "--csv"]) or ""
    names = []
    for row in csv.DictReader(io.StringIO(out)):
        lowered = {str(k).strip().lower(): str(v).strip() for k, v in row.items() if k}
        name = lowered.get("card series") or lowered.get("card model") or ""
        if name and name.lower() not in ("n/a", "none"):
            names.append(name)
    return names


def _torch() -> list[str]:
    if importlib.util.find_spec("torch") is None:
        return []
    code = (
        "import torch\n"
        "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
        "print('\\n'.join(torch.cuda.get_device_name(i) for i in range(n)))"
    )
    out = _run([sys.executable, "-c", code]) or ""
    return [line.strip() for line in out.splitlines() if line.strip()]


DETECTORS = (("nvidia-smi", _nvidia_smi), ("rocm-smi", _rocm_smi), ("torch", _torch))


def detect() -> LocalGpu:
    """The first GPU the first tool that lists one names; ProfileError when none does."""
    tried = []
    for tool, find in DETECTORS:
        names = find()
        if names:
            return LocalGpu(names[0], len(names), tool, tuple(names))
        tried.append(tool)
    raise ProfileError(
        f"--gpu-profile auto: no GPU detected ({', '.join(tried)}: none found or none listed a GPU)",
        hint="pass a profile id instead, e.g. --gpu-profile h100-sxm-80gb (see `kvplan profiles list`)",
    )
