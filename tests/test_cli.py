"""The command line: exit codes, --json documents, sweeps, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app

from conftest import config_path

runner = CliRunner()
LLAMA = str(config_path("meta-llama__Llama-3.1-8B"))


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("kvplan 0.")


def test_estimate_json_has_the_documented_keys_and_exact_numbers():
    result = run("estimate", LLAMA, "--seq-len", "32k", "--batch", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in (
        "model",
        "engine",
        "dtype",
        "kv_dtype",
        "batch",
        "seq_len",
        "tp",
        "pp",
        "kv_cache_bytes",
        "kv_cache_bytes_per_gpu",
        "bytes_per_token",
        "bytes_per_token_per_gpu",
        "layers",
        "weights_bytes",
    ):
        assert key in data
    # Llama-3.1-8B bf16: 32 layers x 2 x 8 KV heads x 128 x 2 B = 131072 B/token; 4 x 32768 tokens.
    assert data["bytes_per_token"] == 131072
    assert data["kv_cache_bytes"] == 131072 * 32768 * 4
    assert data["layers"] == [
        {
            "kind": "full_attention",
            "count": 32,
            "bytes": 131072 * 32768 * 4,
            "bytes_per_gpu": 131072 * 32768 * 4,
            "bytes_per_token": 131072,
            "tokens_per_sequence": 32768,
        }
    ]
    assert data["weights_bytes"] == 8_030_261_248 * 2  # analytic count, bf16


def test_catalog_name_works_offline():
    result = run("estimate", "meta-llama/Llama-3.1-8B", "--json", env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kv_cache_bytes"] == 131072 * 4096


def test_fp8_kv_and_tp_split():
    data = json.loads(run("estimate", LLAMA, "--kv-dtype", "fp8", "--tp", "2", "--json").stdout)
    assert data["kv_dtype"] == "fp8_e4m3"
    assert data["bytes_per_token_per_gpu"] == 131072 // 2 // 2
    assert data["kv_cache_bytes"] == 131072 // 2 * 4096


def test_tp_beyond_kv_heads_replicates():
    data = json.loads(run("estimate", LLAMA, "--tp", "16", "--json").stdout)
    # 8 KV heads on 16 GPUs: each rank keeps one head, so the aggregate doubles.
    assert data["bytes_per_token_per_gpu"] == 131072 // 8
    assert data["kv_cache_bytes"] == 2 * 131072 * 4096


def test_sweep_json_is_a_list_and_table_prints_rows():
    result = run("estimate", LLAMA, "--seq-len", "1k..8k", "--json")
    data = json.loads(result.stdout)
    assert [d["seq_len"] for d in data] == [1024, 2048, 4096, 8192]
    assert [d["kv_cache_bytes"] for d in data] == [131072 * n for n in (1024, 2048, 4096, 8192)]
    table = run("estimate", LLAMA, "--seq-len", "1k,4k")
    assert table.exit_code == 0
    assert "1k" in table.stdout and "4k" in table.stdout and "█" in table.stdout


def test_human_output_compares_with_the_naive_formula():
    result = run("estimate", str(config_path("deepseek-ai__DeepSeek-V3")))
    assert result.exit_code == 0
    assert "MLA latent" in result.stdout
    assert "24.89×" in result.stdout  # naive 1,748,992 B/token vs the 70,272-byte latent


def test_models_lists_the_catalog():
    data = json.loads(run("models", "--json").stdout)
    names = {row["name"] for row in data}
    assert len(names) >= 40
    assert "deepseek-ai/DeepSeek-V3" in names


BAD_INPUTS = [
    (["estimate", "/no/such/config.json"], "no such file"),
    (["estimate", LLAMA, "--seq-len", "-5"], "--seq-len"),
    (["estimate", LLAMA, "--seq-len", "lots"], "token count"),
    (["estimate", LLAMA, "--kv-dtype", "fp7"], "kv dtype"),
    (["estimate", LLAMA, "--engine", "tgi-9000"], "unknown engine"),
    (["estimate", LLAMA, "--tp", "0"], "--tp"),
    (["estimate", LLAMA, "--tp", "3"], "does not divide"),
    (["estimate", LLAMA, "--batch", "lots"], "--batch"),
    (["estimate", LLAMA, "--pp", "999"], "--pp"),
    (["estimate", LLAMA, "--engine", "sglang", "--kv-dtype", "int4"], "SGLang has no int4"),
    (
        ["estimate", "deepseek-ai/DeepSeek-V3", "--engine", "sglang", "--kv-dtype", "nvfp4"],
        "SGLang 0.5.23 cannot run an MLA model with an nvfp4 KV cache",
    ),
]


@pytest.mark.parametrize("args,needle", BAD_INPUTS, ids=[" ".join(a[2:]) or a[1] for a, _ in BAD_INPUTS])
def test_bad_arguments_give_one_line_and_exit_2(args, needle):
    result = run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error:") and needle.lower() in first.lower(), result.stderr


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"model_type": "llama", "num_hidden', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ("", "empty"),
        (b"\x00\xff\xfe binary", "binary"),
        ('{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}', "num_hidden_layers"),
        (
            '{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": "many"}',
            "num_hidden_layers",
        ),
        (
            '{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 0, "num_hidden_layers": 2}',
            "num_attention_heads",
        ),
        (
            '{"model_type": "llama", "hidden_size": 64, "num_attention_heads": -4, "num_hidden_layers": 2}',
            "num_attention_heads",
        ),
    ],
)
def test_bad_config_files_give_one_line_and_exit_2(tmp_path, content, needle):
    result = run("estimate", _write(tmp_path, "config.json", content))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert needle.lower() in result.stderr.splitlines()[0].lower(), result.stderr


def test_hub_id_without_network_is_one_line(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = run("estimate", "acme-nonexistent/model-xyz")
    assert result.exit_code == 2
    said, error, *rest = result.stderr.splitlines()  # the Hub request is said first, with how long it may wait
    assert said.startswith("kvplan: asking the Hugging Face Hub (") and "waiting at most 10 s" in said
    assert error.startswith("error:") and [line[:5] for line in rest] == ["hint:"]
    assert "Traceback" not in result.output


def test_unknown_model_type_is_estimated_with_a_note(tmp_path):
    cfg = (
        '{"model_type": "brandnew", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,'
        ' "num_hidden_layers": 3, "torch_dtype": "float16"}'
    )
    result = run("estimate", _write(tmp_path, "config.json", cfg), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["bytes_per_token"] == 3 * 2 * 2 * 32 * 2
    assert "unknown model_type 'brandnew'" in result.stderr


def test_debug_env_shows_the_traceback():
    result = run("estimate", "/no/such/config.json", env={"KVPLAN_DEBUG": "1"})
    assert result.exit_code != 0
    assert result.exception is not None


def test_error_text_with_brackets_is_printed_as_is(capsys):
    # messages and hints are plain text: "[profile]" must not be eaten as Rich markup
    import typer

    from kvplan.cli import fail

    with pytest.raises(typer.Exit):
        fail("needs [profile]", "pip install 'kvplan[profile]'", 2)
    err = capsys.readouterr().err
    assert "error: needs [profile]" in err and "hint: pip install 'kvplan[profile]'" in err


def test_recommend_tp_without_gpus_runs_on_tp_gpus():
    result = run("recommend", LLAMA, "-g", "h100", "--tp", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["gpus"] == 2
