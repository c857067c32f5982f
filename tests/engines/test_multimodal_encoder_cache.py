"""vLLM's multimodal encoder cache in the budget (issue 13): the dummy encoder outputs its profile run keeps
(vllm-0.33.0 vllm/v1/worker/gpu_model_runner.py:6072-6145), how many items it encodes (multimodal/
encoder_budget.py:145-185, v1/core/encoder_cache_manager.py:373-378, config/scheduler.py:306-307), and
--limit-mm-per-prompt in vLLM's JSON spelling (config/multimodal.py:307-325, 696-707; a tower whose modalities
are all 0 is not built: model_executor/models/interfaces.py:347-398)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kvplan.engines.vllm import parse_limit_mm_per_prompt
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend
from tests.conftest import load_config
from tests.test_cli import run

GIB = 2**30
CASES = {
    c["id"]: c
    for c in yaml.safe_load((Path(__file__).parents[1] / "fixtures/calibration/engine_cases.yaml").read_text())
}


def _rows(rec) -> dict[str, int]:
    return {t.name: t.bytes for t in rec.budget}


@pytest.mark.parametrize(
    ("case_id", "model"),
    [
        ("llmd-v0190-google-gemma-3-12b-it-h100-80gb-tp1pp1dp1-8192", "google__gemma-3-12b-it"),
        ("llmd-v0190-google-gemma-3-4b-it-h100-80gb-tp1pp1dp1-8192", "google__gemma-3-4b-it"),
    ],
)
def test_gemma3_encoder_cache_is_32_images_of_256_tokens_and_closes_on_the_logged_peak(case_id, model):
    """Gemma 3 at max_num_batched_tokens 8192: one image is mm_tokens_per_image = 256 tokens (gemma3_mm.py:197-212,
    no pan-and-scan), the encoder budget 8192 tokens, so the profile run encodes 8192 // 256 = 32 dummy images
    and keeps 32 x 256 x hidden bf16 outputs through the dummy forward. The llm-d vLLM 0.19.0 logs measure the
    whole profile ("3.94 GiB for peak activation", "3.89 GiB"); the language model's activation term plus the
    encoder cache comes within 0.1 GiB, closer than the activation term alone."""
    case, config = CASES[case_id], load_config(model)
    rec = recommend(
        config, gpu_profile="h100-sxm-80gb", offline=True, max_model_len=8192, gpu_memory_utilization=0.95,
        vllm_version="0.19.0", prefix_caching=False,
    )  # fmt: skip
    rows = _rows(rec)
    hidden = config["text_config"]["hidden_size"]
    assert rows["encoder_cache"] == -32 * 256 * hidden * 2
    logged = case["reported"]["peak_activation_gib"]
    modelled = -(rows["activation_peak"] + rows["encoder_cache"]) / GIB
    assert abs(modelled - logged) < abs(-rows["activation_peak"] / GIB - logged)
    assert modelled == pytest.approx(logged, abs=0.1)


def test_few_sequences_bound_the_dummy_items():
    """max_items_per_batch = max(1, min(budget // tokens, max_num_seqs x max(1, min(limit, max_model_len //
    tokens)))): 2 sequences with at most 3 images each profile 6 images, not 32."""
    rec = recommend(
        "google/gemma-3-4b-it", gpu_profile="h100-sxm-80gb", offline=True, max_model_len=8192, max_num_seqs=2,
        limit_mm_per_prompt='{"image": 3}',
    )  # fmt: skip
    assert _rows(rec)["encoder_cache"] == -6 * 256 * 2560 * 2
    assert "--limit-mm-per-prompt '{\"image\":3}'" in rec.flags["vllm"]


def test_text_only_limits_drop_the_towers_and_the_encoder_cache():
    """{"image": 0} turns off Gemma 3's only tower; Qwen3-VL's tower also serves video, so it stays until video is
    0 too (qwen3_vl.py:2010 `_mark_tower_model(vllm_config, {"image", "video"})`)."""
    gemma = _rows(
        recommend("google/gemma-3-4b-it", gpu_profile="h100-sxm-80gb", offline=True, limit_mm_per_prompt={"image": 0})
    )
    assert gemma["multimodal_weights"] == 0 and "encoder_cache" not in gemma
    qwen = dict(gpu_profile="h100-sxm-80gb", offline=True, max_model_len=8192)
    image_off = recommend("Qwen/Qwen3-VL-32B-Instruct", limit_mm_per_prompt={"image": 0}, **qwen)
    assert _rows(image_off)["multimodal_weights"] < 0
    assert any("tokens per item" in n for n in image_off.notes)  # not read for Qwen3-VL: said, not guessed
    both_off = recommend("Qwen/Qwen3-VL-32B-Instruct", limit_mm_per_prompt={"image": 0, "video": 0}, **qwen)
    assert _rows(both_off)["multimodal_weights"] == 0
    assert not any("tokens per item" in n for n in both_off.notes)


def test_limit_mm_per_prompt_takes_vllms_json_spellings():
    assert parse_limit_mm_per_prompt('{"image": 16, "video": 2}') == {"image": 16, "video": 2}
    assert parse_limit_mm_per_prompt('{"image": {"count": 5, "width": 512}}') == {"image": 5}
    for bad in ("image=2", '{"image": -1}', "[1]"):
        with pytest.raises(UsageError, match="takes vLLM's JSON object"):
            parse_limit_mm_per_prompt(bad)
    result = run("recommend", "google/gemma-3-4b-it", "-g", "h100", "--offline", "--limit-mm-per-prompt", "image=2")
    assert result.exit_code == 2 and result.stderr.startswith("error: --limit-mm-per-prompt takes vLLM's JSON")


def test_plan_files_and_vllm_configs_carry_the_limit(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - name: text\n    model: google/gemma-3-4b-it\n    gpu: h100-sxm-80gb\n"
        "    max_model_len: 8192\n    limit_mm_per_prompt: {image: 0}\n"
    )
    config = tmp_path / "vllm.yaml"
    config.write_text("model: google/gemma-3-4b-it\nmax-model-len: 8192\nlimit-mm-per-prompt: '{\"image\": 0}'\n")
    for args in ((str(plan),), ("--engine-config", str(config), "-g", "h100-sxm-80gb")):
        result = run("check", *args, "--offline", "--json")
        assert result.exit_code == 0, result.output
        (deployment,) = json.loads(result.stdout)["deployments"]
        rows = {t["name"]: t["bytes"] for t in deployment["recommend"]["budget"]}
        assert rows["multimodal_weights"] == 0 and "encoder_cache" not in rows, args
