"""Hugging Face Text Generation Inference: its launcher command only (kvplan has no model of its memory).

`--num-shard` is the tensor-parallel size; `--max-total-tokens` the longest request (prompt and output) and
`--max-input-tokens` one less; `--max-batch-prefill-tokens` the prefill token budget. TGI's router refuses a
prefill budget below `--max-input-tokens` unless the backend supports chunked prefill (`max_batch_prefill_tokens
must be >= max_input_tokens`, backends/v3/src/main.rs), which depends on the model and attention backend, so the
command gives at least max_input_tokens: it starts either way. `--kv-cache-dtype` takes `fp8_e4m3fn` or `fp8_e5m2`
only (launcher/src/main.rs `KVCacheDtype`); any other non-default KV dtype is named in a shell comment.
Sources: huggingface/text-generation-inference at db931fc (tests/fixtures/engine_args/SOURCES.md).
"""

from __future__ import annotations

from kvplan.core.units import short_dtype
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import FlagInputs, ServeCommand

# kvplan's KV dtype -> TGI's --kv-cache-dtype value (its KVCacheDtype enum)
KV_CACHE_DTYPES = {"fp8_e4m3": "fp8_e4m3fn", "fp8_e5m2": "fp8_e5m2"}
_DEFAULT_KV = ("bfloat16", "float16")  # the model dtype: TGI's default when --kv-cache-dtype is not given


class TgiCommand(ServeCommand):
    def command(self, f: FlagInputs) -> str:
        n = f.max_model_len
        max_input = max(1, n - 1)
        line = (
            f"text-generation-launcher --model-id {f.model} --num-shard {f.tp} --max-total-tokens {n} "
            f"--max-input-tokens {max_input} --max-batch-prefill-tokens {max(max_input, f.max_num_batched_tokens)}"
        )
        spelling = KV_CACHE_DTYPES.get(f.kv_dtype)
        if spelling:
            line += f" --kv-cache-dtype {spelling}"
        elif f.kv_dtype not in _DEFAULT_KV:
            line += f"  # TGI has no {short_dtype(f.kv_dtype)} KV cache (--kv-cache-dtype: fp8_e4m3fn, fp8_e5m2)"
        return line


ENTRY = EngineEntry(name="tgi", display="TGI", serving=TgiCommand(), plannable=True, splits_heads=True)
