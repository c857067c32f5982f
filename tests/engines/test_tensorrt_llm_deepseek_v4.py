"""TensorRT-LLM's DeepSeek-V4 KV cache: DeepseekV4CacheManager, sized as its own get_cache_size_per_token and
_get_cache_bytes_for_tokens(context=False) size it.

Read from the NVIDIA/TensorRT-LLM code index, each file at the commit the index holds for it (the repository, 2.5 GB,
could not be fetched): tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/cache_manager.py at 2ccfca94
(`get_token_bytes`, `_estimate_non_sliding_attn_size_per_token`, `_estimate_swa_cache_size`,
`_get_attn_bytes_per_token`, the __init__ assertions, `_build_cache_config`, `get_cache_size_per_token`,
`_get_cache_bytes_for_tokens`), .../deepseek_v4/params.py at 50aec1cb (the cache roles and ratio predicates; the same
V4-only {1, 4, 128} encoding the cache manager imports), .../deepseek_v4/footer_scale_kv.py at d77955c5 (the 584-byte
fp8_ds_mla token), .../deepseek_v4/metadata.py at 0b03b6af (window_size asserted 128) and
tensorrt_llm/llmapi/llm_args.py at 00043967 (DeepSeekV4SparseAttentionConfig: indexer_k_dtype
"fp4" by default, "fp8" below SM100; window_size 128; index_head_dim 128). Where a checkout of those files is on this
machine (KVPLAN_ENGINE_SOURCES, default /work/src, as TensorRT-LLM-<commit>/...) the cited lines are read back.

The figures, by hand from that source (head_dim 512 = kv_lora_rank 448 + qk_rope_head_dim 64, index_head_dim 128,
window_size 128; state_factor 2 on ratio 4, 1 on ratio 128):

- token bytes (get_token_bytes): SWA and COMPRESS latent 512 x 2 = 1024 in bf16, 512 in fp8, 584 in fp8_ds_mla;
  INDEXER_COMPRESS fp4 128 / 2 + 128 / 32 = 68, fp8 128 + 4 = 132; compressor KV and score rows fp32:
  CSA 2 x 512 x 4 = 4096, its indexer's 2 x 128 x 4 = 1024, HCA 1 x 512 x 4 = 2048.
- per token (the non-sliding roles, token bytes // ratio): CSA bf16 1024 // 4 + 68 // 4 = 256 + 17 = 273, HCA bf16
  1024 // 128 = 8; fp8 145 and 4; fp8_ds_mla on Hopper (fp8 indexer) 584 // 4 + 132 // 4 = 146 + 33 = 179 and
  584 // 128 = 4.
- per request (the sliding roles, window in whole 128-token blocks x token bytes): SWA 128 x 1024 = 131,072 on every
  layer; CSA compressor rows 2 x 128 x 4096 + 2 x 128 x 1024 = 1,310,720 (windows 8 -> one block); HCA compressor
  rows 2 x 128 x 2048 = 524,288 (window 128).
- DeepSeek-V4-Flash (43 layers: 2 SWA-only, 21 CSA, 20 HCA): 21 x 273 + 20 x 8 = 5,893 B per token, and
  43 x 131,072 + 21 x 1,310,720 + 20 x 524,288 = 43,646,976 B per request (bf16, tokens_per_block 128).
- DeepSeek-V4-Pro (61 layers: 30 CSA, 31 HCA): 30 x 273 + 31 x 8 = 8,438 B per token; 61 x 131,072 + 30 x 1,310,720
  + 31 x 524,288 = 63,569,920 B per request.

No TensorRT-LLM DeepSeek-V4 start-up log with KV figures was found in the issues corpus (searched "DeepseekV4
max_tokens TensorRT-LLM kv cache", "DeepSeek-V4 trtllm-serve OOM KV cache tokens_per_block 128 fp8_ds_mla log",
"DeepseekV4CacheManager pool_group_id deepseek_role"); NVIDIA/TensorRT-LLM #14698 ("Fix kv cache manager v2 size
estimation") states the rule followed here: SWA KV cache as a fixed cost, get_cache_size_per_token as decode-token
accounting.
"""

from __future__ import annotations

import json

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request, Speculative
from kvplan.engines.registry import get_engine
from kvplan.engines.tensorrt_llm import (
    DSV4_FOOTER_TOKEN_BYTES,
    Dsv4Layout,
    dsv4_indexer_bytes,
    dsv4_layer_bytes,
    dsv4_layout,
)
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, check_cited_line, check_quoted_text, load_config

FLASH, PRO = "deepseek-ai__DeepSeek-V4-Flash", "deepseek-ai__DeepSeek-V4-Pro"

SWA_BF16 = 128 * 512 * 2  # one 128-token block of the 1024-byte latent
CSA_ROWS = 2 * 128 * (2 * 512 * 4) + 2 * 128 * (2 * 128 * 4)  # compressor KV + score, indexer KV + score: 1,310,720
HCA_ROWS = 2 * 128 * (512 * 4)  # 524,288
FLASH_TOKEN = 21 * (1024 // 4 + 68 // 4) + 20 * (1024 // 128)  # 5,893
FLASH_REQUEST = 43 * SWA_BF16 + 21 * CSA_ROWS + 20 * HCA_ROWS  # 43,646,976


def _req(kv: str = "bfloat16", **kw) -> Request:
    kw.setdefault("block_size", 128)
    return Request(kw.pop("seq_len", 8192), kw.pop("batch", 1), kv, "bfloat16", **kw)


def _costs(name: str, req: Request):
    shape = model_shape(load_config(name))
    return get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), req)


def _totals(name: str, req: Request) -> tuple[int, int]:
    costs = _costs(name, req)
    return sum(c.bytes for c in costs), int(sum(c.bytes_per_token for c in costs))


# ---------------------------------------------------------------------------------------------- the figures


def test_the_hand_figures_are_what_the_source_constants_give():
    assert (SWA_BF16, CSA_ROWS, HCA_ROWS) == (131_072, 1_310_720, 524_288)
    assert (FLASH_TOKEN, FLASH_REQUEST) == (5_893, 43_646_976)
    cfg = load_config(FLASH)
    ratios = cfg["compress_ratios"][: cfg["num_hidden_layers"]]
    assert [ratios.count(r) for r in (0, 4, 128)] == [2, 21, 20]


def test_flash_bf16_is_tokens_times_5893_plus_43_6_mb_of_windows_per_request():
    """_get_cache_bytes_for_tokens(total_tokens, context=False) (cache_manager.py at 2ccfca94): total_tokens x
    _estimate_non_sliding_attn_size_per_token + _estimate_swa_cache_size's per-request windows."""
    assert _totals(FLASH, _req()) == (8192 * FLASH_TOKEN + FLASH_REQUEST, FLASH_TOKEN)
    assert _totals(FLASH, _req()) == (91_922_432, 5_893)
    assert _totals(FLASH, _req(batch=3)) == (3 * 91_922_432, 5_893)


def test_flash_layer_kinds_carry_their_own_share():
    by_kind = {c.kind: c for c in _costs(FLASH, _req())}
    sliding, csa, hca = by_kind[L.V4_SLIDING], by_kind[L.CSA], by_kind[L.HCA]
    assert (sliding.layers, sliding.bytes, sliding.bytes_per_token, sliding.tokens) == (2, 2 * SWA_BF16, 0, 128)
    assert (csa.layers, csa.bytes_per_token, csa.tokens) == (21, 21 * 273, 8192)
    assert csa.bytes == 21 * (273 * 8192 + SWA_BF16 + CSA_ROWS)
    assert hca.bytes == 20 * (8 * 8192 + SWA_BF16 + HCA_ROWS) and hca.bytes_per_token == 160


def test_flash_fp8_on_blackwell_is_plain_fp8_with_fp4_indexer_keys():
    """has_fp8_kv_cache: dtype_bytes 1 (:110); the indexer keys stay fp4 (68 B) on SM100 and with no GPU given."""
    request = 43 * 128 * 512 + 21 * CSA_ROWS + 20 * HCA_ROWS  # the fp32 compressor rows do not follow the KV dtype
    per_token = 21 * (512 // 4 + 68 // 4) + 20 * (512 // 128)
    assert per_token == 3_125 and request == 40_828_928
    for cc in (None, "10.0"):
        assert _totals(FLASH, _req("fp8_e4m3", compute_capability=cc)) == (8192 * per_token + request, per_token)


def test_hopper_fp8_is_the_584_byte_fp8_ds_mla_layout_with_fp8_indexer_keys():
    """SM90 runs fp8_ds_mla only (:314-320): SWA and COMPRESS rows are footer_scale_kv.TOKEN_BYTES (584, :95-106), and
    DeepSeekV4SparseAttentionConfig's fp4 indexer default falls back to fp8 below SM100 (132 B)."""
    assert DSV4_FOOTER_TOKEN_BYTES == 448 + 64 * 2 + 448 // 64 + 1 == 584
    per_token = 21 * (584 // 4 + 132 // 4) + 20 * (584 // 128)
    request = 43 * 128 * 584 + 21 * CSA_ROWS + 20 * HCA_ROWS
    assert (per_token, request) == (3_839, 41_225_216)
    assert _totals(FLASH, _req("fp8_e4m3", compute_capability="9.0")) == (8192 * per_token + request, per_token)


def test_tokens_per_block_256_doubles_every_window_block():
    """The windows are rounded up to whole blocks (_estimate_swa_cache_size: window_tokens); the compressed roles'
    per-token bytes do not change (their pages hold tokens_per_block // ratio entries)."""
    request = 43 * 256 * 1024 + 21 * (2 * 256 * 4096 + 2 * 256 * 1024) + 20 * (2 * 256 * 2048)
    assert request == 2 * FLASH_REQUEST
    assert _totals(FLASH, _req(block_size=256)) == (8192 * FLASH_TOKEN + request, FLASH_TOKEN)


def test_request_tokens_are_held_in_whole_blocks():
    assert _totals(FLASH, _req(seq_len=100)) == (128 * FLASH_TOKEN + FLASH_REQUEST, FLASH_TOKEN)
    assert _totals(FLASH, _req(seq_len=129)) == (256 * FLASH_TOKEN + FLASH_REQUEST, FLASH_TOKEN)


def test_pro_bf16():
    per_token, request = 30 * 273 + 31 * 8, 61 * SWA_BF16 + 30 * CSA_ROWS + 31 * HCA_ROWS
    assert (per_token, request) == (8_438, 63_569_920)
    assert _totals(PRO, _req()) == (8192 * per_token + request, per_token) == (132_694_016, 8_438)


def test_the_latent_is_held_whole_on_every_tp_rank():
    """num_kv_heads 1 (asserted, :298): nothing in DeepseekV4CacheManager divides by TP."""
    assert _totals(FLASH, _req(tp=8)) == _totals(FLASH, _req(tp=1))


def test_layer_bytes_by_role():
    layout = Dsv4Layout(1024, "fp4", 128)
    swa = L.CompressedAttention(512, 128)
    csa = L.CompressedAttention(512, 128, 4, overlap=True, index_head_dim=128)
    hca = L.CompressedAttention(512, 128, 128)
    assert dsv4_layer_bytes(swa, layout) == (0, SWA_BF16)
    assert dsv4_layer_bytes(csa, layout) == (273, SWA_BF16 + CSA_ROWS)
    assert dsv4_layer_bytes(hca, layout) == (8, SWA_BF16 + HCA_ROWS)
    assert dsv4_layer_bytes(csa, Dsv4Layout(1024, "fp8", 128)) == (256 + 33, SWA_BF16 + CSA_ROWS)


def test_indexer_bytes():
    """get_token_bytes INDEXER_COMPRESS (:123-127): fp8 data + one fp32 scale per 128; fp4 half + one byte per 32."""
    assert dsv4_indexer_bytes(128, "fp8") == 132 and dsv4_indexer_bytes(128, "fp4") == 68


def test_engine_follows_names_the_cache_manager_and_the_indexer_assumption():
    shape = model_shape(load_config(FLASH))
    follows = get_engine("tensorrt-llm", shape).follows
    assert "DeepseekV4CacheManager at 2ccfca94" in follows and "fp4 on SM100 and up or with no GPU given" in follows


# ---------------------------------------------------------------------------------------------- refusals


def _refusal(req: Request, name: str = FLASH) -> UsageError:
    with pytest.raises(UsageError) as info:
        _costs(name, req)
    assert "\n" not in info.value.message and info.value.hint
    return info.value


@pytest.mark.parametrize("block", [None, 16, 32, 64, 512])
def test_tokens_per_block_other_than_128_or_256_is_refused(block):
    """DeepseekV4CacheManager asserts tokens_per_block in [128, 256] (:309-312); KvCacheConfig's default is 32."""
    error = _refusal(_req(block_size=block))
    assert "requires tokens_per_block 128 or 256" in error.message and error.field == "block_size"
    assert "cache_manager.py:309-312 at 2ccfca94" in error.message
    assert ("the default tokens_per_block 32" in error.message) == (block is None)


@pytest.mark.parametrize("kv", ["float16", "float32", "int8", "nvfp4", "fp8_e5m2"])
def test_kv_dtypes_other_than_bf16_and_fp8_are_refused(kv):
    """`assert dtype in [DataType.BF16, DataType.FP8]` (:302-304)."""
    error = _refusal(_req(kv))
    assert "stores a BF16 or FP8 cache only" in error.message and error.field == "kv_dtype"


def test_bf16_on_hopper_is_refused_with_the_fp8_ds_mla_rule():
    error = _refusal(_req(compute_capability="9.0"))
    assert "requires kv_cache_config.dtype='fp8_ds_mla'" in error.message and ":314-320" in error.message
    assert error.field == "kv_dtype"


def test_speculative_decoding_is_refused():
    """MTP widens every window by max_draft_len and appends max_draft_len - 1 virtual layers (:329-345)."""
    error = _refusal(_req(speculative=Speculative(method="mtp", num_speculative_tokens=1)))
    assert "widens every sliding window by max_draft_len" in error.message and error.field == "speculative_config"


def _layout_error(caches: list[L.Layer]) -> UsageError:
    with pytest.raises(UsageError) as info:
        dsv4_layout(caches, _req())
    assert "\n" not in info.value.message
    return info.value


def test_a_window_other_than_128_is_refused():
    error = _layout_error([L.CompressedAttention(512, 64, 4, overlap=True, index_head_dim=128)])
    assert "window_size 128 only" in error.message and "sliding_window 64" in error.message


def test_a_compress_ratio_tensorrt_llm_does_not_build_is_refused():
    error = _layout_error([L.CompressedAttention(512, 128, 16)])
    assert "compress ratio 1, 4 and 128 only" in error.message and "_build_cache_config" in error.message


def test_an_index_head_dim_other_than_128_is_refused():
    error = _layout_error([L.CompressedAttention(512, 128, 4, overlap=True, index_head_dim=64)])
    assert "need index_head_dim 128" in error.message and "_validate_indexer_k_dtype" in error.message


# ---------------------------------------------------------------------------------------------- the CLI


def test_cli_estimate_json():
    from tests.test_cli import run

    result = run(
        "estimate", "deepseek-ai/DeepSeek-V4-Flash", "-e", "tensorrt-llm", "--block-size", "128", "--offline", "--json"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["seq_len"] == 4096 and doc["block_size"] == 128 and doc["kv_dtype"] == "bf16"
    assert doc["bytes_per_token"] == FLASH_TOKEN
    assert doc["kv_cache_bytes"] == 4096 * FLASH_TOKEN + FLASH_REQUEST == 67_784_704
    kinds = {k["kind"]: k for k in doc["layers"]}
    assert kinds[L.V4_SLIDING]["tokens_per_sequence"] == 128 and kinds[L.CSA]["count"] == 21
    assert "DeepseekV4CacheManager" in doc["engine_follows"]


def test_cli_estimate_without_a_block_size_is_one_error_line_and_a_hint():
    from tests.test_cli import run

    result = run("estimate", "deepseek-ai/DeepSeek-V4-Flash", "-e", "tensorrt-llm", "--offline", "--json")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    assert "refuses the default tokens_per_block 32" in lines[0] and "--block-size 128 or 256" in lines[1]


def test_cli_recommend_h200_tp8_refusals_name_what_to_pass():
    from tests.test_cli import run

    base = ("recommend", "deepseek-ai/DeepSeek-V4-Flash", "-g", "h200", "--tp", "8", "-e", "tensorrt-llm", "--offline")
    result = run(*base)
    assert result.exit_code == 2 and "requires tokens_per_block 128 or 256" in result.stderr
    result = run(*base, "--block-size", "128")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    assert "fp8_ds_mla" in lines[0] and "--kv-dtype fp8" in lines[1]


def test_cli_recommend_h200_tp8_fp8():
    """The budget is divided by the marginal 3,839 B per token (fp8_ds_mla, fp8 indexer); one request of
    max_model_len holds its tokens and the 41,225,216 bytes of windows; the serve command says what to set."""
    from tests.test_cli import run

    args = ("recommend", "deepseek-ai/DeepSeek-V4-Flash", "-g", "h200", "--tp", "8", "-e", "tensorrt-llm")
    result = run(*args, "--block-size", "128", "--kv-dtype", "fp8", "--offline", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    per_token, request = 3_839, 41_225_216
    assert doc["block_size"] == 128 and doc["kv_dtype"] == "fp8_e4m3"
    assert doc["kv_bytes_per_request"] == doc["max_model_len"] * per_token + request
    assert doc["num_blocks"] == doc["available_kv_memory_bytes"] // (128 * per_token) > 0
    assert doc["kv_cache_tokens"] == 128 * doc["num_blocks"]
    assert doc["max_concurrency"] == pytest.approx(doc["available_kv_memory_bytes"] / doc["kv_bytes_per_request"], 1e-3)
    text = run(*args, "--block-size", "128", "--kv-dtype", "fp8", "--offline")
    assert "kv_cache_config {tokens_per_block: 128, dtype: fp8_ds_mla}" in text.output.replace("\n", "")


def test_cli_recommend_b200_bf16_block_256():
    from tests.test_cli import run

    args = ("recommend", "deepseek-ai/DeepSeek-V4-Pro", "-g", "b200", "--tp", "8", "-e", "tensorrt-llm")
    result = run(*args, "--block-size", "256", "--offline", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    request = 61 * 256 * 1024 + 30 * (2 * 256 * 4096 + 2 * 256 * 1024) + 31 * (2 * 256 * 2048)
    assert doc["kv_bytes_per_request"] == doc["max_model_len"] * 8_438 + request


# ---------------------------------------------------------------------------------------------- cited source lines

_CM = "TensorRT-LLM-2ccfca94/tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/cache_manager.py"
_PARAMS = "TensorRT-LLM-50aec1cb/tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/params.py"
_FOOTER = "TensorRT-LLM-d77955c5/tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/footer_scale_kv.py"
_CITED = [
    (_CM, 63, "state_factor = 2 if is_overlap_compressor(compress_ratio) else 1"),
    (_CM, 95, "if use_fp8_ds_mla and attn_type in ("),
    (_CM, 106, "return footer_scale_kv.TOKEN_BYTES"),
    (_CM, 110, "dtype_bytes = 1 if has_fp8_kv_cache else 2"),
    (_CM, 118, "dtype_bytes = 4  # (indexer) compressor kv and score use float32"),
    (_CM, 125, "return attn_dim + index_head_dim // 128 * 4"),
    (_CM, 127, "return index_head_dim // 2 + index_head_dim // 32"),
    (_CM, 132, "return attn_dim * dtype_bytes"),
    (_CM, 159, "def _estimate_swa_cache_size("),
    (_CM, 185, "state_factor = 2 if is_overlap_compressor(compress_ratio) else 1"),
    (_CM, 190, "(int(window_size) + tokens_per_block - 1) // tokens_per_block"),
    (_CM, 202, "size_per_request += window_tokens * token_bytes"),
    (_CM, 215, "def _get_attn_bytes_per_token("),
    (_CM, 234, "token_bytes //= compress_ratio"),
    (_CM, 298, 'assert num_kv_heads == 1, "DeepSeek-V4 only supports num_kv_heads == 1"'),
    (_CM, 302, "assert dtype in [DataType.BF16, DataType.FP8], ("),
    (_CM, 309, "assert tokens_per_block in [128, 256], ("),
    (_CM, 316, "if sm_version == 90 and not self.use_fp8_ds_mla:"),
    (_CM, 321, "if self.use_fp8_ds_mla and sm_version != 90 and tokens_per_block != 256:"),
    (_CM, 334, "self._max_draft_len = spec_config.max_draft_len if spec_config is not None else 0"),
    (_CM, 346, "self.compressed_block_sizes = [tokens_per_block // ratio for ratio in self._compress_ratios]"),
    (_PARAMS, 13, "DEEPSEEK_V4_SPARSE_RATIO = 4"),
    (_PARAMS, 14, "DEEPSEEK_V4_OVERLAP_COMPRESSOR_RATIO = 4"),
    (_PARAMS, 36, "DEEPSEEK_V4_SLIDING_ATTENTION = ("),
    (_PARAMS, 47, "DEEPSEEK_V4_NON_SLIDING_ATTENTION = ("),
    (_PARAMS, 62, "return compress_ratio > 1"),
    (_FOOTER, 30, "DIM_NOPE = 448"),
    (_FOOTER, 31, "DIM_ROPE = 64"),
    (_FOOTER, 34, "DATA_ROW_BYTES = DIM_NOPE + DIM_ROPE * 2"),
    (_FOOTER, 35, "FOOTER_ROW_BYTES = NUM_NOPE_TILES + 1"),
    (_FOOTER, 36, "TOKEN_BYTES = DATA_ROW_BYTES + FOOTER_ROW_BYTES"),
]

# Rules read past the part of each file whose line numbers were counted: the quoted text, checked as present.
_QUOTED = [
    (_CM, "def _get_cache_bytes_for_tokens(self, total_tokens: int, *, context: bool) -> int:"),
    (_CM, "total_tokens * (non_sliding_attn_size_per_token + swa_size_per_token)"),
    (_CM, "head_dim = config.kv_lora_rank + config.qk_rope_head_dim"),
    (_CM, "swa_size_per_request * max_batch_size,"),
    (_CM, 'raise ValueError(f"Unsupported DeepSeek-V4 compress ratio {compress_ratio}.")'),
    (_CM, "base_window_size = state_factor * compress_ratio"),
    (
        "TensorRT-LLM-0b03b6af/tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/metadata.py",
        'f"Dual-pool sparse MLA requires window_size == 128, which equals to the"',
    ),
    (
        "TensorRT-LLM-00043967/tensorrt_llm/llmapi/llm_args.py",
        "\"DeepSeek-V4 defaults indexer_k_dtype to 'fp4', \"",
    ),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(ENGINE_SOURCES / path, line, text)


@pytest.mark.parametrize(("path", "text"), _QUOTED)
def test_quoted_engine_source_text(path, text):
    check_quoted_text(ENGINE_SOURCES / path, text)
