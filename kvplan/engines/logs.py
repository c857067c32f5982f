"""Read an engine's start-up log into structured figures: the parsing half of a future `kvplan explain LOG`.

`parse_log(text)` recognises the lines that vLLM (V0 and V1, 0.6 to 0.29), SGLang, llama.cpp and TensorRT-LLM print
while they size the KV cache, and returns an `EngineLog`: which engine and version, which model, the settings the log
states, every figure as a `LoggedNumber` (with the number of decimals it was printed with, so a later step can test
"equal within print rounding"), and the start-up errors.

Rules:
- Only literal log formats are read. Prose ("~4.2 GiB", "20.6M tokens", "38.43 GiB KV cache, 3,511,589 tokens") is
  never turned into a number; a quoted figure counts only when it sits in the engine's own wording.
- Nothing is guessed: a figure that a line does not print is absent, a setting that no line states is absent.
- Any text is accepted: unknown text gives `engine=None` and no numbers, never an exception. At most
  `MAX_LOG_CHARS` characters and `MAX_LINE_CHARS` per line are read, and every pattern is bounded, so a huge or
  binary input returns quickly.
- vLLM's `non-default args: {...}` and similar dict/keyword dumps are read with `ast.literal_eval`, one literal at a
  time; anything that is not a literal is skipped, never evaluated.

Units: `LoggedNumber.unit` is what the figure means. vLLM's old "GB" (`Loading model weights took 14.9888 GB`) and
SGLang's "GB" are GiB (both divide by 1024**3; see tests/fixtures/calibration/README.md), so they are recorded as
"GiB"; TensorRT-LLM's "GB" runtime-buffer lines keep "GB". The printed line is kept in `LoggedNumber.text`.

Pure Python (stdlib only); imports nothing from kvplan.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "ENGINES",
    "ERROR_KINDS",
    "MAX_LINE_CHARS",
    "MAX_LOG_CHARS",
    "NUMBER_NAMES",
    "EngineLog",
    "LoggedError",
    "LoggedNumber",
    "parse_log",
    "read_log",
]

MAX_LOG_CHARS = 16 * 1024 * 1024  # the head of a log: start-up lines come first
MAX_LINE_CHARS = 64 * 1024  # a vLLM `non-default args` line is a few KiB
_MAX_TEXT = 500  # characters of a line kept in LoggedNumber.text / LoggedError.text
_MAX_LITERAL = 8 * 1024  # longest single literal handed to ast.literal_eval

ENGINES = ("vllm", "sglang", "llamacpp", "tensorrt-llm")

# Every number name parse_log emits -> (unit, what it is). A later `kvplan explain` JSON uses these names.
NUMBER_NAMES: dict[str, tuple[str, str]] = {
    # shared across engines
    "available_kv_cache_memory": ("GiB", "memory given to the KV cache (vLLM per GPU)"),
    "kv_cache_tokens": ("tokens", "tokens the KV cache holds (vLLM 'GPU KV cache size', SGLang '#tokens', TRT-LLM)"),
    "num_gpu_blocks": ("blocks", "KV cache blocks on the GPU"),
    "num_cpu_blocks": ("blocks", "KV cache swap blocks on the CPU (vLLM V0)"),
    "max_concurrency": ("x", "requests of max_concurrency_tokens that fit at once"),
    "max_concurrency_tokens": ("tokens", "the per-request length of the max_concurrency line"),
    "weights_memory": ("GiB", "model weights (per GPU)"),
    "peak_activation": ("GiB", "profiled activation peak"),
    "non_torch_memory": ("GiB", "memory outside torch's allocator (NCCL, CUDA context, ...)"),
    "cudagraph_memory": ("GiB", "CUDA graph memory: estimated, budgeted or captured (see `form`)"),
    "total_gpu_memory": ("GiB", "the device's total memory"),
    "free_memory_on_startup": ("GiB", "free device memory when the engine started"),
    "memory_budget": ("GiB", "gpu_memory_utilization x total memory"),
    "weights_and_non_torch_memory": ("GiB", "vLLM: 'consumed memory (weights + non-torch)'"),
    "non_kv_cache_memory": ("GiB", "vLLM: 'Total non KV cache memory'"),
    "peak_torch_memory": ("GiB", "vLLM V0: peak_torch_memory"),
    "initial_memory_usage": ("GiB", "vLLM V0: initial_memory_usage"),
    "memory_usage_post_profile": ("GiB", "vLLM V0: memory_usage_post_profile"),
    "kv_cache_memory_to_fit_requested": ("bytes", "vLLM's suggested --kv-cache-memory to fit the requested memory"),
    "kv_cache_memory_to_fill_gpu": ("bytes", "vLLM's suggested --kv-cache-memory to fill the GPU"),
    "cudagraph_equivalent_gpu_memory_utilization": ("fraction", "the utilization without CUDA graph profiling"),
    "cudagraph_suggested_gpu_memory_utilization": ("fraction", "the utilization that keeps the old KV size"),
    "padding_layers": ("layers", "vLLM: padding layers added to a KV cache group"),
    "padding_waste_percent": ("%", "vLLM: the most KV memory the padding may waste"),
    "block_size": ("tokens", "tokens per block as the engine resolved it"),
    "mamba_cache_blocks": ("blocks", "vLLM: Mamba cache blocks available (start-up error)"),
    "requested_max_model_len": ("tokens", "vLLM: the model's max seq len named in a start-up error"),
    "kv_cache_needed": ("GiB", "vLLM: KV cache one max-length request needs"),
    "estimated_max_model_len": ("tokens", "vLLM: the longest max_model_len the memory allows"),
    "kv_cache_memory": ("GiB", "TensorRT-LLM: memory allocated for the paged KV cache"),
    # SGLang ("GB" in its logs is GiB)
    "max_total_num_tokens": ("tokens", "SGLang: the token pool size"),
    "sglang_k_size": ("GiB", "SGLang: K pool per GPU"),
    "sglang_v_size": ("GiB", "SGLang: V pool per GPU"),
    "sglang_kv_size": ("GiB", "SGLang: the MLA latent pool per GPU ('KV size')"),
    "sglang_max_mamba_cache_size": ("requests", "SGLang: Mamba state slots"),
    "sglang_conv_state_size": ("GiB", "SGLang: Mamba conv state per GPU"),
    "sglang_ssm_state_size": ("GiB", "SGLang: Mamba SSM state per GPU"),
    "sglang_full_layer_tokens": ("tokens", "SGLang: tokens of the full-attention pool"),
    "sglang_swa_layer_tokens": ("tokens", "SGLang: tokens of the sliding-window pool"),
    "sglang_swa_pool_memory": ("GiB", "SGLang: SWAKVPool mem usage"),
    "sglang_swa_size": ("tokens", "SGLang: SWAKVPool swa size"),
    "sglang_full_size": ("tokens", "SGLang: SWAKVPool full size"),
    "sglang_avail_mem_before_load": ("GiB", "SGLang: avail mem at 'Load weight begin'"),
    "sglang_avail_mem_after_load": ("GiB", "SGLang: avail mem at 'Load weight end'"),
    "sglang_avail_mem_after_pool": ("GiB", "SGLang: avail mem at 'Memory pool end'"),
    "sglang_avail_mem_before_cuda_graph": ("GiB", "SGLang: avail mem at 'Capture cuda graph begin'"),
    "sglang_avail_mem_after_cuda_graph": ("GiB", "SGLang: avail mem at 'Capture cuda graph end'"),
    "sglang_available_gpu_mem": ("GiB", "SGLang: available_gpu_mem on the max_total_num_tokens line"),
    # llama.cpp
    "llamacpp_kv_size": ("MiB", "llama.cpp: KV cache size"),
    "llamacpp_kv_cells": ("cells", "llama.cpp: KV cells"),
    "llamacpp_kv_layers": ("layers", "llama.cpp: layers in that KV cache"),
    "llamacpp_kv_seqs": ("seqs", "llama.cpp: n_seq_max of that KV cache"),
    "llamacpp_kv_streams": ("streams", "llama.cpp: n_stream of that KV cache (the '/N' in 'S/N seqs')"),
    "llamacpp_k_size": ("MiB", "llama.cpp: K part of the KV cache"),
    "llamacpp_v_size": ("MiB", "llama.cpp: V part of the KV cache"),
    "llamacpp_kv_buffer_size": ("MiB", "llama.cpp: one device's KV buffer"),
    "llamacpp_compute_buffer_size": ("MiB", "llama.cpp: one device's compute buffer"),
    "llamacpp_output_buffer_size": ("MiB", "llama.cpp: one device's output buffer"),
    "llamacpp_model_buffer_size": ("MiB", "llama.cpp: one device's model (weights) buffer"),
    "llamacpp_n_ctx": ("tokens", "llama.cpp: n_ctx (all sequences)"),
    "llamacpp_n_ctx_seq": ("tokens", "llama.cpp: context per sequence"),
    "llamacpp_n_ctx_train": ("tokens", "llama.cpp: the model's training context"),
    # TensorRT-LLM
    "trtllm_free_memory": ("GiB", "TensorRT-LLM: available memory when sizing the KV cache"),
    "trtllm_peak_memory": ("GiB", "TensorRT-LLM: peak memory of the profiling pass (torch + non-torch)"),
    "trtllm_execution_context_memory": ("MiB", "TensorRT-LLM: execution context"),
    "trtllm_runtime_buffers_memory": ("", "TensorRT-LLM: runtime buffers (unit as printed)"),
    "trtllm_decoder_memory": ("", "TensorRT-LLM: decoder (unit as printed)"),
}

ERROR_KINDS = (
    "mamba_cache_blocks_exceeded",  # vLLM: max_num_seqs (N) exceeds available Mamba cache blocks (M)
    "max_model_len_exceeds_kv_cache",  # vLLM: one max-length request does not fit in the KV cache
    "no_kv_cache_memory",  # vLLM: No available memory for the cache blocks
    "insufficient_free_memory",  # vLLM: free memory on startup is less than the desired utilization
    "cuda_out_of_memory",  # torch: CUDA out of memory
    "exception",  # any other `SomethingError: message` line
)


# ----------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LoggedNumber:
    """One figure as a log printed it.

    `value` is an int when printed without a decimal point, else a float; `decimals` is how many digits followed the
    point, so the printed value stands for [value - rounding, value + rounding]. `line` is the 1-based line number in
    the input, `text` that line (trimmed), `form` the recognised line format (e.g. "vllm.memory_summary"), `engine`
    the engine whose format it is.
    """

    name: str
    value: int | float
    unit: str
    decimals: int
    line: int
    text: str = ""
    form: str = ""
    engine: str | None = None

    @property
    def rounding(self) -> float:
        """Half a unit in the last printed place (0 for integers)."""
        return 0.0 if self.decimals == 0 else 0.5 * 10.0**-self.decimals

    @property
    def interval(self) -> tuple[float, float]:
        """The closed interval of true values that print as `value`."""
        return (self.value - self.rounding, self.value + self.rounding)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "decimals": self.decimals,
            "line": self.line,
            "text": self.text,
            "form": self.form,
            "engine": self.engine,
        }


@dataclass(frozen=True)
class LoggedError:
    """A start-up error: `kind` is one of ERROR_KINDS, `text` the message (continuation lines joined), `line` where
    it starts (1-based)."""

    kind: str
    text: str
    line: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "line": self.line}


@dataclass(frozen=True)
class EngineLog:
    """What a start-up log says. `settings` maps canonical setting names (tensor_parallel_size, max_model_len,
    gpu_memory_utilization, kv_cache_dtype, ...) to the values the log states; the engine's own dumps (vLLM's
    `non-default args`, its engine config, SGLang's `server_args`, llama.cpp's context lines, error messages) win over
    command lines quoted in the text."""

    engine: str | None = None
    engine_version: str | None = None
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict, hash=False)
    numbers: tuple[LoggedNumber, ...] = ()
    errors: tuple[LoggedError, ...] = ()
    lines_read: int = 0
    truncated: bool = False

    def get(self, name: str) -> tuple[LoggedNumber, ...]:
        """Every figure of that name, in log order (TP ranks and repeated runs print a line each)."""
        return tuple(n for n in self.numbers if n.name == name)

    def first(self, name: str) -> LoggedNumber | None:
        found = self.get(name)
        return found[0] if found else None

    def values(self, name: str) -> list[int | float]:
        return [n.value for n in self.get(name)]

    @property
    def names(self) -> set[str]:
        return {n.name for n in self.numbers}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (settings values that are not JSON types are given as their repr)."""
        return {
            "engine": self.engine,
            "engine_version": self.engine_version,
            "model": self.model,
            "settings": {k: _jsonable(v) for k, v in self.settings.items()},
            "numbers": [n.as_dict() for n in self.numbers],
            "errors": [e.as_dict() for e in self.errors],
            "lines_read": self.lines_read,
            "truncated": self.truncated,
        }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


# ----------------------------------------------------------------------------------------------- patterns
# Every quantifier on digits is bounded and every pattern is anchored on a literal, so no input makes a search
# slower than linear in the line length.

# A number is matched whole or not at all (the lookarounds), so a long printed value is never cut short.
_F = r"(?<![\d.])\d{1,12}(?:\.\d{1,17})?(?!\d)(?!\.\d)"  # 0.90, 14.9888, 875, 0.8999999761581421
_SF = r"(?<![\d.])-?\d{1,12}(?:\.\d{1,17})?(?!\d)(?!\.\d)"  # signed: vLLM prints negative CUDA-graph deltas
_I = r"(?<![\d,.])\d{1,15}(?!\d)(?!\.\d)"  # 23648
_IC = r"(?<![\d,.])(?:\d{1,3}(?:,\d{3}){1,6}|\d{1,15})(?!,?\d)(?!\.\d)"  # 1,505,552 or 1505552
_VER = r"\d{1,3}\.\d{1,4}(?:\.\d{1,4})?[\w.+-]{0,80}"


@dataclass(frozen=True)
class _Rule:
    form: str
    engine: str | None
    needle: str  # a literal the line must contain before the pattern is tried
    pattern: re.Pattern[str]
    numbers: tuple[tuple[str, str], ...] = ()  # (group, number name)
    settings: tuple[tuple[str, str], ...] = ()  # (group, setting name)
    unit_group: str | None = None  # a group holding the printed unit, for "unit as printed" names
    last: bool = (
        False  # the last such line states the setting (TRT-LLM sizes twice: a profiling pass, then the real one)
    )


def _rule(
    form: str,
    engine: str | None,
    needle: str,
    pattern: str,
    numbers: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
    unit_group: str | None = None,
    last: bool = False,
) -> _Rule:
    return _Rule(
        form,
        engine,
        needle,
        re.compile(pattern),
        tuple((numbers or {}).items()),
        tuple((settings or {}).items()),
        unit_group=unit_group,
        last=last,
    )


# One rule per row: (form, engine, needle, pattern, {group: number name}, {group: setting name}); see _Rule.
# fmt: off
_RULES: tuple[_Rule, ...] = (
    # ---- vLLM V1 (0.8 - 0.29)
    _rule("vllm.available_kv_cache", "vllm", "Available KV cache memory",
          rf"Available KV cache memory:\s{{0,4}}(?P<v>{_SF})\s?GiB", {"v": "available_kv_cache_memory"}),
    _rule("vllm.gpu_kv_cache_size", "vllm", "GPU KV cache size",
          rf"GPU KV cache size\s{{0,40}}:\s{{0,4}}(?P<v>{_IC})\s{{1,4}}tokens", {"v": "kv_cache_tokens"}),
    _rule("vllm.max_concurrency", "vllm", "aximum concurrency",
          rf"Maximum concurrency(?: for (?P<t>{_IC}) tokens per request)?:\s{{0,4}}(?P<v>{_F})x",
          {"v": "max_concurrency", "t": "max_concurrency_tokens"}),
    _rule("vllm.num_gpu_blocks", "vllm", "num_gpu_blocks is",
          rf"num_gpu_blocks is:\s{{0,4}}(?P<v>{_I})", {"v": "num_gpu_blocks"}),
    _rule("vllm.model_loading", "vllm", "Model loading took",
          rf"Model loading took\s{{1,4}}(?P<v>{_F})\s?Gi?B", {"v": "weights_memory"}),
    _rule("vllm.estimated_cudagraph", "vllm", "Estimated CUDA graph memory",
          rf"Estimated CUDA graph memory:\s{{0,4}}(?P<v>{_SF})\s?GiB", {"v": "cudagraph_memory"}),
    _rule("vllm.cudagraph_captured", "vllm", "Graph capturing finished",
          rf"Graph capturing finished in\s{{1,4}}{_F}\s{{1,4}}secs?,\s{{0,4}}took\s{{1,4}}(?P<v>{_SF})\s?GiB",
          {"v": "cudagraph_memory"}),
    _rule("vllm.cudagraph_pool", "vllm", "CUDA graph pool memory",
          rf"CUDA graph pool memory:\s{{0,4}}(?P<a>{_SF})\s?GiB \(actual\),\s{{0,4}}(?P<e>{_SF})\s?GiB \(estimated\)",
          {"a": "cudagraph_memory", "e": "cudagraph_memory"}),
    _rule("vllm.cudagraph_profiling", "vllm", "is equivalent to --gpu-memory-utilization",
          rf"--gpu-memory-utilization=(?P<u>{_F}) is equivalent to --gpu-memory-utilization=(?P<e>{_F})",
          {"e": "cudagraph_equivalent_gpu_memory_utilization"}, {"u": "gpu_memory_utilization"}),
    _rule("vllm.cudagraph_profiling", "vllm", "increase --gpu-memory-utilization to",
          rf"increase --gpu-memory-utilization to (?P<s>{_F})", {"s": "cudagraph_suggested_gpu_memory_utilization"}),
    _rule("vllm.padding_layers", "vllm", "padding layers",
          rf"Add (?P<n>{_I}) padding layers, may waste at most (?P<p>{_F})% KV cache memory",
          {"n": "padding_layers", "p": "padding_waste_percent"}),
    _rule("vllm.kv_cache_memory_reserved", "vllm", "memory for KV Cache as specified by",
          rf"[Rr]eserved (?P<v>{_F})\s?GiB memory for KV Cache as specified by", {"v": "available_kv_cache_memory"}),
    _rule("vllm.attention_block_size", "vllm", "Setting attention block size to",
          rf"Setting attention block size to (?P<v>{_I}) tokens", {"v": "block_size"}),
    _rule("vllm.kv_cache_dtype", "vllm", "data type to store kv cache",
          r"Using (?P<d>[\w.]{1,40}) data type to store kv cache", settings={"d": "kv_cache_dtype"}),
    _rule("vllm.chunked_prefill", "vllm", "Chunked prefill is enabled with max_num_batched_tokens",
          rf"Chunked prefill is enabled with max_num_batched_tokens=(?P<v>{_I})",
          settings={"v": "max_num_batched_tokens"}),
    _rule("vllm.max_model_len", "vllm", "Using max model len",
          rf"Using max model len (?P<v>{_I})", settings={"v": "max_model_len"}),
    _rule("vllm.num_gpu_blocks_override", "vllm", "num_gpu_blocks_override=",
          rf"num_gpu_blocks_override=(?P<v>{_I})", settings={"v": "num_gpu_blocks_override"}),
    # vLLM 0.11+ memory summary ("Free memory on device (...) on startup. Desired ... Actual usage is ...")
    _rule("vllm.memory_summary", "vllm", "Free memory on device (",
          rf"Free memory on device \((?P<f>{_F})/(?P<t>{_F})\s?GiB\)",
          {"f": "free_memory_on_startup", "t": "total_gpu_memory"}),
    _rule("vllm.memory_summary", "vllm", "GPU memory utilization",
          rf"[Dd]esired GPU memory utilization (?:is )?\((?P<u>{_F}),\s{{0,4}}(?P<b>{_F})\s?GiB\)",
          {"b": "memory_budget"}, {"u": "gpu_memory_utilization"}),
    _rule("vllm.memory_summary", "vllm", "GiB for weight", rf"(?P<v>{_SF})\s?GiB for weight", {"v": "weights_memory"}),
    _rule("vllm.memory_summary", "vllm", "GiB for consumed memory",
          rf"(?P<v>{_SF})\s?GiB for consumed memory", {"v": "weights_and_non_torch_memory"}),
    _rule("vllm.memory_summary", "vllm", "for peak activation",
          rf"(?P<v>{_SF})\s?GiB\s{{1,4}}for peak activation", {"v": "peak_activation"}),
    _rule("vllm.memory_summary", "vllm", "for non-torch memory",
          rf"(?P<v>{_SF})\s?GiB\s{{1,4}}for non-torch memory", {"v": "non_torch_memory"}),
    _rule("vllm.memory_summary", "vllm", "for CUDAGraph memory",
          rf"(?P<v>{_SF})\s?GiB\s{{1,4}}for CUDAGraph memory", {"v": "cudagraph_memory"}),
    _rule("vllm.memory_summary", "vllm", "to fit into requested memory",
          rf"--kv-cache-memory=(?P<v>{_I})`?\s{{0,4}}\({_F}\s?GiB\) to fit into requested memory",
          {"v": "kv_cache_memory_to_fit_requested"}),
    _rule("vllm.memory_summary", "vllm", "to fully utilize gpu memory",
          rf"--kv-cache-memory=(?P<v>{_I})`?\s{{0,4}}\({_F}\s?GiB\) to fully utilize gpu memory",
          {"v": "kv_cache_memory_to_fill_gpu"}),
    _rule("vllm.memory_summary", "vllm", "kv cache memory in use is",
          rf"Current kv cache memory in use is (?P<v>{_SF})\s?GiB", {"v": "available_kv_cache_memory"}),
    # vLLM 0.8 - 0.11 memory profiling (DEBUG on later versions)
    _rule("vllm.memory_profiling", "vllm", "Initial free memory:",
          rf"Initial free memory: (?P<f>{_F})\s?GiB; Requested memory: (?P<u>{_F}) \(util\), (?P<b>{_F})\s?GiB",
          {"f": "free_memory_on_startup", "b": "memory_budget"}, {"u": "gpu_memory_utilization"}),
    _rule("vllm.memory_profiling", "vllm", "Total non KV cache memory",
          rf"Total non KV cache memory:\s{{0,4}}(?P<v>{_SF})\s?GiB", {"v": "non_kv_cache_memory"}),
    _rule("vllm.memory_profiling", "vllm", "torch peak memory increase",
          rf"torch peak memory increase:\s{{0,4}}(?P<v>{_SF})\s?GiB", {"v": "peak_activation"}),
    _rule("vllm.memory_profiling", "vllm", "non-torch forward increase memory",
          rf"non-torch forward increase memory:\s{{0,4}}(?P<v>{_SF})\s?GiB", {"v": "non_torch_memory"}),
    _rule("vllm.memory_profiling", "vllm", "weights memory:",
          rf"; weights memory:\s{{0,4}}(?P<v>{_SF})\s?GiB", {"v": "weights_memory"}),
    # vLLM V0 (0.6 - 0.7)
    _rule("vllm.v0_loading_weights", "vllm", "Loading model weights took",
          rf"Loading model weights took\s{{1,4}}(?P<v>{_F})\s?Gi?B", {"v": "weights_memory"}),
    _rule("vllm.v0_blocks", "vllm", " blocks: ",
          rf"# (?:GPU|CUDA|cuda|NPU|npu|XPU|xpu|HPU|hpu|TPU|tpu) blocks: (?P<g>{_I}), # CPU blocks: (?P<c>{_I})",
          {"g": "num_gpu_blocks", "c": "num_cpu_blocks"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"total_gpu_memory=(?P<v>{_F})\s?GiB", {"v": "total_gpu_memory"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"initial_memory_usage=(?P<v>{_F})\s?GiB", {"v": "initial_memory_usage"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"peak_torch_memory=(?P<v>{_F})\s?GiB", {"v": "peak_torch_memory"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"memory_usage_post_profile=(?P<v>{_F})\s?GiB", {"v": "memory_usage_post_profile"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"non_torch_memory=(?P<v>{_SF})\s?GiB", {"v": "non_torch_memory"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"kv_cache_size=(?P<v>{_SF})\s?GiB", {"v": "available_kv_cache_memory"}),
    _rule("vllm.v0_memory_profiling_results", "vllm", "Memory profiling results:",
          rf"GiB gpu_memory_utilization=(?P<u>{_F})", settings={"u": "gpu_memory_utilization"}),
    _rule("vllm.v0_memory_profiling", "vllm", "the current vLLM instance can use total_gpu_memory",
          rf"can use total_gpu_memory \((?P<t>{_F})\s?GiB\) x gpu_memory_utilization \((?P<u>{_F})\) = (?P<b>{_F})\s?GiB",
          {"t": "total_gpu_memory", "b": "memory_budget"}, {"u": "gpu_memory_utilization"}),
    _rule("vllm.v0_memory_profiling", "vllm", "model weights take",
          rf"model weights take (?P<v>{_SF})\s?GiB", {"v": "weights_memory"}),
    _rule("vllm.v0_memory_profiling", "vllm", "non_torch_memory takes",
          rf"non_torch_memory takes (?P<v>{_SF})\s?GiB", {"v": "non_torch_memory"}),
    _rule("vllm.v0_memory_profiling", "vllm", "activation peak memory takes",
          rf"activation peak memory takes (?P<v>{_SF})\s?GiB", {"v": "peak_activation"}),
    _rule("vllm.v0_memory_profiling", "vllm", "reserved for KV Cache is",
          rf"reserved for KV Cache is (?P<v>{_SF})\s?GiB", {"v": "available_kv_cache_memory"}),
    # vLLM start-up errors (the error record itself is made by _ERROR_RULES)
    _rule("vllm.error.max_seq_len", "vllm", "max seq len (",
          rf"max seq len \((?P<v>{_I})\)", {"v": "requested_max_model_len"}, {"v": "max_model_len"}),
    _rule("vllm.error.max_seq_len", "vllm", "can be stored in KV cache (",
          rf"maximum number of tokens that can be stored in KV cache \((?P<v>{_I})\)", {"v": "kv_cache_tokens"}),
    _rule("vllm.error.kv_cache_needed", "vllm", "KV cache is needed",
          rf"(?P<v>{_F})\s?GiB KV cache is needed", {"v": "kv_cache_needed"}),
    _rule("vllm.error.kv_cache_needed", "vllm", "than the available KV cache memory (",
          rf"than the available KV cache memory \((?P<v>{_SF})\s?GiB\)", {"v": "available_kv_cache_memory"}),
    _rule("vllm.error.kv_cache_needed", "vllm", "estimated maximum model length is",
          rf"estimated maximum model length is (?P<v>{_I})", {"v": "estimated_max_model_len"}),
    _rule("vllm.error.mamba_cache_blocks", "vllm", "exceeds available Mamba cache blocks",
          rf"(?:max_num_seqs \((?P<s>{_I})\) )?exceeds available Mamba cache blocks \((?P<v>{_I})\)",
          {"v": "mamba_cache_blocks"}, {"s": "max_num_seqs"}),
    # ---- SGLang
    _rule("sglang.kv_cache_allocated", "sglang", "KV Cache is allocated",
          rf"KV Cache is allocated\. #tokens: (?P<n>{_I})", {"n": "kv_cache_tokens"}),
    _rule("sglang.kv_cache_allocated", "sglang", "KV Cache is allocated",
          rf"K size: (?P<k>{_F})\s?GB, V size: (?P<v>{_F})\s?GB", {"k": "sglang_k_size", "v": "sglang_v_size"}),
    _rule("sglang.kv_cache_allocated", "sglang", "KV Cache is allocated",  # MLA: one latent per token
          rf", KV size: (?P<v>{_F})\s?GB", {"v": "sglang_kv_size"}),
    _rule("sglang.mamba_cache_allocated", "sglang", "Mamba Cache is allocated",
          rf"Mamba Cache is allocated\. max_mamba_cache_size: (?P<n>{_I})", {"n": "sglang_max_mamba_cache_size"}),
    _rule("sglang.mamba_cache_allocated", "sglang", "Mamba Cache is allocated",
          rf"conv_state size: (?P<v>{_F})\s?GB", {"v": "sglang_conv_state_size"}),
    _rule("sglang.mamba_cache_allocated", "sglang", "Mamba Cache is allocated",
          rf"ssm_state size: (?P<v>{_F})\s?GB", {"v": "sglang_ssm_state_size"}),
    _rule("sglang.max_total_num_tokens", "sglang", "max_total_num_tokens=",
          rf"max_total_num_tokens=(?P<v>{_I})", {"v": "max_total_num_tokens"}),
    _rule("sglang.max_total_num_tokens", "sglang", "max_total_num_tokens=",
          rf"chunked_prefill_size=(?P<v>-?{_I})", settings={"v": "chunked_prefill_size"}),
    _rule("sglang.max_total_num_tokens", "sglang", "max_total_num_tokens=",
          rf"max_prefill_tokens=(?P<v>{_I})", settings={"v": "max_prefill_tokens"}),
    _rule("sglang.max_total_num_tokens", "sglang", "max_total_num_tokens=",
          rf"max_running_requests=(?P<v>{_I})", settings={"v": "max_num_seqs"}),
    _rule("sglang.max_total_num_tokens", "sglang", "max_total_num_tokens=",
          rf"context_len=(?P<v>{_I})", settings={"v": "max_model_len"}),
    _rule("sglang.max_total_num_tokens", "sglang", "max_total_num_tokens=",
          rf"available_gpu_mem=(?P<v>{_F})\s?GB", {"v": "sglang_available_gpu_mem"}),
    _rule("sglang.load_weight_begin", "sglang", "Load weight begin",
          rf"Load weight begin\. avail mem=(?P<v>{_F})\s?GB", {"v": "sglang_avail_mem_before_load"}),
    _rule("sglang.load_weight_end", "sglang", "Load weight end",
          rf"avail mem=(?P<a>{_F})\s?GB, mem usage=(?P<w>{_F})\s?GB",
          {"a": "sglang_avail_mem_after_load", "w": "weights_memory"}),
    _rule("sglang.memory_pool_end", "sglang", "Memory pool end",
          rf"Memory pool end\. avail mem=(?P<v>{_F})\s?GB", {"v": "sglang_avail_mem_after_pool"}),
    _rule("sglang.cuda_graph_begin", "sglang", "Capture cuda graph begin",
          rf"avail mem=(?P<v>{_F})\s?GB", {"v": "sglang_avail_mem_before_cuda_graph"}),
    _rule("sglang.cuda_graph_end", "sglang", "Capture cuda graph end",
          rf"mem usage=(?P<v>{_F})\s?GB", {"v": "cudagraph_memory"}),
    _rule("sglang.cuda_graph_end", "sglang", "Capture cuda graph end",
          rf"avail mem=(?P<v>{_F})\s?GB", {"v": "sglang_avail_mem_after_cuda_graph"}),
    _rule("sglang.sliding_window_pool", "sglang", "full_layer_tokens=",
          rf"full_layer_tokens=(?P<f>{_I}), swa_layer_tokens=(?P<s>{_I})",
          {"f": "sglang_full_layer_tokens", "s": "sglang_swa_layer_tokens"}),
    _rule("sglang.swa_kv_pool", "sglang", "SWAKVPool mem usage",
          rf"SWAKVPool mem usage: (?P<m>{_F})\s?GB, swa size: (?P<s>{_I}), full size: (?P<f>{_I})",
          {"m": "sglang_swa_pool_memory", "s": "sglang_swa_size", "f": "sglang_full_size"}),
    _rule("sglang.kv_cache_dtype", "sglang", "Using KV cache dtype:",
          r"Using KV cache dtype: (?P<d>[\w.]{1,40})", settings={"d": "kv_cache_dtype"}),
    # ---- llama.cpp
    _rule("llamacpp.kv_cache", "llamacpp", " cells, ",
          rf"size\s{{0,4}}=\s{{0,12}}(?P<size>{_F}) MiB \(\s{{0,12}}(?P<cells>{_I}) cells,\s{{0,12}}(?P<layers>{_I}) layers,"
          rf"\s{{0,12}}(?P<seqs>{_I})(?:/(?P<streams>{_I}))? seqs\), K \((?P<kt>\w{{1,20}})\):\s{{0,12}}(?P<k>{_F}) MiB,"
          rf" V \((?P<vt>\w{{1,20}})\):\s{{0,12}}(?P<v>{_F}) MiB",
          {
          "size": "llamacpp_kv_size",
          "cells": "llamacpp_kv_cells",
          "layers": "llamacpp_kv_layers",
          "seqs": "llamacpp_kv_seqs",
          "streams": "llamacpp_kv_streams",
          "k": "llamacpp_k_size",
          "v": "llamacpp_v_size",
          },
          {"kt": "cache_type_k", "vt": "cache_type_v", "seqs": "max_num_seqs"}),
    _rule("llamacpp.kv_self_size", "llamacpp", "KV self size",
          rf"KV self size\s{{0,4}}=\s{{0,12}}(?P<size>{_F}) MiB, K \((?P<kt>\w{{1,20}})\):\s{{0,12}}(?P<k>{_F}) MiB, "
          rf"V \((?P<vt>\w{{1,20}})\):\s{{0,12}}(?P<v>{_F}) MiB",
          {"size": "llamacpp_kv_size", "k": "llamacpp_k_size", "v": "llamacpp_v_size"},
          {"kt": "cache_type_k", "vt": "cache_type_v"}),
    _rule("llamacpp.iswa_cache", "llamacpp", "KV cache, size =",
          rf"creating\s{{1,12}}(?:non-SWA|SWA) KV cache, size = (?P<v>{_I}) cells", {"v": "llamacpp_kv_cells"}),
    _rule("llamacpp.kv_buffer", "llamacpp", "KV buffer size",
          rf"KV buffer size\s{{0,4}}=\s{{0,12}}(?P<v>{_F}) MiB", {"v": "llamacpp_kv_buffer_size"}),
    _rule("llamacpp.compute_buffer", "llamacpp", "compute buffer size",
          rf"compute buffer size\s{{0,4}}=\s{{0,12}}(?P<v>{_F}) MiB", {"v": "llamacpp_compute_buffer_size"}),
    _rule("llamacpp.output_buffer", "llamacpp", "output buffer size",
          rf"output buffer size\s{{0,4}}=\s{{0,12}}(?P<v>{_F}) MiB", {"v": "llamacpp_output_buffer_size"}),
    _rule("llamacpp.model_buffer", "llamacpp", "model buffer size",
          rf"model buffer size\s{{0,4}}=\s{{0,12}}(?P<v>{_F}) MiB", {"v": "llamacpp_model_buffer_size"}),
    _rule("llamacpp.context", "llamacpp", "n_ctx",
          rf"(?:llama_context|llama_new_context_with_model): n_ctx\s{{1,20}}=\s{{0,4}}(?P<v>{_I})",
          {"v": "llamacpp_n_ctx"}, {"v": "n_ctx"}),
    _rule("llamacpp.context", "llamacpp", "n_ctx_",
          rf"(?:llama_context|llama_new_context_with_model): n_ctx_(?:per_)?seq\s{{1,20}}=\s{{0,4}}(?P<v>{_I})",
          {"v": "llamacpp_n_ctx_seq"}, {"v": "max_model_len"}),
    _rule("llamacpp.context", "llamacpp", "< n_ctx_train (",
          rf"n_ctx_(?:per_)?seq \((?P<s>{_I})\) < n_ctx_train \((?P<t>{_I})\)",
          {"s": "llamacpp_n_ctx_seq", "t": "llamacpp_n_ctx_train"}, {"s": "max_model_len"}),
    _rule("llamacpp.context", "llamacpp", "n_ctx_train",
          rf"(?:print_info|llm_load_print_meta): n_ctx_train\s{{1,20}}=\s{{0,4}}(?P<v>{_I})",
          {"v": "llamacpp_n_ctx_train"}),
    _rule("llamacpp.context", "llamacpp", "n_seq_max",
          rf"(?:llama_context|llama_new_context_with_model): n_seq_max\s{{1,20}}=\s{{0,4}}(?P<v>{_I})",
          settings={"v": "max_num_seqs"}),
    _rule("llamacpp.context", "llamacpp", "n_batch",
          rf"(?:llama_context|llama_new_context_with_model): n_batch\s{{1,20}}=\s{{0,4}}(?P<v>{_I})",
          settings={"v": "n_batch"}),
    _rule("llamacpp.context", "llamacpp", "n_ubatch",
          rf"(?:llama_context|llama_new_context_with_model): n_ubatch\s{{1,20}}=\s{{0,4}}(?P<v>{_I})",
          settings={"v": "n_ubatch"}),
    _rule("llamacpp.context", "llamacpp", "flash_attn",
          r"(?:llama_context|llama_new_context_with_model): flash_attn\s{1,20}=\s{0,4}(?P<v>\w{1,12})",
          settings={"v": "flash_attn"}),
    _rule("llamacpp.context", "llamacpp", "kv_unified",
          r"llama_context: kv_unified\s{1,20}=\s{0,4}(?P<v>\w{1,12})", settings={"v": "kv_unified"}),
    # ---- TensorRT-LLM
    _rule("trtllm.kv_cache_allocated", "tensorrt-llm", "for max tokens in paged KV cache",
          rf"Allocated (?P<m>{_F})\s?GiB for max tokens in paged KV cache \((?P<n>{_I})\)",
          {"m": "kv_cache_memory", "n": "kv_cache_tokens"}),
    _rule("trtllm.kv_cache_memory_usage", "tensorrt-llm", "Memory usage when calculating max tokens in paged kv cache",
          rf"total: (?P<t>{_F})\s?GiB, available: (?P<a>{_F})\s?GiB",
          {"t": "total_gpu_memory", "a": "trtllm_free_memory"}),
    _rule("trtllm.primary_pool", "tensorrt-llm", "Number of blocks in KV cache primary pool",
          rf"Number of blocks in KV cache primary pool: (?P<v>{_I})", {"v": "num_gpu_blocks"}),
    _rule("trtllm.tokens_per_block", "tensorrt-llm", "Number of tokens per block",
          rf"Number of tokens per block: (?P<v>{_I})", {"v": "block_size"}),
    _rule("trtllm.engine_size", "tensorrt-llm", "Loaded engine size",
          rf"Loaded engine size: (?P<v>{_F})\s?MiB", {"v": "weights_memory"}),
    _rule("trtllm.execution_context", "tensorrt-llm", "for execution context memory",
          rf"Allocated (?P<v>{_F})\s?MiB for execution context memory", {"v": "trtllm_execution_context_memory"}),
    _rule("trtllm.runtime_buffers", "tensorrt-llm", "GPU memory for runtime buffers",
          rf"Allocated (?P<v>{_F})\s?(?P<u>[KMG]i?B) GPU memory for runtime buffers",
          {"v": "trtllm_runtime_buffers_memory"}, unit_group="u"),
    _rule("trtllm.decoder", "tensorrt-llm", "GPU memory for decoder",
          rf"Allocated (?P<v>{_F})\s?(?P<u>[KMG]i?B) GPU memory for decoder", {"v": "trtllm_decoder_memory"},
          unit_group="u"),
    # TensorRT-LLM's PyTorch backend (1.x): a memory-profiling pass, then the real KV cache
    _rule("trtllm.weights", "tensorrt-llm", "for model weights",
          rf"Use (?P<v>{_F})\s?(?P<u>[KMG]i?B) for model weights", {"v": "weights_memory"}, unit_group="u"),
    _rule("trtllm.memory_profiling", "tensorrt-llm", "after loading model weights (inside torch)",
          rf"after loading model weights \(inside torch\) in memory usage profiling: (?P<v>{_F})\s?GiB",
          {"v": "weights_memory"}),
    _rule("trtllm.non_torch_after_weights", "tensorrt-llm", "after loading model weights (outside torch)",
          rf"after loading model weights \(outside torch\) in memory usage profiling: (?P<v>{_F})\s?GiB",
          {"v": "non_torch_memory"}),
    _rule("trtllm.memory_profiling", "tensorrt-llm", "dynamically allocated during inference",
          rf"dynamically allocated during inference \(inside torch\) in memory usage profiling: (?P<v>{_F})\s?GiB",
          {"v": "peak_activation"}),
    _rule("trtllm.non_torch_after_profiling", "tensorrt-llm", "Memory used outside torch",
          rf"Memory used outside torch \(e\.g\., NCCL and CUDA graphs\) in memory usage profiling: (?P<v>{_F})\s?GiB",
          {"v": "non_torch_memory"}),
    _rule("trtllm.memory_profiling", "tensorrt-llm", "Peak memory during memory usage profiling",
          rf"Peak memory during memory usage profiling \(torch \+ non-torch\): (?P<v>{_F})\s?GiB",
          {"v": "trtllm_peak_memory"}),
    _rule("trtllm.memory_profiling", "tensorrt-llm", "available KV cache memory when calculating max tokens",
          rf"available KV cache memory when calculating max tokens: (?P<v>{_F})\s?GiB",
          {"v": "available_kv_cache_memory"}),
    _rule("trtllm.memory_profiling", "tensorrt-llm", "available KV cache memory when calculating max tokens",
          rf"fraction is set (?P<f>{_F})", settings={"f": "kv_cache_free_gpu_mem_fraction"}),
    _rule("trtllm.memory_profiling", "tensorrt-llm", "available KV cache memory when calculating max tokens",
          rf"device total memory (?P<v>{_F})\s?GiB", {"v": "total_gpu_memory"}),
    _rule("trtllm.estimated_kv_cache", "tensorrt-llm", "Estimated max memory in KV cache",
          rf"Estimated max memory in KV cache\s{{0,4}}:\s{{0,4}}(?P<v>{_F})\s?GiB", {"v": "kv_cache_memory"}),
    _rule("trtllm.blocks_per_sequence", "tensorrt-llm", "primary blocks=",
          rf"tokens per block=(?P<b>{_I}), primary blocks=(?P<n>{_I})", {"b": "block_size", "n": "num_gpu_blocks"}),
    _rule("trtllm.limits", "tensorrt-llm", "max_num_requests=",
          rf"max_seq_len=(?P<l>{_I}), max_num_requests=(?P<r>{_I}), max_num_tokens=(?P<t>{_I})",
          settings={"l": "max_model_len", "r": "max_num_seqs", "t": "max_num_batched_tokens"}, last=True),
)
# fmt: on

# Units that differ from a name's default unit, by form.
_UNIT_OVERRIDES = {("trtllm.engine_size", "weights_memory"): "MiB"}  # else the name's unit, or the printed one

# (engine, rank, needle, pattern) -> a version. Rank 0: the engine's own line; rank 1: a label ("vLLM version: X").
_VERSION_RULES: tuple[tuple[str, int, str, re.Pattern[str]], ...] = (
    ("vllm", 0, "vLLM API server version", re.compile(rf"vLLM API server version\s{{1,4}}v?(?P<v>{_VER})")),
    ("vllm", 0, "LLM engine (v", re.compile(rf"Initializing an? (?:V\d )?LLM engine \(v(?P<v>{_VER})\)")),
    ("vllm", 1, "vLLM", re.compile(rf"\bvLLM(?: [Vv]ersion)?(?:\*\*)?:(?:\*\*)?\s{{0,4}}`?v?(?P<v>{_VER})")),
    ("vllm", 1, "vLLM version ", re.compile(rf"\bvLLM version\s{{1,4}}v?(?P<v>{_VER})")),
    ("sglang", 1, "version", re.compile(rf"\b[Ss][Gg][Ll]ang version:?\s{{0,4}}v?(?P<v>{_VER})")),
    ("sglang", 1, "sglang==", re.compile(rf"\bsglang==(?P<v>{_VER})")),
    ("tensorrt-llm", 0, "TensorRT-LLM version", re.compile(rf"TensorRT-LLM version:\s{{0,4}}v?(?P<v>{_VER})")),
    ("llamacpp", 0, "build = ", re.compile(r"main: build = (?P<v>\d{1,7} \([0-9a-f]{6,40}\))")),
)
# Anchored on the message (the line less its log prefix).
_BANNER_VERSION = re.compile(rf"^[\s█▀▄]{{0,80}}version\s{{1,4}}v?(?P<v>{_VER})\s{{0,4}}$")
_BANNER_MODEL = re.compile(r"^[\s█▀▄]{0,80}model\s{2,12}(?P<m>\S{1,500})\s{0,4}$")
_LLAMACPP_BUILD = re.compile(r"^(?:build|version): (?P<v>\d{1,7} \([0-9a-f]{6,40}\))")
_LLAMA_BENCH_BUILD = re.compile(r"^build: (?P<h>[0-9a-f]{6,40}) \((?P<n>\d{1,7})\)\s{0,4}$")  # llama-bench: hash first
_SGLANG_ENV = re.compile(rf"^sglang:\s{{0,4}}(?P<v>{_VER})\s{{0,4}}$")

_LLAMACPP_MODEL_PATH = re.compile(
    r"loaded meta data with \d{1,9} key-value pairs and \d{1,9} tensors from (?P<p>\S{1,1000})"
)
_LLAMACPP_GENERAL_NAME = re.compile(r"general\.name(?:\s{1,40}str)?\s{1,40}=\s(?P<n>.{1,200})$")

# The log prefixes vLLM, SGLang, TRT-LLM and people's quoting put before a message; each part is bounded.
_PREFIX = re.compile(
    r"^[\s>▎|*+`#-]{0,20}"
    r"(?:\([\w.-]{1,60} pid=\d{1,10}\)\s{0,4})?"
    r"(?:\[rank\d{1,6}\]:\s{0,4})?"
    r"(?:\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?: [\w-]{1,20})?\]\s{0,4})?"
    r"(?:\d{4}-\d{2}-\d{2}[ T])?(?:\d{2}:\d{2}:\d{2}(?:[.,]\d{1,6})?\s{1,4})?"
    r"(?:(?:\[TensorRT-LLM\])?\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|I|W|E)\]?\s{1,4})?"
    r"(?:\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?\s{1,4})?"
    r"(?:\[[\w./-]{1,100}:\d{1,7}\]\s{0,4})?"
)
_ANSI = re.compile(r"\x1b\[[0-9;]{0,20}[A-Za-z]")

# Start-up error messages (a record each); the numbers in them come from _RULES.
_ERROR_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("mamba_cache_blocks_exceeded", "Mamba cache blocks", re.compile(r"exceeds available Mamba cache blocks")),
    ("max_model_len_exceeds_kv_cache", "To serve at least one request", re.compile(r"To serve at least one request")),
    (
        "max_model_len_exceeds_kv_cache",
        "is larger than the maximum number of tokens",
        re.compile(r"max seq len \(\d{1,15}\) is larger than the maximum number of tokens that can be stored"),
    ),
    (
        "no_kv_cache_memory",
        "No available memory for the cache blocks",
        re.compile(r"No available memory for the cache"),
    ),
    (
        "insufficient_free_memory",
        "is less than desired GPU memory utilization",
        re.compile(r"on startup is less than desired GPU memory utilization"),
    ),
    ("cuda_out_of_memory", "out of memory", re.compile(r"CUDA out of memory")),
    ("cuda_out_of_memory", "OutOfMemoryError", re.compile(r"OutOfMemoryError")),
)
_EXCEPTION = re.compile(r"(?<![\w.])(?P<cls>[A-Za-z_][\w.]{0,80}(?:Error|Exception)):\s{1,4}(?P<msg>\S.{0,2000})")
_ERROR_ENDS = ("estimated maximum model length", "when initializing the engine", "gpu_memory_utilization.")


# ----------------------------------------------------------------------------------------------- settings

# Canonical setting names: the engine's own keys (vLLM args and config, SGLang ServerArgs, TRT-LLM) -> our name.
_SETTING_KEYS = {
    "tensor_parallel_size": "tensor_parallel_size",
    "tp_size": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
    "pp_size": "pipeline_parallel_size",
    "data_parallel_size": "data_parallel_size",
    "dp_size": "data_parallel_size",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "mem_fraction_static": "mem_fraction_static",
    "max_model_len": "max_model_len",
    "max_seq_len": "max_model_len",
    "context_length": "max_model_len",
    "max_num_seqs": "max_num_seqs",
    "max_running_requests": "max_num_seqs",
    "max_num_batched_tokens": "max_num_batched_tokens",
    "chunked_prefill_enabled": "enable_chunked_prefill",
    "kv_cache_dtype": "kv_cache_dtype",
    "block_size": "block_size",
    "page_size": "page_size",
    "enforce_eager": "enforce_eager",
    "dtype": "dtype",
    "quantization": "quantization",
    "enable_prefix_caching": "enable_prefix_caching",
    "enable_chunked_prefill": "enable_chunked_prefill",
    "speculative_config": "speculative_config",
    "speculative_algorithm": "speculative_algorithm",
    "kv_cache_memory_bytes": "kv_cache_memory_bytes",
    "cpu_offload_gb": "cpu_offload_gb",
    "swap_space": "swap_space",
    "num_gpu_blocks_override": "num_gpu_blocks_override",
    "max_cudagraph_capture_size": "max_cudagraph_capture_size",
    "chunked_prefill_size": "chunked_prefill_size",
    "max_prefill_tokens": "max_prefill_tokens",
    "max_total_tokens": "max_total_tokens",
    "disable_cuda_graph": "disable_cuda_graph",
    "cuda_graph_max_bs": "cuda_graph_max_bs",
    "kv_cache_free_gpu_mem_fraction": "kv_cache_free_gpu_mem_fraction",
    "free_gpu_memory_fraction": "kv_cache_free_gpu_mem_fraction",
}
_MODEL_KEYS = ("model", "model_tag", "model_path")  # in this order of preference
# (marker, kind) of the engines' settings dumps: a Python dict, vLLM's `key=value, ...` config, SGLang's ServerArgs(...)
_DUMPS = (("non-default args:", "dict"), (" LLM engine (v", "config"), ("server_args=ServerArgs", "server_args"))

# Command-line flags: flag -> (setting name, kind). kind: int, float, str, bool, len (int or "auto"/"32k"), json,
# model (the model id), bool- (a --no- flag).
_LONG_FLAGS: dict[str, tuple[str, str]] = {
    # vLLM
    "--tensor-parallel-size": ("tensor_parallel_size", "int"),
    "--pipeline-parallel-size": ("pipeline_parallel_size", "int"),
    "--data-parallel-size": ("data_parallel_size", "int"),
    "--gpu-memory-utilization": ("gpu_memory_utilization", "float"),
    "--max-model-len": ("max_model_len", "len"),
    "--max-num-seqs": ("max_num_seqs", "int"),
    "--max-num-batched-tokens": ("max_num_batched_tokens", "int"),
    "--kv-cache-dtype": ("kv_cache_dtype", "str"),
    "--block-size": ("block_size", "int"),
    "--enforce-eager": ("enforce_eager", "bool"),
    "--dtype": ("dtype", "str"),
    "--quantization": ("quantization", "str"),
    "--enable-prefix-caching": ("enable_prefix_caching", "bool"),
    "--no-enable-prefix-caching": ("enable_prefix_caching", "bool-"),
    "--enable-chunked-prefill": ("enable_chunked_prefill", "bool"),
    "--kv-cache-memory": ("kv_cache_memory_bytes", "str"),
    "--kv-cache-memory-bytes": ("kv_cache_memory_bytes", "str"),
    "--cpu-offload-gb": ("cpu_offload_gb", "float"),
    "--swap-space": ("swap_space", "float"),
    "--num-gpu-blocks-override": ("num_gpu_blocks_override", "int"),
    "--speculative-config": ("speculative_config", "json"),
    "--model": ("model", "model"),
    # SGLang
    "--model-path": ("model", "model"),
    "--tp-size": ("tensor_parallel_size", "int"),
    "--tp": ("tensor_parallel_size", "int"),
    "--pp-size": ("pipeline_parallel_size", "int"),
    "--dp-size": ("data_parallel_size", "int"),
    "--mem-fraction-static": ("mem_fraction_static", "float"),
    "--context-length": ("max_model_len", "int"),
    "--max-running-requests": ("max_num_seqs", "int"),
    "--max-total-tokens": ("max_total_tokens", "int"),
    "--chunked-prefill-size": ("chunked_prefill_size", "int"),
    "--max-prefill-tokens": ("max_prefill_tokens", "int"),
    "--page-size": ("page_size", "int"),
    "--disable-cuda-graph": ("disable_cuda_graph", "bool"),
    "--speculative-algorithm": ("speculative_algorithm", "str"),
    # llama.cpp
    "--ctx-size": ("n_ctx", "int"),
    "--parallel": ("max_num_seqs", "int"),
    "--cache-type-k": ("cache_type_k", "str"),
    "--cache-type-v": ("cache_type_v", "str"),
    "--batch-size": ("n_batch", "int"),
    "--ubatch-size": ("n_ubatch", "int"),
    "--n-gpu-layers": ("n_gpu_layers", "str"),
    "--hf-repo": ("model", "model"),
    "--kv-unified": ("kv_unified", "bool"),
    # TensorRT-LLM (trtllm-serve)
    "--tp_size": ("tensor_parallel_size", "int"),
    "--pp_size": ("pipeline_parallel_size", "int"),
    "--max_batch_size": ("max_num_seqs", "int"),
    "--max_num_tokens": ("max_num_batched_tokens", "int"),
    "--max_seq_len": ("max_model_len", "int"),
    "--kv_cache_free_gpu_memory_fraction": ("kv_cache_free_gpu_mem_fraction", "float"),
}
# Short flags mean different things per engine, so they are read only on a line that names the engine's command.
_SHORT_FLAGS: dict[str, dict[str, tuple[str, str]]] = {
    "vllm": {
        "-tp": ("tensor_parallel_size", "int"),
        "-pp": ("pipeline_parallel_size", "int"),
        "-dp": ("data_parallel_size", "int"),
        "-q": ("quantization", "str"),
    },
    "sglang": {},
    "llamacpp": {
        "-m": ("model", "model"),
        "-hf": ("model", "model"),
        "-c": ("n_ctx", "int"),
        "-np": ("max_num_seqs", "int"),
        "-ctk": ("cache_type_k", "str"),
        "-ctv": ("cache_type_v", "str"),
        "-b": ("n_batch", "int"),
        "-ub": ("n_ubatch", "int"),
        "-ngl": ("n_gpu_layers", "str"),
        "-kvu": ("kv_unified", "bool"),
    },
    "tensorrt-llm": {},
}
_COMMANDS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("vllm", "serve ", re.compile(r"\bvllm\s{1,4}serve\b")),
    ("vllm", "vllm.entrypoints", re.compile(r"-m\s{1,4}vllm\.entrypoints\.[\w.]{1,60}")),
    ("sglang", "sglang", re.compile(r"\bsglang\.launch_server\b|\bsglang\s{1,4}serve\b")),
    ("llamacpp", "llama-", re.compile(r"\bllama-(?:server|cli)\b")),
    ("tensorrt-llm", "trtllm-serve", re.compile(r"\btrtllm-serve\b")),
)
_BACKTICK_ARGS = re.compile(r"`(--[^`]{1,2000})`")
_YAML_FLAG = re.compile(r'^[\s+]{0,40}-\s{1,8}"?(?P<f>--?[a-zA-Z][\w-]{0,60})"?\s{0,4}$')
_YAML_VALUE = re.compile(r'^[\s+]{0,40}-\s{1,8}"?(?P<v>[^"\s-][^"\s]{0,500})"?\s{0,4}$')
_INT_TEXT = re.compile(r"^-?\d{1,15}$")
_FLOAT_TEXT = re.compile(r"^-?\d{1,15}\.\d{1,20}$|^-?\d{1,15}(?:\.\d{1,20})?[eE][+-]?\d{1,4}$")
_LEN_TEXT = re.compile(r"^\d{1,12}(?:\.\d{1,6})?[kKmM]?$")


def _number(text: str) -> tuple[int | float, int]:
    """A printed number -> (value, decimals): "1,505,552" -> (1505552, 0), "0.90" -> (0.9, 2)."""
    text = text.replace(",", "")
    if "." in text:
        return float(text), len(text) - text.index(".") - 1
    return int(text), 0


def _scalar(text: str) -> Any:
    """An unquoted value from a `key=value` dump: int, float, bool, None, or the text itself."""
    text = text.strip()
    if _INT_TEXT.match(text):
        return int(text)
    if _FLOAT_TEXT.match(text):
        return float(text)
    return {"True": True, "False": False, "None": None, "true": True, "false": False}.get(text, text)


def _literal(text: str) -> tuple[bool, Any]:
    """ast.literal_eval of one bounded literal; (False, None) for anything that is not a literal."""
    text = text.strip()
    if not text or len(text) > _MAX_LITERAL:
        return False, None
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _split_top(text: str, sep: str = ",") -> Iterator[str]:
    """Split on `sep` outside quotes and brackets, in one pass. An unclosed quote or bracket swallows the rest."""
    depth = 0
    quote = ""
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            yield text[start:i]
            start = i + 1
        i += 1
    yield text[start:]


def _split_at(item: str, sep: str) -> tuple[str, str] | None:
    """Split an item at its first top-level `sep` (":" in a dict item, "=" in a keyword item)."""
    parts = _split_top(item, sep)
    first = next(parts, None)
    if first is None or len(first) == len(item):
        return None
    return first, item[len(first) + 1 :]


def _unelide(item: str) -> str:
    """An item less the `...` a person put in place of items they cut (`... 'dtype': 'float16'`)."""
    item = item.strip()
    while item.startswith(("...", "…")):
        item = item[3:].lstrip() if item.startswith("...") else item[1:].lstrip()
    while item.endswith(("...", "…")):
        item = item[:-3].rstrip() if item.endswith("...") else item[:-1].rstrip()
    return item


def _items(body: str, complete: bool) -> list[str]:
    """The top-level items of a dump's body; the last one is dropped when the dump was cut off (it may be cut too)."""
    items = list(_split_top(body))
    return items if complete else items[:-1]


def _dict_items(body: str, complete: bool = True) -> Iterator[tuple[str, Any]]:
    """(key, value) of a Python dict literal's body, item by item, skipping `...` elisions and non-literals."""
    for item in _items(body, complete):
        pair = _split_at(_unelide(item), ":")
        if pair is None:
            continue
        ok, key = _literal(pair[0])
        if not ok or not isinstance(key, str):
            continue
        ok, value = _literal(pair[1])
        if ok:
            yield key, value


def _keyword_items(body: str, complete: bool = True) -> Iterator[tuple[str, Any]]:
    """(key, value) of a `key=value, key='value', ...` dump (vLLM's engine config, SGLang's ServerArgs(...))."""
    for item in _items(body, complete):
        pair = _split_at(_unelide(item), "=")
        if pair is None:
            continue
        key = pair[0].strip()
        if not re.fullmatch(r"[A-Za-z_]\w{0,80}", key):
            continue
        raw = pair[1].strip()
        if not raw or raw == "...":
            continue
        if raw[0] in "'\"[{(":
            ok, value = _literal(raw)
            if not ok:
                continue
        else:
            value = _scalar(raw)
        yield key, value


def _balanced(text: str, start: int) -> tuple[str, bool]:
    """text[start:] up to the bracket that closes text[start], and whether it closes (else the whole rest)."""
    opener = text[start]
    closer = {"{": "}", "(": ")", "[": "]"}[opener]
    depth = 0
    quote = ""
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and ch == closer:
                return text[start : i + 1], True
        i += 1
    return text[start:], False


def _split_args(text: str) -> list[str]:
    """Split a command line on whitespace outside quotes and brackets (JSON values stay whole); quotes are removed."""
    tokens: list[str] = []
    for token in _split_words(text):
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
            token = token[1:-1]
        tokens.append(token)
    return tokens


def _split_words(text: str) -> Iterator[str]:
    depth = 0
    quote = ""
    current: list[str] = []
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch.isspace() and depth == 0:
            if current:
                yield "".join(current)
                current = []
            continue
        current.append(ch)
    if current:
        yield "".join(current)


def _convert(kind: str, raw: str | None) -> tuple[bool, Any]:
    """A flag's value by its kind; (False, None) when the value does not fit (e.g. `--max-model-len` alone)."""
    if kind == "bool":
        return True, True if raw is None else _scalar(raw) if raw in ("True", "False", "true", "false") else True
    if kind == "bool-":
        return True, False
    if raw is None or (raw.startswith("-") and not _INT_TEXT.match(raw)):
        return False, None
    if kind == "int":
        return (True, int(raw)) if _INT_TEXT.match(raw) else (False, None)
    if kind == "float":
        if _INT_TEXT.match(raw) or _FLOAT_TEXT.match(raw):
            return True, float(raw)
        return False, None
    if kind == "len":
        if _INT_TEXT.match(raw):
            return True, int(raw)
        if raw == "auto" or _LEN_TEXT.match(raw):
            return True, raw
        return False, None
    if kind == "json":
        try:
            return True, json.loads(raw)
        except ValueError:
            return True, raw
    return True, raw  # str, model


# ----------------------------------------------------------------------------------------------- the parser


class _Parser:
    def __init__(self) -> None:
        self._numbers: list[tuple[int, int, int, LoggedNumber]] = []  # (line, column, order, number)
        self.errors: list[LoggedError] = []
        self._error_keys: set[tuple[str, str]] = set()
        self.votes: dict[str, int] = {}
        self._first_vote: dict[str, int] = {}
        self.settings: dict[str, tuple[int, Any]] = {}
        self.models: list[tuple[int, int, int, str]] = []  # (rank, line, order on the line, value)
        self.versions: list[tuple[str, int, int, str]] = []  # (engine, rank, line, version)
        self.cli: list[tuple[str | None, int, str, str | None]] = []  # (engine, line, flag, value)
        self._pending_yaml_flag: tuple[int, str] | None = None
        self._open_error: LoggedError | None = None
        self._open_dump: tuple[str, int, str, int] | None = None  # (kind, line, text so far, lines)

    # ---- helpers
    def vote(self, engine: str | None, line: int, weight: int = 1) -> None:
        if engine is None:
            return
        self.votes[engine] = self.votes.get(engine, 0) + weight
        self._first_vote.setdefault(engine, line)

    def setting(self, key: str, value: Any, rank: int, replace: bool = False) -> None:
        """Record a setting: a lower rank wins, then the first line (the last with `replace`)."""
        if value is None:
            return
        old = self.settings.get(key)
        if old is None or rank < old[0] or (replace and rank == old[0]):
            self.settings[key] = (rank, value)

    @property
    def pending(self) -> bool:
        """Whether the next line continues this one (a wrapped error message or dump, a YAML flag's value)."""
        return self._open_error is not None or self._pending_yaml_flag is not None or self._open_dump is not None

    # ---- one line
    def feed(self, lineno: int, raw: str, present: Iterable[str] | None = None) -> None:
        """Read one line; `present` (the needles the line holds, when the caller knows them) narrows the rules. A
        line a progress bar redrew with a carriage return is read as the pieces a terminal would have shown, all
        under one line number."""
        line = raw[:MAX_LINE_CHARS]
        if "\x1b" in line:
            line = _ANSI.sub("", line)
        if "\r" in line:
            for piece in line.split("\r"):
                if piece.strip():
                    self._feed(lineno, piece, present)
            return
        self._feed(lineno, line, present)

    def _feed(self, lineno: int, line: str, present: Iterable[str] | None) -> None:
        if self._open_dump is not None:
            self._continue_dump(line)
        if self._open_error is not None:
            self._continue_error(line)
        if self._pending_yaml_flag is not None or "--" in line:
            self._yaml_args(lineno, line)
        message = _message(line)
        needles = _RULES_BY_NEEDLE if present is None else present
        engine_line = False
        for needle in needles:
            if present is not None or needle in line:
                for rule in _RULES_BY_NEEDLE.get(needle, ()):
                    engine_line |= self._apply(rule, lineno, line)
        self._versions(lineno, line, message)
        self._models(lineno, line, message)
        self._dumps(lineno, line)
        self._commands(lineno, line, engine_line)
        self._errors(lineno, line, message)

    def _apply(self, rule: _Rule, lineno: int, line: str) -> bool:
        """Apply one rule to a line; whether it matched."""
        any_match = False
        for match in rule.pattern.finditer(line):
            groups = match.groupdict()
            matched = False
            for group, name in rule.numbers:
                text = groups.get(group)
                if text is None:
                    continue
                value, decimals = _number(text)
                unit = _UNIT_OVERRIDES.get((rule.form, name), NUMBER_NAMES[name][0])
                if rule.unit_group and groups.get(rule.unit_group):
                    unit = str(groups[rule.unit_group])
                number = LoggedNumber(
                    name, value, unit, decimals, lineno, line.strip()[:_MAX_TEXT], rule.form, rule.engine
                )
                self._numbers.append((lineno, match.start(group), len(self._numbers), number))
                matched = True
            for group, key in rule.settings:
                text = groups.get(group)
                if text is not None:
                    self.setting(key, _scalar(text), 0, replace=rule.last)
                    matched = True
            if matched:
                self.vote(rule.engine, lineno)
                any_match = True
        return any_match

    def _versions(self, lineno: int, line: str, message: str) -> None:
        for engine, rank, needle, pattern in _VERSION_RULES:
            if needle in line:
                match = pattern.search(line)
                if match:
                    self.versions.append((engine, rank, lineno, _clean_version(match.group("v"))))
        if "version" in message:
            match = _BANNER_VERSION.match(message)
            if match:
                self.versions.append(("vllm", 0, lineno, _clean_version(match.group("v"))))
        if message.startswith(("build: ", "version: ")):
            match = _LLAMACPP_BUILD.match(message)
            if match:
                self.versions.append(("llamacpp", 0, lineno, _clean_version(match.group("v"))))
            bench = _LLAMA_BENCH_BUILD.match(message)
            if bench:  # written the way the other tools print it: "6733 (6a8cf8914)"
                self.versions.append(("llamacpp", 0, lineno, f"{bench.group('n')} ({bench.group('h')})"))
        if message.startswith("sglang:"):
            match = _SGLANG_ENV.match(message)
            if match:
                self.versions.append(("sglang", 1, lineno, _clean_version(match.group("v"))))

    def _models(self, lineno: int, line: str, message: str) -> None:
        if "model" in message:
            match = _BANNER_MODEL.match(message)
            if match:
                self.models.append((0, lineno, 0, match.group("m")))
                self.vote("vllm", lineno)
        if "loaded meta data with" in line:
            match = _LLAMACPP_MODEL_PATH.search(line)
            if match:
                self.models.append((0, lineno, 0, match.group("p")))
                self.vote("llamacpp", lineno)
        if "general.name" in line:
            match = _LLAMACPP_GENERAL_NAME.search(line.rstrip())
            if match:
                self.models.append((2, lineno, 0, match.group("n").strip()))
                self.vote("llamacpp", lineno)

    def _dumps(self, lineno: int, line: str) -> None:
        """vLLM's `non-default args: {...}` and engine config, SGLang's `server_args=ServerArgs(...)`. A dump that
        does not close on its line (a terminal hard-wrapped it) continues on the next lines: see _continue_dump."""
        for marker, kind in _DUMPS:
            at = line.find(marker)
            if at < 0:
                continue
            body = line[at + len(marker) :]
            if kind == "config":
                config = body.find("with config:")
                if config < 0:
                    continue
                body = body[config + len("with config:") :]
                self._open_dump = (kind, lineno, body, 1)  # no bracket closes it: the next log record ends it
            elif kind == "dict" and not body.lstrip().startswith("{"):
                continue
            elif _balanced(body.lstrip(), 0)[1]:
                self._finish_dump(kind, lineno, body)
            else:
                self._open_dump = (kind, lineno, body, 1)

    def _continue_dump(self, line: str) -> None:
        assert self._open_dump is not None
        kind, lineno, body, count = self._open_dump
        if not line.strip() or _PREFIX_LOG_RECORD.match(line):
            self._open_dump = None
            self._finish_dump(kind, lineno, body, ended=True)
            return
        if count >= 50 or len(body) > MAX_LINE_CHARS:
            self._open_dump = None
            self._finish_dump(kind, lineno, body, ended=False)
            return
        body += line  # a hard wrap cuts anywhere, even inside a word: join without a space
        if kind != "config" and _balanced(body.lstrip(), 0)[1]:
            self._open_dump = None
            self._finish_dump(kind, lineno, body)
        else:
            self._open_dump = (kind, lineno, body, count + 1)

    def _finish_dump(self, kind: str, lineno: int, body: str, ended: bool = True) -> None:
        """Read a dump. `ended`: a config dump (no closing bracket) was followed by a new record, not cut off."""
        body = body.strip()
        items: Iterable[tuple[str, Any]]
        if kind == "config":
            self._take(_keyword_items(body, ended), lineno, "vllm")
            return
        text, closed = _balanced(body, 0)
        inner = text[1:-1] if closed else text[1:]
        if kind == "dict":
            ok, whole = _literal(text) if closed else (False, None)
            if ok and isinstance(whole, dict):
                items = ((str(k), v) for k, v in whole.items())
            else:
                items = _dict_items(inner, closed)
            self._take(items, lineno, "vllm")
        else:
            self._take(_keyword_items(inner, closed), lineno, "sglang")

    def _take(self, items: Iterable[tuple[str, Any]], lineno: int, engine: str) -> None:
        found = False
        for key, value in items:
            found = True
            if key in _MODEL_KEYS and isinstance(value, str) and value:
                self.models.append((0, lineno, _MODEL_KEYS.index(key), value))
            canonical = _SETTING_KEYS.get(key)
            if canonical is not None:
                self.setting(canonical, value, 0)
        if found:
            self.vote(engine, lineno)

    def _commands(self, lineno: int, line: str, engine_line: bool) -> None:
        """Command lines (`vllm serve ...`, `python -m sglang.launch_server ...`, `llama-server ...`) and
        back-quoted argument lists (`--max-model-len 32768 --tensor-parallel-size 2`). On an engine's own figure line
        a back-quoted flag is a suggestion (vLLM: "Replace ... with `--kv-cache-memory=N`"), not a setting."""
        for engine, needle, pattern in _COMMANDS:
            if needle not in line:
                continue
            match = pattern.search(line)
            if not match or not _starts_a_command(line[: match.start()]):
                continue
            self.vote(engine, lineno)
            segment = line[match.end() :]
            tick = segment.find("`")
            if tick >= 0:
                segment = segment[:tick]
            tokens = _split_args(segment)
            positional_model = needle in ("serve ", "trtllm-serve")  # `vllm serve MODEL`, `trtllm-serve MODEL`
            if positional_model and tokens and not tokens[0].startswith("-"):
                self.models.append((1, lineno, 0, tokens[0].rstrip("]")))
            self._flags(engine, lineno, tokens)
            return
        if "`--" in line and not engine_line:
            for match in _BACKTICK_ARGS.finditer(line):
                self._flags(None, lineno, _split_args(match.group(1)))

    def _flags(self, engine: str | None, lineno: int, tokens: list[str]) -> None:
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if not token.startswith("-") or token == "-" or _INT_TEXT.match(token):
                continue
            flag, eq, value = token.partition("=")
            raw: str | None = value if eq else None
            if raw is None and i < len(tokens) and not (tokens[i].startswith("-") and not _INT_TEXT.match(tokens[i])):
                raw = tokens[i]
                spec = self._flag_spec(engine, flag)
                if spec is not None and spec[1] not in ("bool", "bool-"):
                    i += 1
            self.cli.append((engine, lineno, flag, raw))

    @staticmethod
    def _flag_spec(engine: str | None, flag: str) -> tuple[str, str] | None:
        spec = _LONG_FLAGS.get(flag)
        if spec is None and engine is not None:
            spec = _SHORT_FLAGS[engine].get(flag)
        return spec

    def _yaml_args(self, lineno: int, line: str) -> None:
        """Arguments written as a YAML list, one per line (`- --gpu-memory-utilization` then `- "0.36"`)."""
        pending = self._pending_yaml_flag
        self._pending_yaml_flag = None
        flag_match = _YAML_FLAG.match(line) if "-" in line else None
        if pending is not None:
            value_match = None if flag_match or "-" not in line else _YAML_VALUE.match(line)
            self.cli.append((None, pending[0], pending[1], value_match.group("v") if value_match else None))
        if flag_match and flag_match.group("f").startswith("--"):
            self._pending_yaml_flag = (lineno, flag_match.group("f"))

    def _errors(self, lineno: int, line: str, message: str) -> None:
        kind = None
        needle_of: dict[str, str] = {}
        for error_kind, needle, pattern in _ERROR_RULES:
            if needle in line and pattern.search(line):
                kind = error_kind
                needle_of[kind] = needle
                break
        exception = _EXCEPTION.search(line) if ("Error" in line or "Exception" in line) else None
        if kind is None and exception is None:
            return
        if exception is not None and not _is_traceback_noise(message):
            text = f"{exception.group('cls')}: {exception.group('msg')}"
        else:
            if kind is None:
                return
            text = _quoted_span(message, needle_of[kind]) or message
        text = text.strip().strip("`").strip()[:2000]
        error = LoggedError(kind or "exception", text, lineno)
        key = (error.kind, error.text)
        if key in self._error_keys:
            return
        self._error_keys.add(key)
        self.errors.append(error)
        if kind == "max_model_len_exceeds_kv_cache" and not any(end in text for end in _ERROR_ENDS):
            self._open_error = error

    def _continue_error(self, line: str) -> None:
        """Join the lines a wrapped 'To serve at least one request ...' message continues on (a person's quote of
        it, each line marked with '>' or '▎'); a new log record, an exception or a blank line ends it."""
        error = self._open_error
        if error is None:
            return
        text = _message(line).strip()
        if not text or _PREFIX_LOG_RECORD.match(line.lstrip(" \t>▎|")) or _EXCEPTION.search(text):
            self._open_error = None
            return
        joined = f"{error.text} {text}"[:2000]
        index = self.errors.index(error)
        updated = LoggedError(error.kind, joined, error.line)
        self.errors[index] = updated
        self._error_keys.add((updated.kind, updated.text))
        self._open_error = None if any(end in joined for end in _ERROR_ENDS) or joined.count(" ") > 200 else updated

    # ---- the result
    def result(self, lines_read: int, truncated: bool) -> EngineLog:
        if self._open_dump is not None:  # the log ended inside a dump
            kind, lineno, body, _count = self._open_dump
            self._open_dump = None
            self._finish_dump(kind, lineno, body, ended=False)
        for voter, _rank, lineno, _version in self.versions:
            self.vote(voter, lineno, 2)
        engine: str | None = None
        if self.votes:
            engine = max(self.votes, key=lambda e: (self.votes[e], -self._first_vote[e]))
        version = None
        candidates = sorted((rank, lineno, v) for e, rank, lineno, v in self.versions if e == engine)
        if candidates:
            version = candidates[0][2]
        self._resolve_cli()
        model_value = None
        if self.models:
            model_value = min(self.models)[3]
        settings = {key: value for key, (_rank, value) in self.settings.items()}
        cache_type_k = settings.get("cache_type_k")
        if (
            "kv_cache_dtype" not in settings
            and cache_type_k is not None
            and cache_type_k == settings.get("cache_type_v")
        ):
            settings["kv_cache_dtype"] = cache_type_k
        return EngineLog(
            engine=engine,
            engine_version=version,
            model=model_value,
            settings=settings,
            numbers=tuple(number for *_key, number in sorted(self._numbers, key=lambda item: item[:3])),
            errors=tuple(self.errors),
            lines_read=lines_read,
            truncated=truncated,
        )

    def _resolve_cli(self) -> None:
        for cli_engine, lineno, flag, raw in self.cli:
            spec = self._flag_spec(cli_engine, flag)
            if spec is None:
                continue
            key, kind = spec
            ok, value = _convert(kind, raw)
            if not ok:
                continue
            if key == "model":
                if isinstance(value, str) and value:
                    self.models.append((1, lineno, 1, value))
                continue
            self.setting(key, value, 1 if cli_engine else 2)


_RULES_BY_NEEDLE: dict[str, tuple[_Rule, ...]] = {}
for _r in _RULES:
    _RULES_BY_NEEDLE[_r.needle] = (*_RULES_BY_NEEDLE.get(_r.needle, ()), _r)
del _r

# A line holding none of these literals can match no rule, version, model, dump, command or error pattern.
_NEEDLES = tuple(
    sorted(
        {rule.needle for rule in _RULES}
        | {needle for _e, _r, needle, _p in _VERSION_RULES}
        | {needle for _k, needle, _p in _ERROR_RULES}
        | {needle for _e, needle, _p in _COMMANDS}
        | {"version", "build", "sglang", "model", "loaded meta data with", "general.name"}
        | {"non-default args:", " LLM engine (v", "server_args=ServerArgs(", "`--", "--", "Error", "Exception"}
    )
)

# The text is scanned for these few short literals; a line that holds one is then checked for the needles under it.
_COARSE_ORDER = (
    "memory", "KV", "kv", "cache", "Cache", "token", "block", "buffer", "GiB", "model", "version", "build",
    "Error", "Exception", "--", "sglang", "llama", "LLM", "Mamba", "cells", "concurrency", "weight", "n_",
)  # fmt: skip
_COARSE: dict[str, tuple[str, ...]] = {}
for _needle in _NEEDLES:
    _coarse = next((c for c in _COARSE_ORDER if c in _needle), _needle)
    _COARSE[_coarse] = (*_COARSE.get(_coarse, ()), _needle)
del _needle, _coarse

# A line that starts a new log record (so it does not continue a wrapped message).
_PREFIX_LOG_RECORD = re.compile(
    r"^(?:\([\w.-]{1,60} pid=\d{1,10}\)|\[\d{4}-\d{2}-\d{2}|\d{4}-\d{2}-\d{2}[ T]\d{2}:|\d{2}:\d{2}:\d{2} |"
    r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\b|\[rank\d{1,6}\]|\[TensorRT-LLM\]|\[TRT-LLM\]|Traceback \()"
)


def _starts_a_command(before: str) -> bool:
    """Whether a command can start after `before`: the line's start, a prompt, a quote or bracket, `python -m`, a
    path, a list marker ("Starting trtllm-serve for model ..." is a sentence, not a command)."""
    before = before.rstrip()
    if not before or before[-1] in "$#>`[(:'\"|;&/-*+":
        return True
    last = before.split()[-1].lstrip("`'\"([")
    return (
        last in ("-m", "sudo", "exec", "env", "nohup", "time")
        or re.fullmatch(r"(?:\S*/)?python[\d.]*", last) is not None
    )


def _is_traceback_noise(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(("File ", "raise ", "^")) or ("Error(" in stripped and ":" not in stripped)


def _message(line: str) -> str:
    """The line less its log prefix; a structured `msg="..."` field is unwrapped."""
    at = line.find('msg="')
    if at >= 0:
        end = line.rfind('"')
        return line[at + 5 : end] if end > at + 5 else line[at + 5 :]
    match = _PREFIX.match(line)
    return line[match.end() :] if match else line


def _quoted_span(message: str, needle: str) -> str | None:
    """The back-quoted span of a prose line that holds `needle` (a person quoting an error inside a sentence)."""
    for match in re.finditer(r"`([^`]{1,2000})`", message):
        if needle in match.group(1):
            return match.group(1)
    return None


def _clean_version(version: str) -> str:
    """A version less the punctuation of the sentence around it ("0.26.0." -> "0.26.0")."""
    version = version.rstrip(".,;:`*")
    while version.endswith(")") and version.count(")") > version.count("("):
        version = version[:-1].rstrip(".,;:`*")
    return version


# ----------------------------------------------------------------------------------------------- entry points


def parse_log(text: str | bytes) -> EngineLog:
    """Parse an engine's start-up log (or any text quoting one) into an EngineLog. Never raises on content."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text[: MAX_LOG_CHARS * 4]).decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        raise TypeError(f"parse_log needs str or bytes, got {type(text).__name__}")
    truncated = len(text) > MAX_LOG_CHARS
    if truncated:
        text = text[:MAX_LOG_CHARS]
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")  # a lone \r (a progress bar redrawing itself) stays inside its line
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    parser = _Parser()
    fed = -1  # start offset of the last line fed
    lineno, counted_to = 1, 0
    hits = _lines_with_needles(text)
    for start in sorted(hits):
        if start <= fed:
            continue
        lineno += text.count("\n", counted_to, start)
        counted_to = start
        while True:  # a wrapped error or dump, or a YAML flag, continues on the next lines, needle or not
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            parser.feed(lineno, text[start:end], hits.get(start, ()))
            fed = start
            if not parser.pending or end >= len(text):
                break
            start, lineno, counted_to = end + 1, lineno + 1, end + 1
    lines_read = text.count("\n") + (0 if not text or text.endswith("\n") else 1)
    return parser.result(lines_read, truncated)


def _lines_with_needles(text: str) -> dict[int, set[str]]:
    """The start offset of every line holding any of _NEEDLES -> the needles it holds. One str.find pass per needle,
    so the lines of a log that no rule looks at cost nothing in Python."""
    coarse: dict[int, set[str]] = {}
    for token in _COARSE:
        pos = text.find(token)
        while pos >= 0:
            start = text.rfind("\n", 0, pos) + 1
            coarse.setdefault(start, set()).add(token)
            end = text.find("\n", pos)
            if end < 0:
                break
            pos = text.find(token, end)
    starts: dict[int, set[str]] = {}
    for start, tokens in coarse.items():
        end = text.find("\n", start)
        line = text[start : end if end >= 0 else len(text)][:MAX_LINE_CHARS]
        needles = {needle for token in tokens for needle in _COARSE[token] if needle in line}
        if needles:
            starts[start] = needles
    return starts


def read_log(path: str | Path) -> EngineLog:
    """Read the head of a log file (at most MAX_LOG_CHARS bytes) and parse it. OSErrors propagate."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_LOG_CHARS + 1)
    log = parse_log(data[:MAX_LOG_CHARS].decode("utf-8", errors="replace"))
    return replace(log, truncated=True) if len(data) > MAX_LOG_CHARS else log
