"""One validating request constructor; errors name their field; one "above the model's limit" judgement."""

from __future__ import annotations

import pytest

import kvplan
from kvplan.checking.lint import lint_model_config
from kvplan.core.shapes import model_shape
from kvplan.errors import UsageError, spell
from kvplan.planning.recommend import recommend
from kvplan.planning.requests import above_model_limit, make_request

from conftest import load_config

LLAMA = "meta-llama/Llama-3.1-8B"


@pytest.fixture(scope="module")
def shape():
    return model_shape(load_config("meta-llama__Llama-3.1-8B"))


def test_make_request_canonicalises_and_resolves_auto(shape):
    req = make_request(shape, engine="vllm", seq_len=1024, kv_dtype="fp8", dtype="bf16", tp=2)
    assert (req.seq_len, req.kv_dtype, req.model_dtype, req.tp, req.block_size) == (
        1024,
        "fp8_e4m3",
        "bfloat16",
        2,
        None,
    )
    assert make_request(shape, engine="vllm", seq_len=1).kv_dtype == "bfloat16"  # auto: the model dtype
    assert make_request(shape, engine="llama.cpp", seq_len=1).kv_dtype == "float16"  # llama.cpp's f16 default


@pytest.mark.parametrize(
    "field,value,flag",
    [
        ("seq_len", 0, "--seq-len"),
        ("seq_len", True, "--seq-len"),
        ("batch", -1, "--batch"),
        ("tp", "2", "--tp"),
        ("pp", 1.0, "--pp"),
        ("block_size", 0, "--block-size"),
        ("max_num_batched_tokens", 0, "--max-num-batched-tokens"),
        ("n_ubatch", 0, "--ubatch"),
    ],
)
def test_bad_counts_name_their_field(shape, field, value, flag):
    args = {"seq_len": 1024, field: value}
    with pytest.raises(UsageError) as info:
        make_request(shape, engine="vllm", **args)
    assert info.value.field == field
    assert info.value.message == f"{flag} must be a positive integer, got {value!r}"
    assert info.value.hint == f"pass e.g. {flag} 1"


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"dtype": "fp8"}, "dtype"),
        ({"dtype": "nope"}, "dtype"),
        ({"kv_dtype": "nope"}, "kv_dtype"),
        ({"kv_dtype": "q8_0"}, "kv_dtype"),
    ],
)
def test_bad_dtypes_name_their_field(shape, kw, field):
    with pytest.raises(UsageError) as info:
        make_request(shape, engine="vllm", seq_len=1, **kw)
    assert info.value.field == field


def test_library_errors_carry_fields_and_spell_as_plan_keys():
    with pytest.raises(UsageError) as info:
        kvplan.estimate(LLAMA, tp=3, offline=True)
    assert info.value.field == "tp" and str(info.value) == "--tp 3 does not divide the model's 8 KV heads"
    assert spell(info.value.message, {"tp": "tensor_parallel_size"}).startswith("tensor_parallel_size 3 ")
    with pytest.raises(UsageError) as info:
        recommend(LLAMA, gpu_profile="h100-sxm-80gb", tp=2, gpus=1, offline=True)
    assert info.value.field == "gpus"
    assert str(info.value) == "--tp 2 x --pp 1 needs 2 GPUs, --gpus is 1" and info.value.hint == "raise --gpus"


def test_above_the_limit_is_judged_in_one_place():
    assert above_model_limit(131073, 131072) and not above_model_limit(131072, 131072)
    assert not above_model_limit(10**9, None)
    est = kvplan.estimate(LLAMA, seq_len=131073, offline=True)
    assert "seq_len 131073 exceeds the model's max_position_embeddings (131072)" in est.notes
    assert not any("exceeds" in n for n in kvplan.estimate(LLAMA, seq_len=131072, offline=True).notes)
    config = load_config("meta-llama__Llama-3.1-8B")
    assert [w.code for w in lint_model_config(config, max_model_len=131073)] == ["max-model-len"]
    assert lint_model_config(config, max_model_len=131072) == []


def test_results_keep_canonical_dtypes_and_show_display_names():
    est = kvplan.estimate(LLAMA, kv_dtype="fp8", offline=True)
    assert (est.model_dtype, est.cache_dtype, est.dtype, est.kv_dtype) == ("bfloat16", "fp8_e4m3", "bf16", "fp8_e4m3")
    data = est.to_dict()
    assert (data["dtype"], data["kv_dtype"]) == ("bf16", "fp8_e4m3")
    assert "model_dtype" not in data and "cache_dtype" not in data
    keys = list(data)
    assert keys.index("dtype") == keys.index("engine_follows") + 1 and keys.index("kv_dtype") == keys.index("dtype") + 1
    rec = recommend(LLAMA, gpu_profile="rtx-4090", engine="llamacpp", max_model_len=8192, offline=True)
    assert (rec.model_dtype, rec.cache_dtype, rec.kv_dtype) == ("bfloat16", "float16", "fp16")
    assert rec.to_dict()["kv_dtype"] == "fp16" and "cache_dtype" not in rec.to_dict()


def test_gpus_default_to_tp_times_pp():
    """`--gpus` not given: the GPUs the layout needs, tp x pp (issue 13: `recommend --tp 2` alone exited 2)."""
    rec = recommend(LLAMA, gpu_profile="h100-sxm-80gb", tp=2, pp=2, offline=True)
    assert (rec.gpus, rec.tp, rec.pp) == (4, 2, 2)
    assert recommend(LLAMA, gpu_profile="h100-sxm-80gb", offline=True).gpus == 1
    given = recommend(LLAMA, gpu_profile="h100-sxm-80gb", gpus=4, offline=True)  # given GPUs: tp = gpus // pp
    assert (given.gpus, given.tp) == (4, 4)
    with pytest.raises(UsageError) as info:
        recommend(LLAMA, gpu_profile="h100-sxm-80gb", tp=0, offline=True)
    assert info.value.field == "tp"
