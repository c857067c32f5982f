"""Issue 13's proof for a draft model: transformers' assisted generation (`generate(..., assistant_model=draft)`)
on a tiny random llama target and a tiny random llama draft with other layer and head counts, both caches read
as real CPU tensors (kvplan.profiling.ground_truth.measure_assisted_caches) and held against kvplan's figures:

- the target's: `estimate` on the transformers engine at the length its cache holds;
- the draft's: the `Speculative` kvplan builds for `{"method": "draft_model", "model": <the draft's config>}`
  (vLLM's rules, kvplan.engines.vllm.speculative_rules: the draft's cache layers as `draft_caches`), those layers
  sized by the transformers engine's storage model at the length the draft's cache holds, after every draft
  forward of every drafting round.

Assisted generation keeps the draft's cache behind the target's: it never holds more tokens than the final
sequence, so kvplan's draft figure at the final length bounds it. `kvplan estimate --engine transformers
--speculative-config` (transformers' `assisted_generation` rule) gives both figures as its rows, and `kvplan profile
--speculative-config` runs the assisted generation itself and reports both caches beside those figures."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.serving import SpeculativeInputs
from kvplan.engines.transformers import TransformersEngine
from kvplan.engines.vllm import parse_speculative_config, speculative_rules
from kvplan.planning.estimate import estimate, estimate_config
from kvplan.profiling.ground_truth import build_model, hf_config_from_dict, measure_assisted_caches, total_nbytes

pytestmark = pytest.mark.torch

_COMMON = dict(model_type="llama", vocab_size=128, hidden_size=64, intermediate_size=128, max_position_embeddings=256)
TARGET = dict(_COMMON, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
DRAFT = dict(_COMMON, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32)
PROMPT, NEW = 12, 20


@pytest.fixture(scope="module")
def run() -> dict:
    torch.manual_seed(0)
    target = build_model(hf_config_from_dict({**TARGET, "torch_dtype": "float32"}), dtype="float32", device="cpu")
    draft = build_model(hf_config_from_dict({**DRAFT, "torch_dtype": "float32"}), dtype="float32", device="cpu")
    ids = torch.randint(3, 128, (1, PROMPT))
    return measure_assisted_caches(target, draft, ids, max_new_tokens=NEW)


def _draft_spec(tmp_path):
    path = tmp_path / "draft" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(DRAFT))
    setup = parse_speculative_config({"model": str(path), "num_speculative_tokens": 4})
    target_shape, draft_shape = model_shape(TARGET), model_shape(DRAFT)
    inputs = SpeculativeInputs(
        setup, TARGET, target_shape, "float32", draft_config=DRAFT, draft_shape=draft_shape, draft_weights=None
    )
    return speculative_rules(inputs), draft_shape


def _draft_bytes(spec, draft_shape, tokens: int) -> int:
    engine = TransformersEngine.for_shape(draft_shape)
    req = Request(seq_len=tokens, batch=1, kv_dtype="float32", model_dtype="float32")  # the draft's layers alone
    return sum(c.bytes for c in engine.stage_costs(list(spec.draft_caches), req))


def test_the_targets_cache_is_kvplans_estimate(run):
    tokens, layers = run["target"]
    assert run["sequence"] == PROMPT + NEW and tokens == PROMPT + NEW - 1  # the last token is never fed
    assert {layer["class"] for layer in layers} == {"DynamicLayer"} and len(layers) == 4
    est = estimate_config(TARGET, engine="transformers", seq_len=tokens, dtype="float32")
    assert est.kv_cache_bytes == total_nbytes(layers) == 2 * 4 * 2 * 16 * tokens * 4


def test_the_draft_models_cache_is_kvplans_draft_layers_on_the_transformers_engine(run, tmp_path):
    spec, draft_shape = _draft_spec(tmp_path)
    assert spec.method == "draft_model" and len(spec.draft_caches) == 2  # the draft's own layers, not the target's
    assert {(c.num_kv_heads, c.head_dim_k, c.head_dim_v) for c in spec.draft_caches} == {(1, 32, 32)}  # type: ignore[attr-defined]
    tokens, layers = run["draft"]
    assert len(layers) == 2 and {layer["class"] for layer in layers} == {"DynamicLayer"}
    assert layers[0]["tensors"]["keys"][0] == (1, 1, tokens, 32)
    assert _draft_bytes(spec, draft_shape, tokens) == total_nbytes(layers) == 2 * 2 * 1 * 32 * tokens * 4
    # every drafting round: the cache the draft holds after each of its forwards, cropped back between rounds
    steps = run["draft_steps"]
    assert len(steps) > 1 and steps[0][0] == PROMPT  # the first round prefills the prompt
    for _fed, held, nbytes in steps:
        assert nbytes == _draft_bytes(spec, draft_shape, held)
    # the draft's cache stays behind the target's: kvplan's figure at the final length bounds it
    assert max(held for _, held, _ in steps) < run["sequence"]
    assert max(n for _, _, n in steps) < _draft_bytes(spec, draft_shape, run["sequence"])


def test_kvplan_estimate_on_transformers_sizes_both_caches(run, tmp_path):
    """`estimate(..., engine="transformers", speculative_config=draft_model)` (transformers' assisted_generation
    rule): the target's rows are its cache and the draft rows the assistant's, each at the length that cache holds;
    at the final length the draft rows bound the assistant's cache."""
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(DRAFT))
    setup = {"method": "draft_model", "model": str(path), "num_speculative_tokens": 4}

    def est(tokens: int):
        return estimate(TARGET, engine="transformers", seq_len=tokens, dtype="float32", speculative_config=setup)

    target_tokens, target_layers = run["target"]
    draft_tokens, draft_layers = run["draft"]
    at_target = est(target_tokens)
    assert sum(k.bytes for k in at_target.layers) == total_nbytes(target_layers)
    (row,) = est(draft_tokens).draft_layers
    assert (row.kind, row.count, row.bytes) == ("full_attention", 2, total_nbytes(draft_layers))
    final = est(run["sequence"])
    assert final.kv_cache_bytes == sum(k.bytes for k in (*final.layers, *final.draft_layers))
    assert final.to_dict()["speculative"]["draft_kv_bytes"] > max(n for _, _, n in run["draft_steps"])
    assert any("assisted generation" in n for n in final.notes)


def test_a_sliding_window_draft_holds_two_tokens_more_after_each_round_as_the_note_says(tmp_path):
    """A mistral draft with sliding_window 8: kvplan sizes its DynamicSlidingWindowLayers at window - 1 tokens (a
    decode step's steady state). Each drafting round feeds the draft the last 2 tokens (the cache is cropped to the
    sequence less 2, candidate_generator.py `_update_past_and_masks`), after which each layer holds window + 1:
    kvplan's figure plus 2 tokens, as its note says."""
    sliding = dict(DRAFT, model_type="mistral", sliding_window=8)
    torch.manual_seed(0)
    target = build_model(hf_config_from_dict({**TARGET, "torch_dtype": "float32"}), dtype="float32", device="cpu")
    draft = build_model(hf_config_from_dict({**sliding, "torch_dtype": "float32"}), dtype="float32", device="cpu")
    measured = measure_assisted_caches(target, draft, torch.randint(3, 128, (1, PROMPT)), max_new_tokens=8)
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(sliding))
    setup = {"method": "draft_model", "model": str(path), "num_speculative_tokens": 4}
    est = estimate(TARGET, engine="transformers", seq_len=PROMPT + 8, dtype="float32", speculative_config=setup)
    (row,) = est.draft_layers
    assert (row.kind, row.tokens_per_sequence) == ("sliding_window", 7)
    per_token = 2 * 2 * 1 * 32 * 4  # 2 layers x K and V x 1 head x 32 x fp32
    rounds = [(fed, nbytes) for fed, _, nbytes in measured["draft_steps"][1:]]  # after the prompt's prefill
    assert rounds and {fed for fed, _ in rounds} <= {1, 2}
    for fed, nbytes in rounds:
        assert nbytes == row.bytes + fed * per_token  # window - 1 + the tokens of the last forward
    assert max(n for _, n in rounds) == row.bytes + 2 * per_token
    assert any("window + 1 (2 tokens more)" in n for n in est.notes)


# ------------------------------------------------------------------------- kvplan profile --speculative-config


def _write(tmp_path, name: str, config: dict) -> str:
    path = tmp_path / name / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    return str(path)


def test_kvplan_profile_measures_the_drafts_cache_beside_kvplans_estimate(tmp_path):
    """`kvplan profile TARGET --speculative-config draft_model`: after the grid, one assisted generation with the draft
    built as the target is (random weights from its config, fp32, CPU); both caches read after it equal kvplan's
    transformers figures at the tokens each holds, the draft's the drafter rows `kvplan estimate --engine transformers
    --speculative-config` gives, and the largest the draft's cache ever was stays within kvplan's figure at the final
    length. The table says it, and the JSON validates against `kvplan schema profile`."""
    from typer.testing import CliRunner

    from kvplan.cli import app
    from kvplan.schemas import schema

    jsonschema = pytest.importorskip("jsonschema")
    runner = CliRunner()
    target, draft = _write(tmp_path, "target", TARGET), _write(tmp_path, "draft", DRAFT)
    setup = json.dumps({"method": "draft_model", "num_speculative_tokens": 3, "model": draft})
    out = tmp_path / "profile.json"
    result = runner.invoke(
        app,
        ["profile", target, "--device", "cpu", "--dtype", "float32", "--seq-len", "16", "--decode-tokens", "8"]
        + ["--repeats", "1", "--speculative-config", setup, "-o", str(out)],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "assisted generation · draft" in result.stdout and "3 tokens per round" in result.stdout
    document = json.loads(out.read_text())
    assert [e.message for e in jsonschema.Draft202012Validator(schema("profile")).iter_errors(document)] == []
    spec = document["speculative"]
    assert (spec["method"], spec["num_speculative_tokens"], spec["layers"]) == ("draft_model", 3, 2)
    assert spec["model"] == draft
    assert spec["error"] is None and not spec["oom"] and spec["weights"].startswith("random")
    assert (spec["batch"], spec["seq_len"], spec["decode_tokens"], spec["sequence_tokens"]) == (1, 16, 8, 24)
    held = spec["draft_tokens_held"]
    per_token = 2 * 2 * 1 * 32 * 4  # 2 layers x K and V x 1 KV head x head_dim 32 x fp32
    assert spec["draft_kv_bytes_measured"] == spec["draft_kv_bytes_estimated"] == per_token * held
    assert spec["draft_kv_ratio"] == 1.0
    assert spec["target_tokens_held"] == 23  # the last token is never fed
    assert spec["target_kv_bytes_measured"] == spec["target_kv_bytes_estimated"] == 2 * 4 * 2 * 16 * 4 * 23
    assert spec["draft_forwards"] > 1
    assert spec["draft_kv_bytes_peak_measured"] <= spec["draft_kv_bytes_estimated_at_sequence"] == per_token * 24
    assert spec["weights_bytes_measured"] > 0 and spec["weights_bytes_estimated"] > 0
    # the same figure `kvplan estimate --engine transformers --speculative-config` gives at the tokens the draft held
    est = runner.invoke(
        app,
        ["estimate", target, "--engine", "transformers", "--dtype", "float32", "--seq-len", str(held)]
        + ["--speculative-config", setup, "--json"],
    )
    assert est.exit_code == 0, est.output
    assert json.loads(est.stdout)["speculative"]["draft_kv_bytes"] == spec["draft_kv_bytes_measured"]


@pytest.mark.parametrize(
    "setup, message",
    [
        ({"method": "eagle", "num_speculative_tokens": 3, "model": "DRAFT"}, "draft_model assisted generation only"),
        ({"method": "mtp", "num_speculative_tokens": 1}, "draft_model assisted generation only"),
        ({"method": "draft_model", "num_speculative_tokens": 0, "model": "DRAFT"}, "num_speculative_tokens"),
    ],
)
def test_kvplan_profile_refuses_other_speculative_methods(tmp_path, setup, message):
    from typer.testing import CliRunner

    from kvplan.cli import app

    target, draft = _write(tmp_path, "target", TARGET), _write(tmp_path, "draft", DRAFT)
    setup = {k: draft if v == "DRAFT" else v for k, v in setup.items()}
    result = CliRunner().invoke(
        app, ["profile", target, "--device", "cpu", "--seq-len", "16", "--speculative-config", json.dumps(setup)]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and message in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""
