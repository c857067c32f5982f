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
    """40 GiB at context 131,072: request slots int(42,949,672,960 / 7,086.75) = 6,060,559 tokens -> 6,060,559 /
    131,072 x 512 = 23,674 -> capped at 4,096; c128 state (4,097 x 128 + 129 = 524,545 rows -> 524,672 rows of
    1,024 float32) x 20 layers = 42,981,130,240 B, more than the budget: no tokens at all. At 80 GiB the rest,
    42,918,215,680 B, holds 6,056,121 tokens -> 6,055,936 in pages of 256; SWA int(605,593.6) -> 605,440."""
    ratios = _ratios(FLASH)
    assert dsv4_pool(ratios, 512, 128, 40 * 2**30, 131072).full_tokens == 0
    pool = dsv4_pool(ratios, 512, 128, 80 * 2**30, 131072)
    assert pool.max_running_requests == 4096
    assert pool.c128_state_bytes == 524672 * 1024 * 4 * 20 == 42981130240
    assert pool.full_tokens == int((80 * 2**30 - 42981130240) / 7086.75) // 256 * 256 == 6055936
    assert pool.swa_tokens == int(6055936 * 0.1) // 256 * 256 == 605440
    assert (pool.c4_tokens, pool.c128_tokens) == (6055936 // 4, 6055936 // 128)
    assert pool.c4_state_rows == 605440 // 256 * 8


def test_request_slots_follow_the_context_length():
    """At 1,048,576 tokens of context the same 80 GiB estimates int(11.67M / 1M x 512) = 5,697 -> 4,096 still; at
    20 GiB, 3,030,234 / 1,048,576 x 512 = 1,479 -> the floor 2,048 (fewer slots, less c128 state)."""
    ratios = _ratios(FLASH)
    assert dsv4_pool(ratios, 512, 128, 20 * 2**30, 1048576).max_running_requests == 2048
    small = dsv4_pool(ratios, 512, 128, 20 * 2**30, 1048576)
    assert small.c128_state_bytes == -(-(2049 * 128 + 129) // 128) * 128 * 1024 * 4 * 20


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
    expected = dsv4_pool(_ratios(FLASH), 512, 128, avail, 131072).full_tokens
    assert doc["kv_cache_tokens"] == expected > 0 and expected % 256 == 0


def test_a_given_request_cap_sizes_the_c128_state():
    """--max-num-seqs 64 (SGLang's --max-running-requests): 65 slots of c128 rings, not the estimated 2,048-4,096,
    so an L20 at TP 8 that holds nothing at the default holds a pool; still whole pages."""
    args = ["-g", "l20", "--tp", "8", "--engine", "sglang", "--max-model-len", "32768"]
    assert _recommend(*args)["kv_cache_tokens"] == 0
    doc = _recommend(*args, "--max-num-seqs", "64")
    expected = dsv4_pool(_ratios(FLASH), 512, 128, doc["available_kv_memory_bytes"], 32768, 0, 256, 64)
    assert expected.c128_state_bytes == -(-(65 * 128 + 129) // 128) * 128 * 4096 * 20
    assert doc["kv_cache_tokens"] == expected.full_tokens > 0 and expected.full_tokens % 256 == 0


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


# ---------------------------------------------------------------------------------------------------- calibration

_GAP = (
    "the logs are from PR #28620's branch (an SM89 FP8-indexer fallback), not 0.5.23, and print no memory. Under "
    "0.5.23's rules at kvplan's budget (L20 48 GB, SGLang's default mem_fraction_static, the catalog config's "
    "weights, FP8 with FP4 routed experts, / (tp x pp)): {ours}"
)


def test_calibration_sglang_28620_tp8_mtp_32768():
    """sglang-28620-dsv4-flash-fp8-8xl20-tp8-mtp-32768 (73,472 tokens): not reproduced. 0.5.23's DSV4 configurator
    estimates 4,096 request slots at context 32,768 and sizes their c128 rings (256 rows with MTP: 4,097 x 256 +
    257 -> 1,049,088 rows x 4 KiB x 20 layers = 80 GiB) as fixed bytes before the full pool, more than an L20
    holds: 0 tokens (SGLang would fail to start). 73,472 tokens would need about 80.6 GiB of KV budget per GPU
    under these rules, so the branch (or an unlogged --max-running-requests) sizes the c128 state otherwise. With
    the catalog config (FP4 routed experts: 145.30 GiB, 18.16 GiB a GPU) kvplan's budget is 18.57 GiB, and a cap of
    1-256 requests would give 2.50M-1.83M tokens; with FP8 experts (the config without `expert_dtype`: 33.29 GiB a
    GPU, a 3.45 GiB budget) 290,816 tokens at 64 requests, 79,360 at 144, 0 from 256 on, and no cap gives exactly
    73,472: the checkpoint's weights, the request cap and the branch's rules are all unknown."""
    doc = _recommend(
        "-g", "l20", "--tp", "8", "--engine", "sglang", "--max-model-len", "32768",
        "--speculative-config", '{"method": "mtp", "num_speculative_tokens": 1}',
    )  # fmt: skip
    ours = doc["kv_cache_tokens"]
    assert ours < 73472
    pytest.skip(_GAP.format(ours=f"{ours:,} tokens against the logged 73,472"))


def test_calibration_sglang_28620_pp2_tp8():
    """sglang-28620-dsv4-flash-fp8-2x8xl20-pp2-tp8 (2,413,824 tokens, no --context-length: 1,048,576): not
    reproduced. kvplan's budget gives 26.63 GiB per GPU (0.802 x 44.53 GiB - 145.30 GiB / 16); SGLang's second
    stage (layers 21-42: 11 C4, 11 C128) then holds 1,825,280 tokens (3,789 slots, 20.37 GiB of c128 state). The
    log's 2,413,824 needs 30.30 GiB on that stage: kvplan's per-stage weights (an even /16 split; SGLang's stages
    differ by the embedding, head and MTP layer) and the branch's pool rules are the unmodelled difference. With
    FP8 routed experts (16.64 GiB of weights a GPU, a 19.07 GiB budget) kvplan gives 1,305,600, further off."""
    doc = _recommend("-g", "l20", "--tp", "8", "--pp", "2", "--engine", "sglang", "--max-model-len", "1048576")
    ours = doc["kv_cache_tokens"]
    assert 0 < ours < 2413824
    pytest.skip(_GAP.format(ours=f"{ours:,} tokens against the logged 2,413,824 ({ours / 2413824:.3f}x)"))
