"""How fast kvplan plans in one process, against `python -c "import torch"`, measured in the same run.

Two workloads, each timed once in this process after the 59 catalog models are resolved (config, shape and
weights read once each, outside the timing):
- estimates: every catalog model x 4 engines (vllm, sglang, transformers, llamacpp) x 5 lengths;
- plans: every catalog model x 3 GPU profiles, `kvplan.recommend` (vLLM).
Each total (best of `--repeat` runs, each over freshly resolved models) is divided by the best of 3 cold
`python -c "import torch"` runs, in wall time and in CPU time (the process's, the child's: steadier on a
shared machine). Targets: both <= 0.25x.
An estimate or plan a model cannot have (e.g. a llama.cpp cache it lacks, a model too big for the GPU) counts
as done: the time to say so is part of the work.

Usage: python benchmarks/planning_speed.py [--profile estimates|plans] [--repeat N]
`--profile` prints the 25 most expensive functions (cProfile, cumulative) of that workload instead.
Not a test: wall-clock numbers depend on the machine, so only the ratio is meaningful.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kvplan
from kvplan.errors import KvplanError
from kvplan.sources.catalog import catalog_names
from kvplan.sources.hardware import load_profile

ENGINES = ("vllm", "sglang", "transformers", "llamacpp")
LENGTHS = (1024, 4096, 16384, 65536, 131072)
GPUS = ("h100-sxm-80gb", "a100-sxm-40gb", "rtx-4090")


def torch_import_seconds(runs: int = 3) -> tuple[float, float]:
    """Best of `runs` cold `python -c "import torch"`: (wall seconds, CPU seconds of the child)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, wall)
        best_cpu = min(best_cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best, best_cpu


def resolved_models() -> list[kvplan.ResolvedModel]:
    models = []
    for name in catalog_names():
        model = kvplan.resolve(name, offline=True)
        model.weights(model.shape.dtype)  # read once, outside the timing
        models.append(model)
    return models


def estimates(models: list[kvplan.ResolvedModel]) -> int:
    done = 0
    for model in models:
        for engine in ENGINES:
            for n in LENGTHS:
                try:
                    kvplan.estimate(model, seq_len=n, engine=engine)
                except KvplanError:
                    pass
                done += 1
    return done


def plans(models: list[kvplan.ResolvedModel]) -> int:
    done = 0
    for model in models:
        for gpu in GPUS:
            try:
                kvplan.recommend(model, gpu_profile=gpu)
            except KvplanError:
                pass
            done += 1
    return done


def timed(work, repeat: int) -> tuple[float, float, int]:
    """Best of `repeat` runs of `work` over freshly resolved models (resolved outside the timing, so nothing a
    run derives and keeps on a model helps the next): (wall seconds, CPU seconds, items)."""
    best, best_cpu, count = float("inf"), float("inf"), 0
    for _ in range(repeat):
        models = resolved_models()
        start, start_cpu = time.perf_counter(), time.process_time()
        count = work(models)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("estimates", "plans"))
    parser.add_argument("--repeat", type=int, default=1, help="time each workload N times and keep the best")
    args = parser.parse_args()
    work = {"estimates": estimates, "plans": plans}
    if args.profile:
        models = resolved_models()
        profiler = cProfile.Profile()
        profiler.runcall(work[args.profile], models)
        pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(30)
        return
    load_profile(GPUS[0])  # the profiles' YAML is parsed once per process, as in any long-running one
    est_s, est_cpu, est_n = timed(estimates, args.repeat)
    plan_s, plan_cpu, plan_n = timed(plans, args.repeat)
    torch_s, torch_cpu = torch_import_seconds()
    print(
        f"59 catalog models x {len(ENGINES)} engines x {len(LENGTHS)} lengths; x {len(GPUS)} GPUs; each model resolved once"
    )
    print(
        f"estimates: {est_n} in {est_s * 1000:.0f} ms ({est_s / est_n * 1e3:.3f} ms each), CPU {est_cpu * 1000:.0f} ms"
    )
    print(
        f"plans:     {plan_n} in {plan_s * 1000:.0f} ms ({plan_s / plan_n * 1e3:.2f} ms each), CPU {plan_cpu * 1000:.0f} ms"
    )
    print(f"python -c 'import torch' (best of 3): {torch_s * 1000:.0f} ms, CPU {torch_cpu * 1000:.0f} ms")
    print(f"estimates / import torch: {est_s / torch_s:.3f}x wall, {est_cpu / torch_cpu:.3f}x CPU (target <= 0.25x)")
    print(f"plans / import torch:     {plan_s / torch_s:.3f}x wall, {plan_cpu / torch_cpu:.3f}x CPU (target <= 0.25x)")


if __name__ == "__main__":
    main()
