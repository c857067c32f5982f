"""How fast a cold `kvplan estimate --json` answers, against `python -c "import torch"`, measured in one run.

Usage: python benchmarks/estimate_speed.py [--runs 7] [MODEL]
Prints the median wall time of each (fresh interpreter per run) and their ratio; the target is <= 0.2x.
Not a test: wall-clock numbers depend on the machine, so only the ratio is meaningful.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="meta-llama/Llama-3.1-8B")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    kvplan = shutil.which("kvplan", path=str(Path(sys.executable).parent)) or "kvplan"
    estimate = median_wall([kvplan, "estimate", args.model, "--seq-len", "32k", "--json"], args.runs)
    try:
        torch = median_wall([sys.executable, "-c", "import torch"], args.runs)
    except subprocess.CalledProcessError:
        sys.exit("torch is not installed here: install the `profile` extra to compare")
    print(f"kvplan estimate --json (cold, median of {args.runs}): {estimate * 1000:.0f} ms")
    print(f"python -c 'import torch'   (cold, median of {args.runs}): {torch * 1000:.0f} ms")
    print(f"ratio: {estimate / torch:.3f}x (target <= 0.2x)")


if __name__ == "__main__":
    main()
