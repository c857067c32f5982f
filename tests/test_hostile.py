"""Hostile inputs and hostile environments (issue 14): every failure is one `error:` line (+ `hint:`) and a
non-zero exit, every output lands whole and in place, nothing hangs.

The hostile inputs are built here: devices are the system's own (`/dev/null`, `/dev/full`, `/dev/zero`), FIFOs
come from `os.mkfifo`, signals are sent to a subprocess at a known point (its own write), and closed or full
standard streams are a subprocess's.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvplan.atomic_file import write_text_atomically
from kvplan.cli import main
from kvplan.core.shapes import model_shape
from kvplan.errors import ConfigError, KvplanError, UsageError
from kvplan.planning.estimate import estimate

from conftest import ROOT, config_path, load_config

LLAMA = str(config_path("meta-llama__Llama-3.1-8B"))
PLAN = "deployments:\n  - {name: a, model: meta-llama/Llama-3.1-8B, gpu: h100, max_model_len: 8k}\n"


def kvplan(
    *args: str, stdin: int | None = None, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """The real entry point (`python -m kvplan`, as the console script runs it) in a subprocess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kvplan", *args], capture_output=True, text=True, env=full_env, stdin=stdin, **kwargs
    )


def one_error_line(stderr: str, needle: str | None = None) -> str:
    lines = stderr.strip().splitlines()
    assert lines and lines[0].startswith("error:"), stderr
    assert all(line.startswith(("hint:", "note:")) for line in lines[1:]), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if needle is not None:
        assert needle in lines[0], lines[0]
    return lines[0]


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """`kvplan ARGS` through `kvplan.cli.main` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


# ------------------------------------------------------------------------------------------- Click's own parser


@pytest.mark.parametrize(
    "args,needle",
    [
        (["estimat", LLAMA], "No such command 'estimat'"),
        (["estimate", LLAMA, "--no-such-flag"], "No such option: --no-such-flag"),
        (["estimate"], "Missing argument"),
        (["recommend", LLAMA], "--gpu-profile"),
        (["estimate", LLAMA, "--seq-len"], "requires an argument"),
    ],
)
def test_usage_errors_are_one_line_with_a_help_hint(capsys, args, needle):
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == ""
    assert one_error_line(err, needle)
    assert "--help" in err.splitlines()[1]


def test_help_version_and_bare_kvplan_still_work(capsys):
    assert run_main(capsys, "--version")[:2] == (0, f"kvplan {__import__('kvplan').__version__}\n")
    code, out, _ = run_main(capsys, "estimate", "--help")
    assert code == 0 and "Usage: kvplan estimate" in out
    code, out, _ = run_main(capsys, "check", str(ROOT / "examples" / "plans" / "kvplan.yaml"), "--offline")
    assert code in (0, 1) and out


# ------------------------------------------------------------------------------------------ numbers that do not fit


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("num_hidden_layers", 10**12, "at most"),
        ("num_hidden_layers", 2**63, "at most"),
        ("num_hidden_layers", 1_000_000, "kvplan reads at most 4,096"),
        ("num_hidden_layers", math.inf, "positive integer"),
        ("num_attention_heads", math.nan, "positive integer"),
        ("hidden_size", 1e400, "positive integer"),
        ("hidden_size", -4096, "positive integer"),
        ("num_key_value_heads", "eight", "positive integer"),
    ],
)
def test_numbers_that_do_not_fit_are_one_config_error(field, value, needle):
    config = {**load_config("meta-llama__Llama-3.1-8B"), field: value}
    with pytest.raises(ConfigError, match=needle):
        model_shape(config)


def test_a_number_of_5000_digits_in_a_config_file_is_one_error_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(load_config("meta-llama__Llama-3.1-8B")).replace(
            '"hidden_size": 4096', '"hidden_size": ' + "9" * 5000
        )
    )
    one_error_line(kvplan("estimate", str(path)).stderr, "cannot read")


@pytest.mark.parametrize("text", ["9" * 5000, "1e400", "inf", "NaN", str(2**70)])
def test_lengths_and_sizes_beyond_any_model_are_refused(capsys, text):
    code, _, err = run_main(capsys, "estimate", LLAMA, "--seq-len", text)
    assert code == 2 and one_error_line(err)
    code, _, err = run_main(capsys, "recommend", LLAMA, "-g", "h100", "--kv-memory", text)
    assert code == 2 and one_error_line(err)


@pytest.mark.parametrize(
    "args",
    [
        ["--kv-offloading-size", "1e29"],
        ["--kvbm-cpu-cache-gb", str(2**70)],
        ["--engine", "sglang", "--hicache-size", "1e29"],
        ["--engine", "sglang", "--hicache-ratio", "1e29"],
    ],
)
def test_offload_sizes_beyond_any_machine_are_refused(capsys, args):
    code, _, err = run_main(capsys, "recommend", LLAMA, "-g", "h100", *args)
    assert code == 2 and one_error_line(err, "beyond any machine")


# ------------------------------------------------------------------------------------- wrong types in family fields


@pytest.mark.parametrize(
    "name,field,value",
    [
        ("Qwen__Qwen2.5-7B", "max_window_layers", "half"),
        ("google__gemma-3-1b-it", "sliding_window_pattern", "six"),
        ("meta-llama__Llama-4-Scout-17B-16E-Instruct", "no_rope_layers", 4),
        ("ai21labs__AI21-Jamba-1.5-Mini", "attn_layer_period", [3]),
        ("openai__gpt-oss-20b", "layer_types", "sliding"),
        ("deepseek-ai__DeepSeek-V3", "kv_lora_rank", {"r": 512}),
    ],
)
def test_a_family_field_of_the_wrong_type_is_one_config_error(name, field, value):
    config = load_config(name)
    target = config["text_config"] if "text_config" in config and field not in config else config
    target[field] = value
    if name == "Qwen__Qwen2.5-7B":
        config["use_sliding_window"] = True
    with pytest.raises(KvplanError):
        model_shape(config)


@pytest.mark.parametrize(
    "quantization",
    [
        "4bit",
        {"quant_method": "gptq", "bits": "four"},
        {"quant_method": "fp8", "weight_block_size": "128x128"},
        {"quant_method": "awq", "bits": None, "group_size": []},
    ],
)
def test_an_unreadable_quantization_config_leaves_the_weights_unknown_not_the_estimate_failed(quantization):
    config = {**load_config("meta-llama__Llama-3.1-8B"), "quantization_config": quantization}
    result = estimate(config, seq_len=1024)
    assert result.kv_cache_bytes > 0 and result.weights_bytes is None


# ----------------------------------------------------------------------------------------------- depth and size


def test_a_config_nested_100k_deep_is_one_error_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    one_error_line(kvplan("estimate", str(path)).stderr, "nested too deeply")


def test_a_plan_nested_100k_deep_is_one_error_line(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("deployments: " + "[" * 100_000 + "]" * 100_000 + "\n")
    one_error_line(kvplan("check", str(path)).stderr)


@pytest.mark.parametrize("command", [["estimate"], ["check"]])
def test_dev_zero_as_input_is_refused_not_read_until_memory_ends(command):
    result = kvplan(*command, "/dev/zero", timeout=60)
    assert result.returncode == 2
    one_error_line(result.stderr)


def test_utf16_files_are_named_as_utf16(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(load_config("meta-llama__Llama-3.1-8B")), encoding="utf-16")
    one_error_line(kvplan("estimate", str(config)).stderr, "UTF-16")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN, encoding="utf-16")
    one_error_line(kvplan("check", str(plan)).stderr, "UTF-16")


# ------------------------------------------------------------------------------------------------------ outputs


def test_an_output_through_a_symlink_replaces_the_file_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.xml"
    real.write_text("old")
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    write_text_atomically(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_devices_are_written_in_place_never_replaced(tmp_path):
    write_text_atomically("/dev/null", "x" * 10_000)
    assert Path("/dev/null").is_char_device()
    with pytest.raises(UsageError, match="No space left on device"):
        write_text_atomically("/dev/full", "x" * 10_000)
    assert Path("/dev/full").is_char_device()


def test_a_fifo_is_written_in_place_and_one_without_a_reader_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="no process is reading"):
        write_text_atomically(fifo, "report")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    for _ in range(200):  # the reader opens the FIFO: then the write must go through it
        try:
            write_text_atomically(fifo, "report")
            break
        except UsageError:
            threading.Event().wait(0.01)
    reader.join(10)
    assert got == ["report"] and fifo.is_fifo()
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


@pytest.mark.parametrize("flag", ["--junit"])
def test_an_empty_output_path_is_refused_before_any_work(tmp_path, flag):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    one_error_line(kvplan("check", str(plan), "--offline", flag, "").stderr, "empty path")


@pytest.mark.parametrize(
    "args",
    [
        ["recommend", LLAMA, "-g", "h100", "--emit", "vllm-config", "--emit-file", ""],
        ["fleet", LLAMA, "-g", "h100", "-w", "chat", "--rate", "1", "--ttft-slo", "2000", "--tpot-slo", "30"]
        + ["--emit", "keda", "--emit-file", ""],
    ],
)
def test_an_empty_emit_file_is_refused_not_replaced_by_the_default(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *args)
    assert code == 2 and one_error_line(err, "empty path")
    assert list(tmp_path.iterdir()) == []


def test_fleet_max_replicas_below_min_replicas_is_one_error_with_a_hint(capsys):
    code, _, err = run_main(
        capsys, "fleet", LLAMA, "-g", "h100", "-w", "chat", "--rate", "1", "--ttft-slo", "2000", "--tpot-slo", "30",
        "--min-replicas", "5", "--max-replicas", "2",
    )  # fmt: skip
    assert code == 2 and one_error_line(err, "max_replicas 2 is below min_replicas 5")
    assert err.splitlines()[1].startswith("hint:")


FLEET = ["fleet", LLAMA, "-g", "h100", "-w", "chat", "--ttft-slo", "2000", "--tpot-slo", "30"]
HUGE = "1" + "0" * 29


@pytest.mark.parametrize(
    "args, needle",
    [
        ([*FLEET, "--rate", "1e300"], "--rate must be at most 1e+09"),
        ([*FLEET, "--rate", "1", "--max-replicas", HUGE], "--max-replicas must be at most 2,147,483,647"),
        ([*FLEET, "--rate", "1", "--min-replicas", HUGE], "--min-replicas must be at most 2,147,483,647"),
        (["recommend", LLAMA, "-g", "h100", "-dp", HUGE], "--data-parallel-size must be at most 2,147,483,647"),
        (["recommend", LLAMA, "-g", "h100", "--gpus", HUGE], "--gpus must be at most 2,147,483,647"),
        (["recommend", LLAMA, "-g", "h100", "--nodes", HUGE], "--nodes must be at most 2,147,483,647"),
        (["recommend", LLAMA, "-g", "h100", "--nodes", "2147483647"], "--nodes x --gpus-per-node is 1.72e+10 GPUs"),
        (["recommend", LLAMA, "-g", "h100", "-dp", "2147483647", "--tp", "4"], "needs 8.59e+09 GPUs, more than"),
    ],
)
def test_counts_beyond_any_deployment_are_refused_not_answered(capsys, args, needle):
    """A 30-digit replica, rank, GPU or node count (or a rate whose replicas would run to 300 digits) is a typo:
    one error naming the option and its bound, never a plan of absurd counts."""
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == "" and one_error_line(err, needle)


def test_fleet_library_refuses_a_rate_and_replica_counts_beyond_any_deployment():
    from kvplan.planning.fleet import fleet
    from kvplan.planning.workload import load_workload

    common = dict(gpu_profile="h100", workload=load_workload("chat"), ttft_slo_ms=2000.0, tpot_slo_ms=30.0)
    with pytest.raises(UsageError, match="rate must be at most"):
        fleet(LLAMA, rate=1e300, **common)
    with pytest.raises(UsageError, match="max-replicas must be at most"):
        fleet(LLAMA, rate=1.0, max_replicas=2**100, **common)


def test_profile_output_empty_is_refused_before_the_grid(capsys):
    code, _, err = run_main(capsys, "profile", LLAMA, "--output", "")
    assert code == 2 and one_error_line(err, "empty path")


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    """The signal arrives at a known point (inside the write, after the temporary file exists)."""
    target = tmp_path / "report.xml"
    target.write_text("previous")
    code = (
        "import os, signal, sys\n"
        "import kvplan.__main__ as entry\n"
        "signal.signal(signal.SIGTERM, entry._terminated)\n"
        "from kvplan import atomic_file\n"
        "real = os.fsync\n"
        "def fsync(fd):\n    os.kill(os.getpid(), signal.SIGTERM)\n    real(fd)\n"
        "atomic_file.os.fsync = fsync\n"
        "from kvplan.cli import main\n"
        f"main(['check', {str(ROOT / 'examples' / 'plans' / 'kvplan.yaml')!r}, '--offline', '--junit', {str(target)!r}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    one_error_line(result.stderr, "stopped by SIGTERM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml"] and target.read_text() == "previous"


def test_junit_stays_well_formed_with_control_characters_in_names(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        'deployments:\n  - {name: "bad\\x1b[31m\\x07name\\x00", model: meta-llama/Llama-3.1-8B, gpu: h100, '
        "max_model_len: 8k}\n"
    )
    report = tmp_path / "r.xml"
    result = kvplan("check", str(plan), "--offline", "--junit", str(report))
    assert result.returncode in (0, 1), result.stderr
    root = ET.fromstring(report.read_text())
    assert root.find(".//testcase").get("name") == "bad\\x1b[31m\\x07name\\x00"


def test_json_output_is_strict_a_figure_that_is_not_finite_is_null_with_a_note(capsys):
    from kvplan import render

    render.print_json({"a": float("nan"), "b": [1.0, float("inf")], "c": 2})
    out = capsys.readouterr()
    assert json.loads(out.out, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}")) == {
        "a": None,
        "b": [1.0, None],
        "c": 2,
    }
    assert "$.a is not a finite number" in out.err and "$.b[1]" in out.err


# ---------------------------------------------------------------------------------------------- stdout, signals


def test_a_closed_stdout_is_one_error_line():
    result = subprocess.run(
        [sys.executable, "-m", "kvplan", "estimate", LLAMA],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        close_fds=True,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 2
    one_error_line(result.stderr, "stdout is closed")


def test_a_full_disk_on_stdout_is_one_error_line():
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "kvplan", "models", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert result.returncode == 2
    one_error_line(result.stderr, "No space left on device")


def test_a_reader_that_went_away_ends_quietly_not_as_does_not_fit(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvplan", "models", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the process has written anything
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 2 and "Traceback" not in err and "internal error" not in err and "Exception" not in err


def test_an_ascii_only_stdout_gets_replacement_characters_not_an_internal_error():
    result = kvplan("estimate", LLAMA, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert "batch 1" in result.stdout


@pytest.mark.parametrize("columns", ["0", "-5", "wide"])
def test_a_nonsense_columns_still_prints_the_table_and_the_errors(columns):
    result = kvplan("estimate", LLAMA, env={"COLUMNS": columns})
    assert result.returncode == 0 and "full attention" in result.stdout
    one_error_line(kvplan("estimate", "/no/such.json", env={"COLUMNS": columns}).stderr, "no such file")


def test_ctrl_c_while_the_cli_is_imported_is_one_line_not_a_traceback():
    """The interrupt lands during `from kvplan.cli import main` (the console script's guard is in place)."""
    code = (
        "import builtins, signal, os, sys\n"
        "real = builtins.__import__\n"
        "def hook(name, *a, **k):\n"
        "    if name == 'kvplan.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = hook\n"
        "from kvplan.__main__ import run\n"
        "run()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert result.returncode == 130
    assert result.stderr == "error: interrupted\n"


def test_import_kvplan_imports_nothing_of_kvplan():
    code = "import sys, kvplan\nprint(sorted(m for m in sys.modules if m.startswith('kvplan')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "['kvplan']"


# ------------------------------------------------------------------------------------------------- fuzzing


# Examples per fuzz test: bounded in CI; `benchmarks/fuzz.py` runs the same tests with many more.
FUZZ_EXAMPLES = int(os.environ.get("KVPLAN_FUZZ_EXAMPLES", "300"))
FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 300), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just("DELETE"),
)
FUZZED = [
    "meta-llama__Llama-3.1-8B",
    "google__gemma-3-27b-it",
    "Qwen__Qwen3-Next-80B-A3B",
    "deepseek-ai__DeepSeek-V3",
    "ai21labs__AI21-Jamba-1.5-Mini",
    "openai__gpt-oss-20b",
    "mistralai__Mixtral-8x7B-v0.1",
]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(FUZZED), data=st.data(), value=FIELD_VALUES)
def test_fuzz_config_fields_estimate_and_recommend_never_fail_internally(name, data, value):
    """A real config with one field replaced by a value of another type, huge, negative, NaN, or deleted:
    estimate and recommend return a result or raise kvplan's own error, never anything else."""
    from kvplan.planning.recommend import recommend

    config = load_config(name)
    target = (
        config["text_config"] if isinstance(config.get("text_config"), dict) and data.draw(st.booleans()) else config
    )
    key = data.draw(st.sampled_from(sorted(target)))
    if value == "DELETE":
        del target[key]
    else:
        target[key] = value
    for call in (
        lambda: estimate(config, seq_len=4096, batch=2),
        lambda: recommend(config, gpu_profile="h100", max_model_len=8192, weights_bytes="16GB"),
    ):
        try:
            result = call()
        except KvplanError:
            continue
        json.dumps(result.to_dict(), allow_nan=True)  # the figures exist; strictness is print_json's job


ARGS = st.lists(
    st.sampled_from(
        [
            "estimate",
            "recommend",
            "check",
            "explain",
            "models",
            "lint",
            "profiles",
            "list",
            "show",
            LLAMA,
            "meta-llama/Llama-3.1-8B",
            "nobody/nothing",
            "/dev/null",
            "-",
            "",
            "--seq-len",
            "--batch",
            "--tp",
            "--pp",
            "--kv-dtype",
            "--engine",
            "-g",
            "--gpus",
            "--json",
            "--max-model-len",
            "--max-num-seqs",
            "--kv-memory",
            "--vllm-version",
            "--junit",
            "4k",
            "0",
            "-1",
            "1e400",
            "fp8",
            "auto",
            "sglang",
            "llamacpp",
            "h100",
            "b200",
            "0.19.1",
            "x",
        ]
    ),
    max_size=8,
)


@settings(
    max_examples=FUZZ_EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(args=ARGS)
def test_fuzz_argument_vectors_exit_0_1_or_2_with_strict_json(capsys, monkeypatch, args):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if "--junit" in args:  # never write a report into the working tree
        args = [a for a in args if a != "--junit"]
    code, out, err = run_main(capsys, *args)
    assert code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    if code == 2 and err:
        one_error_line(err)
    if "--json" in args and code in (0, 1) and out.strip().startswith(("{", "[")):
        json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c} for {args}"))


# ---------------------------------------------------------------------------------------------- profile inputs


def _model_folder(tmp_path: Path, weights: bytes) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(load_config("meta-llama__Llama-3.2-1B-Instruct")))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4c2b...\nsize 2471645608\n"


@pytest.mark.parametrize(
    "weights,needle",
    [
        (LFS, "Git LFS pointer"),
        (b"\x10\x00", "truncated"),
        (
            (64).to_bytes(8, "little") + b'{"a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}' + b" ",
            "truncated",
        ),
    ],
)
def test_profile_names_an_lfs_pointer_or_a_truncated_file_before_torch_is_imported(tmp_path, weights, needle):
    folder = _model_folder(tmp_path, weights)
    code = (
        "import sys\nfrom kvplan.cli import main\n"
        f"try:\n    main(['profile', {str(folder)!r}, '--device', 'cpu'])\n"
        "finally:\n    assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert result.returncode == 2, result.stderr
    assert "git lfs pull" in result.stderr and "--random-weights" in result.stderr
    one_error_line(result.stderr, needle)


def test_whole_safetensors_files_are_not_refused(tmp_path):
    from kvplan.weights.safetensors import unusable_weight_file

    header = b'{"a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}'
    folder = _model_folder(tmp_path, len(header).to_bytes(8, "little") + header + bytes(8))
    assert unusable_weight_file(folder) is None


def test_one_broken_profile_file_is_skipped_with_a_note_not_fatal(tmp_path):
    (tmp_path / "broken.yaml").write_text("id: broken\nmemory: [\n")
    result = kvplan("profiles", "list", env={"KVPLAN_PROFILES_DIR": str(tmp_path)})
    assert result.returncode == 0 and "h100" in result.stdout
    assert "note: skipped a profile file:" in result.stderr and "broken.yaml" in result.stderr
    alias = kvplan(
        "recommend",
        LLAMA,
        "-g",
        "NVIDIA H100 80GB HBM3",
        "--max-model-len",
        "8k",
        env={"KVPLAN_PROFILES_DIR": str(tmp_path)},
    )
    assert alias.returncode in (0, 1), alias.stderr


def test_profile_refuses_weights_bigger_than_the_memory_limit_before_loading(capsys):
    pytest.importorskip("torch")
    code, _, err = run_main(capsys, "profile", LLAMA, "--device", "cpu", "--memory-limit", "1GiB", "--random-weights")
    assert code == 2
    one_error_line(err, "exceed --memory-limit")


# Profiles: random YAML text in a profiles directory never breaks `profiles list` or a lookup; it is skipped
# with a note (or, looked up by its own id, refused in one line).
PROFILE_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda key, value: f"vendor: nvidia\nmemory: {value}\n{key}: {value}\nsources: {{memory: x}}\n",
        st.sampled_from(["bandwidth", "fp8", "aliases", "compute_capability", "interconnect", "memory"]),
        st.one_of(st.text(max_size=10), st.integers(-(2**70), 2**70), st.floats(allow_nan=True)).map(json.dumps),
    ),
)


@settings(max_examples=FUZZ_EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=PROFILE_TEXT)
def test_fuzz_profile_files_never_fail_internally(capsys, tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("profiles")
    (folder / "fuzzed.yaml").write_text(text, encoding="utf-8")
    code, out, err = run_main(capsys, "profiles", "list", "--profiles-dir", str(folder), "--json")
    assert code == 0, err
    json.loads(out)
    code, _, err = run_main(capsys, "profiles", "show", "fuzzed", "--profiles-dir", str(folder))
    assert code in (0, 2) and "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        one_error_line(err)


def test_a_profile_file_of_dev_zero_size_is_refused(tmp_path):
    big = tmp_path / "huge.yaml"
    with big.open("wb") as stream:
        stream.truncate(2 * 1024 * 1024)
    result = kvplan("profiles", "show", "huge", "--profiles-dir", str(tmp_path))
    one_error_line(result.stderr, "too big for a hardware profile")


def test_a_plan_or_manifest_on_a_pipe_is_read_once():
    """`kvplan check /dev/stdin`: the file is read once to tell a manifest from a plan and to load it."""
    plan = (ROOT / "examples" / "plans" / "kvplan.yaml").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "kvplan", "check", "/dev/stdin", "--offline", "--json"],
        input=plan,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode in (0, 1), result.stderr
    assert len(json.loads(result.stdout)["deployments"]) == plan.count("- name:")
