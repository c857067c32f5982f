"""LoRA adapter slots as budget terms (issue 13): each engine's `lora` row against the engine's own source and
TensorRT-LLM's logged PEFT-cache figures.

- TensorRT-LLM: the log of triton-inference-server/tensorrtllm_backend #559 (TensorRT-LLM 0.11.0, A800,
  qwen1.5-7b-chat, rank-8 adapters on the 7 modules): "Using 39976960 bytes for LoRA host cache", "Using 312836096
  bytes for LoRA device cache", "Max LoRA size is 19988480", "LoRA host Cache can hold 1 max sized LoRAs", "LoRA
  device Cache can hold 8 max sized LoRAs"; arithmetic of cpp/tensorrt_llm/batch_manager/peftCacheManager.cpp
  `getPageManagerConfig` (NVIDIA/TensorRT-LLM 9df6d722).
- vLLM: the tensors `create_lora_weights` allocates (vllm-0.33.0 vllm/lora/layers/base_linear.py:104-155,
  column_parallel_linear.py:200-245, row_parallel_linear.py:26-28, vocab_parallel_embedding.py:25-48,
  logits_processor.py:84-110), enumerated here shape by shape.
- SGLang: LoRAMemoryPool's buffers (sglang-0.5.23 srt/lora/mem_pool.py:408-737; `all` adds embed_tokens and
  lm_head, srt/lora/lora_manager.py:807-809).
"""

from __future__ import annotations

import json
import math

import pytest

from kvplan.core.lora import decoder_modules, parse_targets
from kvplan.core.shapes import model_shape
from kvplan.engines.tensorrt_llm import peft_pages
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend
from tests.conftest import config_path, load_config
from tests.test_cli import run as invoke

H100 = "h100-sxm-80gb"


def run(*args: str) -> tuple[int, str, str]:
    result = invoke(*args)
    return result.exit_code, result.stdout, result.stderr


LLAMA = "meta-llama/Llama-3.1-8B"  # hidden 4096, 32 heads, 8 KV heads x 128, intermediate 14336, vocab 128256


def _lora_row(rec):
    rows = [t for t in rec.budget if t.name == "lora"]
    assert len(rows) == 1, [t.name for t in rec.budget]
    return rows[0]


def _plan(model=LLAMA, **options):
    return recommend(model, gpu_profile=H100, offline=True, max_model_len=8192, **options)


# ------------------------------------------------------------------------------------------------ TensorRT-LLM


def test_trtllm_peft_cache_reproduces_the_logged_qwen15_7b_figures():
    """tensorrtllm_backend #559: rank 8 on all 7 modules of Qwen1.5-7B. The module widths (local in + out) come
    from the config through kvplan.core.lora; peftCacheManager.cpp getPageManagerConfig turns them into a page
    width of 8192 (the narrowest module), 2,560 slots a page (8 x 10 slots a layer x 32 layers) and a max LoRA size
    of 8 x 78,080 x 32 = 19,988,480 values. The logged cache bytes are slots x 8192 values x 2 bytes (fp16):
    312,836,096 bytes = 19,094 slots = 8 pages, which hold 8 adapters; 39,976,960 bytes = 2,440 slots = 1 page,
    which holds 1."""
    config = load_config("Qwen__Qwen1.5-7B")
    modules = decoder_modules(config, model_shape(config))
    widths = [m.local_in(1) + m.local_out(1) for m in modules]
    assert sorted(widths) == [8192] * 4 + [15104] * 3
    pages = peft_pages(widths, local_layers=32, max_lora_rank=8)
    assert pages.max_lora_size == 19_988_480  # "Max LoRA size is 19988480"
    assert (pages.page_width, pages.slots_per_page) == (8192, 2560)
    slot_bytes = pages.page_width * 2
    device_slots, host_slots = 312_836_096 // slot_bytes, 39_976_960 // slot_bytes
    assert device_slots * slot_bytes == 312_836_096 and host_slots * slot_bytes == 39_976_960
    assert pages.adapters(device_slots) == 8  # "LoRA device Cache can hold 8 max sized LoRAs"
    assert pages.adapters(host_slots) == 1  # "LoRA host Cache can hold 1 max sized LoRAs"


def test_trtllm_max_loras_sizes_the_device_cache_in_whole_pages_before_the_kv_fraction():
    """With lora_config max_loras the PyTorch backend sets num_device_module_layer = rank x num_hidden_layers x
    modules x max_loras (tensorrt_llm/_torch/pyexecutor/_util.py), each taking ceil(widest / page width) = 2
    slots: 8 x 32 x 7 x 2 x 2 = 7,168 slots, 3 pages of 2,560 slots x 8,192 values in bf16, held before the KV
    fraction is taken of the free memory (py_executor_creator.py)."""
    model = str(config_path("Qwen__Qwen1.5-7B"))
    base = _plan(model, engine="tensorrt-llm")
    rec = _plan(model, engine="tensorrt-llm", max_loras=2, max_lora_rank=8, max_cpu_loras=4)
    row = _lora_row(rec)
    assert row.bytes == -3 * 2560 * 8192 * 2
    assert "holds 3 adapters" in row.source and "peftCacheManager.cpp" in row.source
    assert abs(base.available_kv_memory_bytes - rec.available_kv_memory_bytes - -row.bytes * 0.9) <= 1
    assert rec.lora_host_bytes == 6 * 2560 * 8192 * 2  # 14,336 slots: 6 pages
    assert "lora_config {max_lora_rank: 8, max_loras: 2, max_cpu_loras: 4}" in rec.flags["tensorrt-llm"]


def test_trtllm_command_ends_in_one_shell_comment_with_a_kv_dtype_and_lora():
    """The KV dtype and LoRA remarks of trtllm-serve's command are one comment joined by "; " (as SGLang's), not
    two "  # " comments on one line."""
    rec = _plan("meta-llama/Llama-3.1-8B", engine="tensorrt-llm", kv_dtype="fp8", max_lora_rank=16)
    command, _, comment = rec.flags["tensorrt-llm"].partition("  # ")
    assert command.startswith("trtllm-serve ") and "#" not in comment
    assert comment.startswith("KV dtype fp8_e4m3: trtllm-serve has no option for it")
    assert "to --config; LoRA: set lora_config {max_lora_rank: 16" in comment


# -------------------------------------------------------------------------------------------------------- vLLM


def _vllm_tensors(tp: int, rank: int, slots: int, embedding: bool) -> int:
    """Elements of every tensor vLLM's create_lora_weights allocates for Llama-3.1-8B on one TP rank."""
    hidden, q, kv, inter, vocab, layers = 4096, 4096, 1024, 14336, 128256, 32
    per_layer = [
        *[(slots, 1, rank, hidden)] * 3,  # qkv_proj: A per slice (whole input)
        (slots, 1, q // tp, rank),  # B per slice: the rank's share of the output
        *[(slots, 1, kv // tp, rank)] * 2,
        (slots, 1, rank, q // tp),  # o_proj (row parallel): A of the input share
        (slots, 1, hidden, rank),  # B of the whole output
        *[(slots, 1, rank, hidden)] * 2,  # gate_up_proj: A per slice
        *[(slots, 1, inter // tp, rank)] * 2,
        (slots, 1, rank, inter // tp),  # down_proj (row parallel)
        (slots, 1, hidden, rank),
    ]
    extra = [(slots, vocab, rank), (slots, 1, hidden, rank), (slots, 1, rank, hidden), (slots, 1, vocab, rank)]
    return layers * sum(math.prod(s) for s in per_layer) + (sum(math.prod(s) for s in extra) if embedding else 0)


@pytest.mark.parametrize("tp", [1, 2])
def test_vllm_lora_row_is_the_tensors_create_lora_weights_allocates(tp):
    """Llama's vLLM class declares embed_tokens and lm_head as embedding modules (model_executor/models/llama.py
    :479-482), so without --lora-target-modules they get slots too; the buffers are allocated at load, before the
    profile run (v1/worker/gpu_model_runner.py:5005-5008), so the KV budget shrinks by exactly the row."""
    base = _plan(gpus=tp)
    rec = _plan(gpus=tp, max_loras=4, max_lora_rank=16)
    row = _lora_row(rec)
    assert row.bytes == -2 * _vllm_tensors(tp, 16, 4, embedding=True)
    assert "create_lora_weights" in row.source
    assert base.available_kv_memory_bytes - rec.available_kv_memory_bytes == -row.bytes
    # max_cpu_loras defaults to max_loras: 4 whole adapters (all 7 modules, 32 layers, rank 16) on the CPU
    assert rec.lora_host_bytes == 4 * 32 * 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336)) * 2
    assert "worker_manager.py:140-145" in rec.lora_host_source
    assert rec.flags["vllm"].endswith("--enable-lora --max-loras 4 --max-lora-rank 16")


def test_vllm_target_modules_wrap_whole_fused_modules_and_skip_the_embeddings():
    """--lora-target-modules q_proj: vLLM matches the packed qkv_proj (is_in_target_modules with
    packed_modules_mapping, lora/model_manager.py:798-813), which is wrapped whole (3 slices); the embeddings
    are not targeted."""
    rec = _plan(max_loras=1, max_lora_rank=8, lora_target_modules="q_proj")
    qkv = 3 * 8 * 4096 + 8 * (4096 + 2 * 1024)
    assert _lora_row(rec).bytes == -2 * 32 * qkv
    assert "--lora-target-modules q_proj" in rec.flags["vllm"]


def test_vllm_qwen2_declares_no_embedding_modules():
    """Qwen2ForCausalLM has no `embedding_modules` (model_executor/models/qwen2.py:462-466): linear slots only."""
    config = load_config("Qwen__Qwen1.5-7B")
    rec = _plan(str(config_path("Qwen__Qwen1.5-7B")), max_loras=1, max_lora_rank=8)
    modules = decoder_modules(config, model_shape(config))
    assert _lora_row(rec).bytes == -2 * 32 * sum(m.elements(8) for m in modules)
    assert "embed" not in _lora_row(rec).source


def test_vllm_refuses_what_its_lora_config_refuses():
    """config/lora.py: max_lora_rank is one of MaxLoRARanks (:27), max_cpu_loras >= max_loras (:121-126)."""
    with pytest.raises(UsageError, match="--max-lora-rank 1, 8, 16"):
        _plan(max_lora_rank=12)
    with pytest.raises(UsageError, match=r"max_cpu_loras \(2\) must be >= max_loras \(4\)"):
        _plan(max_loras=4, max_cpu_loras=2)


# ------------------------------------------------------------------------------------------------------ SGLang


def test_sglang_pool_holds_max_loras_per_batch_slots_and_all_adds_the_embeddings():
    """mem_pool.py: A (slots, rank x stacked, input) and B (slots, output, rank) per module and layer, the same
    shapes as vLLM's for the linear modules; `--lora-target-modules all` adds embed_tokens (A rank x vocab, B
    hidden x rank) and lm_head (A rank x hidden, B vocab / TP x rank). The default slot count is 8
    (arg_groups/fields/lora.py:66-69); the rank has no default (SGLang reads it from --lora-paths)."""
    rec = _plan(engine="sglang", max_lora_rank=16)
    assert _lora_row(rec).bytes == -2 * _vllm_tensors(1, 16, 8, embedding=True)
    assert rec.lora_host_bytes is None  # no --max-loaded-loras: every adapter loaded, which kvplan cannot know
    assert "--max-loras-per-batch 8 --max-lora-rank 16 --lora-target-modules all" in rec.flags["sglang"]
    with pytest.raises(UsageError, match="reads the LoRA rank from the adapters"):
        _plan(engine="sglang", enable_lora=True)


# ------------------------------------------------------------------------------------------ refusals and input


@pytest.mark.parametrize(
    ("model", "what"),
    [("mistralai/Mixtral-8x7B-v0.1", "routed experts"), ("deepseek-ai/DeepSeek-V2-Lite", "routed experts")],
)
def test_models_whose_lora_buffers_are_not_modelled_are_refused(model, what):
    with pytest.raises(UsageError, match=what):
        recommend(model, gpu_profile=H100, gpus=8, offline=True, max_model_len=4096, max_loras=1)


def test_engines_without_a_lora_model_refuse_lora_settings():
    with pytest.raises(UsageError, match="has not read how llama.cpp holds LoRA adapters"):
        _plan(engine="llama.cpp", max_loras=2)


def test_target_modules_are_checked():
    assert parse_targets("q_proj, v_proj") == ("q_proj", "v_proj")
    assert parse_targets(["v_proj", "q_proj"]) == ("q_proj", "v_proj")
    assert parse_targets("all") is None
    with pytest.raises(UsageError, match="qkv"):
        parse_targets("qkv")


def test_cli_prints_the_lora_row_and_refuses_bad_input_in_one_line():
    code, out, err = run("recommend", LLAMA, "-g", H100, "--max-model-len", "8k", "--max-loras", "2", "--offline")
    assert code == 0 and "lora" in out and "LoRA adapters in host memory" in out
    code, out, err = run("recommend", LLAMA, "-g", H100, "--max-lora-rank", "12", "--offline")
    assert code == 2 and err.startswith("error: vLLM accepts --max-lora-rank") and "Traceback" not in err
    code, out, _ = run("recommend", LLAMA, "-g", H100, "--enable-lora", "--offline", "--json")
    document = json.loads(out)
    assert [t["name"] for t in document["budget"]].count("lora") == 1 and document["lora_host_bytes"] > 0


def test_plan_files_and_engine_configs_carry_the_lora_settings(tmp_path):
    """A plan's max_loras / max_lora_rank / lora_target_modules keys, a vLLM --config's max-loras and an SGLang
    server-args file's max-loras-per-batch reach the same budget row."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - name: chat\n    model: meta-llama/Llama-3.1-8B\n    gpu: h100-sxm-80gb\n"
        "    max_model_len: 8192\n    max_loras: 4\n    max_lora_rank: 16\n"
    )
    vllm_config = tmp_path / "vllm.yaml"
    vllm_config.write_text("model: meta-llama/Llama-3.1-8B\nmax-model-len: 8192\nenable-lora: true\nmax-loras: 4\n")
    sglang_config = tmp_path / "sglang.yaml"
    sglang_config.write_text(
        "model-path: meta-llama/Llama-3.1-8B\ncontext-length: 8192\nmax-loras-per-batch: 4\nmax-lora-rank: 16\n"
    )
    expected = -2 * _vllm_tensors(1, 16, 4, embedding=True)
    for args in (
        (str(plan),),
        ("--engine-config", str(vllm_config), "-g", H100),
        ("--engine-config", str(sglang_config), "-g", H100),
    ):
        code, out, err = run("check", *args, "--offline", "--json")
        assert code == 0, err
        (deployment,) = json.loads(out)["deployments"]
        rows = [t for t in deployment["recommend"]["budget"] if t["name"] == "lora"]
        assert [t["bytes"] for t in rows] == [expected], args


def test_manifest_command_lines_take_every_target_module():
    """vLLM's --lora-target-modules is a list (engine/arg_utils.py:1629) and SGLang's nargs="*"
    (arg_groups/fields/lora.py:46-53): `--lora-target-modules q_proj v_proj` in a manifest is both modules, not a
    stray positional word."""
    from kvplan.checking.manifests import command_flags

    flags, positional = command_flags(
        ["vllm", "serve", "m", "--lora-target-modules", "q_proj", "v_proj", "--max-loras", "4"]
    )
    assert flags == [("--lora-target-modules", "q_proj,v_proj"), ("--max-loras", "4")]
    assert positional == ["vllm", "serve", "m"]
