"""A longer fuzz run: the fuzz tests of tests/test_hostile.py (real configs with fields replaced by values of other
types, huge, negative, NaN or deleted, through estimate and recommend; random argument vectors through every
command) with many more examples than CI runs (`KVPLAN_FUZZ_EXAMPLES`).

Prints pytest's summary; any failure is a bug (never a traceback, exit codes 0/1/2, strict JSON).

Usage: python benchmarks/fuzz.py [--examples 5000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args()
    env = {**os.environ, "KVPLAN_FUZZ_EXAMPLES": str(args.examples), "HF_HUB_OFFLINE": "1"}
    tests = ["tests/test_hostile.py", "-k", "fuzz"]
    sys.exit(
        subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT, env=env)
    )


if __name__ == "__main__":
    main()
