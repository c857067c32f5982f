"""SGLang 0.5.23's DeepSeek-V4 pools (DSV4PoolConfigurator, srt/model_executor/pool_configurator.py:1067-1719).

Each rule's test names the source it follows; where the SGLang tree is on this machine (KVPLAN_ENGINE_SOURCES,
default /work/src) the cited lines are read back (`test_cited_engine_source_lines`). The expected figures are
worked out here by hand from the KVLayout.V4 constants (584 bytes a token, pages padded to 576) and the configs'
compress ratios, not taken from kvplan.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request, Speculative
from kvplan.engines.sglang import (
    DSV4_PAGE_SIZE,
    SglangEngine,
    dsv4_coefficients,
    dsv4_max_draft_tokens,
    dsv4_paged_bytes_per_token,
    dsv4_pool,
    dsv4_ring_size,
    sglang_pp_stages,
)
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, check_cited_line, load_config

FLASH, PRO = "deepseek-ai__DeepSeek-V4-Flash", "deepseek-ai__DeepSeek-V4-Pro"
MTP = Speculative("mtp", 1)

_SOURCES = ENGINE_SOURCES / "sglang-0.5.23" / "sglang"
_PC = "srt/model_executor/pool_configurator.py"
_POOL = "srt/mem_cache/deepseek_v4_memory_pool.py"
_CITED = [
    (_PC, 1046, "DSV4_DEFAULT_SWA_FULL_TOKENS_RATIO = 0.1"),
    (_PC, 1255, "self._spec_infl = (target_layers + draft_layers) / target_layers"),
    (_PC, 1253, "draft_layers = 1"),
    (_PC, 1369, "page_size = self.page_size // compress_ratio"),
    (_PC, 1380, "c4_state_bytes = 2 * 2 * self.attn_head_dim * c4_state_dtype_size"),
    (_PC, 1383, "c4_state_ratio = self.ring_sizes.get(4, 0) / self.page_size"),
    (_PC, 1400, "c4_frac * self._get_paged_kv_bytes_per_token(4)"),
    (_PC, 1404, "return 1 / 128 * self._get_paged_kv_bytes_per_token(128)"),
    (_PC, 1460, "return int(full_token * self.swa_ratio) // page_size * page_size"),
    (_PC, 1524, "state_rows = state_pool_size + ring_size + 1"),
    (_PC, 1525, "state_rows = ceil_div(state_rows, 128) * 128"),
    (_PC, 1526, "state_last_dim = 2 * self.attn_head_dim"),
    (_PC, 1572, "estimated = int(full_token / self.context_len * 512)"),
    (_PC, 1573, "estimated = max(min(estimated, 4096), 2048)"),
    (_PC, 1574, "return min(estimated, full_token // 2)"),
    (_PC, 1669, "full_token = full_token // page_size * page_size"),
    (_PC, 1719, "return DSV4PoolConfigurator(kvc)"),
    (_POOL, 57, "return index_head_dim + index_head_dim // 128 * 4"),
    (_POOL, 77, "return 16 if compress_ratio == 4 else 256"),
    (_POOL, 79, "return 8 if compress_ratio == 4 else 128"),
    (_POOL, 122, "return ring_size - window_size + 2 if ring_size > window_size else 0"),
    ("kernels/ops/attention/dsv4/kv_layout.py", 52, "KVLayout.V4: 576,"),
    ("kernels/ops/attention/dsv4/kv_layout.py", 63, "KVLayout.V4: 8,"),
    ("kernels/ops/attention/dsv4/kv_layout.py", 91, "KVLayout.V4: 576,"),
    ("kernels/ops/attention/dsv4/kv_layout.py", 105, "return -(-raw // self.page_align) * self.page_align"),
    ("srt/arg_groups/model_overrides/deepseek_v4.py", 48, 'overrides["swa_full_tokens_ratio"] = 0.1'),
    ("srt/arg_groups/model_overrides/deepseek_v4.py", 51, "page_size = 256"),
    ("srt/arg_groups/overrides.py", 898, 'if model_arch != "DeepseekV4ForCausalLM":'),
    ("srt/arg_groups/overrides.py", 902, 'if kv_cache_dtype == "auto":'),
    ("srt/arg_groups/overrides.py", 903, 'kv_cache_dtype = "fp8_e4m3"'),
    ("srt/environ.py", 1754, 'SGLANG_DSV4_KV_LAYOUT = EnvStr("v4")'),
    ("srt/environ.py", 1832, 'SGLANG_DSV4_COMPRESS_STATE_DTYPE = EnvStr("float32")'),
    ("srt/distributed/utils.py", 140, "if pp_rank >= pp_size - remainder:"),
    ("srt/mem_cache/kv_cache_configurator.py", 3112, "op=torch.distributed.ReduceOp.MIN,"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def _ratios(name: str) -> list[int]:
    shape = model_shape(load_config(name))
    return [c.compress_ratio for c in shape.caches() if isinstance(c, L.CompressedAttention)]


def _req(**kw) -> Request:
    return Request(kw.pop("seq_len", 4096), kw.pop("batch", 1), kw.pop("kv", "fp8_e4m3"), "bfloat16", **kw)


def test_v4_layout_page_pad():
    """KVLayout.V4 page_bytes(n) / n: 256 x 584 = 149,504 B -> 260 strides of 576 = 149,760 B, 585 B a token (the
    main and SWA pools); the C4 pool's page of 64: 37,376 -> 65 x 576 = 37,440, 585 B; the C128 pool's page of 2:
    1,168 -> 3 x 576 = 1,728, 864 B a compressed token."""
    assert dsv4_paged_bytes_per_token(256) == 585
    assert dsv4_paged_bytes_per_token(64) == 585
    assert dsv4_paged_bytes_per_token(2) == 864


def test_rings_and_the_draft_tokens_they_serve():
    """8 / 128 rows without drafts, 16 / 256 with; a C4 ring of 16 serves 16 - 8 + 2 = 10 draft tokens, a C128 of
    256 serves 256 - 128 + 2 = 130, the rings without drafts none."""
    assert (dsv4_ring_size(4, 0), dsv4_ring_size(128, 0), dsv4_ring_size(4, 2), dsv4_ring_size(128, 2)) == (
        8,
        128,
        16,
        256,
    )
    assert (dsv4_max_draft_tokens(4, 16), dsv4_max_draft_tokens(128, 256), dsv4_max_draft_tokens(4, 8)) == (10, 130, 0)


def test_flash_coefficients():
    """Flash (43 layers: 2 sliding-only, 21 C4, 20 C128). Per SWA slot: 43 x 585 + 8 / 256 x (4 x 512 + 4 x 128) x
    4 B x 21 = 25,155 + 6,720 = 31,875 B. Per full token: 0.1 x 31,875 + 21 x (585 + 132) / 4 + 20 x 864 / 128 =
    3,187.5 + 3,764.25 + 135 = 7,086.75 B; with MTP both x 44 / 43 and the c4 ring 16 rows (13,440 B of state)."""
    ratios = _ratios(FLASH)
    assert Counter(ratios) == {0: 2, 4: 21, 128: 20}
    swa, full = dsv4_coefficients(ratios, 512, 128, 0)
    assert swa == 31875 and full == pytest.approx(7086.75, abs=1e-9)
    swa, full = dsv4_coefficients(ratios, 512, 128, 2)
    assert swa == pytest.approx((25155 + 13440) * 44 / 43)
    assert full == pytest.approx((0.1 * (25155 + 13440) + 3764.25 + 135) * 44 / 43)


def test_flash_pool_by_hand():
    """40 GiB with DeepSeek-V4's default 256 request slots: c128 state (257 x 128 + 129 = 33,025 -> 33,152 rows of
    1,024 float32) x 20 layers = 2,715,811,840 B; the rest, 40,233,861,120 B, holds int(5,677,336.03) tokens ->
    5,677,312 in pages of 256; SWA int(567,731.2) -> 567,552. With 4,096 slots given (4,097 x 128 + 129 = 524,545
    -> 524,672 rows, 42,981,130,240 B) 40 GiB holds nothing and 80 GiB holds (85,899,345,920 - 42,981,130,240) /
    7,086.75 = 6,056,121 -> 6,055,936."""
    ratios = _ratios(FLASH)
    pool = dsv4_pool(ratios, 512, 128, 40 * 2**30)
    assert pool.max_running_requests == 256
    assert pool.c128_state_bytes == 33152 * 1024 * 4 * 20 == 2715811840
    assert pool.full_tokens == int((40 * 2**30 - 2715811840) / 7086.75) // 256 * 256 == 5677312
    assert pool.swa_tokens == int(5677312 * 0.1) // 256 * 256 == 567552
    assert (pool.c4_tokens, pool.c128_tokens) == (5677312 // 4, 5677312 // 128)
    assert pool.c4_state_rows == 567552 // 256 * 8
    assert dsv4_pool(ratios, 512, 128, 40 * 2**30, max_running_requests=4096).full_tokens == 0
    given = dsv4_pool(ratios, 512, 128, 80 * 2**30, max_running_requests=4096)
    assert given.c128_state_bytes == 524672 * 1024 * 4 * 20 == 42981130240
    assert given.full_tokens == int((80 * 2**30 - 42981130240) / 7086.75) // 256 * 256 == 6055936


def test_sglang_pp_split_puts_the_extra_layer_last():
    """43 layers over 2 stages: [0, 21) and [21, 43) (vLLM's split gives the first stage the 22)."""
    assert sglang_pp_stages(43, 2) == [range(0, 21), range(21, 43)]
    assert sglang_pp_stages(61, 4) == [range(0, 15), range(15, 30), range(30, 45), range(45, 61)]


def test_storage_costs_per_kind():
    """Each kind's share of the coefficient per token: sliding 0.1 x 585 = 58.5 B a layer; C4 58.5 + 0.1 x 8 /
    256 x 10,240 + 717 / 4 = 269.75 B; C128 58.5 + 6.75 = 65.25 B, plus a request's c128 ring of 128 x 1,024
    float32 (524,288 B) a layer; the sum is the coefficient."""
    shape = model_shape(load_config(FLASH))
    costs = {c.kind: c for c in SglangEngine().stage_costs(list(shape.caches()), _req(seq_len=4096))}
    assert costs[L.V4_SLIDING].bytes_per_token == 2 * 58.5
    assert costs[L.CSA].bytes_per_token == 21 * 269.75
    assert costs[L.HCA].bytes_per_token == 20 * 65.25
    assert costs[L.HCA].bytes == int(20 * 65.25 * 4096) + 20 * 524288
    assert sum(c.bytes_per_token for c in costs.values()) == 7086.75
    assert SglangEngine().block_size(list(shape.caches()), _req()) == DSV4_PAGE_SIZE


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (_req(kv="fp8_e5m2"), "kv_dtype"),
        (_req(kv="float16"), "kv_dtype"),
        (_req(speculative=Speculative("mtp", 10)), "speculative_config"),
    ],
)
def test_refusals(req, field):
    """fp8_e5m2 / fp16: SGLang asserts fp8_e4m3 or bfloat16 for DeepseekV4ForCausalLM (overrides.py:906-910);
    11 draft tokens exceed the C4 ring's 10."""
    shape = model_shape(load_config(FLASH))
    with pytest.raises(UsageError) as err:
        SglangEngine().stage_costs(list(shape.caches()), req)
    assert err.value.field == field and "\n" not in err.value.message


def test_accepted_setups():
    shape = model_shape(load_config(PRO))
    for req in (_req(kv="bfloat16"), _req(compute_capability="10.0", tp=2), _req(speculative=Speculative("mtp", 9))):
        assert SglangEngine().stage_costs(list(shape.caches()), req)


def test_blackwell_at_tp_1_runs_flashmla_for_deepseek_v4():
    """--dsv4-attn-backend auto picks flashmla_mega (and the V4.1 layouts) only for model_type deepseek_v41
    (arg_groups/deepseek_v4_hook.py:44-60 `_default_dsv4_attention_backend`), so a deepseek_v4 config on a B200 at
    TP 1 keeps the V4 layout kvplan models; a deepseek_v41 one is refused."""
    shape = model_shape(load_config(FLASH))
    req = _req(compute_capability="10.0", tp=1)
    assert SglangEngine(shape.architectures, shape.config_model_type).stage_costs(list(shape.caches()), req)
    with pytest.raises(UsageError) as err:
        SglangEngine(shape.architectures, "deepseek_v41").stage_costs(list(shape.caches()), req)
    assert err.value.field == "tp" and "\n" not in err.value.message
    out = CliRunner().invoke(
        app, ["recommend", "deepseek-ai/DeepSeek-V4-Flash", "-g", "b200", "--tp", "1", "--engine", "sglang", "--json"]
    )
    assert out.exit_code == 0, out.output


def _recommend(*args: str) -> dict:
    out = CliRunner().invoke(app, ["recommend", "deepseek-ai/DeepSeek-V4-Flash", *args, "--json", "--offline"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_recommend_h200_tp8_is_the_pool_of_its_budget():
    """Through recommend: the KV cache tokens are dsv4_pool of the budget's KV bytes, in pages of 256."""
    doc = _recommend("-g", "h200", "--tp", "8", "--engine", "sglang", "--kv-dtype", "fp8", "--max-model-len", "131072")
    avail = doc["available_kv_memory_bytes"]
    expected = dsv4_pool(_ratios(FLASH), 512, 128, avail).full_tokens
    assert doc["kv_cache_tokens"] == expected > 0 and expected % 256 == 0


def test_a_given_request_cap_sizes_the_c128_state():
    """--max-num-seqs 64 (SGLang's --max-running-requests): 65 slots of c128 rings, not the default 257, so an L20
    at TP 8 holds more tokens than at the default; still whole pages."""
    args = ["-g", "l20", "--tp", "8", "--engine", "sglang", "--max-model-len", "32768"]
    default = _recommend(*args)["kv_cache_tokens"]
    doc = _recommend(*args, "--max-num-seqs", "64")
    expected = dsv4_pool(_ratios(FLASH), 512, 128, doc["available_kv_memory_bytes"], 0, 256, 64)
    assert expected.c128_state_bytes == -(-(65 * 128 + 129) // 128) * 128 * 4096 * 20
    assert doc["kv_cache_tokens"] == expected.full_tokens > default > 0 and expected.full_tokens % 256 == 0


def test_estimate_json_names_the_v4_kinds():
    out = CliRunner().invoke(
        app, ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "--engine", "sglang", "--kv-dtype", "fp8", "--json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["block_size"] == 256
    assert doc["bytes_per_token_per_gpu"] == 7086.75
    notes = " ".join(doc["notes"])
    assert "7,086.75 B per full token" in notes and "10.00 MiB of c128" in notes and "fp8_e4m3" in notes


def test_pp_notes_follow_sglangs_split():
    """Stage 1 of SGLang's split (layers 21-42: 11 CSA, 11 HCA) holds 0.1 x (22 x 585 + 8 / 256 x 10,240 x 11) +
    11 x 179.25 + 11 x 6.75 = 1,638.9 + 1,971.75 + 74.25 = 3,685 B per full token and 11 x 512 KiB = 5.50 MiB of
    c128 state per slot."""
    doc = _recommend("-g", "h200", "--tp", "8", "--pp", "2", "--engine", "sglang")
    notes = " ".join(doc["notes"])
    assert "stage 1 (layers 21-42): 3,685.00 B per full token" in notes and "5.50 MiB of c128" in notes
    # the slots come from SGLang's --max-running-requests, which kvplan takes as --max-num-seqs
    assert "--max-running-requests (kvplan's --max-num-seqs)" in notes


def test_estimate_under_pp_sizes_sglangs_fullest_stage():
    """estimate --pp 2 prices the stages SGLang builds (layers 0-20 and 21-42), the fullest GPU at stage 1's
    3,685 B per token, the figure its note gives, not vLLM's split (layers 0-21: 3,619.75 B)."""
    out = CliRunner().invoke(
        app, ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "--engine", "sglang", "--pp", "2", "--json", "--offline"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["bytes_per_token_per_gpu"] == 3685
    assert "stage 1 (layers 21-42): 3,685.00 B per full token" in " ".join(doc["notes"])


@pytest.mark.parametrize("command", ["estimate", "recommend"])
def test_auto_kv_dtype_is_sglangs_fp8_e4m3(command):
    """overrides.py:898-903 `_deepseek_v4_kv_cache_dtype`: `auto` becomes fp8_e4m3 for DeepseekV4ForCausalLM, so
    the plan names the dtype SGLang runs (not the model's bf16) and has no "with fp8 KV" alternative of itself; the
    pool is the same FlashMLA V4 layout either way (7,086.75 B a token)."""
    extra = ["-g", "h200", "--tp", "8"] if command == "recommend" else []
    out = CliRunner().invoke(
        app, [command, "deepseek-ai/DeepSeek-V4-Flash", "--engine", "sglang", *extra, "--json", "--offline"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["kv_dtype"] == "fp8_e4m3"
    if command == "recommend":
        assert doc["fp8_kv"] is None
    else:
        assert doc["bytes_per_token_per_gpu"] == 7086.75
