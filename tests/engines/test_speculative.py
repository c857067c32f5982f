"""Speculative decoding (`--speculative-config`) as vLLM runs it: each rule against the vLLM source line it
follows (vllm-0.33.0 unless said), and the input through recommend, plan files, engine configs and manifests.

The end-to-end proof is tests/engines/test_calibration_2026.py: three club-3090 start-up logs of MTP n=3 runs
(vLLM 0.20.2 nightlies and 0.24.0) reproduce to the token only with the MTP rules below."""

from __future__ import annotations

import json
import shlex
import textwrap
from dataclasses import replace

import pytest
import yaml
from test_serve_commands import check_command
from typer.testing import CliRunner

from kvplan.checking.engine_configs import load_engine_config
from kvplan.checking.manifests import load_manifest
from kvplan.checking.plans import load_plan
from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines import Request
from kvplan.engines.serving import SpeculativeInputs
from kvplan.engines.vllm import ENTRY, Spec, VllmEngine, parse_speculative_config
from kvplan.errors import ConfigError, UsageError
from kvplan.planning.recommend import recommend

from conftest import load_config

QWEN36 = "nvidia__Qwen3.6-27B-NVFP4"  # 48 gated-DeltaNet + 16 full-attention layers, mtp_num_hidden_layers 1
MTP3 = '{"method": "mtp", "num_speculative_tokens": 3}'
runner = CliRunner()


def _spec(config_name: str, text: str, **draft) -> tuple:
    config = load_config(config_name)
    shape = model_shape(config)
    setup = parse_speculative_config(text)
    spec = ENTRY.serving.speculative(SpeculativeInputs(setup, config, shape, shape.dtype, **draft))  # type: ignore[union-attr]
    return shape, spec


def _req(shape, spec=None, **kw) -> Request:
    base = dict(seq_len=262144, batch=1, kv_dtype="fp8_e4m3", model_dtype=shape.dtype, tp=2, engine_version="0.33.0")
    return Request(**{**base, **kw}, speculative=spec)


# ------------------------------------------------------------------------------------------- parsing the input


def test_parse_takes_vllms_json_or_a_mapping():
    """vLLM 0.33.0 config/speculative.py:38-85 (the methods), :413 (num_speculative_tokens > 0)."""
    a = parse_speculative_config(MTP3)
    b = parse_speculative_config({"method": "mtp", "num_speculative_tokens": 3, "disable_padded_drafter_batch": True})
    assert a == b and (a.method, a.num_speculative_tokens, a.model) == ("mtp", 3, None)
    assert parse_speculative_config({"model": "x/draft", "num_speculative_tokens": 4}).method == "draft_model"
    assert json.loads(a.config_json()) == {"method": "mtp", "num_speculative_tokens": 3}


def test_the_serve_command_and_emitted_config_keep_the_keys_kvplan_does_not_plan(tmp_path):
    """prompt_lookup_max, disable_padded_drafter_batch, ...: they do not change the plan, but the printed
    `vllm serve` and --emit vllm-config are the user's deployment: dropping them would change what runs."""
    from kvplan.checking.emit import emit_manifest
    from kvplan.planning.recommend import recommend

    given = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4, "prompt_lookup_min": 2}
    setup = parse_speculative_config(given)
    assert setup == parse_speculative_config({"method": "ngram", "num_speculative_tokens": 3})  # the same plan
    assert json.loads(setup.config_json()) == given
    rec = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100", offline=True, speculative_config=json.dumps(given))
    (quoted,) = [w for w in shlex.split(rec.flags["vllm"]) if w.startswith("{")]
    assert json.loads(quoted) == given
    text, _ = emit_manifest(rec, "vllm-config")
    assert json.loads(yaml.safe_load(text)["speculative-config"]) == given


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("{not json", "expected a JSON object"),
        ('{"method": "medusa2", "num_speculative_tokens": 3}', "unknown method 'medusa2'"),
        ('{"method": "mtp"}', "num_speculative_tokens must be a positive integer"),
        ('{"method": "mtp", "num_speculative_tokens": 0}', "num_speculative_tokens must be a positive integer"),
        ('{"method": "eagle3", "num_speculative_tokens": 3}', "needs the draft checkpoint"),
    ],
)
def test_parse_refuses_what_vllm_refuses(value, needle):
    with pytest.raises(UsageError, match="--speculative-config") as info:
        parse_speculative_config(value)
    assert needle in str(info.value)


# ------------------------------------------------------------------------------------------- vLLM's rules


def test_mtp_adds_the_targets_full_attention_layer_to_the_pool():
    """Qwen3.5/3.6 MTP: `mtp_num_hidden_layers` full_attention Qwen3_5DecoderLayers (vllm-0.33.0
    model_executor/models/qwen3_5_mtp.py:82 and :119-125, config/speculative.py:987-1007) whose KV specs join the
    target's: 17 full-attention layers make groups of 17 (v1/core/kv_cache_utils.py hybrid grouping), so the 48
    GDN layers fill 3 groups of 17 with 3 padding layers, the "Add 3 padding layers" of club-3090 #584."""
    shape, spec = _spec(QWEN36, MTP3)
    full = [c for c in shape.caches() if c.kind == L.FULL]
    assert spec.draft_caches == (full[0],) and len(full) == 16
    engine = VllmEngine(shape)
    without, with_mtp = engine.plan(shape.caches(), _req(shape)), engine.plan(shape.caches(), _req(shape, spec))
    assert (without.group_size, with_mtp.group_size) == (16, 17)
    padding = sum(with_mtp.groups(s) * with_mtp.group_size - n for s, n in with_mtp.specs.items())
    assert padding == 3


def test_mamba_states_hold_a_page_per_speculative_token():
    """MambaSpec.num_speculative_blocks = num_speculative_tokens (model_executor/layers/mamba/abstract.py:86-90);
    max_memory_usage_bytes: (2 + spec) pages in `align` mode, (1 + spec) otherwise (v1/kv_cache_interface.py:
    1136-1141; 0.19.1 :297-300, 0.24.0 :654-657)."""
    shape, spec = _spec(QWEN36, '{"method": "ngram", "num_speculative_tokens": 4}')
    assert spec.draft_caches == () and spec.draft_weights is None  # ngram drafts from the prompt
    state = next(c for c in shape.caches() if isinstance(c, L.RecurrentState))
    engine = VllmEngine(shape)
    states = [state]
    for mode, pages in (("none", 1), ("align", 2)):
        assert engine.state_pages(state, states, _req(shape), mode) == pages
        assert engine.state_pages(state, states, _req(shape, spec), mode) == pages + 4


def test_speculative_tokens_widen_the_convolution_state():
    """gated_delta_net_state_shape keeps conv_kernel - 1 + num_spec columns (model_executor/layers/mamba/
    mamba_utils.py:272-285, num_spec from models/qwen3_5.py:405-417; the same in 0.19.1 :190, 0.20.0 :229, 0.24.0
    :226); Mamba1 keeps conv_kernel - 1 (mamba_utils.py:171-179)."""
    shape, spec = _spec(QWEN36, MTP3)
    gdn = next(c for c in shape.caches() if isinstance(c, L.RecurrentState))
    grown = VllmEngine._state_bytes(gdn, _req(shape, spec)) - VllmEngine._state_bytes(gdn, _req(shape))
    assert grown == 3 * (gdn.conv_channels // 2) * 2  # 3 columns of the TP-2 shard's channels, bf16
    mamba1 = L.RecurrentState("mamba", conv_channels=8192, conv_kernel=4, ssm_shape=(8192, 16))
    assert VllmEngine._state_bytes(mamba1, _req(shape, spec)) == VllmEngine._state_bytes(mamba1, _req(shape))


def test_all_mode_adds_the_speculative_blocks_from_0_24():
    """Mamba `all` mode: cdiv(max_model_len, block) pages (vllm-0.20.0 v1/kv_cache_interface.py:543), plus
    num_speculative_blocks from 0.24.0 (:650-653)."""
    shape, spec = _spec(QWEN36, '{"method": "ngram", "num_speculative_tokens": 2}')
    all_mode = Spec(L.STATE, 1, 1024, state_pages=None)
    engine = VllmEngine(shape)
    assert engine.blocks_per_request(all_mode, _req(shape, spec, engine_version="0.20.0", seq_len=4096)) == 4
    assert engine.blocks_per_request(all_mode, _req(shape, spec, engine_version="0.24.0", seq_len=4096)) == 6


def test_mtp_of_a_model_kvplan_has_not_read_is_a_note_and_one_without_mtp_layers_an_error():
    """The MTP drafters read are vLLM's for Qwen3.5/3.6, Qwen3-Next, DeepSeek-V3/V3.2, GLM-4.5 and DeepSeek-V4
    (config/speculative.py hf_config_override; V4's in tests/engines/test_vllm_deepseek_v4.py); another model's is said to be left out. Qwen3-Next's config names
    no MTP layer count: vLLM builds getattr(config, "num_nextn_predict_layers", 1) (qwen3_next_mtp.py:63); a
    DeepSeek config without num_nextn_predict_layers cannot draft with method mtp (deepseek_mtp.py:152)."""
    _, spec = _spec("Qwen__Qwen3-Next-80B-A3B", MTP3)
    assert len(spec.draft_caches) == 1 and "vLLM's default 1" in spec.notes[0]
    _, spec = _spec("google__gemma-3-27b-it", MTP3)
    assert spec.draft_caches == () and "is not modelled" in spec.notes[0]
    with pytest.raises(UsageError, match="has no `num_nextn_predict_layers`"):
        config = load_config("deepseek-ai__DeepSeek-V3")
        config.pop("num_nextn_predict_layers")  # deepseek_mtp.py:152 reads it unconditionally
        shape = model_shape(config)
        ENTRY.serving.speculative(  # type: ignore[union-attr]
            SpeculativeInputs(parse_speculative_config(MTP3), config, shape, shape.dtype)
        )


# ------------------------------------------------------------------------------------------- through recommend


def test_a_draft_model_adds_its_layers_kv_and_weights():
    """draft_model: the draft checkpoint's attention layers register KV specs in the same pool
    (v1/worker/gpu_model_runner.py get_kv_cache_spec walks every Attention layer, the drafter's too), and its
    weights load beside the target's at the target's TP (config/speculative.py:1849-1870). Llama-3.2-1B's 16 layers
    of 8 KV heads x 64 add 16 x 2 x 8 x 64 x 2 B = 32 KiB per token to Llama-3.1-8B's 128 KiB."""
    base = dict(gpu_profile="h100-sxm-80gb", max_model_len=8192, offline=True, vllm_version="0.33.0")
    draft = '{"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 4}'
    plain = recommend("meta-llama/Llama-3.1-8B", **base)
    spec = recommend("meta-llama/Llama-3.1-8B", speculative_config=draft, **base)
    assert spec.kv_bytes_per_request - plain.kv_bytes_per_request == 8192 * 16 * 2 * 8 * 64 * 2
    term = next(t for t in spec.budget if t.name == "speculative_draft_weights")
    draft_weights = recommend("meta-llama/Llama-3.2-1B-Instruct", **base).weights_bytes
    assert -term.bytes == draft_weights and spec.to_dict()["speculative"]["draft_kv_layers"] == 16
    assert "--speculative-config '" in spec.flags["vllm"] and not check_command("vllm", spec.flags["vllm"])


def test_an_unreadable_draft_is_said_to_be_left_out():
    draft = '{"method": "eagle3", "model": "/nonexistent/eagle3-draft", "num_speculative_tokens": 3}'
    rec = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", speculative_config=draft, offline=True)
    assert rec.speculative is not None and rec.speculative.draft_caches == ()
    assert not any(t.name == "speculative_draft_weights" for t in rec.budget)
    assert any("could not be read" in n and "not counted" in n for n in rec.notes)


def test_mtp_weights_are_the_mtp_layer_at_the_model_dtype():
    """vLLM loads the MTP layers only when drafting (kvplan's count leaves them out, as transformers does) and shares
    the target's embeddings and LM head (v1/spec_decode/llm_base_proposer.py:1466-1470, :1549-1555): one decoder
    layer shaped like the last full-attention layer, the 2h x h fc and three norms (qwen3_5_mtp.py:98-105, :134)."""
    rec = recommend(
        "nvidia/Qwen3.6-27B-NVFP4",
        gpu_profile="rtx-3090",
        tp=2,
        max_model_len=262144,
        kv_dtype="fp8",
        speculative_config=MTP3,
        offline=True,
    )
    term = next(t for t in rec.budget if t.name == "speculative_draft_weights")
    hidden = 5120
    attention = hidden * 24 * 256 * 2 + 2 * hidden * 4 * 256 + 24 * 256 * hidden + 2 * 256  # q (gated), k, v, o, norms
    mlp = 3 * hidden * 17408
    layer = attention + mlp + 2 * hidden
    # bf16, / TP 2: the NVFP4 checkpoint leaves `mtp*` unquantized (its quantization_config `ignore`)
    assert -term.bytes == (layer + 2 * hidden * hidden + 3 * hidden) * 2 // 2
    assert rec.to_dict()["speculative"]["draft_kv_layers"] == 1


def test_mtp_weights_follow_the_checkpoints_quantization():
    """DeepSeek-V3's MTP layer (model.layers.61, deepseek_mtp.py:152 and :527) is stored in the checkpoint's fp8
    blocks like the others: about one byte per parameter plus fp32 scales, not the model dtype's two."""
    rec = recommend(
        "deepseek-ai/DeepSeek-V3",
        gpu_profile="h100-sxm-80gb",
        tp=8,
        max_model_len=8192,
        speculative_config=MTP3,
        offline=True,
    )
    spec = rec.speculative
    params = 11_507_286_272 + 2 * 7168 * 7168 + 3 * 7168  # layer 60 (MoE, kvplan.weights.tensors) + eh_proj + norms
    assert spec is not None and params < spec.draft_weights < 1.02 * params


def test_engines_without_rules_say_the_drafter_is_left_out():
    rec = recommend(
        "meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", engine="lightllm", speculative_config=MTP3, offline=True
    )
    assert any("not modelled for this engine" in n for n in rec.notes)


def test_sglang_draft_pool_takes_target_sized_layers():
    """SGLang's EAGLE/STANDALONE draft pool shares the target's token slots and "assumes the draft shares the
    target's per-layer KV size": cell += int(cell x eagle_draft_num_layers / num_layers) (sglang-0.5.23
    srt/model_executor/pool_configurator.py:259-313); a path draft without num_nextn_predict_layers counts its
    layers (model_runner_components/spec_aux_hidden_state.py:157-176). Llama-3.2-1B's 16 layers beside
    Llama-3.1-8B's 32 add half the 8B's 128 KiB per token, not the 1B's own 32 KiB."""
    base = dict(gpu_profile="h100-sxm-80gb", engine="sglang", max_model_len=8192, offline=True)
    draft = '{"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 4}'
    plain = recommend("meta-llama/Llama-3.1-8B", **base)
    spec = recommend("meta-llama/Llama-3.1-8B", speculative_config=draft, **base)
    assert spec.kv_bytes_per_request - plain.kv_bytes_per_request == 8192 * 65536
    hybrid = recommend(
        "nvidia/Qwen3.6-27B-NVFP4",
        gpu_profile="h100-sxm-80gb",
        engine="sglang",
        speculative_config=MTP3,
        max_model_len=8192,
        offline=True,
    )
    assert any("SGLang's mtp drafting is not modelled for this model" in n for n in hybrid.notes)


def test_cli_option_and_its_one_line_error():
    ok = runner.invoke(
        app,
        [
            "recommend",
            "meta-llama/Llama-3.1-8B",
            "-g",
            "h100-sxm-80gb",
            "--offline",
            "--json",
            "--speculative-config",
            '{"method": "ngram", "num_speculative_tokens": 3}',
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["speculative"]["method"] == "ngram"
    bad = runner.invoke(
        app, ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100", "--offline", "--speculative-config", "mtp"]
    )
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.stderr.splitlines()[0].startswith("error: --speculative-config: expected a JSON object")


# ------------------------------------------------------------------------------------------- plans and configs


def test_plan_files_engine_configs_and_manifests_carry_it(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - name: a\n    model: meta-llama/Llama-3.1-8B\n    gpu: h100-sxm-80gb\n"
        "    max_model_len: 8192\n    speculative_config: {method: ngram, num_speculative_tokens: 3}\n"
    )
    (dep,) = load_plan(plan)
    assert json.loads(dep.speculative_config) == {"method": "ngram", "num_speculative_tokens": 3}
    plan.write_text(plan.read_text().replace("num_speculative_tokens: 3", "num_speculative_tokens: -1"))
    with pytest.raises(ConfigError, match=r"plan.yaml:6: deployments\[0\].speculative_config: expected a spec"):
        load_plan(plan)

    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"model: meta-llama/Llama-3.1-8B\nspeculative-config: '{MTP3}'\n")
    assert json.loads(load_engine_config(cfg, kind="vllm", gpu="h100").speculative_config)["method"] == "mtp"

    manifest = tmp_path / "isvc.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            apiVersion: serving.kserve.io/v1beta1
            kind: InferenceService
            metadata:
              name: spec
            spec:
              predictor:
                model:
                  modelFormat:
                    name: huggingface
                  args:
                    - --max-model-len=8192
                    - --speculative-config
                    - '{"method": "ngram", "num_speculative_tokens": 5}'
                  resources:
                    limits:
                      nvidia.com/gpu: "1"
            """
        )
    )
    (role,) = load_manifest(manifest, gpu="h100", model="meta-llama/Llama-3.1-8B")
    assert json.loads(role.speculative_config)["num_speculative_tokens"] == 5


def test_check_counts_the_drafter_in_the_needed_kv(tmp_path):
    """check's needed KV is what recommend's max_concurrency divides by, the drafter's layers included."""
    from kvplan.checking.check import check

    plan = tmp_path / "plan.yaml"
    body = "deployments:\n  - name: a\n    model: nvidia/Qwen3.6-27B-NVFP4\n    gpu: rtx-3090\n"
    body += "    tensor_parallel_size: 2\n    max_model_len: 65536\n    kv_cache_dtype: fp8\n"
    plan.write_text(body)
    plain = check(plan, offline=True).results[0]
    plan.write_text(body + f"    speculative_config: '{MTP3}'\n")
    spec = check(plan, offline=True).results[0]
    rec = spec.recommendation
    assert spec.needed_kv_bytes == rec.kv_bytes_per_request > plain.needed_kv_bytes
    assert replace(rec.speculative, notes=()).method == "mtp"


def test_emitted_vllm_config_reads_back_with_the_same_drafter(tmp_path):
    """--emit vllm-config writes the command's --speculative-config; check --engine-config reads it back."""
    out = tmp_path / "serve.yaml"
    args = ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "--offline", "--max-model-len", "8192"]
    args += ["--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}', "--emit", "vllm-config"]
    result = runner.invoke(app, [*args, "--emit-file", str(out)])
    assert result.exit_code == 0, result.output
    dep = load_engine_config(out, kind="vllm", gpu="h100-sxm-80gb")
    assert json.loads(dep.speculative_config) == {"method": "ngram", "num_speculative_tokens": 3}


def test_sglang_server_arguments_map_onto_the_same_setup(tmp_path):
    """SGLang's --speculative-algorithm / --speculative-num-steps / --speculative-draft-model-path make one setup
    (EAGLE without a draft path: the checkpoint's NEXTN/MTP head); the keys are read, not noted as unmodelled."""
    cfg = tmp_path / "sglang.yaml"
    cfg.write_text(
        "model-path: deepseek-ai/DeepSeek-V3\ncontext-length: 8192\ntp-size: 8\nspeculative-algorithm: EAGLE\n"
        "speculative-num-steps: 3\nspeculative-eagle-topk: 1\nspeculative-num-draft-tokens: 4\n"
    )
    dep = load_engine_config(cfg, kind="sglang", gpu="h100-sxm-80gb")
    assert json.loads(dep.speculative_config) == {"method": "mtp", "num_speculative_tokens": 3}
    assert dep.key_name("speculative_config") == "speculative-algorithm" and dep.lines["speculative_config"] == 4
    assert not any("speculative" in n for n in dep.notes if n.startswith("not modelled"))
    cfg.write_text(
        "model-path: meta-llama/Llama-3.1-8B\nspeculative-algorithm: EAGLE3\n"
        "speculative-draft-model-path: /drafts/eagle3\nspeculative-num-draft-tokens: 6\n"
    )
    setup = json.loads(load_engine_config(cfg, kind="sglang", gpu="h100").speculative_config)
    assert setup == {"method": "eagle3", "model": "/drafts/eagle3", "num_speculative_tokens": 5}


@pytest.mark.parametrize(
    "setup",
    [
        MTP3,
        '{"method": "eagle3", "model": "/nonexistent/eagle3", "num_speculative_tokens": 3}',
        '{"method": "ngram", "num_speculative_tokens": 3}',
        '{"method": "suffix", "num_speculative_tokens": 3}',
    ],
)
def test_printed_commands_carry_the_setup_in_each_engines_options(setup):
    """vLLM: --speculative-config as given; SGLang: its --speculative-* options (the inverse of the server-argument
    mapping), or a comment for a method it has no spelling for; each command valid for its engine."""
    rec = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", speculative_config=setup, offline=True)
    assert "--speculative-config '" in rec.flags["vllm"]
    for engine in ("vllm", "sglang"):
        assert not check_command(engine, rec.flags[engine]), rec.flags[engine]
    method = json.loads(setup)["method"]
    if method == "suffix":
        assert "# speculative method suffix" in rec.flags["sglang"]
    else:
        assert (
            "--speculative-algorithm " + {"mtp": "NEXTN", "eagle3": "EAGLE3", "ngram": "NGRAM"}[method]
            in rec.flags["sglang"]
        )


# ------------------------------------------------------------------------------------------- through estimate

DRAFT_1B = '{"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 4}'


def test_estimate_rows_for_a_draft_models_layers():
    """`estimate --speculative-config` sizes what recommend sizes: Llama-3.2-1B's 16 layers of 8 KV heads x 64 join
    Llama-3.1-8B's pool (v1/worker/gpu_model_runner.py get_kv_cache_spec), 16 x 2 x 8 x 64 x 2 B = 32 KiB per token;
    the target's rows are unchanged and the totals are both."""
    from kvplan.planning.estimate import estimate

    plain = estimate("meta-llama/Llama-3.1-8B", seq_len=8192, batch=2, offline=True)
    est = estimate("meta-llama/Llama-3.1-8B", seq_len=8192, batch=2, offline=True, speculative_config=DRAFT_1B)
    assert est.layers == plain.layers
    (row,) = est.draft_layers
    assert (row.kind, row.count, row.bytes_per_token) == (L.FULL, 16, 16 * 2 * 8 * 64 * 2)
    assert row.bytes == 16 * 2 * 8 * 64 * 2 * 8192 * 2 == est.kv_cache_bytes - plain.kv_cache_bytes
    doc = est.to_dict()["speculative"]
    assert doc["draft_kv_layers"] == 16 and doc["draft_kv_bytes"] == row.bytes and doc["model"].endswith("1B-Instruct")
    base = dict(gpu_profile="h100-sxm-80gb", max_model_len=8192, offline=True)
    rec = recommend("meta-llama/Llama-3.1-8B", speculative_config=DRAFT_1B, **base)
    assert doc["draft_weights_bytes"] == rec.to_dict()["speculative"]["draft_weights_bytes"]  # recommend's spelling
    assert rec.kv_bytes_per_request - recommend("meta-llama/Llama-3.1-8B", **base).kv_bytes_per_request == (
        row.bytes // 2
    )


def test_estimate_rows_for_mtp_layers_and_the_group_padding_they_cost():
    """Qwen3.6's MTP layer (qwen3_5_mtp.py:119-125) makes 17 full-attention layers, so the 48 GDN layers fill 3
    groups of 17 with 3 padding layers (v1/core/kv_cache_utils.py; club-3090 #584): the drafter adds one
    full-attention layer and 3 padding layers' state, and the estimate's total is the engine's with the drafter."""
    from kvplan.planning.estimate import estimate

    est = estimate("nvidia/Qwen3.6-27B-NVFP4", seq_len=4096, offline=True, speculative_config=MTP3)
    rows = {k.kind: k for k in est.draft_layers}
    state = next(k for k in est.layers if k.kind == L.STATE)
    assert rows[L.FULL].count == 1 and rows[L.FULL].bytes_per_token == 4 * 256 * 2 * 2
    assert rows[L.STATE].count == 0 and rows[L.STATE].bytes == 3 * state.bytes // 48
    assert sum(k.bytes for k in (*est.layers, *est.draft_layers)) == est.kv_cache_bytes
    shape, spec = _spec(QWEN36, MTP3)
    req = _req(shape, spec, seq_len=4096, tp=1, kv_dtype="bfloat16", model_dtype="bfloat16")
    assert sum(c.bytes for c in VllmEngine(shape).stage_costs(shape.caches(), req)) == est.kv_cache_bytes


@pytest.mark.parametrize("engine", ["llamacpp", "naive"])
def test_estimate_on_an_engine_without_rules_says_the_drafter_is_left_out(engine):
    from kvplan.planning.estimate import estimate

    plain = estimate("meta-llama/Llama-3.1-8B", engine=engine, seq_len=4096, offline=True)
    est = estimate("meta-llama/Llama-3.1-8B", engine=engine, seq_len=4096, offline=True, speculative_config=DRAFT_1B)
    assert est.draft_layers == () and est.kv_cache_bytes == plain.kv_cache_bytes
    assert any("not modelled" in n and "left out" in n for n in est.notes)
    assert est.to_dict()["speculative"]["draft_kv_bytes"] == 0


def test_estimate_cli_rows_json_and_errors():
    args = ["estimate", "meta-llama/Llama-3.1-8B", "--offline", "--speculative-config", DRAFT_1B]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    words = " ".join(table.stdout.split())
    assert "│ draft · full" in words and "the drafter's KV: 128.00 MiB (in the totals)" in words
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert doc["speculative"]["draft_layers"][0]["count"] == 16
    assert "speculative" not in json.loads(runner.invoke(app, args[:3] + ["--json"]).stdout)
    bad = runner.invoke(app, [*args[:4], '{"method": "mtp"}'])
    assert bad.exit_code == 2 and bad.stderr.splitlines()[0].startswith("error: --speculative-config:")
    plot = runner.invoke(app, [*args, "--plot", "kv.svg"])
    assert plot.exit_code == 2 and "--plot does not draw the drafter" in plot.stderr


MTP1 = '{"method": "mtp", "num_speculative_tokens": 1}'


def _draft_term(model: str, **layout) -> tuple[int, object]:
    rec = recommend(model, gpu_profile="h200-sxm-141gb", tp=8, speculative_config=MTP1, offline=True, **layout)
    term = next(t for t in rec.budget if t.name == "speculative_draft_weights")
    return -term.bytes, rec.speculative


def _routed_per_layer(model: str) -> int:
    """One MoE decoder layer's routed experts as the target's count stores them (kvplan.weights.stored
    expert_weight_bytes / the MoE layers): the path the target's EP placement reads, not the drafter's."""
    from kvplan.planning.resolved import resolve

    r = resolve(model, offline=True)
    total = r.expert_weights("bfloat16")
    assert total and r.expert_layers()
    assert total % r.expert_layers() == 0
    return total // r.expert_layers()


@pytest.mark.parametrize("model", ["deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-V4-Flash"])
def test_mtp_drafters_routed_experts_follow_the_targets_expert_placement(model):
    """The MTP layer is one of the target's MoE decoder layers, built from the target's VllmConfig (DeepSeek:
    deepseek_mtp.py:106-111, deepseek_v2.py:334-340 and :391-392; V4: deepseek_v4/nvidia/mtp.py:139, model.py
    :409-417; the proposer keeps the parallel config, v1/spec_decode/llm_base_proposer.py:1265-1301): under
    --enable-expert-parallel its 256 routed experts are placed as the target's (moe_shards), everything else / TP.
    TP 8 + EP: 32 of 256 per GPU, the same bytes as / 8; with 8 redundant experts (EPLB) 33 per GPU; with DP 2, EP 16:
    16 per GPU (the DP ranks share the experts, not the attention)."""
    tp_only, spec = _draft_term(model)
    assert spec is not None and spec.draft_weights and spec.draft_expert_weights == _routed_per_layer(model)
    whole, routed, kept = spec.draft_weights, spec.draft_expert_weights, spec.draft_replicated_weights
    # kept whole on every rank: DeepSeek-V3's eh_proj, MLA down projections, router and norms (deepseek_mtp.py:85-87,
    # deepseek_v2.py:953-967, :321-329); DeepSeek-V4's MTP layer is not read for it
    assert (kept > 0) == (model == "deepseek-ai/DeepSeek-V3")
    assert tp_only == (whole - kept) // 8 + kept
    ep, _ = _draft_term(model, expert_parallel=True)
    assert ep == (whole - routed - kept) // 8 + kept + routed * 32 // 256
    eplb, _ = _draft_term(model, expert_parallel=True, redundant_experts=8)
    assert eplb == (whole - routed - kept) // 8 + kept + routed * 33 // 256 > ep
    dp2, _ = _draft_term(model, expert_parallel=True, dp=2)
    assert dp2 == (whole - routed - kept) // 8 + kept + routed * 16 // 256 < ep


def test_a_dense_mtp_drafter_stays_split_by_tp():
    """Qwen3.6-27B's MTP layer has no routed experts: / TP whatever the layout."""
    rec = recommend("nvidia/Qwen3.6-27B-NVFP4", gpu_profile="rtx-3090", tp=2, speculative_config=MTP3, offline=True)
    assert rec.speculative is not None and rec.speculative.draft_expert_weights == 0


def test_deepseek_v3s_mtp_layer_keeps_eh_proj_and_its_mla_down_projections_whole():
    """eh_proj is a plain nn.Linear (deepseek_mtp.py:87), q_a/kv_a a disable_tp linear (deepseek_v2.py:953-967): at
    least those bytes (in the checkpoint's fp8 blocks: one byte a parameter) stay whole on each of the 8 GPUs."""
    _, spec = _draft_term("deepseek-ai/DeepSeek-V3")
    h = 7168
    assert spec is not None and spec.draft_replicated_weights >= 2 * h * h + (1536 + 576) * h
