"""`kvplan explain LOG` against real start-up logs: the `source.quote` of every calibration case
(tests/fixtures/calibration, both files) whose log prints capacity figures and whose model has a config.

Capacity figures (blocks, tokens, concurrency, Mamba blocks, padding, the longest max_model_len, SGLang's K/V
pools) are recomputed from the memory or token count the same log prints and must land within print rounding;
budget figures are kvplan's model and are only checked for shape here. Flags fill in what a quote leaves out
(taken from the case's curated fields), never what the quote states, so the log reading is tested too.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.checking.explain import ExplainOptions, detect_gpu, explain, explain_source, read_source
from kvplan.cli import app
from kvplan.core.families import Family, registered
from kvplan.core.shapes import model_shape
from kvplan.engines.log_figures import CONCURRENCY, GROUPS, V0, vllm_reporting
from kvplan.engines.logs import parse_log
from kvplan.errors import KvplanError, UsageError

from conftest import FIXTURES, PENDING_FAMILIES, config_path

runner = CliRunner()
CALIBRATION = FIXTURES / "calibration"
FILES = ("engine_cases.yaml", "engine_cases_2026.yaml")
CASES = [(name, case) for name in FILES for case in yaml.safe_load((CALIBRATION / name).read_text())]


def _calibration_module():
    """tests/engines/test_calibration.py, for its SAME_ARCHITECTURE mapping (loaded under a private name so
    pytest's own import of that file is not disturbed)."""
    path = Path(__file__).parents[1] / "engines" / "test_calibration.py"
    spec = importlib.util.spec_from_file_location("_calibration_for_explain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ... and the 2026 cases whose checkpoint is a quantized build of a catalog layout (weights quantized, the KV cache
# the base model's), pinned to the same configs in tests/engines/test_calibration_2026.py
SAME_ARCHITECTURE = {
    **_calibration_module().SAME_ARCHITECTURE,
    "MiniMaxAI/MiniMax-M2.7 (AWQ)": "MiniMaxAI__MiniMax-M2.7",  # eugr/spark-vllm-docker #396, 2 x GB10 (DGX Spark)
}

# The curated `gpu_model` of a case -> a profile id, for quotes that do not name the device (first match wins).
# "NVIDIA A100 80GB": the SXM4 and PCIe cards have the same memory (84987084800 B) and vLLM treats both as A100s,
# so either profile gives the same figures. "24 GB GPU": the lmcache case only says its card has 24 GB. "GB10": the
# DGX Spark cases (121.63 GiB of unified memory as vLLM sees it, profiles/gb10.yaml); "L20": the SGLang L20 cases.
GPU_OF_CASE = (
    ("H100 80GB HBM3", "h100-sxm-80gb"),
    ("A100 80GB", "a100-sxm-80gb"),
    ("RTX 3090", "rtx-3090"),
    ("RTX 4090", "rtx-4090"),
    ("RTX 5090", "rtx-5090"),
    ("H200", "h200"),
    ("H20", "h20"),
    ("B200", "b200"),
    ("RTX A4000", "rtx-a4000"),
    ("GB10", "gb10"),
    ("L20", "l20"),
    ("24 GB GPU", "24gb"),
)
EXPLAINED = {"vllm", "sglang", "llamacpp"}
CAPACITY_NAMES = {
    "num_gpu_blocks",
    "kv_cache_tokens",
    "max_concurrency",
    "mamba_cache_blocks",
    "estimated_max_model_len",
    "kv_cache_needed",
    "padding_layers",
    "padding_waste_percent",
    "sglang_k_size",
    "sglang_v_size",
    "sglang_kv_size",
    "llamacpp_kv_size",
    "llamacpp_k_size",
    "llamacpp_v_size",
}
SOURCES = {"available_kv_cache_memory", "num_gpu_blocks", "kv_cache_tokens", "llamacpp_kv_cells"}
VERSION = re.compile(r"^v?\d+\.\d+(?:\.\d+)?\S*$")


def _config(case: dict) -> str | None:
    """A config for the case's model: the SAME_ARCHITECTURE mapping, else the catalog's own copy of that id."""
    model_id = case["model_id"] or ""
    for stem in (SAME_ARCHITECTURE.get(model_id), model_id.replace("/", "__") if "/" in model_id else None):
        if stem:
            try:
                return str(config_path(stem))
            except FileNotFoundError:
                continue
    return None


def _shape_unread(config: str) -> bool:
    """kvplan cannot read the config's caches yet: refused, or read only by a guess."""
    try:
        shape = model_shape(json.loads(Path(config).read_text()))
        return any(a.startswith("unknown model_type") for a in shape.assumptions)
    except KvplanError:
        return True


def _gpu(case: dict) -> str | None:
    text = case.get("gpu_model") or ""
    return next((pid for needle, pid in GPU_OF_CASE if needle in text), None)


def _args(case: dict, log, config: str) -> list[str]:
    """The flags for what the quote leaves out: the curated fields of the case where the log states nothing."""
    args = ["--model", config, "--offline", "--json"]
    settings = log.settings

    def fill(flag: str, key: str, value) -> None:
        if key not in settings and value is not None:
            args.extend([flag, str(value)])

    fill("--tp", "tensor_parallel_size", case.get("tensor_parallel_size"))
    fill("--pp", "pipeline_parallel_size", case.get("pipeline_parallel_size"))
    length = case.get("max_model_len")
    fill("--max-model-len", "max_model_len", length if isinstance(length, int) else None)
    fill("--gpu-memory-utilization", "gpu_memory_utilization", case.get("gpu_memory_utilization"))
    kv = case.get("kv_cache_dtype")
    fill("--kv-dtype", "kv_cache_dtype", None if kv in (None, "auto") else kv)
    fill("--block-size", "block_size", case.get("block_size"))
    fill("--max-num-seqs", "max_num_seqs", case.get("max_num_seqs"))
    fill("--max-num-batched-tokens", "max_num_batched_tokens", case.get("max_num_batched_tokens"))
    version = case.get("engine_version")
    if log.engine_version is None and version and VERSION.match(str(version)):
        args.extend(["--vllm-version", str(version)])
    return args


# Cases the catalog's 2026 configs newly reach that explain cannot recompute yet (issue 12 removes them).
PENDING_CASES = {
    # MiMo-V2-Flash's SGLang pools: explain does not recompute SGLang's SWA + full pools; their logged K and V
    # sizes are checked against the shape in tests/engines/test_gemma4_mimo_engines.py
    "sglang-18039-mimo-v2-flash-tp4-mem07-main-2026-01": "kvplan explain does not recompute SGLang's SWA + full pools",
    "sglang-15464-mimo-v2-flash-swakvpool-2025-12": "kvplan explain does not recompute SGLang's SWA + full pools",
}


def _skip_reason(case: dict, log, config: str | None) -> str | None:
    if case["id"] in PENDING_CASES:
        return PENDING_CASES[case["id"]]
    if log.engine is None:
        return "the quote holds no engine log line kvplan reads (prose or a table)"
    if log.engine not in EXPLAINED:
        return f"kvplan explain does not recompute {log.engine} logs"
    names = {n.name for n in log.numbers}
    if not names & CAPACITY_NAMES:
        return "the quote prints no capacity figure"
    if not names & SOURCES:
        return "the quote prints no KV memory or pool size to derive its capacity figures from"
    if not case["model_id"]:
        return "the case names no model"
    if config is None:
        return f"no config for {case['model_id']!r} in the catalog, extra_configs or SAME_ARCHITECTURE"
    if Path(config).stem in PENDING_FAMILIES and _shape_unread(config):
        return f"the {PENDING_FAMILIES[Path(config).stem]} family reader has not landed yet (issue 12)"
    if log.engine == "vllm" and detect_gpu(case["source"]["quote"], log)[0] is None and _gpu(case) is None:
        return f"the GPU is neither in the quote nor in the case ({case.get('gpu_model')!r})"
    return None


def _selection() -> tuple[list, list[tuple[str, str]]]:
    params, skipped = [], []
    for _name, case in CASES:
        log = parse_log(case["source"]["quote"])
        config = _config(case)
        reason = _skip_reason(case, log, config)
        if reason:
            skipped.append((case["id"], reason))
            mark = pytest.mark.skip(reason=f"{case['id']}: {reason}")
            params.append(pytest.param(case, None, id=case["id"], marks=mark))
        else:
            params.append(pytest.param(case, config, id=case["id"]))
    return params, skipped


PARAMS, SKIPPED = _selection()
CHECKED = [p.values for p in PARAMS if not p.marks]


_RESULTS: dict[str, dict] = {}


def _run_case(case: dict, config: str, tmp_path: Path) -> dict:
    """`kvplan explain QUOTE --json` with the case's flags (run once per case, then reused)."""
    if case["id"] in _RESULTS:
        return _RESULTS[case["id"]]
    quote = case["source"]["quote"]
    log = parse_log(quote)
    path = tmp_path / "startup.log"
    path.write_text(quote, encoding="utf-8")
    args = ["explain", str(path), *_args(case, log, config)]
    if log.engine == "vllm" and detect_gpu(quote, log)[0] is None:
        args.extend(["-g", _gpu(case)])
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    _RESULTS[case["id"]] = json.loads(result.stdout)
    return _RESULTS[case["id"]]


def _pipeline(case: dict, data: dict) -> bool:
    return data["settings"]["pipeline_parallel_size"]["value"] > 1


@pytest.mark.parametrize("case,config", PARAMS)
def test_calibration_quote_capacity_figures_reproduce_within_print_rounding(case, config, tmp_path):
    data = _run_case(case, config, tmp_path)
    capacity = [n for n in data["numbers"] if n["kind"] == "capacity"]
    assert capacity, data
    if _pipeline(case, data):
        # vLLM prints one stage's available memory but sizes every stage's cache by the smallest (README caveat):
        # the figures are not expected to follow from the printed line, and explain must say so
        missed = [n for n in capacity if not n["within_rounding"]]
        assert missed and all(n["term"] == "pipeline stage" for n in missed), missed
        return
    wrong = [
        (n["name"], n["logged"], n["kvplan"], n["kvplan_range"], n["term"])
        for n in capacity
        if not n["within_rounding"]
    ]
    assert not wrong, wrong
    for n in capacity:
        assert n["derived_from"].startswith("log:"), n  # from the logged memory or pool, never kvplan's budget


def test_calibration_coverage_floor_and_skips(tmp_path, capsys):
    """Cannot silently check nothing: at least 30 cases and 90 capacity figures reproduce within print rounding."""
    cases = figures = 0
    for case, config in CHECKED:
        data = _run_case(case, config, tmp_path)
        if _pipeline(case, data):
            continue
        good = [n for n in data["numbers"] if n["kind"] == "capacity" and n["within_rounding"]]
        cases += bool(good)
        figures += len(good)
    with capsys.disabled():
        print(f"\nexplain: {cases} calibration cases, {figures} capacity figures within print rounding")
        for case_id, reason in SKIPPED:
            print(f"  skipped {case_id}: {reason}")
    assert cases >= 30 and figures >= 90, (cases, figures)
    assert len(CHECKED) + len(SKIPPED) == len(CASES) == 95


# ------------------------------------------------------------------------------------------ a whole log

# Provenance: every line below is verbatim from the `source.quote` of calibration case
# llmd-v0190-google-gemma-3-4b-it-h100-80gb-tp1pp1dp1-8192 (tests/fixtures/calibration/engine_cases.yaml,
# llm-d's committed vLLM 0.19.0 start-up log for google/gemma-3-4b-it on one H100 80GB HBM3), put back in the
# order vLLM prints them: arguments, weights, the memory summary, the KV cache, its grouping, the block count.
GEMMA3_CASE = "llmd-v0190-google-gemma-3-4b-it-h100-80gb-tp1pp1dp1-8192"
GEMMA3_LOG = "\n".join(
    [
        "non-default args: {'model_tag': 'google/gemma-3-4b-it', 'model': 'google/gemma-3-4b-it', 'max_model_len': "
        "8192, 'gpu_memory_utilization': 0.95, 'enable_prefix_caching': False}",
        "Model loading took 8.58 GiB memory and 20.812816 seconds",
        "Free memory on device (78.68/79.19 GiB) on startup. Desired GPU memory utilization is (0.95, 75.23 GiB). "
        "Actual usage is 8.58 GiB for weight, 3.89 GiB for peak activation, 0.25 GiB for non-torch memory, and "
        "0.67 GiB for CUDAGraph memory.",
        "Available KV cache memory: 62.51 GiB",
        "Add 1 padding layers, may waste at most 3.45% KV cache memory",
        "GPU KV cache size: 468,144 tokens",
        "Maximum concurrency for 8,192 tokens per request: 57.05x",
        "Engine 000: vllm cache_config_info with initialization after num_gpu_blocks is: 204817",
    ]
)


def test_the_assembled_lines_are_the_cases_own():
    quote = next(case for _, case in CASES if case["id"] == GEMMA3_CASE)["source"]["quote"]
    assert set(GEMMA3_LOG.splitlines()) == {line for line in quote.splitlines() if line.strip()}


def test_a_whole_vllm_log_every_number_checked(tmp_path):
    path = tmp_path / "gemma3.log"
    path.write_text(GEMMA3_LOG)
    result = runner.invoke(app, ["explain", str(path), "--vllm-version", "0.19.0", "--offline", "--json"])
    assert result.exit_code == 1, result.output  # the budget does not reproduce (weights: see below)
    data = json.loads(result.stdout)
    rows = {n["name"]: n for n in data["numbers"]}
    # every figure the log prints is either recomputed or named as not recomputed
    logged = {n.name for n in parse_log(GEMMA3_LOG).numbers} - {"max_concurrency_tokens"}
    assert logged == set(rows) | set(data["not_explained"]) | {"total_gpu_memory"}  # it chose the profile
    assert data["not_explained"] == ["free_memory_on_startup"]  # the device's state, not something kvplan plans
    # capacity: from the logged 62.51 GiB, exactly as vLLM rounds
    for name in ("num_gpu_blocks", "kv_cache_tokens", "max_concurrency", "padding_layers", "padding_waste_percent"):
        assert rows[name]["kind"] == "capacity" and rows[name]["within_rounding"], rows[name]
    assert rows["num_gpu_blocks"]["kvplan_range"] == [204816, 204849]  # 62.505 - 62.515 GiB // (64 KiB page x 5 layers)
    assert rows["kv_cache_tokens"]["kvplan_range"] == [468144, 468224]  # blocks // 7 groups x 16 (vLLM 0.19)
    assert rows["num_gpu_blocks"]["term"] == "group padding"
    assert rows["max_concurrency"]["term"] == "sliding-window reservation"
    assert rows["padding_layers"]["kvplan"] == 1
    # budget: the memory fraction and non-torch reproduce; the weights do not (kvplan counts gemma-3-4b's text model only,
    # vLLM loads the vision tower too), and they are what moves the available memory most
    assert "total_gpu_memory" not in rows  # it chose the GPU profile, so it cannot also test it
    for name in ("memory_budget", "non_torch_memory"):
        assert rows[name]["kind"] == "budget" and rows[name]["within_rounding"], rows[name]
    assert rows["weights_memory"]["within_rounding"] is False and rows["weights_memory"]["term"] == "weights"
    assert rows["available_kv_cache_memory"]["term"] == "weights"
    assert rows["cudagraph_memory"]["term"] == "CUDA graphs"
    settings = data["settings"]
    assert settings["gpu_profile"] == {
        "value": "h100-sxm-80gb",  # the H800 has the same 79.19 GiB and compute capability: the same figures
        "source": "log: total GPU memory 79.19 GiB (line 3); h800 has the same memory and compute capability",
    }
    assert settings["engine_version"] == {"value": "0.19.0", "source": "flag"}
    assert settings["max_model_len"] == {"value": 8192, "source": "log"}
    assert settings["model"] == {"value": "google/gemma-3-4b-it", "source": "log"}
    assert settings["max_num_batched_tokens"]["source"].startswith("default")


def test_the_table_names_every_figure_and_its_term(tmp_path):
    path = tmp_path / "gemma3.log"
    path.write_text(GEMMA3_LOG)
    result = runner.invoke(app, ["explain", str(path), "--vllm-version", "0.19.0", "--offline"])
    assert result.exit_code == 1
    out = result.stdout
    for text in ("number", "logged", "kvplan", "difference", "within rounding", "term", "group padding", "204,817"):
        assert text in out, out
    assert "figures within print rounding" in out and "inputs" in out


def test_flags_win_over_the_log_and_say_so():
    log = parse_log(GEMMA3_LOG)
    result = explain(log, ExplainOptions(max_model_len=4096, vllm_version="0.19.0", offline=True), text=GEMMA3_LOG)
    assert result.setting("max_model_len").value == 4096 and result.setting("max_model_len").source == "flag"
    assert result.setting("gpu_memory_utilization").source == "log"
    assert not result.number("max_concurrency").within_rounding  # the log's run was at 8192 tokens


def test_json_schema_fields(tmp_path):
    path = tmp_path / "gemma3.log"
    path.write_text(GEMMA3_LOG)
    data = json.loads(runner.invoke(app, ["explain", str(path), "--offline", "--json"]).stdout)
    assert data["schema"] == "kvplan.explain/1"
    for key in ("engine", "engine_version", "model", "settings", "numbers", "all_within_rounding"):
        assert key in data
    assert data["engine"] == "vllm" and data["all_within_rounding"] is False
    for row in data["numbers"]:
        assert {"name", "logged", "kvplan", "unit", "within_rounding", "term"} <= set(row)
    names = {row["name"] for row in data["numbers"]}
    assert {"available_kv_cache_memory", "kv_cache_tokens", "num_gpu_blocks", "max_concurrency"} <= names
    assert {"weights_memory", "peak_activation", "non_torch_memory", "cudagraph_memory"} <= names


# ------------------------------------------------------------------------------------------ exit codes

# Provenance: lines of calibration case vllm-10517-llama31-8b-rtx3090-29k (vLLM V0 on an RTX 3090,
# meta-llama/Llama-3.1-8B-Instruct at max_model_len 29000), verbatim.
V0_CASE = next(case for _, case in CASES if case["id"] == "vllm-10517-llama31-8b-rtx3090-29k")
V0_CAPACITY_ONLY = "\n".join(
    [
        "# GPU blocks: 1478, # CPU blocks: 2048",
        "Maximum concurrency for 29000 tokens per request: 0.82x",
        "The model's max seq len (29000) is larger than the maximum number of tokens that can be stored in KV "
        "cache (23648).",
    ]
)
LLAMA = str(config_path("meta-llama__Llama-3.1-8B"))


def test_exit_0_when_every_figure_reproduces(tmp_path):
    """A log that prints the block count but no memory: tokens and concurrency follow from the blocks."""
    assert all(line in V0_CASE["source"]["quote"] for line in V0_CAPACITY_ONLY.splitlines())
    path = tmp_path / "v0.log"
    path.write_text(V0_CAPACITY_ONLY)
    result = runner.invoke(app, ["explain", str(path), "--model", LLAMA, "-g", "rtx-3090", "--offline", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["all_within_rounding"] is True
    rows = {n["name"]: n for n in data["numbers"]}
    assert rows["kv_cache_tokens"]["kvplan"] == 23648 == 1478 * 16
    assert rows["max_concurrency"]["kvplan"] == pytest.approx(1478 * 16 / 29000)
    assert rows["kv_cache_tokens"]["derived_from"] == "log: num_gpu_blocks 1,478 (line 1)"
    assert data["settings"]["max_model_len"]["source"] == "log"


def test_exit_1_when_a_figure_does_not(tmp_path):
    path = tmp_path / "v0.log"
    path.write_text(V0_CASE["source"]["quote"])
    result = runner.invoke(app, ["explain", str(path), "--model", LLAMA, "-g", "rtx-3090", "--offline", "--json"])
    assert result.exit_code == 1, result.output
    rows = {n["name"]: n for n in json.loads(result.stdout)["numbers"]}
    assert all(rows[name]["within_rounding"] for name in ("num_gpu_blocks", "kv_cache_tokens", "max_concurrency"))
    # V0 profiles a far larger activation peak than kvplan's (its peak_torch_memory is weights + activation)
    assert rows["available_kv_cache_memory"]["term"] == "activation"
    assert rows["peak_torch_memory"]["term"] == "activation"


def test_stdin_input():
    result = runner.invoke(
        app, ["explain", "-", "--model", LLAMA, "-g", "rtx-3090", "--offline", "--json"], input=V0_CAPACITY_ONLY
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["engine"] == "vllm"


def test_stdin_through_the_library():
    result = explain_source(
        "-",
        ExplainOptions(model=LLAMA, gpu_profile="rtx-3090", offline=True),
        stdin=io.BytesIO(V0_CAPACITY_ONLY.encode()),
    )
    assert result.all_within_rounding and result.exit_code == 0


def _error(result, needle: str, hint: str | None = None) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    if hint:
        assert any(line.startswith("hint:") and hint in line for line in lines), result.stderr


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8, "not a text log"),
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"hello, this is not a log\n", "no engine start-up lines"),
    ],
    ids=["binary", "empty", "blank", "prose"],
)
def test_bad_files_give_one_error_line_and_exit_2(tmp_path, content, needle):
    path = tmp_path / "bad.log"
    path.write_bytes(content)
    _error(runner.invoke(app, ["explain", str(path), "--offline"]), needle)


def test_a_folder_and_a_missing_file_exit_2(tmp_path):
    _error(runner.invoke(app, ["explain", str(tmp_path)]), "is a folder", "log file")
    _error(runner.invoke(app, ["explain", str(tmp_path / "nope.log")]), "no such file")


def test_a_log_without_a_model_asks_for_model(tmp_path):
    path = tmp_path / "v0.log"
    path.write_text(V0_CAPACITY_ONLY)
    _error(runner.invoke(app, ["explain", str(path), "-g", "rtx-3090", "--offline"]), "names no model", "--model")


def test_a_model_kvplan_cannot_read_asks_for_model(tmp_path):
    path = tmp_path / "v0.log"
    path.write_text("non-default args: {'model': 'someone/private-model-7b'}\n" + V0_CAPACITY_ONLY)
    _error(
        runner.invoke(app, ["explain", str(path), "-g", "rtx-3090", "--offline"]), "someone/private-model-7b", "--model"
    )


def test_no_gpu_asks_for_gpu_profile(tmp_path):
    path = tmp_path / "v0.log"
    path.write_text(V0_CAPACITY_ONLY)
    _error(runner.invoke(app, ["explain", str(path), "--model", LLAMA, "--offline"]), "no GPU profile", "-g")


def test_read_source_rejects_binary_with_a_usage_error(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 100)
    with pytest.raises(UsageError, match="binary"):
        read_source(str(path))


# ------------------------------------------------------------------------------------------ engine rules


def test_vllm_token_reporting_by_version():
    assert vllm_reporting("0.7.3", False)[0] == V0
    assert vllm_reporting(None, True)[0] == V0
    assert vllm_reporting("0.10.1.1", False)[0] == GROUPS
    assert vllm_reporting("0.19.0", False)[0] == GROUPS
    assert vllm_reporting("0.20.1rc1.dev16+g7a1eb8ac2", False)[0] == GROUPS  # club-3090 #46: before vllm#40694
    assert vllm_reporting("0.20.2rc1.dev9+g01d4d1ad3", False)[0] == CONCURRENCY
    assert vllm_reporting(None, False)[0] == CONCURRENCY  # unknown: the newest


def test_gpu_from_a_device_name_or_the_total_memory():
    text = "INFO Using device NVIDIA H100 80GB HBM3 for the engine"
    assert detect_gpu(text, parse_log(text))[0] == "h100-sxm-80gb"
    text = "Free memory on device (78.68/79.19 GiB) on startup."
    assert detect_gpu(text, parse_log(text)) == (  # H100 SXM and H800: one card's memory and kernels
        "h100-sxm-80gb",
        "log: total GPU memory 79.19 GiB (line 1); h800 has the same memory and compute capability",
    )
    text = "Memory profiling results: total_gpu_memory=79.15GiB initial_memory_usage=15.34GiB"
    found, why = detect_gpu(text, parse_log(text))  # the A100 80GB SXM4 and PCIe have the same memory and kernels
    assert found == "a100-pcie-80gb" and "a100-sxm-80gb has the same memory and compute capability" in why
    text = "Free memory on device (40.1/44.53 GiB) on startup."  # L20 (44.53) and L40S (44.52) differ in the log
    assert detect_gpu(text, parse_log(text))[0] == "l20"


def test_gpu_from_the_2026_device_names():
    """The names nvidia-smi / torch / ROCm print for the GPUs of the 2026 logs reach their profiles (the longest name
    wins: a 5090 Laptop log also contains the desktop card's "NVIDIA GeForce RTX 5090")."""
    for text, expected in (
        ("CUDA backend initialized on NVIDIA GB10 (sm_121)", "gb10"),
        ("On 2x DGX Spark (TP=2, container vllm-node)", "gb10"),
        ("GPU 0: NVIDIA GeForce RTX 5090 Laptop GPU", "rtx-5090-laptop"),
        ("GPU 0: NVIDIA GeForce RTX 5090", "rtx-5090"),
        ("NVIDIA H800, 81559 MiB, 570.158.01", "h800"),
        ("GPU: NVIDIA GB200, capability (10, 0)", "gb200"),
        ("0, NVIDIA B300 SXM6 AC, 275040", "b300"),
        ("0, NVIDIA GB300, 595.71.05", "gb300"),
        ("0, NVIDIA GH200 480GB, 97871 MiB", "gh200"),
        ("ROCm0: AMD Radeon AI PRO R9700 (32624 MiB, 32550 MiB free)", "r9700"),
        ("GPU: AMD Instinct MI355X", "mi355x"),
        ("CUDA0: NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "rtx-pro-6000"),
        ("8 x NVIDIA L20 on one node", "l20"),
    ):
        assert detect_gpu(text, parse_log(text))[0] == expected, text


def test_sglang_pool_sizes_from_the_token_count():
    """vllm-21348: "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB" (Qwen3-235B, TP 4)."""
    case = next(case for _, case in CASES if case["id"] == "vllm-21348-qwen3-235b-fp8-4xh100-sglang")
    log = parse_log(case["source"]["quote"])
    result = explain(log, ExplainOptions(model=_config(case), offline=True), text=case["source"]["quote"])
    assert result.setting("tensor_parallel_size").value == 4 and result.setting("tensor_parallel_size").source == "log"
    assert {n.name for n in result.numbers} == {"sglang_k_size", "sglang_v_size"}
    assert result.all_within_rounding and result.exit_code == 0
    assert result.number("sglang_k_size").kvplan == pytest.approx(367405 * 94 * 1 * 128 * 2 / 2**30, abs=1e-6)


def test_the_one_request_check_and_the_estimated_length():
    """vllm-25350: a failed start ("10.12 GiB KV cache is needed ... available KV cache memory (5.59 GiB) ... the
    estimated maximum model length is 122080") and the run before it (10.55 GiB, 230,528 tokens, 2.31x at 100k).
    The case names no model; the identification is ours: 10.12 GiB / 221000 tokens = 49,168 B per token is
    Qwen3-30B-A3B's 48 layers x 4 KV heads x 128 x 2 at fp8 (49,152 B), and "Model loading took 29.09" fits its fp8
    weights. Its layers are all full attention, so the GPU does not change these figures."""
    quotes = {case["id"]: case["source"]["quote"] for _, case in CASES if case["id"].startswith("vllm-25350")}
    options = ExplainOptions(
        model="Qwen/Qwen3-30B-A3B", gpu_profile="h100", kv_dtype="fp8", vllm_version="0.10", offline=True
    )
    failed = explain(parse_log(quotes["vllm-25350-fp8kv-221k-fail"]), options)
    assert failed.setting("max_model_len").value == 221000 and failed.setting("max_model_len").source == "log"
    for name in ("kv_cache_needed", "estimated_max_model_len"):
        assert failed.number(name).within_rounding and failed.number(name).kind == "capacity", failed.number(name)
    assert failed.number("estimated_max_model_len").kvplan_range == (122000, 122224)
    ran = explain(parse_log(quotes["vllm-25350-fp8kv-100k"]), options)
    assert ran.setting("max_model_len").source == "log: the maximum concurrency line"
    assert ran.number("kv_cache_tokens").within_rounding and ran.number("max_concurrency").within_rounding


# llama.cpp's `llama_kv_cache_unified: size = ...` line (its format as in tests/engines/test_logs.py), written here
# with the figures llama.cpp's arithmetic gives for Llama-3.1-8B at 4096 cells: a check of kvplan's sizes per cell,
# not a real run's log.
LLAMACPP_LINE = (
    "llama_kv_cache_unified: size =  272.00 MiB (  4096 cells,  32 layers,  1 seqs), K (q8_0):  136.00 MiB, "
    "V (q8_0):  136.00 MiB"
)


def test_llamacpp_kv_sizes_from_the_cells():
    result = explain(parse_log(LLAMACPP_LINE), ExplainOptions(model=LLAMA, offline=True))
    assert result.engine == "llamacpp" and result.gpu_profile is None  # the sizes do not depend on the GPU
    assert {n.name: n.kvplan for n in result.numbers} == {
        "llamacpp_kv_size": 272.0,  # 4096 cells x 32 layers x (1024 / 32 x 34 B) x 2, in MiB
        "llamacpp_k_size": 136.0,
        "llamacpp_v_size": 136.0,
    }
    assert result.all_within_rounding


def test_llamacpp_refuses_what_it_cannot_size():
    text = LLAMACPP_LINE.replace("32 layers", "16 layers")  # half the model's layers: some other cache
    with pytest.raises(UsageError, match="16 layers"):
        explain(parse_log(text), ExplainOptions(model=LLAMA, offline=True))


def test_weights_kvplan_cannot_count_are_taken_from_the_log_and_said_so(tmp_path):
    """Llama 4 Scout (llm-d, vLLM 0.19, TP 4) read as a family with Llama 4's caches but no weights layout (as
    kvplan read llama4_text before its layout landed): its budget takes the logged weights, and the weights row is
    not counted as reproduced."""
    case = next(case for _, case in CASES if case["id"].startswith("llmd-v0190-meta-llama-llama-4-scout"))
    config = json.loads(Path(_config(case)).read_text())
    config["text_config"]["model_type"] = "llama4_without_weights"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with registered(Family("llama4_without_weights", shape="llama4", weights=None)):
        data = _run_case({**case, "id": case["id"] + "-without-weights"}, str(path), tmp_path)
    rows = {n["name"]: n for n in data["numbers"]}
    assert rows["weights_memory"]["kvplan"] is None and not rows["weights_memory"]["within_rounding"]
    assert "cannot count" in rows["weights_memory"]["term"]
    assert any("uses the log's" in note for note in data["notes"])
    assert all(n["within_rounding"] for n in data["numbers"] if n["kind"] == "capacity")


def test_llama4_scout_weights_are_the_text_model_s(tmp_path):
    """The same case with Llama 4's weights layout: kvplan counts the text model (107,769,861,120 parameters, bf16,
    a quarter per GPU at TP 4); vLLM's 53.12 GiB also holds the vision tower of Llama4ForConditionalGeneration,
    which kvplan does not count, so the row is kvplan's figure, below the log's, not a reproduction."""
    case = next(case for _, case in CASES if case["id"].startswith("llmd-v0190-meta-llama-llama-4-scout"))
    data = _run_case(case, _config(case), tmp_path)
    rows = {n["name"]: n for n in data["numbers"]}
    assert rows["weights_memory"]["kvplan"] == pytest.approx(2 * 107_769_861_120 / 4 / 2**30, abs=1e-4)
    assert rows["weights_memory"]["kvplan"] < 53.12 and not rows["weights_memory"]["within_rounding"]
    assert all(n["within_rounding"] for n in data["numbers"] if n["kind"] == "capacity")


def test_mamba_cache_blocks_are_vllms_kv_blocks():
    """vLLM's start-up check raises "max_num_seqs (N) exceeds available Mamba cache blocks (M)" with M =
    kv_cache_config.num_blocks: one block of every group per sequence (gpu_model_runner, vllm#34094)."""
    from kvplan.engines import Request
    from kvplan.engines.log_figures import vllm_capacity_figures
    from kvplan.engines.sizing import fullest_stage
    from kvplan.planning.resolved import resolve

    caches, _ = fullest_stage(resolve("Qwen/Qwen3-Next-80B-A3B").shape, 1)
    request = Request(32768, 1, "bfloat16", "bfloat16", tp=4, max_num_batched_tokens=8192)
    figures = vllm_capacity_figures(caches, request, 20 * 2**30, GROUPS, 32768)
    assert figures["mamba_cache_blocks"].value == figures["num_gpu_blocks"].value > 0
    dense = vllm_capacity_figures(fullest_stage(resolve(LLAMA).shape, 1)[0], request, 20 * 2**30, GROUPS, 32768)
    assert "mamba_cache_blocks" not in dense
