"""The decoder tensors vLLM keeps whole on every TP rank (kvplan.engines.vllm.TP_REPLICATED): DeepseekV3ForCausalLM,
Kimi K2.5's text model, builds the MLA down projections with disable_tp=True and the router as a ReplicatedLinear
(vllm-0.33.0 model_executor/models/deepseek_v2.py:953-967, :1052-1065, :321-329)."""

from __future__ import annotations

import pytest

from kvplan.planning.recommend import recommend

from conftest import load_config


def _replicated_params(name: str) -> int:
    """From the config alone: per layer q_a_proj (q_lora_rank x h) + kv_a_proj_with_mqa ((kv_lora_rank + rope) x h),
    the two layer norms and the q_a / kv_a norms; per MoE layer the router (experts x h) and its correction bias;
    the final norm."""
    text = load_config(name).get("text_config") or load_config(name)
    h, layers = text["hidden_size"], text["num_hidden_layers"]
    q, kv, rope = text["q_lora_rank"], text["kv_lora_rank"], text["qk_rope_head_dim"]
    moe_layers = layers - text["first_k_dense_replace"]
    experts = text["n_routed_experts"]
    per_layer = (q + kv + rope) * h + 2 * h + q + kv
    return layers * per_layer + moe_layers * (experts * h + experts) + h


@pytest.mark.parametrize("tp", [2, 8])
def test_kimi_k25_keeps_the_mla_down_projections_and_router_whole(tp):
    """Kimi K2.5's attention and routers are bf16 in its checkpoint (only the experts are int4): (tp - 1) / tp of
    their bytes more per GPU than weights / TP."""
    name = "moonshotai__Kimi-K2.5"
    one = recommend("moonshotai/Kimi-K2.5", gpu_profile="h200-sxm-141gb", tp=1, offline=True)
    rec = recommend("moonshotai/Kimi-K2.5", gpu_profile="h200-sxm-141gb", tp=tp, offline=True)
    whole = -next(t for t in one.budget if t.name == "weights").bytes
    held = -next(t for t in rec.budget if t.name == "weights").bytes
    extra = _replicated_params(name) * 2 * (tp - 1) // tp
    assert held == whole // tp + extra
    assert rec.weights_bytes == held  # the plan's weights per GPU follow the term


def test_tp1_and_other_families_are_unchanged():
    """Llama's decoder has no tensor kvplan lists as replicated: weights / TP as before."""
    one = recommend("meta-llama/Llama-3.1-70B", gpu_profile="h200-sxm-141gb", tp=1, offline=True)
    rec = recommend("meta-llama/Llama-3.1-70B", gpu_profile="h200-sxm-141gb", tp=8, offline=True)
    term = next(t for t in rec.budget if t.name == "weights")
    assert "kept whole on every TP rank" not in term.source and rec.weights_bytes == one.weights_bytes // 8
