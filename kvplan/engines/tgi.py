"""Hugging Face Text Generation Inference: its launcher command only (kvplan has no model of its memory).

`--num-shard` is the tensor-parallel size; `--max-total-tokens` the longest request (prompt and output) and
`--max-input-tokens` one less; `--max-batch-prefill-tokens` the prefill token budget, at most one request.
"""

from __future__ import annotations

from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import FlagInputs, ServeCommand


class TgiCommand(ServeCommand):
    def command(self, f: FlagInputs) -> str:
        n = f.max_model_len
        return (
            f"text-generation-launcher --model-id {f.model} --num-shard {f.tp} --max-total-tokens {n} "
            f"--max-input-tokens {max(1, n - 1)} --max-batch-prefill-tokens {min(f.max_num_batched_tokens, n)}"
        )


ENTRY = EngineEntry(name="tgi", display="TGI", serving=TgiCommand(), plannable=True, splits_heads=True)
