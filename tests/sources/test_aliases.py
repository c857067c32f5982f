"""The catalog's aliases (kvplan/sources/catalog/aliases.json) and quantized builds by name: each resolves to the
config it names, offline, and every output says which config stood in."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.planning.resolved import resolve
from kvplan.sources import catalog
from kvplan.sources.configs import load_model_config, read_config_file

runner = CliRunner()
ALIASES = catalog.aliases()


def test_the_catalog_holds_every_shipped_config():
    assert len(catalog.catalog_names()) >= 99
    data = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert len(data) >= 99
    assert {a.name for a in ALIASES} <= {alias for row in data for alias in row["aliases"]}


@pytest.mark.parametrize("alias", ALIASES, ids=lambda a: a.name)
def test_every_alias_resolves_to_the_config_it_names_and_says_so(alias):
    assert catalog.catalog_path(alias.config) is not None, alias
    assert catalog.matches(alias.name) == [], f"{alias.name} is a catalog name itself"
    loaded = load_model_config(alias.name, offline=True)
    original = read_config_file(catalog.catalog_path(alias.config))
    assert loaded.name == alias.name and loaded.path == catalog.catalog_path(alias.config)
    assert alias.config in loaded.notes[0] and alias.name in loaded.notes[0]
    assert ("quantization_config" in loaded.config) == (
        "quantization_config" in original and not alias.drop_quantization
    )
    assert {k: v for k, v in loaded.config.items() if k != "quantization_config"} == {
        k: v for k, v in original.items() if k != "quantization_config"
    }
    assert loaded.weights_unknown == alias.weights_unknown
    assert load_model_config(alias.name.lower(), offline=True).name == alias.name  # case-insensitive


def test_an_alias_note_reaches_the_estimate_and_weights_follow_the_alias():
    result = json.loads(
        runner.invoke(app, ["estimate", "meta-llama/Llama-3.1-8B-Instruct", "--offline", "--json"]).stdout
    )
    assert result["notes"][0].startswith("meta-llama/Llama-3.1-8B-Instruct is read from the catalog's")
    assert result["weights_bytes"] == resolve("meta-llama/Llama-3.1-8B").weights("bfloat16")[0]
    unknown = resolve("nvidia/Qwen3.6-35B-A3B-NVFP4", offline=True)
    assert unknown.weights("bfloat16") == (None, None)


def test_an_alias_for_a_quantized_stand_in_drops_its_quantization():
    loaded = load_model_config("Qwen/Qwen3.6-27B", offline=True)
    assert "quantization_config" not in loaded.config
    assert "quantization_config" in read_config_file(catalog.catalog_path("nvidia/Qwen3.6-27B-NVFP4"))
    assert "dropped" in loaded.notes[0]


@pytest.mark.parametrize(
    "name,base",
    [
        ("RedHatAI/Llama-3.1-8B-Instruct-FP8-dynamic", "meta-llama/Llama-3.1-8B"),
        ("Qwen/Qwen3-8B-AWQ", "Qwen/Qwen3-8B"),
        ("someone/Qwen3-32B-GPTQ-Int4", "Qwen/Qwen3-32B"),
        ("nvidia/Llama-3.1-70B-NVFP4", "meta-llama/Llama-3.1-70B"),
    ],
)
def test_a_quantized_build_the_hub_cannot_give_reads_its_base_layout_with_weights_unknown(name, base):
    loaded = load_model_config(name, offline=True)
    assert loaded.path == catalog.catalog_path(base)
    assert loaded.weights_unknown and "not counted" in loaded.notes[0] and base in loaded.notes[0]
    resolved = resolve(name, offline=True)
    assert resolved.weights("bfloat16") == (None, None)
    assert resolved.shape.assumptions[0] == loaded.notes[0]


@pytest.mark.parametrize("name", ["someone/Unknown-Model-FP8", "someone/FP8", "someone/Llama-3.1-8B-FP9"])
def test_names_that_are_not_a_catalog_models_build_are_not_matched(name):
    assert catalog.quantized_build(name) is None
    result = runner.invoke(app, ["estimate", name, "--offline"])
    assert result.exit_code == 2 and result.output.startswith("error:")


def test_models_family_filters_by_any_spelling_and_refuses_unknown_ones():
    by_alias = json.loads(runner.invoke(app, ["models", "--family", "kimi_k2", "--json"]).stdout)
    by_name = json.loads(runner.invoke(app, ["models", "--family", "deepseek_v3", "--json"]).stdout)
    assert by_alias == by_name
    assert {"deepseek-ai/DeepSeek-V3", "moonshotai/Kimi-K2-Instruct"} <= {r["name"] for r in by_name}
    assert {r["family"] for r in by_name} == {"deepseek_v3"}
    bad = runner.invoke(app, ["models", "--family", "nope"])
    assert bad.exit_code == 2 and "unknown --family 'nope'" in bad.output and "llama" in bad.output


def test_models_table_keeps_whole_names_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = runner.invoke(app, ["models"]).stdout
    assert "…" not in out


def test_a_quantized_name_whose_config_lacks_a_quantization_config_is_said():
    """nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8's config.json has no quantization_config (ModelOpt keeps it in
    hf_quant_config.json): kvplan counts bf16 weights and says the name disagrees."""
    resolved = resolve("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8", offline=True)
    assert any("says FP8 but its config.json has no quantization_config" in a for a in resolved.shape.assumptions)
    plain = resolve("meta-llama/Llama-3.1-8B", offline=True)
    assert not any("quantization_config" in a for a in plain.shape.assumptions)
