"""Does `kvplan profile` time decoding like a bare `model()` loop would? Prints both and their ratio.

Same model object, same prompt, same cache class: the profiler's timed pass (a clock read after every decode
step, GPU synchronised) against a bare greedy loop timed once around all steps. Rounds alternate between the
two so that drift (thermal, other load) hits both; the medians are compared. Target: within 3 %.

    .venv/bin/python benchmarks/profile_timing_overhead.py [--rounds 7] [--steps 64] [--batch 1] [--seq 512]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from kvplan.profiling.profiler import Profiler, ProfileRequest

# Llama-shaped, ~100M parameters (the model of shared/notes/transformers-cache.md §5)
CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 32000,
    "hidden_size": 768,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
}


def bare_loop(model, ids: torch.Tensor, steps: int, sync) -> float:
    """Decode tokens/s of a plain loop: prefill, then `steps` one-token forwards, timed as a whole."""
    from transformers import DynamicCache

    from kvplan.profiling.ground_truth import cache_keyword

    name = cache_keyword(model)  # `cache` from transformers 5.24, `past_key_values` before
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{name: cache})
        nxt = out.logits[:, -1:].argmax(-1)
        cache = getattr(out, name)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=nxt, use_cache=True, **{name: cache})
            nxt = out.logits[:, -1:].argmax(-1)
            cache = getattr(out, name)
        sync()
        return ids.shape[0] * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--gpu", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(CONFIG))
        req = ProfileRequest(
            model=str(path),
            gpus=() if args.gpu is None else (args.gpu,),
            seq_lens=(args.seq,),
            batches=(args.batch,),
            decode_tokens=args.steps,
            repeats=1,
        )
        with Profiler(req) as prof:
            prof.run_point(args.batch, args.seq, "dynamic", timed=False)  # warm-up with the real shapes
            ids = prof.runner.ids(args.batch, args.seq)
            profiled, bare = [], []
            for _ in range(args.rounds):
                run = prof.run_point(args.batch, args.seq, "dynamic")
                profiled.append(run.decode_tokens_per_s)
                with prof.device.untimed():  # no heap-meter thread, as in a script without kvplan
                    bare.append(bare_loop(prof.model, ids, args.steps, prof.device.sync))
    p, b = statistics.median(profiled), statistics.median(bare)
    print(
        f"model: llama 100M fp32, batch {args.batch}, prompt {args.seq}, {args.steps} decode steps, "
        f"{args.rounds} alternating rounds, device {f'cuda:{args.gpu}' if args.gpu is not None else 'cpu'}"
    )
    print(f"kvplan profile decode tok/s (median): {p:,.2f}   runs: {', '.join(f'{x:.1f}' for x in profiled)}")
    print(f"bare model() loop decode tok/s (median): {b:,.2f}   runs: {', '.join(f'{x:.1f}' for x in bare)}")
    print(f"ratio profile / bare: {p / b:.4f} ({(p / b - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
