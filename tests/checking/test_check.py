"""`kvplan check`: plan files and engine configs, exit codes, figures equal to recommend(), binding constraints,
fixes that really fit when re-checked, config lint, JUnit reports, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.checking.check import supported_engines
from kvplan.cli import app
from kvplan.planning.recommend import recommend

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLAN = ROOT / "examples" / "plans" / "kvplan.yaml"
ENGINE_CONFIGS = ROOT / "examples" / "engine-configs"
LLAMA = "meta-llama/Llama-3.1-8B"


def run(*args: str):
    return runner.invoke(app, ["check", *map(str, args)], env={"HF_HUB_OFFLINE": "1"})


def plan(tmp_path: Path, body: str, name: str = "kvplan.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip("\n"))
    return str(path)


def one(name: str = "chat", model: str = LLAMA, gpu: str = "h100-sxm-80gb", **keys) -> str:
    """One deployment as YAML list item text."""
    lines = [f"  - name: {name}", f"    model: {model}", f"    gpu: {gpu}"]
    keys.setdefault("max_model_len", 32768)
    lines += [f"    {k}: {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def check_json(*args: str) -> tuple[int, dict]:
    result = run(*args, "--json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def assert_one_error_line(result, needle: str | None = None) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error:"), result.stderr
    assert all(line.startswith("hint:") for line in lines[1:]), result.stderr
    assert "internal error" not in lines[0]
    if needle is not None:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


# ------------------------------------------------------------------------------------------ plans that fit


def test_shipped_example_plan_fits_and_figures_equal_recommend():
    code, data = check_json(EXAMPLE_PLAN)
    assert code == 0
    assert data["schema"] == "kvplan.check/1" and data["ok"] and data["exit_code"] == 0
    rows = {d["name"]: d for d in data["deployments"]}
    assert list(rows) == ["chat", "chat-fp8", "qwen-32b-tp2", "qwen3-sglang"]
    chat = rows["chat"]
    rec = recommend(
        LLAMA,
        gpu_profile="h100-sxm-80gb",
        max_model_len=32768,
        concurrency=8,
        max_num_seqs=256,
        gpu_memory_utilization=0.9,
        tp=1,
    )
    for key in (
        "available_kv_memory_bytes",
        "kv_cache_tokens",
        "num_blocks",
        "max_concurrency",
        "max_model_len_fit",
        "weights_bytes",
    ):
        assert chat[key] == getattr(rec, key), key
    assert chat["recommend"] == rec.to_dict()
    # Llama-3.1-8B bf16 on vLLM: 16-token blocks of 32 layers x 2 x 8 heads x 128 x 2 B = 2 MiB each.
    assert chat["needed_kv_bytes"] == 8 * (32768 // 16) * 2 * 2**20 == 32 * 2**30
    assert chat["headroom_bytes"] == rec.available_kv_memory_bytes - 32 * 2**30
    assert chat["headroom_fraction"] == pytest.approx(1 - 8 / rec.max_concurrency, abs=1e-3)
    assert chat["fits"] and chat["ok"] and chat["binding_constraint"] is None and chat["fix"] == []
    for row in rows.values():
        assert row["source"] == str(EXAMPLE_PLAN)
        assert row["headroom_bytes"] > 0 and 0 < row["headroom_fraction"] < 1
        assert row["headroom_bytes"] == row["available_kv_memory_bytes"] - row["needed_kv_bytes"]
    assert rows["chat-fp8"]["kv_cache_dtype"] == "fp8_e4m3" and rows["chat-fp8"]["required_concurrency"] == 16
    assert rows["qwen-32b-tp2"]["tensor_parallel_size"] == 2 and rows["qwen-32b-tp2"]["gpus"] == 2
    assert rows["qwen3-sglang"]["engine"] == "sglang" and rows["qwen3-sglang"]["gpu_profile"] == "l40s"


def test_human_output_lists_every_deployment():
    result = run(EXAMPLE_PLAN)
    assert result.exit_code == 0, result.output
    for name in ("chat", "chat-fp8", "qwen-32b-tp2", "qwen3-sglang"):
        assert name in result.stdout
    assert "4 of 4 deployments pass" in result.stdout


# --------------------------------------------------------------------------------------- plans that do not

# The figures below are those of kvplan's old default (vLLM 0.21 with a 0.9 memory fraction): pinned, so that they
# stay what they check, whatever release kvplan models by default.
OLD_DEFAULT = "defaults:\n  vllm_version: '0.21'\n  gpu_memory_utilization: 0.9\n"


def pinned(tmp_path: Path, body: str, name: str = "kvplan.yaml") -> str:
    return plan(tmp_path, OLD_DEFAULT + body, name)


def test_32k_x16_bf16_on_one_h100_is_bound_by_concurrency_and_each_fix_fits(tmp_path):
    need = {"concurrency": 16, "max_num_seqs": 16}  # 16 requests of 32k must fit; vLLM runs with a cap of 16
    path = pinned(tmp_path, "deployments:\n" + one(**need))
    code, data = check_json(path)
    assert code == 1 and not data["ok"]
    row = data["deployments"][0]
    assert row["fits"] is False and row["binding_constraint"] == "concurrency"
    assert row["max_concurrency"] == pytest.approx(13.75)  # vLLM run with max_num_seqs 16 (13.76 before rope_cache)
    assert row["needed_kv_bytes"] == 64 * 2**30 and row["headroom_bytes"] < 0
    fixes = {f["key"]: f["value"] for f in row["fix"]}
    assert set(fixes) >= {"max_model_len", "kv_cache_dtype", "tensor_parallel_size", "concurrency"}
    assert fixes["kv_cache_dtype"] == "fp8" and fixes["tensor_parallel_size"] == 2 and fixes["concurrency"] == 13
    # every suggestion passes when applied, and max_model_len is the largest that does
    best = fixes["max_model_len"]
    assert run(pinned(tmp_path, "deployments:\n" + one(**need, max_model_len=best), "a.yaml")).exit_code == 0
    assert run(pinned(tmp_path, "deployments:\n" + one(**need, max_model_len=best + 1), "b.yaml")).exit_code == 1
    assert run(pinned(tmp_path, "deployments:\n" + one(**need, kv_cache_dtype="fp8"), "c.yaml")).exit_code == 0
    assert (
        run(pinned(tmp_path, "deployments:\n" + one(**need, gpus=2, tensor_parallel_size=2), "d.yaml")).exit_code == 0
    )
    assert run(pinned(tmp_path, "deployments:\n" + one(concurrency=13, max_num_seqs=16), "e.yaml")).exit_code == 0
    # the same cap without the requirement is a deployment vLLM starts (one 32k request fits): it passes
    assert run(pinned(tmp_path, "deployments:\n" + one(max_num_seqs=16), "f.yaml")).exit_code == 0
    text = run(path)
    assert text.exit_code == 1
    assert "concurrency" in text.stdout and f"lower max_model_len to {best:,}" in text.stdout


def test_128k_x64_on_rtx_4090_names_max_model_len_and_its_fix_fits(tmp_path):
    path = plan(tmp_path, "deployments:\n" + one(gpu="rtx-4090", max_model_len="128k", concurrency=64))
    code, data = check_json(path)
    row = data["deployments"][0]
    assert code == 1 and row["binding_constraint"] == "max_model_len"
    assert row["max_model_len"] == 131072 and row["max_model_len_fit"] < 131072
    assert str(f"{row['max_model_len_fit']:,}") in row["binding_detail"]
    best = next(f["value"] for f in row["fix"] if f["key"] == "max_model_len")
    recheck = plan(tmp_path, "deployments:\n" + one(gpu="rtx-4090", max_model_len=best, concurrency=64), "fixed.yaml")
    assert run(recheck).exit_code == 0


def test_weights_that_do_not_fit_name_the_weights_and_suggest_tp(tmp_path):
    path = plan(tmp_path, "deployments:\n" + one(model="meta-llama/Llama-3.1-70B", max_model_len=8192))
    code, data = check_json(path)
    row = data["deployments"][0]
    assert code == 1 and row["binding_constraint"] == "weights" and row["available_kv_memory_bytes"] == 0
    tp = next(f["value"] for f in row["fix"] if f["key"] == "tensor_parallel_size")
    fixed = plan(
        tmp_path,
        "deployments:\n" + one(model="meta-llama/Llama-3.1-70B", max_model_len=8192, gpus=tp, tensor_parallel_size=tp),
        "fixed.yaml",
    )
    assert run(fixed).exit_code == 0


def test_one_failing_deployment_fails_the_run_and_the_others_are_reported(tmp_path):
    path = plan(tmp_path, "deployments:\n" + one("a", concurrency=4) + one("b", concurrency=16) + one("c"))
    junit = tmp_path / "report.xml"
    result = run(path, "--junit", junit)
    assert result.exit_code == 1
    assert "1 of 3" not in result.stdout and "2 of 3 deployments pass" in result.stdout
    assert "✗ b" in result.stdout and "✗ a" not in result.stdout
    _, data = check_json(path)
    assert [(d["name"], d["ok"]) for d in data["deployments"]] == [("a", True), ("b", False), ("c", True)]
    assert data["summary"] == {"deployments": 3, "passed": 2, "failed": 1}
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = suite.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["a", "b", "c"]
    assert [c.find("failure") is not None for c in cases] == [False, True, False]
    assert cases[1].find("failure").get("type") == "concurrency"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


def test_min_headroom_fails_a_tight_plan_with_constraint_headroom(tmp_path):
    path = pinned(tmp_path, "deployments:\n" + one(concurrency=13, max_num_seqs=13))  # 13 of 13.75: ~5.5% spare
    code, data = check_json(path)
    fraction = data["deployments"][0]["headroom_fraction"]
    assert code == 0 and 0.054 < fraction < 0.056
    for spelling in ("10%", "0.1"):
        code, data = check_json(path, "--min-headroom", spelling)
        row = data["deployments"][0]
        assert code == 1 and row["fits"] and not row["ok"] and row["binding_constraint"] == "headroom"
        assert data["min_headroom"] == pytest.approx(0.1)
        seqs = next(f["value"] for f in row["fix"] if f["key"] == "concurrency")
        assert seqs == 12
    assert check_json(path, "--min-headroom", "5%")[0] == 0


@pytest.mark.parametrize("value", ["lots", "150%", "5", "-1%"])
def test_bad_min_headroom_is_usage_error(value):
    assert_one_error_line(run(EXAMPLE_PLAN, "--min-headroom", value), "--min-headroom")


# ----------------------------------------------------------------------------------------------- bad input


def test_malformed_yaml_is_one_line_with_file_and_line(tmp_path):
    path = plan(tmp_path, "deployments:\n  - name: chat\n    model: [unclosed\n    gpu: h100\n")
    line = assert_one_error_line(run(path))
    assert re.match(rf"error: {re.escape(path)}:\d+: invalid YAML", line), line


def test_unknown_key_names_file_line_key_and_suggests(tmp_path):
    path = plan(
        tmp_path,
        """
        deployments:
          - name: chat
            model: meta-llama/Llama-3.1-8B
            gpu: h100-sxm-80gb
            max_model_len: 32768
            max_num_seqs: 4
            max_model_length: 32768
        """,
    )
    line = assert_one_error_line(run(path))
    assert line == (f"error: {path}:7: deployments[0]: unknown key 'max_model_length' (did you mean 'max_model_len'?)")


def test_unknown_gpu_is_exit_2_naming_the_gpu_key(tmp_path):
    path = plan(tmp_path, "deployments:\n" + one(gpu="h1000-sxm"))
    line = assert_one_error_line(run(path))
    assert f"{path}:4: deployments[0].gpu: unknown hardware profile 'h1000-sxm'" in line


def test_unknown_model_is_exit_2_naming_the_model_key(tmp_path):
    path = plan(tmp_path, "deployments:\n" + one(model="nobody/no-such-model-xyz"))
    line = assert_one_error_line(run(path))
    assert f"{path}:3: deployments[0].model:" in line


def test_python_tag_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = plan(
        tmp_path,
        f"""
        deployments:
          - name: !!python/object/apply:os.system ["touch {marker}"]
            model: meta-llama/Llama-3.1-8B
            gpu: h100-sxm-80gb
            max_model_len: 32768
        """,
    )
    line = assert_one_error_line(run(path))
    assert f"{path}:2:" in line and "unsupported YAML tag" in line and "python/object/apply:os.system" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    "body,needle",
    [
        ("", "file is empty"),
        ("- just\n- a list\n", "expected a mapping with `deployments:`"),
        ("deployment:\n  - name: x\n", "unknown top-level key 'deployment' (did you mean 'deployments'?)"),
        ("deployments: []\n", "expected a non-empty list"),
        ("deployments:\n  - just a string\n", "deployments[0]: expected a mapping"),
        (
            "deployments:\n  - name: a\n    model: meta-llama/Llama-3.1-8B\n    max_model_len: 4096\n",
            "deployments[0]: missing required key 'gpu'",
        ),
        ("deployments:\n" + one(gpus="two"), "deployments[0].gpus: expected a positive integer, got 'two'"),
        ("deployments:\n" + one(gpus=0), "deployments[0].gpus: expected a positive integer, got 0"),
        ("deployments:\n" + one(max_model_len="lots"), "deployments[0].max_model_len: expected a positive token count"),
        ("deployments:\n" + one(max_model_len="true"), "deployments[0].max_model_len: expected a positive token count"),
        ("deployments:\n" + one(gpu_memory_utilization=1.5), "gpu_memory_utilization: expected a fraction in (0, 1]"),
        ("deployments:\n" + one(kv_cache_dtype="fp7"), "kv_cache_dtype: expected a KV-cache dtype"),
        ("deployments:\n" + one(engine="vllm2"), "unknown engine 'vllm2' (did you mean 'vllm'?)"),
        ("deployments:\n" + one(kv_cache_memory="lots"), "kv_cache_memory: expected a memory size"),
        ("deployments:\n" + one(gpus=1, tensor_parallel_size=2), "1 GPUs cannot hold tensor_parallel_size 2"),
        ("deployments:\n" + one("a") + one("a"), "duplicate deployment name 'a'"),
        ("deployments:\n  - name: a\n    name: b\n", "duplicate key 'name'"),
        ("defaults:\n  gpuz: h100\ndeployments:\n" + one(), "defaults: unknown key 'gpuz' (did you mean 'gpu'?)"),
        ("deployments:\n" + one(tensor_parallel_size=3, gpus=3), "tensor_parallel_size 3 does not divide"),
        ("deployments: &a [*a]\n", "deployments[0]: expected a mapping"),
        ("deployments:\n" + one(max_model_len="[" * 50000), ""),
    ],
)
def test_invalid_plans_are_exit_2_with_one_line(tmp_path, body, needle):
    path = plan(tmp_path, body)
    line = assert_one_error_line(run(path))
    assert path in line and needle in line, line


def test_missing_and_binary_files_are_exit_2(tmp_path):
    assert_one_error_line(run(tmp_path / "nope.yaml"), "no such file")
    binary = tmp_path / "kvplan.yaml"
    binary.write_bytes(b"\x00\xff\xfe")
    assert_one_error_line(run(binary), "binary file")
    assert_one_error_line(run(tmp_path), "is a folder")


def test_usage_errors(tmp_path):
    assert_one_error_line(run(), "nothing to check")
    assert_one_error_line(run(EXAMPLE_PLAN, "--gpu", "h100"), "--engine-config files only")
    assert_one_error_line(
        run(EXAMPLE_PLAN, "--junit", tmp_path / "no" / "such" / "dir" / "r.xml"), "does not exist"
    )  # refused before anything is checked


def test_an_engine_recommend_cannot_size_is_exit_2(tmp_path):
    if "transformers" in supported_engines():
        pytest.skip("recommend sizes transformers now")
    path = plan(tmp_path, "deployments:\n" + one(engine="transformers"))
    line = assert_one_error_line(run(path))
    assert f"{path}:" in line and "cannot size engine 'transformers'" in line


# ------------------------------------------------------------------------------------------ defaults, dirs


def test_defaults_are_merged_and_deployment_keys_win(tmp_path):
    path = plan(
        tmp_path,
        """
        defaults:
          gpu: h100-sxm-80gb
          max_model_len: 8k
          concurrency: 4
        deployments:
          - name: a
            model: meta-llama/Llama-3.1-8B
          - name: b
            model: meta-llama/Llama-3.1-8B
            gpu: l40s
            max_model_len: 16k
        """,
    )
    _, data = check_json(path)
    a, b = data["deployments"]
    assert (a["gpu_profile"], a["max_model_len"], a["required_concurrency"]) == ("h100-sxm-80gb", 8192, 4)
    assert (b["gpu_profile"], b["max_model_len"], b["required_concurrency"]) == ("l40s", 16384, 4)


def test_profiles_dir_is_relative_to_the_plan(tmp_path):
    profiles = tmp_path / "hw"
    profiles.mkdir()
    text = (ROOT / "profiles" / "h100-sxm-80gb.yaml").read_text()
    text = text.replace("id: h100-sxm-80gb", "id: lab-gpu").replace(
        'aliases: ["NVIDIA H100 80GB HBM3", "H100 SXM", "H100 SXM5", "H100 80GB HBM3", "h100"]', "aliases: []"
    )
    (profiles / "lab-gpu.yaml").write_text(text)
    path = plan(tmp_path, "profiles_dir: hw\ndeployments:\n" + one(gpu="lab-gpu", concurrency=8))
    code, data = check_json(path)
    assert code == 0 and data["deployments"][0]["gpu_profile"] == "lab-gpu"


# -------------------------------------------------------------------------------------------------- lint


def _config(tmp_path: Path, **fields) -> str:
    cfg = {
        "model_type": "llama",
        "hidden_size": 640,
        "num_attention_heads": 10,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 1024,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16",
        **fields,
    }
    path = tmp_path / "model" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(cfg))
    return str(path)


def test_lint_warns_and_fails_under_strict(tmp_path):
    model = _config(tmp_path)
    path = plan(tmp_path, "deployments:\n" + one(model=model, max_model_len=8192, gpus=4, tensor_parallel_size=4))
    result = run(path)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "tp-heads" in result.stderr and "max-model-len" in result.stderr
    code, data = check_json(path)
    codes = {w["code"] for w in data["deployments"][0]["lint"]}
    assert codes == {"tp-heads", "max-model-len"}
    code, data = check_json(path, "--strict")
    row = data["deployments"][0]
    assert code == 1 and row["fits"] and not row["ok"] and row["binding_constraint"] == "lint"


@pytest.mark.parametrize(
    "fields,max_len,code",
    [
        ({"num_attention_heads": 10, "num_key_value_heads": 4}, 2048, "kv-heads"),
        (
            {"model_type": "gpt2", "num_key_value_heads": None, "n_positions": 1024, "max_position_embeddings": None},
            2048,
            "max-model-len",
        ),
        ({"model_type": "gpt_neox", "head_dim": 80, "num_key_value_heads": None}, 2048, "head-dim"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, 32768, "max-model-len"),
        ({"torch_dtype": "float32"}, 2048, "dtype"),
    ],
)
def test_lint_codes(tmp_path, fields, max_len, code):
    model = _config(tmp_path, **fields)
    path = plan(tmp_path, "deployments:\n" + one(model=model, max_model_len=max_len))
    result = run(path, "--json")
    assert result.exit_code in (0, 1), result.output
    codes = [w["code"] for w in json.loads(result.stdout)["deployments"][0]["lint"]]
    assert code in codes


def test_rope_scaling_within_its_factor_is_clean(tmp_path):
    model = _config(tmp_path, rope_scaling={"rope_type": "yarn", "factor": 4.0})
    _, data = check_json(plan(tmp_path, "deployments:\n" + one(model=model, max_model_len=16384)))
    assert data["deployments"][0]["lint"] == []


# ------------------------------------------------------------------------------------------ engine configs


def test_vllm_engine_config_matches_the_same_plan(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        "model: meta-llama/Llama-3.1-8B\nmax-model-len: 32768\nmax_num_seqs: 8\n"
        "gpu-memory-utilization: 0.9\nenforce-eager: true\nport: 8000\nhost: 0.0.0.0\n"
    )
    result = run("--engine-config", cfg, "--engine", "vllm", "--gpu", "h100-sxm-80gb", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["deployments"][0]
    same = plan(tmp_path, "deployments:\n" + one(max_num_seqs=8, gpu_memory_utilization=0.9))
    _, data = check_json(same)
    chat = data["deployments"][0]
    for key in ("available_kv_memory_bytes", "needed_kv_bytes", "headroom_bytes", "max_concurrency"):
        assert row[key] == chat[key], key
    # max_num_seqs is vLLM's cap: the requirement is one request of max_model_len (what vLLM checks at start-up)
    assert row["max_num_seqs"] == 8 and row["concurrency"] is None and row["required_concurrency"] == 1
    assert row["needed_kv_bytes"] == (32768 // 16) * 2 * 2**20  # one request: 2048 blocks of 2 MiB
    assert any(n == "not modelled, affect memory: enforce-eager" for n in row["notes"])
    assert any(n == "ignored (no effect on KV memory): port, host" for n in row["notes"])
    assert "enforce-eager" in result.stderr


def test_engine_config_errors_use_the_engines_spelling(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("model: meta-llama/Llama-3.1-8B\n\nmax-model-len: lots\n")
    line = assert_one_error_line(run("--engine-config", cfg, "--gpu", "h100"))
    assert line.startswith(f"error: {cfg}:3: key 'max-model-len': expected a positive token count")
    cfg.write_text("max-model-len: 4096\n")
    assert_one_error_line(run("--engine-config", cfg, "--gpu", "h100"), "names no model")
    assert_one_error_line(run("--engine-config", cfg, "--model", LLAMA), "--gpu-profile (--gpu) is required")
    assert_one_error_line(
        run("--engine-config", cfg, "--model", LLAMA, "--gpu", "h100", "--engine", "tgi"), "unknown engine config kind"
    )
    assert_one_error_line(
        run("--engine-config", cfg, "--model", LLAMA, "--gpu", "nope-gpu"),
        f"{cfg}:1: --gpu: unknown hardware profile 'nope-gpu'",
    )


def test_engine_config_that_does_not_fit_suggests_in_the_engines_spelling(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("model: meta-llama/Llama-3.1-8B\nmax-model-len: 131072\nmax-num-seqs: 64\n")
    result = run("--engine-config", cfg, "--gpu", "rtx-4090")
    assert result.exit_code == 1
    assert "lower max-model-len to" in result.stdout


def test_sglang_and_xinference_configs(tmp_path):
    sg = tmp_path / "sglang.json"
    sg.write_text(
        json.dumps(
            {
                "model-path": LLAMA,
                "context-length": 32768,
                "tp-size": 2,
                "mem-fraction-static": 0.85,
                "max-running-requests": 4,
                "chunked-prefill-size": 4096,
            }
        )
    )
    code, data = check_json("--engine-config", sg, "--engine", "sglang", "--gpu", "l40s", "--gpus", "2")
    row = data["deployments"][0]
    assert code == 0 and row["engine"] == "sglang" and row["tensor_parallel_size"] == 2
    assert row["gpu_memory_utilization"] == 0.85 and row["max_num_seqs"] == 4
    # SGLang's max-running-requests is a cap (min(it, tokens // 2): kv_cache_configurator.py:3119-3132), not a
    # requirement: one request of context-length must fit
    assert row["required_concurrency"] == 1
    assert row["recommend"]["flags"]["sglang"].endswith("--mem-fraction-static 0.85 --max-running-requests 4")
    assert "not modelled, affect memory: chunked-prefill-size" in row["notes"]
    xi = tmp_path / "xinference.json"
    xi.write_text(
        json.dumps(
            {
                "model_uid": "x",
                "model_name": "qwen2.5-instruct",
                "model_engine": "SGLang",
                "n_gpu": 2,
                "max_model_len": 16384,
            }
        )
    )
    line = assert_one_error_line(run("--engine-config", xi, "--gpu", "l40s"))
    assert "key 'model_name'" in line and "--model" in run("--engine-config", xi, "--gpu", "l40s").stderr
    code, data = check_json("--engine-config", xi, "--gpu", "l40s", "--model", "Qwen/Qwen2.5-7B")
    row = data["deployments"][0]
    assert code == 0 and row["engine"] == "sglang" and row["tensor_parallel_size"] == 2 and row["gpus"] == 2
    assert row["max_model_len"] == 16384


@pytest.mark.parametrize("name", sorted(p.name for p in ENGINE_CONFIGS.iterdir()))
def test_shipped_engine_configs_fit(name):
    result = run("--engine-config", ENGINE_CONFIGS / name, "--gpu", "h100-sxm-80gb")
    assert result.exit_code == 0, result.output


def test_engine_config_with_a_python_tag_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "unsupported YAML tag" in assert_one_error_line(run("--engine-config", cfg, "--gpu", "h100"))
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ shipped CI files


def test_pre_commit_hook_and_workflow():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "kvplan-check")
    assert hook["language"] == "python" and hook["entry"] == "kvplan check"
    pattern = re.compile(hook["files"])
    assert pattern.search("kvplan.yaml") and pattern.search("deploy/kvplan-prod.yml")
    assert pattern.search(str(EXAMPLE_PLAN.relative_to(ROOT)))
    assert not pattern.search("README.md") and not pattern.search("kvplan/cli.py")
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "kvplan-check.yml").read_text())
    steps = workflow["jobs"]["kvplan-check"]["steps"]
    assert any("kvplan check" in str(step.get("run", "")) for step in steps)


def test_other_engines_recommend_sizes_are_checked(tmp_path):
    engines = ["llamacpp", "lightllm", "tensorrt-llm"]
    assert set(engines) <= set(supported_engines())
    body = "deployments:\n" + "".join(one(e, engine=e, gpu="rtx-4090", concurrency=2) for e in engines)
    code, data = check_json(plan(tmp_path, body))
    for row in data["deployments"]:
        assert row["engine"] in engines and row["headroom_bytes"] is not None
        assert (row["headroom_bytes"] >= 0) == row["fits"]
    if "llamacpp" in engines:  # a quantized GGUF: weights given as its file size
        gguf = plan(
            tmp_path,
            "deployments:\n" + one(engine="llamacpp", gpu="rtx-4090", max_num_seqs=2, weights_bytes="4.92GB"),
            "gguf.yaml",
        )
        code, data = check_json(gguf)
        assert code == 0 and data["deployments"][0]["weights_bytes"] == 4_920_000_000


def test_yaml_anchors_merge_keys_and_extension_keys(tmp_path):
    path = plan(
        tmp_path,
        """
        x-base: &base
          model: meta-llama/Llama-3.1-8B
          gpu: h100
        deployments:
          - <<: *base
            name: a
            max_model_len: 8k
          - <<: *base
            name: b
            gpu: l40s
            max_model_len: 8k
        """,
    )
    code, data = check_json(path)
    assert code == 0
    assert [d["gpu_profile"] for d in data["deployments"]] == ["h100-sxm-80gb", "l40s"]


# ------------------------------------------------------------------------------------------ field spellings


def test_library_messages_name_plan_keys_in_a_plan(tmp_path):
    path = plan(tmp_path, "deployments:\n" + one(kv_cache_dtype="q8_0"))
    line = assert_one_error_line(run(path))
    assert line.endswith("deployments[0]: kv_cache_dtype q8_0 is a llama.cpp (ggml) cache type; vllm does not store it")
    assert "hint: use engine llamacpp, or fp8 / int8 for this engine" in run(path).stderr
    path = plan(tmp_path, "deployments:\n" + one(gpu="rtx-4090", engine="llamacpp", gpu_memory_utilization=0.5))
    _, data = check_json(path)
    assert data["deployments"][0]["notes"][:2] == [
        "gpu_memory_utilization does not apply to llamacpp and was ignored",
        "weights counted at bf16; a quantized GGUF is smaller: pass weights_bytes with its file size",
    ]
    # the same recommend() notes name flags for the command line
    rec = recommend(LLAMA, gpu_profile="rtx-4090", engine="llamacpp", max_model_len=32768, gpu_memory_utilization=0.5)
    assert "--gpu-memory-utilization does not apply to llamacpp and was ignored" in rec.notes


def test_library_messages_name_an_engine_configs_own_keys(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"model: {LLAMA}\nmax-model-len: 8192\ntensor-parallel-size: 3\n")
    line = assert_one_error_line(run("--engine-config", cfg, "--gpu", "h100"))
    assert line.endswith(":1: tensor-parallel-size 3 does not divide the model's 8 KV heads"), line
    sg = tmp_path / "sglang.json"
    sg.write_text(json.dumps({"model-path": LLAMA, "context-length": 8192, "tp-size": 3}))
    line = assert_one_error_line(run("--engine-config", sg, "--gpu", "h100"))
    assert line.endswith(":1: tp-size 3 does not divide the model's 8 KV heads"), line


# ------------------------------------------------------------------ max_num_seqs (a cap) and concurrency (a need)

V033 = "defaults:\n  vllm_version: '0.33.0'\n"


def test_a_max_num_seqs_above_what_fits_at_full_length_passes_as_vllm_starts(tmp_path):
    """vLLM starts with max_num_seqs 256 at 128k on an H100 although its KV cache holds 3.51 such requests: it
    checks that one fits (vllm-0.33.0/vllm/v1/core/kv_cache_planning.py:151-195) and caps the running ones at 256
    (v1/core/sched/scheduler.py:131). kvplan used to fail it (256 requests of 128k "needed")."""
    path = plan(tmp_path, V033 + "deployments:\n" + one(max_model_len=131072, max_num_seqs=256))
    code, data = check_json(path)
    row = data["deployments"][0]
    assert code == 0 and row["ok"] and row["binding_constraint"] is None
    assert row["max_num_seqs"] == 256 and row["concurrency"] is None and row["required_concurrency"] == 1
    assert row["max_concurrency"] == 3.51 and row["recommend"]["max_num_seqs"] == 256
    assert row["needed_kv_bytes"] == (131072 // 16) * 2 * 2**20  # one request: 8192 blocks of 2 MiB
    assert " --max-num-seqs 256 " in row["recommend"]["flags"]["vllm"]


def test_a_concurrency_that_does_not_fit_fails_and_names_the_concurrency_fix(tmp_path):
    """concurrency: 8 requests of 72k where the KV cache holds 6.24: exit 1, bound by concurrency, and the fix is to
    lower concurrency to 6 (re-checked clean); max_num_seqs stays the cap it is."""
    body = V033 + "deployments:\n" + one(max_model_len=73728, max_num_seqs=256, concurrency=8)
    code, data = check_json(plan(tmp_path, body))
    row = data["deployments"][0]
    assert code == 1 and row["binding_constraint"] == "concurrency" and row["max_concurrency"] == 6.24
    assert row["required_concurrency"] == 8 and row["needed_kv_bytes"] == 8 * (73728 // 16) * 2 * 2**20
    fixes = {f["key"]: f for f in row["fix"]}
    assert fixes["concurrency"]["value"] == 6
    assert fixes["concurrency"]["text"] == "lower concurrency to 6 (the most 73,728-token requests that fit)"
    assert "max_num_seqs" not in fixes
    fixed = V033 + "deployments:\n" + one(max_model_len=73728, max_num_seqs=256, concurrency=6)
    assert run(plan(tmp_path, fixed, "fixed.yaml")).exit_code == 0
    text = run(plan(tmp_path, body, "text.yaml"))
    assert text.exit_code == 1 and "fix: lower concurrency to 6" in text.stdout


@pytest.mark.parametrize("bad", ["0", "-2", "lots", "2.5", "true"])
def test_a_bad_concurrency_is_one_error_naming_the_key(tmp_path, bad):
    path = plan(tmp_path, "deployments:\n" + one(concurrency=bad))
    line = assert_one_error_line(run(path))
    assert f"{path}:5: deployments[0].concurrency: expected a positive integer" in line, line


def test_a_concurrency_above_the_cap_is_noted(tmp_path):
    _, data = check_json(plan(tmp_path, "deployments:\n" + one(max_model_len=8192, max_num_seqs=4, concurrency=8)))
    row = data["deployments"][0]
    assert row["ok"] and row["required_concurrency"] == 8
    assert "concurrency 8 is above max_num_seqs 4: the engine runs at most 4 sequences at once" in row["notes"]


def test_vllm_and_sglang_configs_read_their_sequence_settings_as_caps(tmp_path):
    """A vLLM `--config` with max-num-seqs 256 and an SGLang one with max-running-requests 256 at 128k on an H100
    both start (SGLang serves min(256, tokens // 2): sglang-0.5.23 mem_cache/kv_cache_configurator.py:3119-3132):
    check passes them, each planned with one request of max_model_len."""
    vllm = tmp_path / "serve.yaml"
    vllm.write_text(f"model: {LLAMA}\nmax-model-len: 131072\nmax-num-seqs: 256\n")
    sglang = tmp_path / "sglang.yaml"
    sglang.write_text(f"model-path: {LLAMA}\ncontext-length: 131072\nmax-running-requests: 256\n")
    for cfg, engine, flag in ((vllm, "vllm", " --max-num-seqs 256 "), (sglang, "sglang", "--max-running-requests 256")):
        code, data = check_json("--engine-config", cfg, "--engine", engine, "--gpu", "h100-sxm-80gb")
        row = data["deployments"][0]
        assert code == 0 and row["ok"], row
        assert row["max_num_seqs"] == 256 and row["required_concurrency"] == 1 and row["max_concurrency"] < 8
        assert flag in row["recommend"]["flags"][engine]


def test_llamacpp_slots_are_the_requirement(tmp_path):
    """llama.cpp's -np slots share -c, allocated at start (kvplan.engines.llamacpp, ServingModel.reserves_seqs):
    for it max_num_seqs N is still N requests of max_model_len that must fit, and the fix lowers it."""
    body = "deployments:\n" + one(engine="llamacpp", gpu="rtx-4090", max_model_len=32768, max_num_seqs=8)
    code, data = check_json(plan(tmp_path, body))
    row = data["deployments"][0]
    assert code == 1 and row["binding_constraint"] == "concurrency" and row["required_concurrency"] == 8
    fix = next(f for f in row["fix"] if f["key"] == "max_num_seqs")
    assert fix["value"] == int(row["max_concurrency"]) and fix["text"].startswith(
        f"lower max_num_seqs to {fix['value']}"
    )
    fixed = "deployments:\n" + one(engine="llamacpp", gpu="rtx-4090", max_model_len=32768, max_num_seqs=fix["value"])
    assert run(plan(tmp_path, fixed, "fixed.yaml")).exit_code == 0


def test_a_cap_above_max_num_batched_tokens_fails_to_start_with_both_fixes(tmp_path):
    """Kept as given, a cap of 4096 with an L40S's default 2048 batched tokens is a vLLM start-up error
    (vllm-0.33.0/vllm/config/scheduler.py:331-336): check fails it as `startup` and each fix re-checks clean."""
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"model: {LLAMA}\nmax-model-len: 8192\nmax-num-seqs: 4096\n")
    code, data = check_json("--engine-config", cfg, "--engine", "vllm", "--gpu", "l40s")
    row = data["deployments"][0]
    assert code == 1 and row["binding_constraint"] == "startup"
    assert "max_num_batched_tokens (2048) must be greater than or equal to max_num_seqs (4096)" in row["binding_detail"]
    texts = [f["text"] for f in row["fix"]]
    assert texts[0].startswith("lower max-num-seqs to 2048")
    assert "raise max_num_batched_tokens to 4096 (at least max_num_seqs)" in texts  # a key the file lacks


def test_logged_vllm_starts_at_max_num_seqs_1024_pass_check(tmp_path):
    """Three llm-d vLLM 0.19.0 start-ups on one H100 (tests/fixtures/calibration/engine_cases.yaml) ran at
    vLLM's default max_num_seqs 1024 and started, with 58.11, 20.6 and 14.53 requests of max_model_len fitting at
    once. As plans (the logged pool as kv_cache_memory, max_num_seqs 1024) they pass check; kvplan used to fail
    each of them (1024 requests of max_model_len "needed")."""
    cases = {c["id"]: c for c in yaml.safe_load((ROOT / "tests/fixtures/calibration/engine_cases.yaml").read_text())}
    logged = {
        "llmd-v0190-meta-llama-llama-h100-80gb-tp1pp1dp1-8192-dtbf16": LLAMA,
        "llmd-v0190-google-gemma-2-9b-it-h100-80gb-tp1pp1dp1-8192": "google/gemma-2-9b-it",
        "llmd-v0190-meta-llama-llama-3-1-8b-h100-80gb-tp1pp1dp1-32768": LLAMA,
    }
    body = "deployments:\n"
    for n, (case_id, model) in enumerate(logged.items()):
        case = cases[case_id]
        body += one(
            f"d{n}",
            model=model,
            max_model_len=case["max_model_len"],
            max_num_seqs=1024,
            kv_cache_memory=f"{case['reported']['available_kv_cache_gib']}GiB",
            gpu_memory_utilization=case["gpu_memory_utilization"],
            vllm_version=f"'{case['engine_version']}'",
        )
    code, data = check_json(plan(tmp_path, body))
    assert code == 0, [(d["name"], d["binding_detail"]) for d in data["deployments"]]
    figures = [(d["max_num_seqs"], d["required_concurrency"], d["max_concurrency"]) for d in data["deployments"]]
    assert figures == [(1024, 1, 58.11), (1024, 1, 20.6), (1024, 1, 14.53)]


def test_a_plan_with_data_parallel_ranks_splits_the_requests_over_their_pools(tmp_path):
    """data_parallel_size: each rank holds its own pool (vllm-0.33.0/vllm/config/parallel.py:147-149), so N
    requests of max_model_len need ceil(N / dp) of one rank's GPU: 2 x the one-GPU concurrency fits on 2 ranks."""
    single = recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=32768, offline=True)
    wanted = 2 * int(single.max_concurrency)
    code, data = check_json(
        plan(
            tmp_path, "deployments:\n" + one(concurrency=wanted) + one("dp2", concurrency=wanted, data_parallel_size=2)
        )
    )
    alone, dp2 = data["deployments"]
    assert code == 1 and alone["binding_constraint"] == "concurrency"
    assert dp2["ok"] and dp2["gpus"] == 2  # gpus default to tp x pp x dp
    assert dp2["needed_kv_bytes"] == int(single.max_concurrency) * single.kv_bytes_per_request  # ceil(wanted / 2)
    assert "--data-parallel-size 2" in dp2["recommend"]["flags"]["vllm"]
    too_few = plan(tmp_path, "deployments:\n" + one(gpus=1, data_parallel_size=2), name="few.yaml")
    assert_one_error_line(run(too_few), "x data_parallel_size 2 = 2")


def test_vllm_engine_config_reads_dp_ep_and_dcp(tmp_path):
    """vLLM's own keys (engine/arg_utils.py: data_parallel_size, enable_expert_parallel,
    decode_context_parallel_size) are planned, not notes; an error names the file's spelling."""
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        "model: deepseek-ai/DeepSeek-V2-Lite\nmax-model-len: 8192\ntensor-parallel-size: 2\n"
        "data-parallel-size: 2\nenable-expert-parallel: true\ndecode-context-parallel-size: 2\n"
    )
    result = run("--engine-config", cfg, "--gpu", "h100-sxm-80gb", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["deployments"][0]
    layout = row["recommend"]["parallel"]
    assert (layout["dp"], layout["dcp"], layout["ep_size"], row["gpus"]) == (2, 2, 4, 4)
    assert not any("affect memory" in n and "parallel" in n for n in row["notes"])  # no longer unmodelled keys
    cfg.write_text(cfg.read_text() + "enable-eplb: true\neplb-config: '{\"num_redundant_experts\": 4}'\n")
    row = json.loads(run("--engine-config", cfg, "--gpu", "h100-sxm-80gb", "--json").stdout)["deployments"][0]
    assert row["recommend"]["parallel"]["experts_per_gpu"] == 17  # (64 + 4) / EP 4
    cfg.write_text(cfg.read_text().replace("decode-context-parallel-size: 2", "decode-context-parallel-size: 3"))
    assert_one_error_line(run("--engine-config", cfg, "--gpu", "h100-sxm-80gb"), "decode-context-parallel-size 3")
