"""`kvplan schema COMMAND`: the JSON Schemas of the --json documents, checked against the real outputs.

Every command's --json output (estimate single and sweep, recommend for each engine it sizes, check of passing and
failing plans and engine configs, explain of real start-up logs of vLLM, SGLang and llama.cpp, models, profiles
list and show) validates against its schema; `kvplan profile`'s is validated in tests/profiling/test_profiler.py.
And the schemas are strict: every object lists its keys and refuses others, every key is required unless named
optional here, so a renamed, dropped or added key fails (negative tests below).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.engines import registry
from kvplan.schemas import COMMANDS, DIALECT, command_name, schema

from conftest import FIXTURES, ROOT, config_path

if os.environ.get("CI"):  # CI installs the test extra: a missing jsonschema there is a failure, not a skip
    import jsonschema
else:
    jsonschema = pytest.importorskip("jsonschema")

runner = CliRunner()
SCHEMA_FILES = Path(__file__).resolve().parents[1] / "kvplan" / "schemas"
# keys a document may leave out (every other key of every object is required)
OPTIONAL = {
    "models": {"error"},
    "estimate": {"dcp", "speculative"},  # only where -dcp was given above 1 / where --speculative-config was given
    # `parallel` only where DP, DCP, EP or nodes were given, its `search` with --smallest-layout
    # (test_recommend_with_a_layout_is_valid)
    "recommend": {"parallel", "search"},
    "profile": {
        "speculative",  # only with --speculative-config
        "gpus",
        "weights_bytes",
        "weights_in_memory_bytes",
        "runtime_bytes_after_warmup",
        "memory_limit_bytes",
        "hardware_profile",
    },
}


def validator(command: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema(command))


def errors(command: str, document) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator(command).iter_errors(document)]


def cli_json(*args: str, codes: tuple[int, ...] = (0,)):
    result = runner.invoke(app, list(args))
    assert result.exit_code in codes, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------- the command


def test_every_command_with_json_output_has_a_schema():
    """The commands that take --json are exactly those with a schema (a new one must bring its schema)."""
    with_json = set()
    for command in app.registered_commands:
        if any(p.name == "json_out" for p in _params(command.callback)):
            with_json.add(command.name or command.callback.__name__)
    for group in app.registered_groups:
        for command in group.typer_instance.registered_commands:
            if any(p.name == "json_out" for p in _params(command.callback)):
                with_json.add(f"{group.name} {command.name}")
    assert with_json == set(COMMANDS)


def _params(callback):
    import inspect

    return inspect.signature(callback).parameters.values()


def test_schema_command_prints_each_schema_and_lists_them():
    listed = runner.invoke(app, ["schema"])
    assert listed.exit_code == 0 and listed.stdout.splitlines() == list(COMMANDS)
    for name in COMMANDS:
        printed = cli_json("schema", *name.split())
        assert printed == schema(name)
        assert printed["$schema"] == DIALECT
        jsonschema.Draft202012Validator.check_schema(printed)
    assert cli_json("schema", "profiles-list") == schema("profiles list")


def test_unknown_command_is_one_error_line_naming_the_choices():
    result = runner.invoke(app, ["schema", "estimat"])
    assert result.exit_code == 2
    assert "no JSON schema for 'estimat'" in result.stderr and "profiles show" in result.stderr
    with pytest.raises(Exception, match="no JSON schema"):
        command_name(["profiles", "delete"])


def test_printed_schemas_stand_alone():
    """check -> recommend and profiles list -> profiles show are bundled: every reference is local or to a schema
    embedded (with its own $id) in the same document, so a validator needs nothing else."""
    for name in COMMANDS:
        document = schema(name)
        ids = _ids(document)
        for ref in _walk_refs(document):
            assert ref.startswith("#") or ref.split("#")[0] in ids, (name, ref)


def _walk_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_refs(item)


def _ids(node) -> set[str]:
    found = set()
    if isinstance(node, dict):
        if isinstance(node.get("$id"), str):
            found.add(node["$id"])
        for value in node.values():
            found |= _ids(value)
    elif isinstance(node, list):
        for item in node:
            found |= _ids(item)
    return found


# ------------------------------------------------------------------------------------ the schemas are strict


def _objects(node, where="$"):
    """Every sub-schema that describes an object (its `properties` named)."""
    if isinstance(node, dict):
        conditional = where.endswith((".if", ".then", ".else"))  # narrows an object described elsewhere
        if "properties" in node and node.get("type", "object") == "object" and not conditional:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _objects(item, f"{where}[{i}]")


@pytest.mark.parametrize("path", sorted(SCHEMA_FILES.glob("*.json")), ids=lambda p: p.stem)
def test_every_object_refuses_unknown_keys_and_requires_its_own(path):
    document = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["$schema"] == DIALECT and document["$id"] == f"urn:kvplan:{path.stem}"
    objects = list(_objects(document))
    assert objects or document.get("items", {}).get("$ref"), path.name
    for where, node in objects:
        assert node.get("additionalProperties") is False, f"{path.name} {where} accepts unknown keys"
        optional = OPTIONAL.get(path.stem, set())
        assert set(node["required"]) == set(node["properties"]) - optional, f"{path.name} {where}"


def test_open_maps_say_what_their_values_are():
    """An object with free keys (flags, settings, sources) still types its values: nothing is `{}` but a setting's
    value, which is whatever the flag or log gave."""
    for path in SCHEMA_FILES.glob("*.json"):
        text = path.read_text()
        assert text.count('"additionalProperties": {}') == 0, path.name
        assert text.count("{}") == (1 if path.stem == "explain" else 0), path.name


# ----------------------------------------------------------------------------- real outputs are valid

ESTIMATE_CASES = [
    ("meta-llama/Llama-3.1-8B", "32k", "vllm"),
    ("google/gemma-2-9b-it", "8k", "vllm"),  # sliding window
    ("deepseek-ai/DeepSeek-V3", "128k", "sglang"),  # MLA
    ("Qwen/Qwen3-Next-80B-A3B", "32k", "vllm"),  # hybrid: linear-attention state
    ("ai21labs/AI21-Jamba-1.5-Mini", "4k", "transformers"),
    ("mistralai/Mistral-7B-v0.1", "16k", "transformers-static"),
    ("meta-llama/Llama-3.1-8B", "8k", "llamacpp"),
    ("meta-llama/Llama-3.1-8B", "8k", "naive"),
]


@pytest.mark.parametrize("model,seq_len,engine", ESTIMATE_CASES)
def test_estimate_outputs_are_valid(model, seq_len, engine):
    single = cli_json("estimate", model, "--seq-len", seq_len, "--engine", engine, "--offline", "--json")
    assert isinstance(single, dict) and errors("estimate", single) == []
    sweep = cli_json("estimate", model, "--seq-len", f"1k,{seq_len}", "--engine", engine, "--offline", "--json")
    assert isinstance(sweep, list) and len(sweep) == 2 and errors("estimate", sweep) == []


def test_every_catalog_model_estimate_is_valid():
    """Every layer kind and weights source the catalog reaches, through the library's to_dict (the CLI prints it)."""
    from kvplan.core.shapes import model_shape
    from kvplan.errors import KvplanError
    from kvplan.planning.estimate import estimate
    from kvplan.sources.catalog import catalog_entries
    from kvplan.sources.configs import read_config_file

    check = validator("estimate")
    seen = 0
    for entry in catalog_entries():
        try:
            model_shape(read_config_file(entry.path))
            document = estimate(str(entry.path), seq_len=4096, batch=2, offline=True).to_dict()
        except KvplanError:
            continue  # refused by name (kvplan models says why)
        problems = [e.message for e in check.iter_errors(document)]
        assert problems == [], (entry.name, problems[:3])
        seen += 1
    assert seen >= 40


@pytest.mark.parametrize("engine", registry.sized_engines())
def test_recommend_outputs_are_valid_for_every_sized_engine(engine):
    for model, gpu, extra in (
        ("meta-llama/Llama-3.1-8B", "h100-sxm-80gb", ()),
        ("Qwen/Qwen3-Next-80B-A3B", "h100-sxm-80gb", ("--gpus", "4")),  # hybrid: Mamba cache blocks
        ("meta-llama/Llama-3.1-70B", "rtx-4090", ()),  # does not fit
        ("google/gemma-2-9b-it", "l40s", ("--max-model-len", "8k", "--concurrency", "64")),
    ):
        document = cli_json(
            "recommend", model, "-g", gpu, "--engine", engine, *extra, "--offline", "--json", codes=(0, 1)
        )
        assert errors("recommend", document) == [], (model, engine)


@pytest.mark.parametrize("engine", [e for e in registry.sized_engines() if registry.serving_model(e).serves_lora])
def test_recommend_outputs_with_lora_are_valid(engine):
    """A `lora` budget row and lora_host_bytes / lora_host_source (issue 13)."""
    document = cli_json(
        "recommend", "meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "--engine", engine, "--max-model-len", "8k",
        "--max-lora-rank", "16", "--max-cpu-loras", "8", "--offline", "--json",
    )  # fmt: skip
    assert any(t["name"] == "lora" for t in document["budget"]) and document["lora_host_bytes"] > 0
    assert errors("recommend", document) == [], engine


def test_recommend_with_a_start_up_error_is_valid():
    document = cli_json(
        "recommend",
        "Qwen/Qwen3-Next-80B-A3B",
        "-g",
        "h100-sxm-80gb",
        "--gpus",
        "4",
        "--max-num-seqs",
        "100000",
        "--offline",
        "--json",
        codes=(0, 1),
    )
    assert errors("recommend", document) == []


def test_recommend_with_a_layout_is_valid():
    """DP, EP, EPLB, DCP and nodes: the `parallel` object is present, complete and typed."""
    document = cli_json(
        "recommend",
        "deepseek-ai/DeepSeek-V2-Lite",
        "-g",
        "h100-sxm-80gb",
        "--tp",
        "2",
        "-dp",
        "2",
        "--enable-expert-parallel",
        "--num-redundant-experts",
        "4",
        "-dcp",
        "2",
        "--nodes",
        "1",
        "--gpus-per-node",
        "4",
        "--offline",
        "--json",
    )
    assert errors("recommend", document) == []
    assert document["parallel"]["ep_size"] == 4 and document["parallel"]["experts_per_gpu"] == 17  # (64 + 4) / 4
    dense = cli_json("recommend", "meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "-dp", "2", "--offline", "--json")
    assert errors("recommend", dense) == [] and dense["parallel"]["ep_size"] is None
    plain = cli_json("recommend", "meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "--offline", "--json")
    assert "parallel" not in plain  # a plan without a layout prints what it always has
    searched = cli_json(
        "recommend", "meta-llama/Llama-3.1-70B", "-g", "h100-sxm-80gb", "--smallest-layout", "--offline", "--json"
    )
    assert errors("recommend", searched) == [] and searched["parallel"]["search"]["fits"]
    dcp = cli_json("estimate", "deepseek-ai/DeepSeek-V2-Lite", "--tp", "8", "-dcp", "8", "--offline", "--json")
    assert errors("estimate", dcp) == [] and dcp["dcp"] == 8
    mtp = '{"method": "mtp", "num_speculative_tokens": 3}'
    spec = cli_json("estimate", "nvidia/Qwen3.6-27B-NVFP4", "--speculative-config", mtp, "--offline", "--json")
    assert errors("estimate", spec) == [] and spec["speculative"]["draft_kv_layers"] == 1
    sweep = cli_json(
        "estimate", "nvidia/Qwen3.6-27B-NVFP4", "--seq-len", "1k,4k", "--speculative-config", mtp, "--offline", "--json"
    )
    assert errors("estimate", sweep) == [] and all(d["speculative"]["draft_layers"] for d in sweep)


def test_check_outputs_are_valid(tmp_path):
    passing = cli_json("check", str(ROOT / "examples" / "plans" / "kvplan.yaml"), "--offline", "--json")
    assert passing["ok"] and errors("check", passing) == []
    plan = tmp_path / "kvplan.yaml"
    plan.write_text(
        "defaults:\n  gpu: h100-sxm-80gb\n  vllm_version: '0.21'\n  gpu_memory_utilization: 0.9\n"
        "deployments:\n"
        "  - {name: concurrency, model: meta-llama/Llama-3.1-8B, max_model_len: 32k, concurrency: 16, max_num_seqs: 16}\n"
        "  - {name: weights, model: meta-llama/Llama-3.1-70B, max_model_len: 8192}\n"
        "  - {name: length, model: meta-llama/Llama-3.1-8B, gpu: rtx-4090, max_model_len: 128k, concurrency: 64}\n"
        "  - {name: sglang, engine: sglang, model: Qwen/Qwen3-8B, gpu: l40s, max_model_len: 32k}\n"
    )
    failing = cli_json("check", str(plan), "--min-headroom", "5%", "--offline", "--json", codes=(1,))
    constraints = {d["binding_constraint"] for d in failing["deployments"]}
    assert {"concurrency", "weights", "max_model_len"} <= constraints
    assert any(d["fix"] for d in failing["deployments"])
    assert errors("check", failing) == []
    configs = [str(p) for p in sorted((ROOT / "examples" / "engine-configs").glob("*")) if p.suffix != ".md"]
    for config in configs:
        document = cli_json(
            "check", "--engine-config", config, "--gpu", "h100-sxm-80gb", "--offline", "--json", codes=(0, 1)
        )
        assert errors("check", document) == [], config


def test_recommend_and_check_with_offload_tiers_are_valid(tmp_path):
    """The host tier section (kvplan.engines.offload) and the host_memory constraint, in their schemas."""
    document = cli_json(
        "recommend", "meta-llama/Llama-3.1-8B", "-g", "h100", "--tp", "8", "--max-model-len", "32k",
        "--kv-offloading-size", "100", "--lmcache-cpu-size", "50", "--lmcache-disk-size", "200",
        "--host-memory", "256GiB", "--offline", "--json",
    )  # fmt: skip
    assert len(document["host_tiers"]) == 3 and document["host_fits"] is False
    assert errors("recommend", document) == []
    plan = tmp_path / "kvplan.yaml"
    plan.write_text(
        "deployments:\n"
        "  - {name: hicache, engine: sglang, model: Qwen/Qwen3-8B, gpu: h100, max_model_len: 32k,"
        " tensor_parallel_size: 2, hicache_size: 200, host_memory: 256GiB}\n"
    )
    failing = cli_json("check", str(plan), "--offline", "--json", codes=(1,))
    assert failing["deployments"][0]["binding_constraint"] == "host_memory"
    assert errors("check", failing) == []


def _same_architecture() -> dict[str, str]:
    """tests/engines/test_calibration.py's SAME_ARCHITECTURE (a model id -> the config of the same architecture),
    loaded under a private name as tests/checking/test_explain.py does."""
    import importlib.util

    path = Path(__file__).parent / "engines" / "test_calibration.py"
    spec = importlib.util.spec_from_file_location("_calibration_for_schemas", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SAME_ARCHITECTURE


def _explain_cases() -> list[tuple[str, str, str, dict]]:
    """(case id, quote, config, case) of real start-up logs: up to three calibration cases of each engine whose
    log kvplan reads and whose model's config (or a same-architecture one) is at hand."""
    import yaml

    from kvplan.engines.logs import parse_log

    same = _same_architecture()
    picked: dict[str, list] = {}
    for name in ("engine_cases.yaml", "engine_cases_2026.yaml"):
        for case in yaml.safe_load((FIXTURES / "calibration" / name).read_text()):
            quote = (case.get("source") or {}).get("quote") or ""
            engine = parse_log(quote).engine if quote else None
            if engine not in ("vllm", "sglang", "llamacpp") or len(picked.get(engine, [])) >= 3:
                continue
            model_id = case.get("model_id") or ""
            config = None
            for stem in (same.get(model_id), model_id.replace("/", "__") if "/" in model_id else None):
                try:
                    config = str(config_path(stem)) if stem else None
                except FileNotFoundError:
                    continue
                if config:
                    break
            if config is not None:
                picked.setdefault(engine, []).append((case["id"], quote, config, case))
    return [c for cases in picked.values() for c in cases]


EXPLAIN_CASES = _explain_cases()


@pytest.mark.parametrize("case_id,quote,config,case", EXPLAIN_CASES, ids=[c[0] for c in EXPLAIN_CASES])
def test_explain_outputs_of_real_logs_are_valid(case_id, quote, config, case, tmp_path):
    log = tmp_path / "startup.log"
    log.write_text(quote, encoding="utf-8")
    args = ["explain", str(log), "--model", config, "--offline", "--json", "-g", _gpu(case)]
    result = runner.invoke(app, args)
    if result.exit_code == 2:  # a log kvplan says it cannot recompute (SGLang's separate pools): one line, no JSON
        assert "cannot recompute" in result.stderr and result.stdout == "", result.output
        return
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.stdout)
    assert document["numbers"] or document["not_explained"]
    assert errors("explain", document) == []


def test_explain_cases_cover_three_engines():
    from kvplan.engines.logs import parse_log

    assert {parse_log(c[1]).engine for c in EXPLAIN_CASES} >= {"vllm", "sglang"}


# llama.cpp's `llama_kv_cache_unified: size = ...` line as tests/checking/test_explain.py writes it (its format as in
# tests/engines/test_logs.py, the figures of Llama-3.1-8B at 4096 cells): the calibration has no llama.cpp log
# of a model whose config is at hand.
LLAMACPP_LINE = (
    "llama_kv_cache_unified: size =  272.00 MiB (  4096 cells,  32 layers,  1 seqs), K (q8_0):  136.00 MiB, "
    "V (q8_0):  136.00 MiB"
)


def test_explain_output_of_a_llamacpp_line_is_valid(tmp_path):
    log = tmp_path / "llama-server.log"
    log.write_text(LLAMACPP_LINE + "\n")
    document = cli_json(
        "explain", str(log), "--model", str(config_path("meta-llama__Llama-3.1-8B")), "--offline", "--json"
    )
    assert document["engine"] == "llamacpp" and len(document["numbers"]) == 3
    assert errors("explain", document) == []


def _gpu(case: dict) -> str:
    text = case.get("gpu_model") or ""
    for needle, profile in (
        ("H100", "h100-sxm-80gb"),
        ("A100 80GB", "a100-sxm-80gb"),
        ("A100", "a100-sxm-80gb"),
        ("3090", "rtx-3090"),
        ("4090", "rtx-4090"),
        ("H200", "h200"),
        ("L40S", "l40s"),
    ):
        if needle in text:
            return profile
    return "h100-sxm-80gb"


def test_models_and_profiles_outputs_are_valid():
    models = cli_json("models", "--json")
    assert errors("models", models) == []
    # every catalog config is read today; a row of one kvplan cannot read has no layers and no kinds
    unread = {**models[0], "family": None, "layers": None, "kinds": [], "error": "needs a family-specific reader"}
    assert errors("models", [unread]) == []
    profiles = cli_json("profiles", "list", "--json")
    assert len(profiles) >= 25 and errors("profiles list", profiles) == []
    for row in profiles:
        shown = cli_json("profiles", "show", row["id"], "--json")
        assert shown == row and errors("profiles show", shown) == []


# ----------------------------------------------------------------------------------------- negative tests


@pytest.fixture(scope="module")
def recommend_doc() -> dict:
    return cli_json("recommend", "Qwen/Qwen3-Next-80B-A3B", "-g", "h100-sxm-80gb", "--gpus", "4", "--offline", "--json")


def _renamed(document: dict, old: str, new: str) -> dict:
    out = copy.deepcopy(document)
    out[new] = out.pop(old)
    return out


@pytest.mark.parametrize(
    "old,new",
    [("kv_cache_tokens", "kv_tokens"), ("max_model_len", "max_len"), ("schema", "$schema"), ("budget", "budgets")],
)
def test_a_renamed_top_level_key_is_caught(recommend_doc, old, new):
    problems = errors("recommend", _renamed(recommend_doc, old, new))
    assert any(f"'{old}' is a required property" in p for p in problems), problems
    assert any(f"'{new}' was unexpected" in p for p in problems), problems


def test_renamed_nested_keys_and_wrong_types_are_caught(recommend_doc):
    doc = copy.deepcopy(recommend_doc)
    doc["budget"][0]["size"] = doc["budget"][0].pop("bytes")
    assert errors("recommend", doc)
    doc = copy.deepcopy(recommend_doc)
    doc["throughput_bounds"][0]["extra"] = 1
    assert errors("recommend", doc)
    doc = copy.deepcopy(recommend_doc)
    doc["fp8_kv"]["kv_cache_dtype"] = doc["fp8_kv"].pop("kv_dtype")
    assert errors("recommend", doc)
    for key, value in (("fits", "yes"), ("num_blocks", 1.5), ("tp", 0), ("flags", {"vllm": 1}), ("schema", "x/2")):
        doc = copy.deepcopy(recommend_doc)
        doc[key] = value
        assert errors("recommend", doc), key


def test_estimate_single_and_sweep_shapes_are_both_checked():
    single = cli_json("estimate", "google/gemma-2-9b-it", "--seq-len", "8k", "--offline", "--json")
    layer = copy.deepcopy(single)
    layer["layers"][0]["tokens"] = layer["layers"][0].pop("tokens_per_sequence")
    assert errors("estimate", layer)
    assert errors("estimate", [single])  # a sweep has two lengths or more
    bad_sweep = [single, _renamed(single, "kv_cache_bytes", "kv_bytes")]
    assert errors("estimate", bad_sweep)
    assert errors("estimate", {**single, "notes": "none"})


def test_check_deployment_and_embedded_recommendation_are_checked():
    document = cli_json("check", str(ROOT / "examples" / "plans" / "kvplan.yaml"), "--offline", "--json")
    row = copy.deepcopy(document)
    row["deployments"][0]["headroom"] = row["deployments"][0].pop("headroom_bytes")
    assert errors("check", row)
    nested = copy.deepcopy(document)
    nested["deployments"][0]["recommend"]["kv_tokens"] = nested["deployments"][0]["recommend"].pop("kv_cache_tokens")
    assert errors("check", nested)
    summary = copy.deepcopy(document)
    summary["summary"]["total"] = summary["summary"].pop("deployments")
    assert errors("check", summary)
    constraint = copy.deepcopy(document)
    constraint["deployments"][0]["binding_constraint"] = "memory"
    assert errors("check", constraint)


def test_models_and_profiles_renames_are_caught():
    models = cli_json("models", "--json")
    assert errors("models", [_renamed(models[0], "kinds", "cache_kinds")])
    unread = {**models[0], "family": None, "layers": None, "kinds": [], "error": "needs a family-specific reader"}
    assert errors("models", [{**unread, "layers": 3}])  # a model not read has no layer count
    shown = cli_json("profiles", "show", "h100-sxm-80gb", "--json")
    assert errors("profiles show", _renamed(shown, "memory_bytes", "memory"))
    assert errors("profiles list", [_renamed(shown, "aliases", "alias")])
    assert errors("profiles show", {**shown, "interconnect": {"type": "nvlink4", "bandwidth": 1}})


def test_explain_renames_are_caught(tmp_path):
    _, quote, config, case = EXPLAIN_CASES[0]
    log = tmp_path / "startup.log"
    log.write_text(quote, encoding="utf-8")
    result = runner.invoke(app, ["explain", str(log), "--model", config, "--offline", "--json", "-g", _gpu(case)])
    document = json.loads(result.stdout)
    assert errors("explain", _renamed(document, "not_explained", "unexplained"))
    row = copy.deepcopy(document)
    row["numbers"][0]["within"] = row["numbers"][0].pop("within_rounding")
    assert errors("explain", row)
    setting = copy.deepcopy(document)
    first = next(iter(setting["settings"]))
    setting["settings"][first] = {"value": 1, "from": "flag"}
    assert errors("explain", setting)


@pytest.mark.parametrize(
    "args",
    [
        ["meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb"],
        [
            "deepseek-ai/DeepSeek-R1",
            "-g",
            "h100-sxm-80gb",
            "--tp",
            "8",
            "--batch",
            "32",
            "--weights",
            "fp8",
            "-e",
            "vllm",
        ],
        ["Qwen/Qwen3-30B-A3B", "-g", "b200", "--batch", "8", "--disaggregated"],
    ],
)
def test_throughput_outputs_are_valid(args):
    document = cli_json("throughput", *args, "--offline", "--json")
    assert errors("throughput", document) == []
    assert errors("throughput", {**document, "tpot_ms_lower_bound": "fast"})  # a wrong type is caught


@pytest.mark.parametrize(
    "args, code",
    [
        (["meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "-w", "chat", "--rate", "10"], 0),
        (["meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "-w", "rag", "--rate", "10", "--disaggregated"], 0),
        (["Qwen/Qwen3-30B-A3B", "-g", "b200", "-w", "reasoning", "--rate", "3", "--max-replicas", "1"], 1),
    ],
)
def test_fleet_outputs_are_valid(args, code):
    document = cli_json("fleet", *args, "--ttft-slo", "3000", "--tpot-slo", "40", "--offline", "--json", codes=(code,))
    assert errors("fleet", document) == []
    assert errors("fleet", {**document, "replicas": "many"})  # a wrong type is caught
