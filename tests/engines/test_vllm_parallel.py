"""vLLM's data, expert and decode-context parallelism (`recommend -dp`, `--enable-expert-parallel`,
`--num-redundant-experts`, `-dcp`), each rule against vLLM 0.33.0's source (file:line in every docstring), each
figure worked out by hand from the config here, not read back from kvplan."""

from __future__ import annotations

import json
from math import ceil

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.engines.base import Request
from kvplan.engines.serving import Layout
from kvplan.engines.sizing import fullest_stage
from kvplan.engines.vllm import Spec, VllmEngine, moe_shards
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend
from kvplan.planning.resolved import resolve

runner = CliRunner()
H100 = "h100-sxm-80gb"
V2_LITE = "deepseek-ai/DeepSeek-V2-Lite"  # MLA (512 + 64 latent), 27 layers, 26 of them MoE: 64 experts of 1408
LLAMA = "meta-llama/Llama-3.1-8B"  # 32 layers, 8 KV heads of 128, 32 query heads
GIB = 2**30


def plan(model: str, **options):
    return recommend(model, gpu_profile=H100, offline=True, **options)


# ---------------------------------------------------------------------------------------------- the experts


@pytest.mark.parametrize(
    ("tp", "dp", "ep", "expected"),
    [
        (2, 1, False, (1, 2)),  # "TP = 2, DP = 1, EP = False: tensors are sharded across 2 devices"
        (1, 2, False, (1, 2)),  # "TP = 1, DP = 2, EP = False: ... sharded across 2 devices"
        (2, 2, False, (1, 4)),  # "TP = 2, DP = 2, EP = False: ... sharded across 4 devices"
        (2, 1, True, (2, 1)),  # "TP = 2, DP = 1, EP = True: the experts are split between the 2 devices"
        (1, 2, True, (2, 1)),
        (2, 2, True, (4, 1)),  # "TP = 2, DP = 2, EP = True: ... EP = {4, r}, TP = {1, 0}"
        (1, 1, True, (1, 1)),  # EP needs dp x pcp x tp > 1 (:1198-1201)
    ],
)
def test_moe_layers_flatten_tp_across_dp(tp, dp, ep, expected):
    """vllm-0.33.0/vllm/model_executor/layers/fused_moe/config.py:1106-1115 (flatten_tp_across_dp_and_pcp) and
    the examples of `make`'s docstring, :1136-1196: (EP size, each expert's TP size)."""
    ep_size, tp_size, _, _ = moe_shards(64 * 1000, 64, tp, 1, Layout(dp=dp, expert_parallel=ep))
    assert (ep_size, tp_size) == expected


def test_experts_spread_evenly_the_first_ranks_holding_one_more():
    """fused_moe/expert_map_manager.py:64-67: base = global // ep, the first `remainder` ranks one more; EPLB's
    redundant experts are global experts (fused_moe/layer.py:76-88). The fullest rank is what a GPU must hold."""
    assert moe_shards(10 * 7, 10, 4, 1, Layout(expert_parallel=True))[2:] == (3, 3 * 7)  # 10 = 3 + 3 + 2 + 2
    layout = Layout(dp=2, expert_parallel=True, redundant_experts=32)
    assert moe_shards(256 * 100, 256, 8, 2, layout)[2:] == (18, 18 * 100 // 2)  # (256 + 32) / 16, over pp 2


def test_v2_lite_weights_per_gpu_split_experts_by_ep_and_the_rest_by_tp():
    """DeepSeek-V2-Lite at TP 2 x DP 2 with expert parallelism: 26 MoE layers of 64 experts (3 matrices of
    2048 x 1408, bf16) placed 16 a GPU (EP 4 = TP x DP, fused_moe/config.py:1227-1245); everything else / TP."""
    experts = 26 * 64 * 3 * 2048 * 1408 * 2
    base = plan(V2_LITE, tp=2)
    whole = base.weights_bytes * 2  # the counted weights, / (tp x pp) before
    ep = plan(V2_LITE, tp=2, dp=2, expert_parallel=True)
    assert ep.parallel["expert_weights_per_gpu_bytes"] == experts * 16 // 64
    assert ep.weights_bytes == (whole - experts) // 2 + experts // 4
    assert ep.parallel["ep_size"] == 4 and ep.parallel["experts_per_gpu"] == 16 and ep.gpus == 4
    # without EP the experts are still split over TP x DP = 4 GPUs (by TP): the same bytes here
    no_ep = plan(V2_LITE, tp=2, dp=2)
    assert no_ep.parallel["ep_size"] == 1 and no_ep.parallel["expert_weights_per_gpu_bytes"] == experts // 4
    assert "--enable-expert-parallel" in ep.flags["vllm"] and "--data-parallel-size 2" in ep.flags["vllm"]


def test_redundant_experts_add_replicas_and_need_eplb_on_ep():
    """vllm-0.33.0/vllm/config/parallel.py:562-591: redundant experts need EPLB, EPLB needs expert parallelism;
    fused_moe/layer.py:260-268: EPLB needs the global experts to split evenly over the EP ranks."""
    rec = plan(V2_LITE, tp=2, dp=2, expert_parallel=True, redundant_experts=4)
    assert rec.parallel["experts_per_gpu"] == 17  # (64 + 4) / 4
    assert rec.parallel["expert_weights_per_gpu_bytes"] == 26 * 3 * 2048 * 1408 * 2 * 17
    assert """--enable-eplb --eplb-config '{"num_redundant_experts": 4}'""" in rec.flags["vllm"]
    # EPLB's transfer buffer: one MoE layer's local experts (distributed/eplb/eplb_state.py:492), held from load
    # (v1/worker/gpu_model_runner.py:5069, in load_model)
    (buffer,) = [t.bytes for t in rec.budget if t.name == "eplb_buffer"]
    assert buffer == -(17 * 3 * 2048 * 1408 * 2)
    with pytest.raises(UsageError, match="needs --enable-expert-parallel"):
        plan(V2_LITE, tp=2, redundant_experts=4)
    with pytest.raises(UsageError, match="splits experts evenly"):
        plan(V2_LITE, tp=2, dp=2, expert_parallel=True, redundant_experts=3)
    with pytest.raises(UsageError, match="routed experts"):
        plan(LLAMA, expert_parallel=True)


# -------------------------------------------------------------------------------------- the KV pools (DP)


def test_each_dp_rank_holds_its_own_pool_and_requests_split_over_them():
    """Each DP rank is an engine core with its own KV cache (config/parallel.py:147-149: DP groups; :629
    world_size_across_dp): a dense model's per-GPU figures do not change, capacity is ranks x per rank, and
    `--concurrency` asks ceil(N / dp) requests of each rank."""
    one = plan(LLAMA)
    wanted = int(one.max_concurrency) + 1  # one request more than one GPU holds
    alone = plan(LLAMA, concurrency=wanted)
    two = plan(LLAMA, concurrency=wanted, dp=2)
    assert not alone.fits and two.fits
    assert (two.weights_bytes, two.kv_cache_tokens, two.max_concurrency) == (
        one.weights_bytes,
        one.kv_cache_tokens,
        one.max_concurrency,
    )
    assert two.gpus == 2 and two.tp == 1  # --gpus defaults to tp x pp x dp
    assert two.parallel["kv_cache_tokens_total"] == 2 * one.kv_cache_tokens
    assert two.parallel["kv_pools"] == 2
    assert abs(two.parallel["max_concurrency_total"] - 2 * one.max_concurrency) < 0.011  # each rounded to 0.01
    assert plan(LLAMA, gpus=8, dp=2).tp == 4  # tp defaults to gpus / (pp x dp)


def test_a_layout_needs_its_gpus():
    with pytest.raises(UsageError, match="needs 8 GPUs"):
        plan(LLAMA, tp=4, dp=2, gpus=4)


# ---------------------------------------------------------------------------------------------- DCP


def test_dcp_splits_the_mla_latent_over_the_tp_group():
    """vllm-0.33.0/vllm/v1/kv_cache_interface.py:610-616 (max_num_blocks_per_req = cdiv(len, block_size x dcp) for
    a dcp_sharded spec, AttentionSpec's default :553) and v1/core/single_type_kv_cache_manager.py:107-109: the
    MLA latent of DeepSeek-V2-Lite (576 bf16 values a token, 27 layers, one group of pages) at 1000 tokens holds
    cdiv(1000, 16 x 8) = 8 blocks at DCP 8 instead of cdiv(1000, 16) = 63: TP alone replicates it 8 times."""
    page = 16 * (512 + 64) * 2 * 27
    tp8 = plan(V2_LITE, tp=8, max_model_len=1000)
    dcp8 = plan(V2_LITE, tp=8, dcp=8, max_model_len=1000)
    assert tp8.kv_bytes_per_request == 63 * page
    assert dcp8.kv_bytes_per_request == 8 * page
    assert dcp8.gpus == 8  # DCP reuses the TP ranks: no GPUs of its own (config/parallel.py:389-392)
    assert "--decode-context-parallel-size 8" in dcp8.flags["vllm"]


def test_dcp_for_gqa_needs_tp_above_the_kv_heads():
    """vllm-0.33.0/vllm/config/model.py:1578-1606: for GQA, TP > KV heads, DCP <= TP / KV heads and DCP divides the
    query heads per KV head. Llama-3.1-8B at TP 16 holds 1 of its 8 KV heads (two ranks each): DCP 2 splits
    that head's tokens, cdiv(1000, 32) = 32 blocks of 16 x 128 x 2 (K, V) x 2 bytes x 32 layers."""
    layer_page = 16 * 128 * 2 * 2
    rec = plan(LLAMA, tp=16, dcp=2, max_model_len=1000)
    assert rec.kv_bytes_per_request == 32 * layer_page * 32
    assert plan(LLAMA, tp=16, max_model_len=1000).kv_bytes_per_request == 63 * layer_page * 32
    with pytest.raises(UsageError, match="above the model's 8 KV heads"):
        plan(LLAMA, tp=8, dcp=2)
    with pytest.raises(UsageError, match="is above --tp 16 / 8 KV heads"):
        plan(LLAMA, tp=16, dcp=4)


def test_dcp_refusals():
    """TP must be a multiple of DCP (config/parallel.py:594-599); sliding-window caches cannot be sharded
    (v1/kv_cache_interface.py:946-950; v1/core/single_type_kv_cache_manager.py:984 asserts DCP 1); the rules
    are 0.33.0's (older releases refused, not guessed)."""
    with pytest.raises(UsageError, match="does not divide --tp 4"):
        plan(V2_LITE, tp=4, dcp=3)
    with pytest.raises(UsageError, match="sliding_window"):
        plan("google/gemma-2-9b-it", tp=8, dcp=2)
    with pytest.raises(UsageError, match="from vLLM 0.33.0's source only"):
        plan(V2_LITE, tp=2, dcp=2, vllm_version="0.29.0")
    with pytest.raises(UsageError, match="from vLLM 0.33.0's source only"):
        plan(V2_LITE, tp=2, dp=2, vllm_version="0.29.0")


def test_dcp_leaves_recurrent_states_replicated():
    """Mamba-style states are no AttentionSpec (v1/kv_cache_interface.py:1094 MambaSpec; `dcp_sharded` False by
    default, :207): Qwen3-Next's GDN states keep their bytes at DCP 2 while its full-attention tokens halve."""
    model = resolve("Qwen/Qwen3-Next-80B-A3B", offline=True)
    caches, _ = fullest_stage(model.shape, 1)
    engine = VllmEngine(model.shape)
    base = Request(4096, 1, "bfloat16", "bfloat16", tp=4, engine_version="0.33.0")
    kinds = {c.kind: c for c in engine.stage_costs(caches, base)}
    halved = {c.kind: c for c in engine.stage_costs(caches, Request(**{**base.__dict__, "dcp": 2}))}
    assert halved[L.STATE].bytes == kinds[L.STATE].bytes
    assert halved[L.FULL].bytes * 2 == kinds[L.FULL].bytes
    assert VllmEngine.dcp_shards(Spec(L.STATE, 1, 16), Request(1, 1, "bfloat16", "bfloat16", tp=4, dcp=4)) == 1


# ---------------------------------------------------------------------------------------- the command line


def test_cli_layout_table_and_refusals():
    result = runner.invoke(
        app, ["recommend", V2_LITE, "-g", H100, "--tp", "2", "-dp", "2", "--enable-expert-parallel", "--offline"]
    )
    assert result.exit_code == 0, result.output
    assert "TP 2 x PP 1 x DP 2 = 4 GPUs" in result.output and "16 of 64 (EP 4)" in result.output
    sglang = runner.invoke(app, ["recommend", LLAMA, "-g", H100, "--engine", "sglang", "-dcp", "2", "--offline"])
    assert sglang.exit_code == 2 and sglang.output.startswith("error: --decode-context-parallel-size is not modelled")
    nodes = runner.invoke(app, ["recommend", LLAMA, "-g", "l40s", "--nodes", "2", "--offline"])  # no gpus_per_node
    assert nodes.exit_code == 2 and "--gpus-per-node" in nodes.output and "Traceback" not in nodes.output
    wide = runner.invoke(
        app, ["recommend", LLAMA, "-g", H100, "--nodes", "2", "--gpus-per-node", "4", "--offline", "--json"]
    )
    doc = json.loads(wide.stdout)
    assert doc["gpus"] == 8 and doc["tp"] == 8 and doc["parallel"]["nodes"] == 2
    assert any("spans 2 nodes" in n for n in doc["notes"])
    assert ceil(doc["parallel"]["gpus_used"] / 4) == 2
    both = runner.invoke(app, ["recommend", LLAMA, "-g", H100, "--gpus", "4", "--nodes", "2", "--gpus-per-node", "4"])
    assert both.exit_code == 2 and both.output.startswith("error: --gpus 4 is not --nodes x --gpus-per-node = 8")


def test_gpus_per_node_alone_places_the_plan_on_nodes_and_says_so_in_its_help():
    """--gpus-per-node without --nodes still means something (the TP-spans-nodes note, the DP ranks whose offload
    tiers share a node's host memory): its help says so; --smallest-layout, which would drop it, refuses it."""
    alone = runner.invoke(app, ["recommend", LLAMA, "-g", H100, "--gpus-per-node", "2", "--tp", "4", "--offline"])
    assert alone.exit_code == 0, alone.output
    assert "--tp 4 spans 2 nodes of 2 GPUs" in " ".join(alone.output.split())
    help_text = " ".join(runner.invoke(app, ["recommend", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "Alone: the node the plan is placed on" in help_text
    search = runner.invoke(app, ["recommend", LLAMA, "-g", H100, "--smallest-layout", "--gpus-per-node", "4"])
    assert search.exit_code == 2 and search.output.startswith("error: --smallest-layout takes --gpus-per-node only")
    assert "hint:" in search.output


def test_nodes_take_the_profiles_gpus_per_node():
    """--nodes without --gpus-per-node: the profile's gpus_per_node (h100-sxm-80gb 8, gb200 4 per compute tray, from
    ai-dynamo/aiconfigurator 095f58a aic-core/src/aiconfigurator_core/systems/h100_sxm.yaml:17, gb200.yaml:20); a TP
    group wider than a node is said to cross the network, except within GB200's 72-GPU NVLink domain (gb200.yaml:21,
    :23 'NVLink via NVSwitch within rack')."""
    wide = runner.invoke(app, ["recommend", LLAMA, "-g", H100, "--nodes", "2", "--tp", "16", "--offline", "--json"])
    assert wide.exit_code == 0, wide.output
    doc = json.loads(wide.stdout)
    assert (doc["gpus"], doc["parallel"]["nodes"], doc["parallel"]["gpus_per_node"]) == (16, 2, 8)
    assert (
        "--tp 16 spans 2 nodes of 8 GPUs: its all-reduces cross the network between nodes, not nvlink4" in doc["notes"]
    )
    rack = runner.invoke(app, ["recommend", LLAMA, "-g", "gb200", "--nodes", "2", "--offline", "--json"])
    doc = json.loads(rack.stdout)
    assert (doc["gpus"], doc["tp"], doc["parallel"]["gpus_per_node"]) == (8, 8, 4)
    spans = [n for n in doc["notes"] if "spans" in n]
    assert spans == [
        "--tp 8 spans 2 nodes of 4 GPUs within the profile's 72-GPU NVLink domain: its all-reduces stay on nvlink5 between the nodes"
    ]
    given = runner.invoke(
        app, ["recommend", LLAMA, "-g", "gb200", "--nodes", "1", "--gpus-per-node", "8", "--offline", "--json"]
    )
    assert json.loads(given.stdout)["gpus"] == 8  # --gpus-per-node wins over the profile's


def test_sglang_dp_replicas_each_hold_a_pool_and_the_rest_is_refused():
    """SGLang's --dp-size without DP attention: replicas of TP x PP GPUs (sglang-0.5.23/sglang/srt/server_args.py:
    581-589 compute_world_size = dp x tp x pp), one scheduler and pool each (srt/runtime_context.py:202-207), the
    experts split by TP inside a replica (srt/arg_groups/fields/parallel.py:343-347): per-GPU figures unchanged."""
    one = plan(V2_LITE, engine="sglang", tp=2)
    two = plan(V2_LITE, engine="sglang", tp=2, dp=2)
    assert (two.weights_bytes, two.kv_cache_tokens, two.gpus) == (one.weights_bytes, one.kv_cache_tokens, 4)
    assert two.parallel["kv_pools"] == 2 and two.parallel["kv_cache_tokens_total"] == 2 * one.kv_cache_tokens
    assert two.parallel["ep_size"] is None  # the experts are not placed apart
    assert "--dp-size 2" in two.flags["sglang"]
    with pytest.raises(UsageError, match="--enable-expert-parallel is not modelled for sglang"):
        plan(V2_LITE, engine="sglang", tp=2, expert_parallel=True)


def test_estimate_dcp_removes_tp_s_mla_duplication():
    """`kvplan estimate --tp 8 -dcp 8`: DeepSeek-V3's MLA latent (576 bf16 values, 61 layers) at 128k tokens is
    cdiv(131072, 16) = 8192 blocks on every one of 8 TP ranks, or cdiv(131072, 16 x 8) = 1024 with DCP 8
    (v1/kv_cache_interface.py:610-616)."""
    from kvplan.planning.estimate import estimate

    page = 16 * 576 * 2 * 61
    tp8 = estimate("deepseek-ai/DeepSeek-V3", seq_len=131072, tp=8, offline=True, include_weights=False)
    dcp8 = estimate("deepseek-ai/DeepSeek-V3", seq_len=131072, tp=8, dcp=8, offline=True, include_weights=False)
    assert (tp8.kv_cache_bytes_per_gpu, dcp8.kv_cache_bytes_per_gpu) == (8192 * page, 1024 * page)
    assert "dcp" not in tp8.to_dict() and dcp8.to_dict()["dcp"] == 8
    with pytest.raises(UsageError, match="is not modelled for sglang"):
        estimate("deepseek-ai/DeepSeek-V3", tp=8, dcp=8, engine="sglang", offline=True)
