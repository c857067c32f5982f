"""vLLM's version table (kvplan.engines.vllm.VLLM_VERSIONS): which behaviour kvplan models for a `--vllm-version`.
Each test names the evidence the row it lands on follows: the vLLM source file and line of the release read."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.core.units import cdiv
from kvplan.engines import Request
from kvplan.engines.vllm import (
    NEWEST_VLLM,
    VLLM_VERSIONS,
    VllmEngine,
    capacity,
    first_release_with,
    parse_vllm_version,
    resolve_vllm_version,
    scheduler_defaults,
    version_key,
    vllm_behaviour,
)
from kvplan.errors import UsageError
from kvplan.planning.estimate import estimate_config
from kvplan.planning.recommend import recommend

from conftest import load_config

runner = CliRunner()


def test_0_10_1_1_profiles_the_heavy_sampler():
    """vLLM 0.10.1.1 (four-part version) is in the first row, which follows the llm-d empirical logs of vLLM
    <= 0.11 (tests/fixtures/calibration): activation peaks of 38.4-38.9 B per (sequence x vocab entry) for 0.6B-32B
    models at max_num_seqs 1024; no CUDA-graph estimate is subtracted."""
    row = vllm_behaviour("0.10.1.1")
    assert row is VLLM_VERSIONS[0]
    assert row.sampler_bytes_per_seq_vocab == 39.0 and row.subtracts_cudagraphs is False


def test_0_11_is_the_last_heavy_sampler_version():
    """vLLM 0.11: the llm-d empirical case llmd-empirical-v0110-llama-31-8b-instruct-tp1 logged 4.76 GiB of
    activation peak for Llama-3.1-8B at max_num_seqs 1024, which the 39 B sampler row reproduces."""
    assert vllm_behaviour("0.11") is VLLM_VERSIONS[0]
    assert vllm_behaviour("0.11.2") is VLLM_VERSIONS[0]
    assert vllm_behaviour("0.12") is VLLM_VERSIONS[1]  # the next row starts at 0.12


def test_0_19_0_profiles_the_light_sampler_without_cudagraphs():
    """vLLM 0.19.0 follows the row fitted on the llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration): 15 B per
    (sequence x vocab entry), and the logged "Available KV cache memory" leaves the CUDA-graph pool out. The CUDA-graph
    estimate is subtracted from 0.20.0 on (vllm-0.20.0/vllm/envs.py:1725), not 0.21 as this table said before."""
    row = vllm_behaviour("0.19.0")
    assert row is VLLM_VERSIONS[1]
    assert row.sampler_bytes_per_seq_vocab == 15.0 and row.subtracts_cudagraphs is False
    assert vllm_behaviour("0.19.1").subtracts_cudagraphs is False and vllm_behaviour("0.20.0").subtracts_cudagraphs


def test_0_21_0rc1_subtracts_the_cudagraph_estimate():
    """vLLM 0.21 (release candidates included) subtracts its CUDA-graph memory estimate from the KV budget
    (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS); the sampler term stays that of the 0.19 logs."""
    row = vllm_behaviour("0.21.0rc1")
    assert row is vllm_behaviour("0.21.0") and vllm_behaviour("v0.21") is row
    assert row.sampler_bytes_per_seq_vocab == 15.0 and row.subtracts_cudagraphs is True


def test_an_unknown_version_is_the_newest_behaviour():
    """No version: the newest row (vLLM 0.33), as before the table existed."""
    assert vllm_behaviour(None) is VLLM_VERSIONS[-1]
    assert vllm_behaviour("") is VLLM_VERSIONS[-1]
    assert vllm_behaviour("1.4") is VLLM_VERSIONS[-1]  # later than every row: the newest


def test_the_table_is_ordered_and_every_row_cites_its_evidence():
    starts = [row.since for row in VLLM_VERSIONS]
    assert starts[0] == (0, 0) and starts == sorted(set(starts))  # every version has exactly one row
    assert all(row.follows for row in VLLM_VERSIONS)


def test_versions_are_parsed_strictly():
    """Versions as `vllm --version` prints them; anything else is a one-line usage error."""
    assert parse_vllm_version("v0.21.0rc1") == (0, 21)
    assert version_key("0.10.1.1") == (0, 10, 1) and version_key("0.19") == (0, 19, 0)
    for bad in ("abc", "0", "0.x", "latest"):
        with pytest.raises(UsageError, match="--vllm-version"):
            vllm_behaviour(bad)


def test_recommend_reads_the_table():
    """The budget's sampler term and CUDA-graph term follow the row of the version given."""
    for version in ("0.10.1.1", "0.19.0", "0.21.0rc1", None):
        rec = recommend(
            "meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", max_model_len=8192, vllm_version=version
        )
        row = vllm_behaviour(version)
        terms = {t.name: t for t in rec.budget}
        assert terms["activation_peak"].source.startswith(f"{row.sampler_bytes_per_seq_vocab:g} B x max_num_seqs")
        assert ("cudagraph" in terms) is row.subtracts_cudagraphs


# ------------------------------------------------------------------------ one test per rule of VLLM_VERSIONS
# Each docstring cites the vLLM source (the published sdist of the release named, `vllm-<version>/...`).

GIB = 2**30
H100 = "h100-sxm-80gb"


def _plan(model, version, **kw):
    kw.setdefault("gpu_profile", H100)
    return recommend(model, offline=True, vllm_version=version, **kw)


def _terms(rec) -> dict:
    return {t.name: t for t in rec.budget}


def _shape(name: str):
    return model_shape(load_config(name))


def _plan_specs(shape, **req) -> tuple[VllmEngine, Request, dict]:
    engine = VllmEngine(shape)
    request = Request(req.pop("seq_len", 32768), 1, req.pop("kv_dtype", shape.dtype), shape.dtype, **req)
    plan = engine.plan(shape.caches(), request)
    return engine, request, plan.specs


def test_default_gpu_memory_utilization_is_0_92_from_0_20_0():
    """vllm-0.19.1/vllm/config/cache.py:41 `gpu_memory_utilization ... default=0.9`;
    vllm-0.20.0/vllm/config/cache.py:66 `default=0.92` (still so in vllm-0.33.0/vllm/config/cache.py:215)."""
    assert vllm_behaviour("0.19.1").default_gpu_memory_utilization == 0.9
    assert vllm_behaviour("0.20.0").default_gpu_memory_utilization == 0.92
    assert vllm_behaviour("0.33.0").default_gpu_memory_utilization == 0.92
    for version, fraction in (("0.19.1", 0.9), ("0.20.0", 0.92)):
        rec = _plan("meta-llama/Llama-3.1-8B", version, max_model_len=8192)
        assert rec.gpu_memory_utilization == fraction
        assert _terms(rec)["total_x_utilization"].bytes == int(85028896768 * fraction)
        assert f"--gpu-memory-utilization {fraction}" in rec.flags["vllm"]


def test_cudagraph_estimate_is_subtracted_from_0_20_0():
    """vllm-0.19.1/vllm/envs.py:1655 VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to "0";
    vllm-0.20.0/vllm/envs.py:1725 to "1", subtracted from the KV budget at vllm-0.20.0/vllm/v1/worker/gpu_worker.py:424
    (its log line says "default since v0.21.0", but 0.20.0 ships it)."""
    assert "cudagraph" not in _terms(_plan("mistralai/Mixtral-8x7B-v0.1", "0.19.1", gpus=2, max_model_len=4096))
    rec = _plan("mistralai/Mixtral-8x7B-v0.1", "0.20.0", gpus=2, max_model_len=4096)
    assert _terms(rec)["cudagraph"].bytes < 0 and "vLLM >= 0.20" in _terms(rec)["cudagraph"].source


@pytest.mark.parametrize(
    "version,model,subtracted",
    [
        ("0.21.0", "meta-llama/Llama-3.1-8B", True),  # V2 only on request
        ("0.22.0", "Qwen/Qwen3-8B", False),  # Qwen3ForCausalLM on V2
        ("0.22.0", "meta-llama/Llama-3.1-8B", True),
        ("0.23.0", "meta-llama/Llama-3.1-8B", False),
        ("0.25.1", "meta-llama/Llama-3.1-8B", False),  # every dense model on V2
        ("0.25.1", "mistralai/Mixtral-8x7B-v0.1", True),  # MoE: V1
        ("0.28.0", "meta-llama/Llama-3.1-8B", False),
        ("0.29.0", "meta-llama/Llama-3.1-8B", True),  # V2 estimates its graphs
        ("0.33.0", "meta-llama/Llama-3.1-8B", True),
    ],
)
def test_models_on_model_runner_v2_subtract_no_cudagraphs_in_0_22_to_0_28(version, model, subtracted):
    """Model Runner V2's profile_cudagraph_memory returns 0 (vllm-0.22.0/vllm/v1/worker/gpu/model_runner.py:620-622,
    still vllm-0.28.0/.../gpu/model_runner.py:843-845) and runs Qwen3ForCausalLM (vllm-0.22.0/vllm/config/vllm.py:69),
    Llama/Mistral/Qwen3 (vllm-0.23.0/vllm/config/vllm.py:69-75), and from vllm-0.25.0/vllm/config/vllm.py:557-575 every
    dense non-hybrid model by default (vLLM issue #49224); vllm-0.29.0/.../gpu/model_runner.py:896-898 estimates them."""
    gpus = 2 if "Mixtral" in model else 1
    term = _terms(_plan(model, version, gpus=gpus, max_model_len=4096))["cudagraph"]
    assert (term.bytes < 0) is subtracted
    if not subtracted:
        assert term.bytes == 0 and "Model Runner V2" in term.source


def test_window_reservation_counts_in_flight_batches_from_0_26_0():
    """vllm-0.25.1/vllm/v1/kv_cache_interface.py:561 reserves min(window - 1 + max_num_batched_tokens, L);
    vllm-0.26.0/vllm/v1/kv_cache_interface.py:584 (sliding) and :517 (chunked) reserve max_in_flight_tokens =
    max_concurrent_batches x max_num_batched_tokens (vllm-0.26.0/vllm/config/vllm.py:512-533: 2 with async
    scheduling at PP 1, PP + 1 on Model Runner V2, PP without async), async on by default (:1059-1107)."""
    mistral = _shape("mistralai__Mistral-7B-v0.1")  # dense: Model Runner V2 from 0.25
    gpt_oss = _shape("openai__gpt-oss-120b")  # MoE: V1
    for shape in (mistral, gpt_oss):
        for version, async_, pp, batches in (
            ("0.25.1", None, 1, 1),
            ("0.26.0", None, 1, 2),
            ("0.26.0", False, 1, 1),
            ("0.26.0", None, 2, 3 if shape is mistral else 2),
        ):
            engine, req, specs = _plan_specs(
                shape,
                seq_len=131072,
                max_num_batched_tokens=2048,
                engine_version=version,
                async_scheduling=async_,
                pp=pp,
            )
            spec = next(s for s in specs if s.kind == L.SLIDING)
            assert engine.in_flight_tokens(req) == batches * 2048
            assert engine.blocks_per_request(spec, req) == cdiv(spec.window - 1 + batches * 2048, 16) + 1
    scout = _shape("meta-llama__Llama-4-Scout-17B-16E-Instruct")
    for version, batches in (("0.25.1", 1), ("0.26.0", 2)):
        engine, req, specs = _plan_specs(scout, seq_len=131072, max_num_batched_tokens=8192, engine_version=version)
        spec = next(s for s in specs if s.kind == L.CHUNKED)
        assert engine.blocks_per_request(spec, req) == cdiv(8192 + batches * 8192, 16)


def test_hybrids_run_prefix_caching_with_mamba_align_pages_from_0_28_0():
    """vllm-0.27.1/vllm/engine/arg_utils.py:2605 keeps prefix caching off for hybrids; vllm-0.28.0/vllm/engine/
    arg_utils.py:2650 with vllm-0.28.0/vllm/config/model.py:2072-2074 turns it on, and vllm-0.28.0/vllm/model_executor/
    models/config.py:604 picks Mamba `align` mode, whose state holds 2 pages (vllm-0.19.1/vllm/v1/kv_cache_interface.py:
    297-298) instead of 1 (:300). --prefix-caching decides instead when given."""
    qwen3_next = _shape("Qwen__Qwen3-Next-80B-A3B")
    for version, prefix, pages in (
        ("0.27.1", None, 1),
        ("0.27.1", True, 2),  # gated DeltaNet has no `all` mode: align
        ("0.28.0", None, 2),
        ("0.28.0", False, 1),
    ):
        engine, req, specs = _plan_specs(qwen3_next, engine_version=version, prefix_caching=prefix)
        (state,) = (s for s in specs if s.kind == L.STATE)
        assert engine.blocks_per_request(state, req) == pages
    est = estimate_config(load_config("Qwen__Qwen3-Next-80B-A3B"), seq_len=32768, vllm_version="0.28.0")
    old = estimate_config(load_config("Qwen__Qwen3-Next-80B-A3B"), seq_len=32768, vllm_version="0.27.1")
    state_bytes = {k.kind: k.bytes for k in est.layers}[L.STATE]
    assert state_bytes == 2 * {k.kind: k.bytes for k in old.layers}[L.STATE]
    assert any("`align` mode" in n for n in est.notes)


def test_mamba_all_mode_until_0_27_for_mamba_models_with_prefix_caching():
    """vllm-0.19.1/vllm/model_executor/models/config.py:436-438 (and vllm-0.27.1/.../models/config.py:615-617) pick
    Mamba `all` mode when prefix caching is on and the model supports it (Jamba, Bamba, ...): blocks of
    lcm(mamba chunk, 16) x cdiv(cdiv(state page, attention token), chunk) tokens (vllm-0.19.1/.../models/config.py:
    259-265; Mamba1 has no chunk: 2048, vllm-0.27.1/vllm/config/model.py:1541-1544) and a state page per block of
    the sequence (vllm-0.19.1/vllm/v1/kv_cache_interface.py:294-296); vllm-0.28.0/.../models/config.py:604 picks
    `align` instead."""
    jamba = _shape("ai21labs__AI21-Jamba-1.5-Mini")
    engine, req, specs = _plan_specs(jamba, seq_len=65536, engine_version="0.27.1", prefix_caching=True)
    (state,) = (s for s in specs if s.kind == L.STATE)
    assert engine.mamba_cache_mode(jamba.caches(), req) == "all"
    assert state.block_size % 2048 == 0 and state.state_pages is None
    assert engine.blocks_per_request(state, req) == cdiv(65536, state.block_size)
    engine, req, specs = _plan_specs(jamba, seq_len=65536, engine_version="0.28.0")
    assert engine.mamba_cache_mode(jamba.caches(), req) == "align"
    (state,) = (s for s in specs if s.kind == L.STATE)
    assert engine.blocks_per_request(state, req) == 2 and state.block_size % 2048 != 0


def test_mamba2_align_mode_holds_a_prefill_checkpoint_page_from_0_32_0():
    """vllm-0.32.0/vllm/model_executor/layers/mamba/mamba_mixer2.py:1107 gives Mamba2 layers
    num_prefill_checkpoint_blocks=1, counted in `align` mode (vllm-0.32.0/vllm/v1/kv_cache_interface.py:1079:
    2 + spec + prefill_ckpt pages); Mamba1 (Jamba) layers keep 2."""
    for name, family_pages in (("synthetic/bamba", 3), ("synthetic/falcon_h1", 3), ("synthetic/jamba", 2)):
        shape = _shape(name)
        for version, pages in (("0.30.0", 2), ("0.32.0", family_pages)):
            engine, req, specs = _plan_specs(shape, engine_version=version)
            (state,) = (s for s in specs if s.kind == L.STATE)
            assert engine.blocks_per_request(state, req) == pages, (name, version)


def test_gdn_on_flashinfer_aligns_blocks_to_64_and_holds_a_checkpoint_page_in_0_33():
    """vllm-0.33.0/vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py:249-264 runs GDN prefill on FlashInfer
    on SM90 (and SM100/SM120 with 128-wide keys); in `align` mode its checkpoints are aligned to
    FLASHINFER_GDN_CHECKPOINT_ALIGNMENT = 64 (:692-696; vllm-0.33.0/vllm/v1/attention/backends/gdn_attn.py:34), which
    the hybrid block size follows (vllm-0.33.0/vllm/platforms/interface.py:1090-1094), and the state holds one
    prefill-checkpoint page (:748). Qwen3-Next TP1 bf16: block 544 -> 576."""
    shape = _shape("Qwen__Qwen3-Next-80B-A3B")
    for version, capability, block, pages in (
        ("0.32.0", "9.0", 544, 2),
        ("0.33.0", "9.0", 576, 3),
        ("0.33.0", "10.0", 576, 3),
        ("0.33.0", "8.0", 544, 2),  # Ampere: Triton prefill
        ("0.33.0", None, 544, 2),  # no GPU given
    ):
        engine, req, specs = _plan_specs(shape, engine_version=version, compute_capability=capability)
        (state,) = (s for s in specs if s.kind == L.STATE)
        assert engine.block_size(shape.caches(), req) == block
        assert engine.blocks_per_request(state, req) == pages
    off = _plan_specs(shape, engine_version="0.33.0", compute_capability="9.0", prefix_caching=False)
    assert off[0].block_size(shape.caches(), off[1]) == 544  # no align mode: no checkpoint alignment


def test_hybrid_block_alignment_unit_follows_the_block_size_from_0_20_0():
    """vllm-0.19.1/vllm/model_executor/models/config.py:218 aligns hybrid attention blocks to 16 tokens and takes
    max(--block-size, that); vllm-0.20.0/vllm/platforms/interface.py:576-583 aligns them to max(kernel block,
    --block-size). Qwen3-Next with --block-size 48: 544 (0.19.1) vs 48 x cdiv(1,097,728, 48 x 2048) = 576 (0.20.0)."""
    shape = _shape("Qwen__Qwen3-Next-80B-A3B")
    for version, block in (("0.19.1", 544), ("0.20.0", 576)):
        engine, req, _ = _plan_specs(shape, engine_version=version, block_size=48)
        assert engine.block_size(shape.caches(), req) == block


@pytest.mark.parametrize(
    "gpu,kv_dtype,block",
    [
        ("h100-sxm-80gb", "auto", 16),  # FLASH_ATTN_MLA
        ("h100-sxm-80gb", "fp8", 64),  # FLASHMLA (FLASH_ATTN_MLA has no fp8)
        ("b200", "auto", 32),  # FLASHINFER_MLA
        ("a100-sxm-80gb", "auto", 16),  # TRITON_MLA
        ("rtx-5090", "auto", 16),  # TRITON_MLA
    ],
)
def test_mla_block_size_follows_the_backend_gpu_and_kv_dtype(gpu, kv_dtype, block):
    """Backend priorities: vllm-0.33.0/vllm/platforms/cuda.py:96-155 (the same order in vllm-0.19.1/vllm/platforms/
    cuda.py:58-98): SM90 FLASH_ATTN_MLA (auto/fp16/bf16 only, vllm-0.33.0/vllm/v1/attention/backends/mla/
    flashattn_mla.py:42-46, SM90 only :69-70) then FLASHMLA (block 64, mla/flashmla.py:58); SM10x FLASHINFER_MLA
    (blocks 32 or 64, mla/flashinfer_mla.py:205: the smallest, vllm-0.33.0/vllm/v1/attention/backend.py:155-163);
    SM12x TRITON_MLA (multiples of 16). Calibration: vLLM 0.19.0 on H100 logged DeepSeek-V2-Lite with 16-token
    blocks (engine_cases.yaml: 94,097 blocks, 1,505,552 tokens)."""
    rec = recommend(
        "deepseek-ai/DeepSeek-V2-Lite", gpu_profile=gpu, kv_dtype=kv_dtype, max_model_len=8192, kv_memory="10GiB"
    )
    assert rec.block_size == block


def test_pages_that_do_not_divide_are_padded_from_0_24_0():
    """vllm-0.23.0/vllm/v1/core/kv_cache_utils.py unify_kv_cache_spec_page_size raises NotImplementedError when a page
    does not divide the largest; vllm-0.24.0/vllm/v1/core/kv_cache_utils.py:1085-1088 pads it on backends that read
    pages by block stride (FLASH_ATTN, vllm-0.24.0/vllm/v1/attention/backends/flash_attn.py:158-160 with
    vllm-0.24.0/vllm/v1/attention/backend.py:205-234), vllm-0.29.0/vllm/v1/core/kv_cache_utils.py:1186 every non-MLA
    attention page."""
    caches = [L.FullAttention(8, 128, 128), L.SlidingWindow(3, 128, 128, 1024)]  # pages 65536 and 24576 B
    req = Request(8192, 1, "bfloat16", "bfloat16", engine_version="0.23.0")
    with pytest.raises(UsageError, match="do not divide"):
        VllmEngine().plan(caches, req)
    for version in ("0.24.0", "0.29.0"):
        plan = VllmEngine().plan(caches, Request(8192, 1, "bfloat16", "bfloat16", engine_version=version))
        assert {(s.kind, s.page, s.block_size) for s in plan.specs} == {
            (L.FULL, 65536, 16),
            (L.SLIDING, 65536, 16),  # padded, still 16 tokens a block
        }


@pytest.mark.parametrize(
    "version,grouping",
    [
        ("0.19.1", ""),  # vllm-0.19.1 model_executor/models/registry.py has no DeepseekV4ForCausalLM
        ("0.20.0", "tuple_slots"),  # vllm-0.20.0 registry.py:99; kv_cache_utils.py:1162-1216 layer-tuple block
        ("0.22.0", "tuple_slots"),  # vllm-0.22.0 kv_cache_utils.py:1179-1233, the same
        ("0.23.0", "tuples"),  # vllm-0.23.0 kv_cache_utils.py:1196-1244 bucketed by page size, as 0.26.0
        ("0.25.1", "tuples"),  # vllm-0.25.0 `_get_kv_cache_config_packed` :1277-1313, the same sizes
        ("0.26.0", "tuples"),  # vllm-0.26.0 kv_cache_utils.py:1525-1566, :1603-1701, :1259-1341, :937-955
        ("0.27.1", "overlaid"),  # vllm-0.27.0 kv_cache_utils.py:1670-1754 unpadded tuples, :1283-1305 overlaid
        ("0.28.0", "overlaid"),  # vllm-0.28.0: the same functions as 0.27.0 (:1623-1707, :1249-1271)
        ("0.29.0", "packed"),  # vllm-0.29.0 kv_cache_utils.py `_get_packed_kv_cache_groups`, :1358-1370
        ("0.33.0", "packed"),  # vllm-0.33.0 v1/core/kv_cache_planning.py:914-1041, :574-606
    ],
)
def test_deepseek_v4_grouping_per_release(version, grouping):
    """How each release groups DeepSeek-V4's KV-cache specs (VllmBehaviour.v4_kv_groups; the storage is checked in
    tests/engines/test_vllm_deepseek_v4.py); a release before 0.20.0 refuses the model by name."""
    assert vllm_behaviour(version).v4_kv_groups == grouping
    shape = model_shape(load_config("deepseek-ai__DeepSeek-V4-Flash"))
    req = Request(8192, 1, "fp8_e4m3", "bfloat16", engine_version=version)
    if grouping in ("tuple_slots", "tuples", "overlaid", "packed"):
        assert VllmEngine(shape).plan(list(shape.caches()), req).num_groups == 5
    else:
        with pytest.raises(UsageError, match="DeepSeek-V4"):
            VllmEngine(shape).plan(list(shape.caches()), req)


def test_fit_checks_hold_back_the_null_block_from_0_29_0():
    """vllm-0.29.0/vllm/v1/core/kv_cache_utils.py:2316 (auto-fit and capacity) and :975 (check_enough_kv_cache_memory)
    plan against available memory minus one block (the null block); vllm-0.28.0 does not."""
    for version, fit, fits in (("0.28.0", 8192, True), ("0.29.0", 8176, False)):
        rec = _plan("meta-llama/Llama-3.1-8B", version, kv_memory="1GiB", max_model_len=8192)
        assert rec.num_blocks == 512  # 1 GiB / (16 x 128 KiB)
        assert rec.max_model_len_fit == fit and rec.fits is fits


@pytest.mark.parametrize(
    "version,memory_gib,capability,expected",
    [
        ("0.27.1", 179, "10.0", (8192, 1024)),
        ("0.28.0", 179, "10.0", (16384, 1024)),  # >= 160 GiB tier
        ("0.28.0", 140, "9.0", (8192, 1024)),  # H200 unchanged
        ("0.32.0", 121, "12.1", (8192, 1024)),
        ("0.33.0", 121, "12.1", (2048, 256)),  # GB10 stays small
        ("0.33.0", 121, "12.0", (8192, 1024)),
    ],
)
def test_scheduler_tiers(version, memory_gib, capability, expected):
    """vllm-0.19.1/vllm/engine/arg_utils.py:2053 (>= 70 GiB, not A100: 8192 / 1024); vllm-0.28.0/vllm/engine/
    arg_utils.py:2582 adds >= 160 GiB: 16384 for the API server too; vllm-0.33.0/vllm/engine/arg_utils.py:2963 and
    :2986 keep GB10 (compute capability 12.1) on the small tier."""
    assert scheduler_defaults(memory_gib * GIB, "", vllm_version=version, compute_capability=capability) == expected


def test_kv_dtypes_per_release_with_their_flag_spellings():
    """vllm-0.19.1/vllm/config/cache.py:14-23 CacheDType has auto/fp16/bf16/fp8/fp8_e4m3/fp8_e5m2/fp8_inc/fp8_ds_mla;
    vllm-0.20.0/vllm/config/cache.py adds int8_per_token_head, fp8_per_token_head and nvfp4; vllm-0.25.0 adds
    int4_per_token_head (packed 2 x int4 per byte plus an fp32 scale per side: vllm-0.33.0/vllm/v1/attention/backends/
    triton_attn.py:308-318)."""
    llama = "meta-llama/Llama-3.1-8B"
    with pytest.raises(UsageError, match=r"int8_per_token_head is first in vLLM 0\.20\.0"):
        _plan(llama, "0.19.1", kv_dtype="int8", max_model_len=8192)
    assert (
        _plan(llama, "0.20.0", kv_dtype="int8", max_model_len=8192)
        .flags["vllm"]
        .endswith("--kv-cache-dtype int8_per_token_head")
    )
    with pytest.raises(UsageError, match=r"int4_per_token_head is first in vLLM 0\.25\.0"):
        _plan(llama, "0.24.0", kv_dtype="int4", max_model_len=8192)
    rec = _plan(llama, "0.25.0", kv_dtype="int4", max_model_len=8192)
    assert rec.flags["vllm"].endswith("--kv-cache-dtype int4_per_token_head")
    # 32 layers x 8 KV heads x (64 + 64 + 8) bytes per token
    assert rec.kv_bytes_per_request == 8192 * 32 * 8 * (64 + 64 + 8)
    with pytest.raises(UsageError, match=r"nvfp4 is first in vLLM 0\.20\.0"):
        _plan(llama, "0.19.1", kv_dtype="nvfp4", max_model_len=8192)
    assert "--kv-cache-dtype fp8_e5m2" in _plan(llama, "0.19.1", kv_dtype="fp8_e5m2", max_model_len=8192).flags["vllm"]
    assert "--kv-cache-dtype fp8" in _plan(llama, "0.19.1", kv_dtype="fp8", max_model_len=8192).flags["vllm"]
    assert first_release_with("nvfp4_ds_mla") == "0.30.0"
    with pytest.raises(UsageError, match="no nvfp4 cache for MLA"):
        _plan("deepseek-ai/DeepSeek-V2-Lite", "0.33.0", kv_dtype="nvfp4", max_model_len=8192)


def test_logged_kv_cache_size_is_concurrency_times_length_from_0_20_1():
    """vllm-0.20.0/vllm/v1/core/kv_cache_utils.py:1694 logs num_blocks // num_groups x block size;
    vllm-0.20.1/vllm/v1/core/kv_cache_utils.py:1706 logs int(max_concurrency x max_model_len). For a sliding-window
    model the two differ (gemma-2-9b at 32k)."""
    shape = _shape("google__gemma-2-9b-it")
    for version in ("0.20.0", "0.20.1"):
        req = Request(32768, 1, "bfloat16", "bfloat16", max_num_batched_tokens=8192, engine_version=version)
        cap = capacity(shape.caches(), req, 40 * GIB, VllmEngine(shape))
        if version == "0.20.0":
            assert cap.kv_cache_tokens == cap.num_blocks // cap.num_groups * 16
        else:
            assert cap.kv_cache_tokens == int(cap.max_concurrency * 32768)
            assert cap.kv_cache_tokens > cap.num_blocks // cap.num_groups * 16


def test_what_turns_the_hybrid_allocator_off_is_documented_per_release():
    """Documented, not applied (kvplan has no connector input): vllm-0.19.1/vllm/config/vllm.py:1202 (--kv-events-config)
    and :1230 (any KV connector, --kv-offloading-size included) turn the hybrid allocator off; vllm-0.20.0 drops the
    KV-events rule; vllm-0.22.0/vllm/config/vllm.py:1448-1462 only connectors without SupportsHMA (OffloadingConnector
    has it: vllm-0.33.0/vllm/distributed/kv_transfer/kv_connector/v1/offloading_connector.py:53)."""
    assert any("kv-events" in w for w in vllm_behaviour("0.19.1").hybrid_allocator_off_with)
    assert not any("kv-events" in w for w in vllm_behaviour("0.20.0").hybrid_allocator_off_with)
    assert vllm_behaviour("0.33.0").hybrid_allocator_off_with == (
        "a KV connector without SupportsHMA (OffloadingConnector has it)",
    )


def test_qwen3_5_state_uses_the_config_ssm_dtype():
    """vllm-0.19.1 and vllm-0.33.0 vllm/model_executor/models/config.py Qwen3_5ForConditionalGenerationConfig set
    mamba_ssm_cache_dtype to the config's `mamba_ssm_dtype` (float32 for Qwen3.5/3.6): the GDN state is conv in bf16
    plus the recurrent state in fp32."""
    cfg = load_config("Qwen__Qwen3-Next-80B-A3B")
    text = {**cfg, "model_type": "qwen3_5_text", "mamba_ssm_dtype": "float32"}
    state = next(c for c in model_shape(text).caches() if isinstance(c, L.RecurrentState))
    req = Request(4096, 1, "bfloat16", "bfloat16")
    conv = 3 * state.conv_channels * 2
    assert VllmEngine._state_bytes(state, req) == conv + 32 * 128 * 128 * 4


# --------------------------------------------------------------------------------- which release is modelled


@pytest.mark.parametrize("text", ["0.19.0", "0.10.1.1", "0.26.1rc1", "0.28", "v0.21.0", "0.20.2rc1.dev9+g01d4d1ad3"])
def test_any_release_string_is_accepted(text):
    assert vllm_behaviour(text) in VLLM_VERSIONS
    rec = _plan("meta-llama/Llama-3.1-8B", text, max_model_len=8192, kv_memory="10GiB")
    assert rec.vllm_version == text


def test_the_default_release_is_the_installed_vllm_else_the_newest(monkeypatch):
    """Read with importlib.metadata.version("vllm"), never by importing vllm."""
    import kvplan.engines.vllm as vllm_module

    monkeypatch.setattr(vllm_module, "installed_vllm_version", lambda: None)
    assert resolve_vllm_version(None) == (NEWEST_VLLM, "newest") == ("0.33.0", "newest")
    rec = _plan("meta-llama/Llama-3.1-8B", None, max_model_len=8192)
    assert rec.vllm_version == "0.33.0" and rec.gpu_memory_utilization == 0.92
    assert resolve_vllm_version("0.19.1") == ("0.19.1", "given")
    monkeypatch.setattr(vllm_module, "installed_vllm_version", lambda: "0.25.1")
    assert resolve_vllm_version(None) == ("0.25.1", "installed")
    rec = _plan("meta-llama/Llama-3.1-8B", None, max_model_len=8192)
    assert rec.vllm_version == "0.25.1" and any("installed vllm" in n for n in rec.notes)
    est = estimate_config(load_config("meta-llama__Llama-3.1-8B"))
    assert est.vllm_version == "0.25.1"
    assert estimate_config(load_config("meta-llama__Llama-3.1-8B"), engine="sglang").vllm_version is None


def test_every_output_names_the_release(monkeypatch):
    import kvplan.engines.vllm as vllm_module

    monkeypatch.setattr(vllm_module, "installed_vllm_version", lambda: None)
    common = ["meta-llama/Llama-3.1-8B", "--gpu-profile", H100, "--max-model-len", "8k", "--offline"]
    data = json.loads(runner.invoke(app, ["recommend", *common, "--json"]).stdout)
    assert data["vllm_version"] == "0.33.0"
    pinned = json.loads(runner.invoke(app, ["recommend", *common, "--vllm-version", "0.19", "--json"]).stdout)
    assert pinned["vllm_version"] == "0.19" and pinned["gpu_memory_utilization"] == 0.9
    table = runner.invoke(app, ["recommend", *common, "--vllm-version", "0.26.0"])
    assert table.exit_code == 0 and "vLLM 0.26.0" in " ".join(table.stdout.split())
    est = runner.invoke(app, ["estimate", "meta-llama/Llama-3.1-8B", "--vllm-version", "0.26.0", "--json"])
    assert json.loads(est.stdout)["vllm_version"] == "0.26.0"
    est_table = runner.invoke(app, ["estimate", "meta-llama/Llama-3.1-8B", "--vllm-version", "0.26.0"])
    assert "vLLM 0.26.0" in " ".join(est_table.stdout.split())
    sglang = json.loads(runner.invoke(app, ["recommend", *common, "--engine", "sglang", "--json"]).stdout)
    assert sglang["vllm_version"] is None


def test_prefix_caching_and_async_scheduling_override_the_release():
    gemma = "google/gemma-2-9b-it"
    on = _plan(gemma, "0.26.0", max_model_len=32768, kv_memory="20GiB")
    off = _plan(gemma, "0.26.0", max_model_len=32768, kv_memory="20GiB", async_scheduling=False)
    assert off.max_concurrency > on.max_concurrency  # one in-flight batch instead of two
    assert off.flags["vllm"].endswith("--no-async-scheduling") and "async" not in on.flags["vllm"]
    hybrid = _plan("Qwen/Qwen3-Next-80B-A3B", "0.33.0", gpus=4, max_model_len=32768, prefix_caching=False)
    assert hybrid.flags["vllm"].endswith("--no-enable-prefix-caching")
    cli = runner.invoke(
        app, ["recommend", gemma, "-g", H100, "--offline", "--async-scheduling", "maybe", "--vllm-version", "0.26"]
    )
    assert cli.exit_code == 2 and "--async-scheduling" in cli.stderr
    note = _plan(gemma, "0.26.0", engine="sglang", max_model_len=8192, prefix_caching=True)
    assert "--vllm-version, --prefix-caching does not apply to sglang and was ignored" in note.notes


@pytest.mark.parametrize(
    ("version", "blocks"),
    [
        ("0.23.0", ""),  # vllm-0.23.0 model_executor/models/registry.py: no MiniMaxM3Sparse*
        ("0.24.0", "first_backend"),  # vllm-0.24.0 registry.py:163; platforms/interface.py:609-625, :574-591
        ("0.26.0", "first_backend"),  # vllm-0.26.0 platforms/interface.py:624-640, :589-606
        ("0.30.0", "first_backend"),  # vllm-0.30.0 platforms/interface.py:624-640 (the first backend alone)
        ("0.31.0", "all_backends"),  # vllm-0.31.0 platforms/interface.py:616-663 and :688-697
        ("0.32.0", "all_backends"),  # vllm-0.32.0 platforms/interface.py:723-747
        ("0.33.0", "all_backends"),  # vllm-0.33.0 platforms/interface.py:723-739
    ],
)
def test_minimax_m3_block_size_choice_per_release(version, blocks):
    """How each release picks MiniMax-M3's block size without --block-size (VllmBehaviour.minimax_m3_blocks; the
    storage is checked in tests/engines/test_minimax_m3_vllm.py): 0.24-0.30 take the first attention layer's
    backend's preferred size, so a dense layer 0 keeps 16 and start-up fails; 0.31 on, 128 for every backend."""
    assert vllm_behaviour(version).minimax_m3_blocks == blocks
    assert vllm_behaviour("0.31.0").since == (0, 31, 0)  # its own row: only the block-size choice differs
    assert vllm_behaviour("0.31.0").kv_cache_dtypes == vllm_behaviour("0.30.0").kv_cache_dtypes
