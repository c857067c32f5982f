"""Large inputs, measured in one run: a 10,000-point `--seq-len` sweep, a 1,000-deployment `check` and a 2 MB plan
read by libyaml's safe loader against PyYAML's pure-Python one (issue 14: targets <= 10 s each on 2 cores).

Each workload runs the code its command runs (the sweep resolves the model once and estimates every length; the
check reads the plan file and checks every deployment, each model read once). Printed: seconds of wall and CPU
time, and the loader ratio (pure-Python / libyaml, same text, same node tree). Not a test: the seconds depend on
the machine; the ratio is the figure to compare.

Usage: python benchmarks/large_inputs.py [--points 10000] [--deployments 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from kvplan.checking.check import check_deployments
from kvplan.checking.plans import load_plan
from kvplan.planning.estimate import estimate
from kvplan.planning.resolved import resolve
from kvplan.sources.yaml_files import _LOADER

MODELS = ("meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B", "google/gemma-3-27b-it", "deepseek-ai/DeepSeek-V3")


def timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def plan_text(deployments: int) -> str:
    lines = ["deployments:"]
    for i in range(deployments):
        model = MODELS[i % len(MODELS)]
        lines.append(
            f"  - {{name: d{i}, model: {model}, gpu: h100, gpus: 8, tensor_parallel_size: 8, "
            f"max_model_len: {4096 * (1 + i % 8)}, max_num_seqs: {1 + i % 4}}}"
        )
    return "\n".join(lines) + "\n"


def parse(text: str, loader) -> None:
    parser = loader(text)
    try:
        parser.construct_document(parser.get_single_node())
    finally:
        parser.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=1_000)
    args = parser.parse_args()

    model = resolve("meta-llama/Llama-3.1-8B", offline=True)
    lengths = range(1000, 1000 + args.points)
    wall, cpu = timed(lambda: [estimate(model, seq_len=n) for n in lengths])
    print(
        f"sweep: {args.points:,} lengths in {wall:.2f} s wall, {cpu:.2f} s CPU ({1e6 * cpu / args.points:.0f} us each)"
    )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_text(plan_text(args.deployments))
        wall, cpu = timed(lambda: check_deployments(load_plan(path), offline=True))
    print(f"check: {args.deployments:,} deployments in {wall:.2f} s wall, {cpu:.2f} s CPU")

    text = plan_text(max(1, 2_000_000 // len(plan_text(1))))
    fast = timed(lambda: parse(text, _LOADER))[1]
    slow = timed(lambda: parse(text, yaml.SafeLoader))[1]
    print(
        f"yaml: {len(text) / 1e6:.1f} MB plan, {_LOADER.__name__} {fast:.2f} s CPU, SafeLoader {slow:.2f} s CPU: "
        f"{slow / fast:.1f}x faster"
    )


if __name__ == "__main__":
    main()
