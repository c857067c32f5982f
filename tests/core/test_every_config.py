"""No silent guesses (issue 12): every real config kvplan ships is read by a family reader or refused by name.

An unknown `model_type` may be read as a llama-like decoder only when nothing in its config signals another cache
(kvplan.core.config.CACHE_SIGNALS); otherwise kvplan refuses it with one line naming the fields, and
`--assume-llama` forces the old reading, saying so in every output.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.checking.plans import load_plan
from kvplan.cli import app
from kvplan.core.config import CACHE_SIGNALS, cache_signals
from kvplan.core.families import family_of
from kvplan.core.shapes import GUESSED, model_shape
from kvplan.errors import KvplanError, UnsupportedArchitecture
from kvplan.planning.estimate import estimate
from kvplan.planning.recommend import recommend

from conftest import all_config_names, load_config

runner = CliRunner()
LLAMA = "meta-llama__Llama-3.1-8B"


@pytest.mark.parametrize("name", all_config_names(pending=True))
def test_every_catalog_config_is_read_by_its_family_or_refused_never_guessed(name):
    config = load_config(name)
    try:
        shape = model_shape(config)
    except KvplanError as exc:
        # refused: one message that names what kvplan cannot read (a field, a layer type, a model_type)
        assert "`" in str(exc) or "'" in str(exc), str(exc)
        assert exc.hint, str(exc)
        return
    guessed = [a for a in shape.assumptions if a.startswith(GUESSED)]
    assert not guessed, f"{name}: {guessed[0]}"


def _unknown(**extra) -> dict:
    return {**load_config(LLAMA), "model_type": "my_decoder", "architectures": ["MyDecoderForCausalLM"], **extra}


def test_a_plain_unknown_decoder_is_read_llama_like_and_says_so():
    shape = model_shape(_unknown())
    assert shape.num_layers == 32
    assert shape.assumptions[0].startswith("unknown model_type 'my_decoder': read as a llama-like decoder")


@pytest.mark.parametrize(
    "extra,named",
    [
        ({"kv_lora_rank": 512}, "`kv_lora_rank`"),
        ({"compress_ratios": [0, 4, 128]}, "`compress_ratios`"),
        ({"index_head_dim": 128, "index_n_heads": 64}, "`index_head_dim`, `index_n_heads`"),
        ({"linear_attn_config": {"kda_layers": [1, 2]}}, "`linear_attn_config`"),
        ({"mamba_num_heads": 128}, "`mamba_num_heads`"),
        ({"ssm_state_size": 128}, "`ssm_state_size`"),
        ({"num_kv_shared_layers": 20}, "`num_kv_shared_layers`"),
        ({"attention_k_eq_v": True}, "`attention_k_eq_v`"),
        ({"hybrid_override_pattern": "M-M*"}, "`hybrid_override_pattern`"),
        ({"layers_block_type": ["mamba", "attention"]}, "`layers_block_type`"),
        ({"use_cla": True, "cla_share_factor": 2}, "`use_cla`"),
    ],
)
def test_an_unknown_decoder_with_a_cache_signal_is_refused_naming_the_fields(extra, named):
    with pytest.raises(UnsupportedArchitecture) as info:
        model_shape(_unknown(**extra))
    assert named in str(info.value)
    assert "my_decoder" in str(info.value)
    assert "--assume-llama" in str(info.value.hint)


@pytest.mark.parametrize(
    "extra", [{"kv_lora_rank": None}, {"num_kv_shared_layers": 0}, {"use_cla": False, "cla_share_factor": 2}]
)
def test_a_null_false_or_zero_field_is_no_signal(extra):
    assert cache_signals(_unknown(**extra)) == []
    assert model_shape(_unknown(**extra)).num_layers == 32


def test_unknown_layer_type_names_are_refused_too():
    config = _unknown(layer_types=["full_attention"] * 31 + ["lightning_attention"])
    with pytest.raises(UnsupportedArchitecture, match="lightning_attention"):
        model_shape(config)


def test_assume_llama_forces_the_reading_and_every_output_says_so(tmp_path):
    config = _unknown(kv_lora_rank=512)
    shape = model_shape(config, assume_llama=True)
    note = shape.assumptions[0]
    assert "forced (assume-llama)" in note and "`kv_lora_rank`" in note
    assert note in estimate(config, seq_len=1024, assume_llama=True).notes
    # weights are never guessed for a model kvplan cannot read (they are given here)
    rec = recommend(config, gpu_profile="h100", max_model_len=8192, weights_bytes="16GB", assume_llama=True)
    assert note in rec.notes

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    refused = runner.invoke(app, ["estimate", str(path)])
    assert refused.exit_code == 2
    assert refused.output.startswith("error: unknown model_type 'my_decoder'")
    forced = runner.invoke(app, ["estimate", str(path), "--assume-llama", "--json"])
    assert forced.exit_code == 0, forced.output
    assert any("forced (assume-llama)" in n for n in json.loads(forced.stdout)["notes"])
    flags = ["-g", "h100", "--max-model-len", "8k", "--weights-bytes", "16GB", "--assume-llama"]
    table = runner.invoke(app, ["recommend", str(path), *flags])
    assert table.exit_code == 0, table.output
    assert "forced (assume-llama)" in " ".join(table.output.split())


def test_plan_files_take_assume_llama_per_deployment_and_check_names_the_key(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_unknown(kv_lora_rank=512)))
    plan = tmp_path / "plan.yaml"
    body = (
        f"deployments:\n  - name: mine\n    model: {config}\n    gpu: h100\n    max_model_len: 8192\n"
        "    weights_bytes: 16GB\n"
    )
    plan.write_text(body)
    refused = runner.invoke(app, ["check", str(plan)])
    assert refused.exit_code == 2
    assert "kv_lora_rank" in refused.output and "assume_llama" in refused.output, refused.output
    plan.write_text(body + "    assume_llama: true\n")
    assert load_plan(plan)[0].assume_llama is True
    forced = runner.invoke(app, ["check", str(plan), "--json"])
    assert forced.exit_code in (0, 1), forced.output
    assert runner.invoke(app, ["check", str(plan.with_name("x.yaml"))]).exit_code == 2
    plan.write_text(body + "    assume_llama: sure\n")
    bad = runner.invoke(app, ["check", str(plan)])
    assert bad.exit_code == 2 and "assume_llama" in bad.output and "true or false" in bad.output


def test_check_flag_assume_llama_applies_to_every_deployment(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_unknown(kv_lora_rank=512)))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"deployments:\n  - name: mine\n    model: {config}\n    gpu: h100\n    max_model_len: 8192\n"
        "    weights_bytes: 16GB\n"
    )
    assert runner.invoke(app, ["check", str(plan)]).exit_code == 2
    forced = runner.invoke(app, ["check", str(plan), "--assume-llama", "--json"])
    assert forced.exit_code in (0, 1), forced.output
    assert any("forced (assume-llama)" in n for n in json.loads(forced.stdout)["deployments"][0]["notes"])


def test_every_signal_pattern_matches_a_real_or_documented_field():
    """The table holds no dead entries: each pattern matches a field of some shipped config or of a test above."""
    seen = {key for name in all_config_names(pending=True) for key in _language_keys(load_config(name))}
    seen |= {"use_cla", "conv_L_cache", "sliding_window_pattern"}
    for pattern, _ in CACHE_SIGNALS:
        bare = pattern.strip("*")
        assert any(bare in key for key in seen), pattern


def _language_keys(config: dict) -> set[str]:
    inner = config.get("text_config") or config
    return set(inner) | set(config)


def test_known_families_are_not_subject_to_the_guess_rule():
    """A known family with signal fields (DeepSeek's kv_lora_rank, Jamba's mamba_*) is read by its own reader."""
    for name in ("deepseek-ai__DeepSeek-V3", "ai21labs__AI21-Jamba-1.5-Mini"):
        config = load_config(name)
        assert family_of(config) is not None and cache_signals(config)
        assert not [a for a in model_shape(config).assumptions if a.startswith(GUESSED)]
