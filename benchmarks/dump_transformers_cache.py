"""Dump what transformers' KV cache actually holds, for every test config, as a JSON oracle.

Dev script (needs torch + transformers). Every config is built on the `meta` device in bf16 (no memory, exact
shapes) with `kvplan.profiling.ground_truth`, then measured at batch 1 and 2, decode_steps 0 and 2, for
seq_len in [1, 7, 1000, 5000, 9000] plus (W-1, W, W+1, 2W+3) for each distinct sliding window /
attention_chunk_size W of the config.

Configs: tests/fixtures/configs/*.json (copies of the collected real configs) and
tests/fixtures/configs/synthetic/*.json (tiny hand-written configs for families the collection lacks).

Output (`--out`, default /tmp/oracle.json): a JSON list of
    {"config": "<file name>" or "synthetic/<file name>", "model_type", "dtype", "seq_len", "batch",
     "decode_steps", "tokens": seq_len + decode_steps, "total": int (sum of tensor bytes),
     "storage_total": int (bytes of the distinct storages behind them: larger while a sliding layer's
     kept window is still a view of the whole prefill),
     "layers": [{"index", "class", "nbytes", "storage_nbytes",
                 "tensors": {name: {"shape": [...], "dtype": "bfloat16", "nbytes": int}}}]}
and next to it `<out stem>_meta.json` with versions, per-config timings, windows and the skipped configs
(with the reason). Usage:

    .venv/bin/python benchmarks/dump_transformers_cache.py [--out PATH] [--only SUBSTRING] [--timeout 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
import transformers

from kvplan.errors import KvplanError
from kvplan.profiling.ground_truth import build_model, hf_config_from_dict, measure_cache_steps

CONFIG_DIR = ROOT / "kvplan" / "sources" / "catalog"
SYNTHETIC_DIR = ROOT / "tests" / "fixtures" / "synthetic_configs"
BASE_SEQS = [1, 7, 1000, 5000, 9000]
BATCHES = [1, 2]
DECODE_STEPS = [0, 2]
DTYPE = "bfloat16"


class ConfigTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise ConfigTimeout(f"took more than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def windows_of(hf_config) -> list[int]:
    """Distinct sliding windows / attention chunk sizes the built config uses (0/None mean none)."""
    found = set()
    for attr in ("sliding_window", "attention_chunk_size"):
        value = getattr(hf_config, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            found.add(value)
    return sorted(found)


def seq_lens_for(windows: list[int]) -> list[int]:
    seqs = set(BASE_SEQS)
    for w in windows:
        seqs.update({w - 1, w, w + 1, 2 * w + 3})
    return sorted(s for s in seqs if s >= 1)


def json_layers(layers: list[dict]) -> list[dict]:
    return [
        {
            "index": layer["index"],
            "class": layer["class"],
            "nbytes": layer["nbytes"],
            "storage_nbytes": layer["storage_nbytes"],
            "tensors": {
                name: {"shape": list(shape), "dtype": dtype, "nbytes": nbytes}
                for name, (shape, dtype, nbytes) in layer["tensors"].items()
            },
        }
        for layer in layers
    ]


def class_summary(layers: list[dict]) -> str:
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer["class"]] = counts.get(layer["class"], 0) + 1
    return ", ".join(f"{n}x{cls}" for cls, n in counts.items())


def dump_config(name: str, raw: dict, timeout: float) -> tuple[list[dict], dict]:
    info: dict = {"config": name, "model_type": raw.get("model_type")}
    t0 = time.perf_counter()
    try:
        hf_config = hf_config_from_dict(raw)
    except KvplanError as exc:
        info.update(skipped=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - t0, 3))
        return [], info
    windows = windows_of(hf_config)
    seqs = seq_lens_for(windows)
    info.update(
        hf_model_type=hf_config.model_type,
        windows=windows,
        seq_lens=seqs,
        max_position_embeddings=getattr(hf_config, "max_position_embeddings", None),
    )
    entries: list[dict] = []
    try:
        with time_limit(timeout):
            model = build_model(hf_config, dtype=DTYPE, device="meta")
            info["build_seconds"] = round(time.perf_counter() - t0, 3)
            for seq in seqs:
                for batch in BATCHES:
                    by_steps = measure_cache_steps(
                        hf_config, seq_len=seq, batch=batch, dtype=DTYPE, record_steps=DECODE_STEPS, model=model
                    )
                    for steps in DECODE_STEPS:
                        layers = by_steps[steps]
                        entries.append(
                            {
                                "config": name,
                                "model_type": hf_config.model_type,
                                "dtype": DTYPE,
                                "seq_len": seq,
                                "batch": batch,
                                "decode_steps": steps,
                                "tokens": seq + steps,
                                "total": sum(layer["nbytes"] for layer in layers),
                                "storage_total": sum(layer["storage_nbytes"] for layer in layers),
                                "layers": json_layers(layers),
                            }
                        )
    except ConfigTimeout as exc:
        info.update(skipped=f"timeout: {exc} ({len(entries)} runs done, dropped)")
        entries = []
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        info.update(skipped=f"{type(exc).__name__}: {first_line} ({len(entries)} runs done, dropped)")
        entries = []
    info["seconds"] = round(time.perf_counter() - t0, 3)
    info["runs"] = len(entries)
    return entries, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/oracle.json")
    parser.add_argument("--only", default=None, help="only configs whose file name contains this substring")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per config before it is skipped")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    paths = [(p.name, p) for p in sorted(CONFIG_DIR.glob("*.json"))]
    paths += [(f"synthetic/{p.name}", p) for p in sorted(SYNTHETIC_DIR.glob("*.json"))]
    if args.only:
        paths = [(n, p) for n, p in paths if args.only in n]

    oracle: list[dict] = []
    infos: list[dict] = []
    t_all = time.perf_counter()
    for name, path in paths:
        entries, info = dump_config(name, json.loads(path.read_text()), args.timeout)
        oracle.extend(entries)
        infos.append(info)
        status = f"SKIP {info['skipped']}" if "skipped" in info else f"{info['runs']} runs"
        print(f"{info['seconds']:7.2f}s  {name:52s} {status}", flush=True)

    out = Path(args.out)
    out.write_text(json.dumps(oracle, separators=(",", ":")))
    meta = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": DTYPE,
        "device": "meta",
        "base_seq_lens": BASE_SEQS,
        "batches": BATCHES,
        "decode_steps": DECODE_STEPS,
        "seconds": round(time.perf_counter() - t_all, 2),
        "configs": infos,
    }
    meta_path = out.with_name(out.stem + "_meta.json")
    meta_path.write_text(json.dumps(meta, indent=1))

    print()
    print(f"{'config':52s} {'seq':>6s} {'B1 d0 bytes':>14s} {'B1 d0 storage':>14s} {'B2 d2 bytes':>14s}  layer classes")
    by_key = {(e["config"], e["seq_len"], e["batch"], e["decode_steps"]): e for e in oracle}
    for info in infos:
        if "skipped" in info:
            print(f"{info['config']:52s} {'-':>6s} SKIPPED: {info['skipped']}")
            continue
        for seq in info["seq_lens"]:
            a = by_key[(info["config"], seq, 1, 0)]
            b = by_key[(info["config"], seq, 2, 2)]
            print(
                f"{info['config']:52s} {seq:6d} {a['total']:14,d} {a['storage_total']:14,d} {b['total']:14,d}  "
                f"{class_summary(a['layers'])}"
            )
    print(
        f"\n{len(oracle)} runs, {sum('skipped' in i for i in infos)} configs skipped, "
        f"{meta['seconds']} s -> {out} (+ {meta_path})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
