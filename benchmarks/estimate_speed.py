"""How fast a cold `kvplan estimate CONFIG --json` answers, against `python -c "import torch"`, in one run.

Usage: python benchmarks/estimate_speed.py [--runs 7] [--no-bytecode] [MODEL]
MODEL defaults to the catalog's Llama-3.1-8B config.json (a file path, as `kvplan estimate ./config.json`).
Each command runs in a fresh interpreter `--runs` times; the medians (wall time, and the CPU time of the
child, steadier on a shared machine) and their ratio are printed; the target is <= 0.15x. The estimate runs
this checkout's kvplan (`python -m kvplan` from the repository root), whatever kvplan is installed, with its
bytecode cached as an installed package has it (in a temporary PYTHONPYCACHEPREFIX, after one warm-up run;
torch's is in site-packages); `--no-bytecode` compiles kvplan's sources at every run instead (as under
PYTHONDONTWRITEBYTECODE=1 in a source checkout). One more run with `-X importtime` lists what the JSON path
imported that it should not (Rich's console and tables, pydantic, YAML).
Not a test: wall-clock numbers depend on the machine, so only the ratio is meaningful.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "kvplan" / "sources" / "catalog" / "meta-llama__Llama-3.1-8B.json"
AVOIDED = ("rich.table", "rich.console", "pydantic", "typer._adapters", "yaml", "torch")


def timings(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall and child-CPU seconds of `runs` runs of `cmd`."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def imported(cmd: list[str], env: dict[str, str]) -> list[str]:
    """The modules of AVOIDED (or below them) that one run of `cmd` imported."""
    run = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, cwd=ROOT, env=env)
    names = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    return [a for a in AVOIDED if any(n == a or n.startswith(a + ".") for n in names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-bytecode", action="store_true", help="compile kvplan's sources at every run")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cache = tempfile.TemporaryDirectory(prefix="kvplan-pycache-")
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache.name
    cmd = [sys.executable, "-m", "kvplan", "estimate", args.model, "--seq-len", "32k", "--json"]
    timings(cmd, 1, env)  # warm-up: writes the bytecode (and the page cache holds the files)
    estimate, estimate_cpu = timings(cmd, args.runs, env)
    try:
        torch, torch_cpu = timings([sys.executable, "-c", "import torch"], args.runs, dict(os.environ))
    except subprocess.CalledProcessError:
        sys.exit("torch is not installed here: install the `profile` extra to compare")
    how = "sources compiled" if args.no_bytecode else "bytecode cached"
    print(
        f"kvplan estimate {Path(args.model).name} --json (cold, {how}, median of {args.runs}): "
        f"{estimate * 1000:.0f} ms, CPU {estimate_cpu * 1000:.0f} ms"
    )
    print(
        f"python -c 'import torch'   (cold, median of {args.runs}): {torch * 1000:.0f} ms, CPU {torch_cpu * 1000:.0f} ms"
    )
    print(f"ratio: {estimate / torch:.3f}x wall, {estimate_cpu / torch_cpu:.3f}x CPU (target <= 0.15x)")
    print("imported on the JSON path (should be none): " + (", ".join(imported(cmd, env)) or "none"))
    cache.cleanup()


if __name__ == "__main__":
    main()
