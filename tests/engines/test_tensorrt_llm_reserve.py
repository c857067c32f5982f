"""TensorRT-LLM's fixed per-sequence costs: what its cache managers price for max_batch_size sequences whatever
their length (a hybrid model's recurrent states, DeepSeek-V4's sliding-window blocks), stated by `kvplan
recommend -e tensorrt-llm` with its figure and not subtracted from the KV token capacity.

The executor's path, read in the NVIDIA/TensorRT-LLM code index at 00679c66 (00679c66c3e38f6d2651ad0a5bef0f94d862e36c),
tensorrt_llm/_torch/pyexecutor/_util.py, KvCacheCreator: `_cal_max_memory` applies free_gpu_memory_fraction first
("available_kv_mem = (total_gpu_memory - peak_memory + allocated_bytes) * fraction"); `configure_kv_cache_capacity`
then gives a V1 manager max_tokens = CacheCost.tokens_for_budget(kv_cache_max_memory) = (budget - intercept) // slope
(:359-364, line-checked in tests/engines/test_tensorrt_llm_kda_dsa.py with :136-137 and :321-322), the cost coming
from the manager's get_cache_size_per_token given `max_batch_size=self._max_batch_size` (`_per_manager_cache_cost`),
and hands a KVCacheManagerV2 the whole budget as max_gpu_total_bytes. The intercepts, each at the commit the index
holds the file at: DeepseekV4CacheManager(KVCacheManagerV2) (deepseek_v4/cache_manager.py at 2ccfca94:245) returns
`swa_size_per_request * max_batch_size`; MixedMambaHybridCacheManager's state pool is max_batch_size + 1
(`_get_mamba_hybrid_pool_size`, kv_cache/mamba_cache_manager.py at 003f8d08). No cache-manager file is held at
00679c66, which is why kvplan states the figure rather than subtracting it (the note says so).

The figures, by hand (max_batch_size is the --max_batch_size of kvplan's trtllm-serve command: --max-num-seqs when
given, else the plan's default cap, 1024 on an H100 / H200 / B200):

- NVIDIA-Nemotron-3-Nano-30B-A3B (23 Mamba2 layers: 64 heads of 64, n_groups 8, ssm_state_size 128, conv_kernel 4,
  bf16, mamba_ssm_cache_dtype float32), TP 1: conv_dim 64 x 64 + 2 x 8 x 128 = 6,144 x 3 columns x 2 B = 36,864 B
  and 64 x 64 x 128 x 4 B = 2,097,152 B: 2,134,016 B a layer, 49,082,368 B a sequence; TP 2 halves both (24,541,184).
  Its 6 attention layers hold 6 x 2 KV heads x 128 x 2 x 2 B = 6,144 B a token. On an H100 at 32k: with
  --max-num-seqs 128, 128 x 49,082,368 = 6,282,543,104 B (5.85 GiB); by default 1024 x 49,082,368 = 50,260,344,832 B,
  more than the KV budget.
- Kimi K3 at TP 16 (69 KDA layers of 407,040 B, test_tensorrt_llm_kda_dsa.py): 28,085,760 B a sequence, 1024 x that
  = 28,759,818,240 B (26.78 GiB) on a B200.
- DeepSeek-V4-Flash on an H200 at TP 8, fp8 (fp8_ds_mla), tokens_per_block 128: 43 x 128 x 584 + 21 x 1,310,720 +
  20 x 524,288 = 41,225,216 B of window blocks a sequence (test_tensorrt_llm_deepseek_v4.py), 3,839 B a token;
  1024 x 41,225,216 = 42,214,621,184 B (39.32 GiB).
"""

from __future__ import annotations

import json
import re

import pytest

from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.tensorrt_llm import fixed_sequence_bytes

from conftest import ENGINE_SOURCES, check_cited_line, check_quoted_text, load_config

NANO, K3, FLASH = (
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
    "moonshotai/Kimi-K3",
    "deepseek-ai/DeepSeek-V4-Flash",
)
NANO_LAYER = (64 * 64 + 2 * 8 * 128) * 3 * 2 + 64 * 64 * 128 * 4  # 2,134,016
NANO_SEQUENCE = 23 * NANO_LAYER  # 49,082,368
NANO_TOKEN = 6 * 2 * 128 * 2 * 2  # 6,144
K3_SEQUENCE = 69 * 407_040  # 28,085,760
FLASH_SEQUENCE = 43 * 128 * 584 + 21 * 1_310_720 + 20 * 524_288  # 41,225,216
FLASH_TOKEN = 21 * (584 // 4 + 132 // 4) + 20 * (584 // 128)  # 3,839


def test_the_hand_figures():
    assert (NANO_LAYER, NANO_SEQUENCE, NANO_TOKEN) == (2_134_016, 49_082_368, 6_144)
    assert (K3_SEQUENCE, FLASH_SEQUENCE, FLASH_TOKEN) == (28_085_760, 41_225_216, 3_839)
    cfg = load_config("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    pattern = cfg["hybrid_override_pattern"]
    assert (pattern.count("M"), pattern.count("*")) == (23, 6)
    assert (cfg["mamba_num_heads"], cfg["mamba_head_dim"], cfg["n_groups"], cfg["ssm_state_size"]) == (64, 64, 8, 128)
    assert (cfg["conv_kernel"], cfg["mamba_ssm_cache_dtype"], cfg["num_key_value_heads"]) == (4, "float32", 2)


def _fixed(name: str, **kw) -> int:
    kv = kw.pop("kv", "bfloat16")
    return fixed_sequence_bytes(
        model_shape(load_config(name)), Request(kw.pop("seq_len", 8192), 1, kv, "bfloat16", **kw)
    )


@pytest.mark.parametrize(("tp", "expected"), [(1, 49_082_368), (2, 24_541_184)])
def test_nemotron_h_state_per_sequence(tp, expected):
    """get_states_bytes_per_layer (config_utils.py:517-531 at 00679c66): conv_dim and heads divided by TP."""
    assert _fixed("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", tp=tp) == expected


def test_the_fixed_bytes_do_not_grow_with_the_sequence():
    for seq_len in (1, 4096, 32768):
        assert _fixed("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", seq_len=seq_len) == NANO_SEQUENCE
        assert _fixed("moonshotai__Kimi-K3", seq_len=seq_len, tp=16) == K3_SEQUENCE
        flash = _fixed(
            "deepseek-ai__DeepSeek-V4-Flash", seq_len=seq_len, kv="fp8_e4m3", block_size=128, compute_capability="9.0"
        )
        assert flash == FLASH_SEQUENCE


def test_a_model_whose_caches_all_grow_has_no_fixed_cost():
    assert _fixed("deepseek-ai__DeepSeek-V3.2") == 0


def _recommend(*args: str) -> dict:
    from tests.test_cli import run

    result = run("recommend", *args, "-e", "tensorrt-llm", "--json", "--offline")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _note(doc: dict) -> str:
    notes = [n for n in doc["notes"] if n.startswith("TensorRT-LLM's cache manager prices max_batch_size")]
    assert len(notes) <= 1
    return notes[0] if notes else ""


def _tokens(budget: int, per_token: int, block: int) -> int:
    held = max(0, budget) // per_token
    return held - held % block


def test_deepseek_v4_flash_h200_tp8_fp8_states_the_window_blocks():
    """1024 x 41,225,216 B of window blocks; the KV token capacity stays the budget over 3,839 B in whole blocks, and
    the note gives what would remain after the intercept."""
    doc = _recommend(FLASH, "-g", "h200", "--tp", "8", "--block-size", "128", "--kv-dtype", "fp8")
    budget = doc["available_kv_memory_bytes"]
    assert doc["max_num_seqs"] == 1024 and doc["kv_cache_tokens"] == _tokens(budget, FLASH_TOKEN, 128)
    note = _note(doc)
    fixed = 1024 * FLASH_SEQUENCE
    assert fixed == 42_214_621_184
    assert "1024 x 41,225,216 B per sequence on the fullest GPU = 42,214,621,184 B (39.32 GiB;" in note
    assert f"kvplan's KV token capacity ({doc['kv_cache_tokens']:,}) does not subtract it" in note
    assert f"subtracted from the KV budget it would be {_tokens(budget - fixed, FLASH_TOKEN, 128):,} tokens" in note
    assert "swa_size_per_request x max_batch_size" in note and "cache_manager.py:245 at 2ccfca94" in note
    assert "--max_batch_size 1024" in doc["flags"]["tensorrt-llm"]


def test_max_num_seqs_given_is_the_max_batch_size_priced():
    doc = _recommend(
        FLASH, "-g", "h200", "--tp", "8", "--block-size", "128", "--kv-dtype", "fp8", "--max-num-seqs", "64"
    )
    assert f"64 x 41,225,216 B per sequence on the fullest GPU = {64 * FLASH_SEQUENCE:,} B" in _note(doc)
    assert "--max_batch_size 64" in doc["flags"]["tensorrt-llm"]


def test_nemotron_h_h100_states_with_a_given_cap():
    doc = _recommend(NANO, "-g", "h100", "--tp", "1", "--max-model-len", "32768", "--max-num-seqs", "128")
    budget = doc["available_kv_memory_bytes"]
    assert doc["kv_cache_tokens"] == _tokens(budget, NANO_TOKEN, 32)
    note = _note(doc)
    assert "128 x 49,082,368 B per sequence on the fullest GPU = 6,282,543,104 B (5.85 GiB;" in note
    assert f"it would be {_tokens(budget - 128 * NANO_SEQUENCE, NANO_TOKEN, 32):,} tokens" in note
    assert "recurrent states" in note and "_util.py:359-364 CacheCost.tokens_for_budget at 00679c66" in note


def test_nemotron_h_h100_default_cap_costs_more_than_the_budget():
    """1024 x 49,082,368 B = 46.81 GiB against a budget of about 11 GiB: no tokens would be left, and the note says
    how many sequences' states the budget holds."""
    doc = _recommend(NANO, "-g", "h100", "--tp", "1", "--max-model-len", "32768")
    budget = doc["available_kv_memory_bytes"]
    assert doc["max_num_seqs"] == 1024 and budget < 1024 * NANO_SEQUENCE
    note = _note(doc)
    assert "= 50,260,344,832 B (46.81 GiB;" in note
    assert f"more than the whole KV budget ({budget:,} B)" in note
    assert f"at most {budget // NANO_SEQUENCE:,} sequences' cost fits it (--max-num-seqs)" in note


def test_kimi_k3_b200_tp16():
    doc = _recommend(K3, "-g", "b200", "--gpus", "16", "--tp", "16", "--max-model-len", "32768")
    note = _note(doc)
    assert "1024 x 28,085,760 B per sequence on the fullest GPU = 28,759,818,240 B (26.78 GiB;" in note
    figures = re.search(r"capacity \(([\d,]+)\) does not subtract", note)
    assert figures and int(figures.group(1).replace(",", "")) == doc["kv_cache_tokens"]


def test_no_note_without_a_fixed_cost():
    assert _note(_recommend("deepseek-ai/DeepSeek-V3.2", "-g", "b200", "--tp", "8")) == ""


def test_kv_memory_given_replaces_the_budget_and_the_note():
    """--kv-memory replaces the modelled budget, whose notes go with it (recommend's rule)."""
    doc = _recommend(
        FLASH, "-g", "h200", "--tp", "8", "--block-size", "128", "--kv-dtype", "fp8", "--kv-memory", "80GiB"
    )
    assert _note(doc) == ""


# ---------------------------------------------------------------------------------------------- cited source lines

_UTIL = "TensorRT-LLM-00679c66/tensorrt_llm/_torch/pyexecutor/_util.py"
_MAMBA = "TensorRT-LLM-003f8d08/tensorrt_llm/_torch/pyexecutor/kv_cache/mamba_cache_manager.py"
_DSV4 = "TensorRT-LLM-2ccfca94/tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/cache_manager.py"
_CITED = [(_DSV4, 245, "class DeepseekV4CacheManager(KVCacheManagerV2):")]

# Rules read past the part of each file whose line numbers were counted: the quoted text, checked as present.
_QUOTED = [
    (_UTIL, "max_batch_size=self._max_batch_size,"),
    (_UTIL, "available_kv_mem = (total_gpu_memory - peak_memory +"),
    (_UTIL, "allocated_bytes) * fraction"),
    (_UTIL, "kv_cache_max_memory = self._cal_max_memory(peak_memory,"),
    (_UTIL, "# KVCacheManagerV2 doesn't rely on max_tokens to control capacity, so restore user provided value"),
    (_UTIL, ").tokens_for_budget(kv_cache_max_memory))"),
    (_UTIL, "self._kv_cache_config.max_gpu_total_bytes = kv_cache_max_memory"),
    (_MAMBA, "def _get_mamba_hybrid_pool_size(max_batch_size: int, mapping: Mapping) -> int:"),
    (_MAMBA, "# One permanent slot is shared by every CUDA-graph padding sentinel."),
    (_MAMBA, "pool_size = _get_mamba_hybrid_pool_size(max_batch_size, mapping)"),
    (_DSV4, 'max_batch_size = int(kwargs.get("max_batch_size") or 0)'),
    (_DSV4, "swa_size_per_request * max_batch_size,"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(ENGINE_SOURCES / path, line, text)


@pytest.mark.parametrize(("path", "text"), _QUOTED)
def test_quoted_engine_source_text(path, text):
    check_quoted_text(ENGINE_SOURCES / path, text)
