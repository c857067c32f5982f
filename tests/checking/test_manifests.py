"""`kvplan check MANIFEST`: real deployment manifests (tests/fixtures/manifests/SOURCES.md) read per role with the
values the files hold, checked end to end with today's exit codes, and one-line errors for what kvplan cannot
read (an unknown kind, no GPU type, malformed values)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvplan.checking.manifests import detect_format, load_manifest
from kvplan.cli import app
from kvplan.errors import ConfigError, UsageError
from kvplan.planning.recommend import recommend
from kvplan.weights.stored import expert_weight_bytes

from conftest import config_path

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"
DSV4 = FIXTURES / "dynamo" / "dsv4-deployment.yaml"
KIMI = FIXTURES / "dynamo" / "kimi-deployment.yaml"
KSERVE_PD_V1ALPHA1 = FIXTURES / "kserve" / "v1alpha1-llm-inference-service-pd-qwen2-7b-gpu.yaml"
KSERVE_PD = FIXTURES / "kserve" / "llm-inference-service-pd-qwen2-7b-gpu.yaml"
KSERVE_DP_EP = FIXTURES / "kserve" / "llm-inference-service-dp-ep-deepseek-r1-gpu-naive.yaml"
KSERVE_PD_DP_EP = FIXTURES / "kserve" / "llm-inference-service-dp-ep-deepseek-r1-pd-gpu-p-deepep-ht-d-pplx.yaml"
KSERVE_ISVC = FIXTURES / "kserve" / "kserve-isvc.yaml"
LLM_D_PD = FIXTURES / "llm-d" / "values-pd.yaml"
LLM_D_HETERO = FIXTURES / "llm-d" / "values-heterogeneous-pd.yaml"
RAY_ONE = FIXTURES / "ray" / "mock_vllm_model.yaml"
RAY_PD = FIXTURES / "ray" / "nixl_example.yaml"
STACK_BASIC = FIXTURES / "production-stack" / "values-02-basic-config.yaml"
STACK_PD = FIXTURES / "production-stack" / "values-16-disagg-prefill.yaml"
STACK_TP2 = FIXTURES / "production-stack" / "values-25-v100-multi-gpu-tp2.yaml"
H100 = "h100-sxm-80gb"


def run(*args: str):
    return runner.invoke(app, ["check", *map(str, args), "--offline"], env={"HF_HUB_OFFLINE": "1"})


def check_json(*args: str) -> tuple[int, dict]:
    result = run(*args, "--json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def roles(path: Path, **kw) -> dict[str, object]:
    return {d.name: d for d in load_manifest(path, **kw)}


def assert_one_error_line(result, needle: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error:"), result.stderr
    assert all(line.startswith("hint:") for line in lines[1:]), result.stderr
    assert needle in lines[0], lines[0]
    return result.stderr


def write(tmp_path: Path, body: str, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip("\n"))
    return path


# ------------------------------------------------------------------------------------------- reading each file


def test_fixtures_say_where_they_come_from():
    sources = (FIXTURES / "SOURCES.md").read_text()
    files = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.yaml"))
    assert len(files) == 14
    for name in files:
        assert f"`{name}`" in sources, name


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (DSV4, "dynamo"),
        (KSERVE_PD_V1ALPHA1, "kserve-llminferenceservice"),
        (KSERVE_PD, "kserve-llminferenceservice"),
        (KSERVE_ISVC, "kserve-inferenceservice"),
        (LLM_D_PD, "llm-d"),
        (RAY_ONE, "ray"),
        (RAY_PD, "ray"),
        (STACK_BASIC, "production-stack"),
    ],
)
def test_detected_by_content(path, fmt):
    import yaml

    first = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    assert detect_format(first) == fmt
    assert detect_format({"deployments": []}) is None  # a kvplan plan


def test_dynamo_dsv4_prefill_and_decode_from_the_shell_script():
    found = roles(DSV4, gpu="h200")
    prefill, decode = found["dsv4/prefill"], found["dsv4/decode"]
    for dep in (prefill, decode):
        assert dep.model == "deepseek-ai/DeepSeek-V4-Pro"  # ${MODEL_PATH} from the container's env
        assert dep.engine == "vllm"  # backendFramework: vllm
        assert (dep.tensor_parallel_size, dep.pipeline_parallel_size) == (1, 1)
        assert dep.max_model_len == 9280
        assert dep.gpus == 8  # resources.limits.gpu "4" x multinode.nodeCount 2
        assert dep.gpu == "h200"
        notes = " | ".join(dep.notes)
        # --data-parallel-size 8 --enable-expert-parallel: vLLM's own arguments, planned (no longer a note)
        assert (dep.data_parallel_size, dep.enable_expert_parallel) == (8, True)
        assert "data/expert parallelism not modelled" not in notes
        assert "disaggregation_mode" in notes
        assert "replicas 1" in notes
    assert (prefill.max_num_seqs, prefill.gpu_memory_utilization) == (16, 0.8)
    assert (decode.max_num_seqs, decode.gpu_memory_utilization) == (128, 0.9)
    assert prefill.lines["max_model_len"] == 33  # the script's own line for --max-model-len 9280
    assert decode.lines["max_num_seqs"] == 58


def test_dynamo_kimi_trtllm_arguments_from_the_configmap():
    (dep,) = load_manifest(KIMI, gpu="b200")
    assert dep.name == "kimi-k25-agg-kv-eagle/aggregated"
    assert dep.engine == "tensorrt-llm"  # backendFramework: trtllm
    assert dep.model == "nvidia/Kimi-K2.5-NVFP4"  # --model-path
    assert dep.tensor_parallel_size == 8  # agg.yaml in the ConfigMap
    assert dep.max_num_seqs == 128  # max_batch_size
    assert dep.kv_cache_dtype == "fp8"  # kv_cache_config.dtype
    assert dep.gpu_memory_utilization == 0.75  # kv_cache_config.free_gpu_memory_fraction
    assert dep.gpus == 8  # gpu "4" x nodeCount 2
    assert dep.lines["tensor_parallel_size"] == 38  # inside the ConfigMap's block scalar
    notes = " | ".join(dep.notes)
    assert "ConfigMap kimi-k25-agg-kv-eagle-config agg.yaml" in notes
    assert "replicas 3" in notes
    assert "speculative_config.decoding_type" in notes  # Eagle3: not modelled, said


@pytest.mark.parametrize("path", [KSERVE_PD_V1ALPHA1, KSERVE_PD])
def test_kserve_llminferenceservice_prefill_and_decode(path):
    found = roles(path, gpu=H100)
    assert set(found) == {"qwen2-7b-instruct-pd/prefill", "qwen2-7b-instruct-pd/decode"}
    for name, replicas in (("prefill", 2), ("decode", 1)):
        dep = found[f"qwen2-7b-instruct-pd/{name}"]
        assert dep.model == "Qwen/Qwen2.5-7B-Instruct"
        assert dep.gpus == 1  # nvidia.com/gpu: "1"
        assert dep.tensor_parallel_size == 1
        notes = " | ".join(dep.notes)
        assert f"replicas {replicas}" in notes
        assert "kv_transfer_config" in notes  # from VLLM_ADDITIONAL_ARGS: a note, never dropped


def test_kserve_parallelism_is_the_vllm_layout():
    """spec.parallelism with `worker`: KServe's worker-data-parallel template starts vLLM with --enable-expert-parallel,
    --tensor-parallel-size 1 and --data-parallel-size 16 (kserve/kserve aaac4e2 config/llmisvcconfig/
    config-llm-worker-data-parallel.yaml:193-196), the LeaderWorkerSet data / dataLocal = 2 pods of 8 GPUs
    (pkg/apis/serving/v1alpha2/llm_inference_service_types_func.go:98-108)."""
    (dep,) = load_manifest(KSERVE_DP_EP, gpu=H100)
    assert dep.name == "deepseek-coder-v2/aggregated"
    assert dep.model == "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"
    assert (dep.tensor_parallel_size, dep.data_parallel_size, dep.enable_expert_parallel) == (1, 16, True)
    assert dep.gpus == 16  # 8 per pod x (data 16 / dataLocal 8) pods
    assert (dep.lines["data_parallel_size"], dep.lines["enable_expert_parallel"]) == (15, 17)  # data:, expert:
    assert (dep.max_model_len, dep.gpu_memory_utilization) == (8192, 0.95)  # VLLM_ADDITIONAL_ARGS
    notes = " | ".join(dep.notes)
    assert "not modelled: the role is checked per TP x PP group" not in notes
    assert "not given to the engine" not in notes
    assert "--enforce-eager" in notes


def test_kserve_pd_pools_each_read_their_own_parallelism():
    """The prefill pool's parallelism is its own (config-llm-prefill-worker-data-parallel.yaml:194-197 reads
    .Spec.Prefill.Parallelism): both pools DP 16 + EP on 16 GPUs; each pool's VLLM_ADDITIONAL_ARGS."""
    found = roles(KSERVE_PD_DP_EP, gpu="h200")
    prefill, decode = found["deepseek-r1-0528-pd/prefill"], found["deepseek-r1-0528-pd/decode"]
    for dep in (prefill, decode):
        assert (dep.tensor_parallel_size, dep.data_parallel_size, dep.enable_expert_parallel, dep.gpus) == (
            1,
            16,
            True,
            16,
        )
        assert dep.model == "deepseek-ai/DeepSeek-R1-0528"
    assert (prefill.gpu_memory_utilization, decode.gpu_memory_utilization) == (0.97, 0.99)
    assert prefill.lines["data_parallel_size"] > decode.lines["data_parallel_size"]  # spec.prefill.parallelism.data


def test_kserve_parallelism_without_worker_is_a_note(tmp_path):
    """Without `worker` KServe's single-node templates pass only --tensor-parallel-size (config-llm-template.yaml:172,
    config-llm-prefill-template.yaml:173 reads the prefill pool's own): data and expert are said, not planned, and
    the prefill pool does not take spec.parallelism.tensor."""
    path = write(
        tmp_path,
        """
        apiVersion: serving.kserve.io/v1alpha2
        kind: LLMInferenceService
        metadata: {name: one}
        spec:
          model: {name: Qwen/Qwen2.5-7B}
          parallelism: {tensor: 2, data: 2, dataLocal: 2, expert: true}
          template:
            containers:
              - name: main
                resources: {limits: {nvidia.com/gpu: "2"}}
          prefill:
            template:
              containers:
                - name: main
                  resources: {limits: {nvidia.com/gpu: "1"}}
        """,
    )
    found = roles(path, gpu=H100)
    decode, prefill = found["one/decode"], found["one/prefill"]
    assert (decode.tensor_parallel_size, decode.data_parallel_size, decode.enable_expert_parallel) == (2, 1, False)
    assert "spec.parallelism: data 2, dataLocal 2, expert True not given to the engine" in " | ".join(decode.notes)
    assert prefill.tensor_parallel_size == 1


def test_kserve_inferenceservice_args_and_model_override():
    (dep,) = load_manifest(KSERVE_ISVC, gpu="a10g", model="meta-llama/Llama-3.1-8B")
    assert dep.name == "llama-31-8b-instruct/aggregated"
    assert (dep.max_model_len, dep.gpu_memory_utilization, dep.tensor_parallel_size, dep.gpus) == (1024, 0.95, 1, 1)
    assert "minReplicas 0" in " | ".join(dep.notes)
    with pytest.raises(ConfigError, match="names no model"):  # storageUri s3://...: no model id in the file
        load_manifest(KSERVE_ISVC, gpu="a10g")


def test_llm_d_roles_parallelism_and_default_gpu():
    hetero = roles(LLM_D_HETERO, gpu="l4")
    decode, prefill = hetero["values-heterogeneous-pd/decode"], hetero["values-heterogeneous-pd/prefill"]
    assert decode.model == prefill.model == "facebook/opt-125m"
    assert (decode.tensor_parallel_size, decode.gpus) == (2, 2)  # parallelism.tensor 2 x dataLocal 1
    assert (prefill.tensor_parallel_size, prefill.gpus) == (1, 1)
    plain = roles(LLM_D_PD, gpu="l4")
    assert {d.gpus for d in plain.values()} == {1}  # the chart's default: dataLocal 1 x tensor 1
    assert all("--enforce-eager" in " | ".join(d.notes) for d in plain.values())


def test_ray_llmconfig_reads_accelerator_type_and_engine_kwargs():
    (dep,) = load_manifest(RAY_ONE, model="Qwen/Qwen3-8B")
    assert dep.name == "VLLMFakeModel/aggregated"
    assert dep.gpu == "a10g"  # accelerator_type: A10G
    assert dep.max_model_len == 4096  # engine_kwargs
    assert "replicas 4-10" in " | ".join(dep.notes)


def test_ray_pd_configs():
    found = roles(RAY_PD, gpu=H100)
    assert set(found) == {"pd-disaggregation-nixl/prefill", "pd-disaggregation-nixl/decode"}
    assert "replicas 6-10" in " | ".join(found["pd-disaggregation-nixl/decode"].notes)
    assert all(d.model == "meta-llama/Llama-3.1-8B-Instruct" for d in found.values())


def test_production_stack_vllmconfig_as_the_chart_renders_it():
    (dep,) = load_manifest(STACK_BASIC, gpu=H100)
    assert dep.name == "values-02-basic-config/llama3"
    assert dep.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert (dep.max_model_len, dep.dtype, dep.gpu_memory_utilization, dep.gpus) == (4096, "bf16", 0.8, 1)
    (tp2,) = load_manifest(STACK_TP2, gpu="16gb")
    assert (tp2.tensor_parallel_size, tp2.gpus, tp2.max_model_len, tp2.dtype) == (2, 2, 8192, "fp16")
    pd = roles(STACK_PD, gpu="l4")
    assert [d.notes[0] for d in pd.values()] == ["role: prefill", "role: decode"]  # lmcacheConfig.kvRole


# ------------------------------------------------------------------------------------------- end to end


def test_kserve_pd_checks_clean():
    code, report = check_json(KSERVE_PD_V1ALPHA1, "--gpu-profile", H100, "--model", "Qwen/Qwen2.5-7B")
    assert code == 0
    assert [d["name"] for d in report["deployments"]] == ["qwen2-7b-instruct-pd/prefill", "qwen2-7b-instruct-pd/decode"]
    assert all(d["ok"] and d["gpu_profile"] == H100 for d in report["deployments"])


@pytest.mark.parametrize(
    ("path", "args", "rows", "code"),
    [
        (STACK_BASIC, ("--gpu-profile", H100, "--model", "meta-llama/Llama-3.1-8B"), 1, 0),
        (STACK_TP2, ("--gpu-profile", "16gb", "--model", "Qwen/Qwen2.5-7B"), 1, 0),
        (STACK_PD, ("--gpu-profile", "l4", "--model", "meta-llama/Llama-3.1-8B"), 2, 1),  # 32000 tokens on one L4
        (LLM_D_HETERO, ("--gpu-profile", "l4", "--model", "openai-community/gpt2"), 2, 0),
        (RAY_ONE, ("--model", "Qwen/Qwen3-8B"), 1, 0),
        (RAY_PD, ("--gpu-profile", H100, "--model", "meta-llama/Llama-3.1-8B"), 2, 0),
        (KSERVE_DP_EP, ("--gpu-profile", H100, "--model", "deepseek-ai/DeepSeek-V2-Lite"), 1, 0),
        (KSERVE_ISVC, ("--gpu-profile", "a10g", "--model", "meta-llama/Llama-3.1-8B"), 1, 0),
        (KIMI, ("--gpu-profile", "b200", "--model", "moonshotai/Kimi-K2.5"), 1, 0),
    ],
)
def test_end_to_end_exit_codes(path, args, rows, code):
    got, report = check_json(path, *args)
    assert got == code, report
    assert len(report["deployments"]) == rows


def test_kserve_pd_dp_ep_fits_with_its_layout():
    """DeepSeek-V3's layout (the file's DeepSeek-R1-0528 has the same architecture; V3 is in the offline catalog)
    on spec.parallelism's DP 16 + EP: 16 of the 256 experts on each H200 (EP 16 = TP 1 x DP 16,
    vllm-0.33.0/vllm/model_executor/layers/fused_moe/config.py:1227-1245)."""
    config = json.loads(config_path("deepseek-ai__DeepSeek-V3").read_text())
    experts = expert_weight_bytes(config.get("config", config))
    whole = recommend("deepseek-ai/DeepSeek-V3", gpu_profile="h200", offline=True, max_model_len=4096)
    code, report = check_json(KSERVE_PD_DP_EP, "--gpu-profile", "h200", "--model", "deepseek-ai/DeepSeek-V3")
    assert code == 0 and not whole.fits
    for row in report["deployments"]:
        assert row["weights_bytes"] == whole.weights_bytes - experts + experts * 16 // 256
        layout = row["recommend"]["parallel"]
        assert (layout["dp"], layout["ep_size"], layout["experts_per_gpu"], layout["kv_pools"]) == (16, 16, 16, 16)


def test_dsv4_fits_with_its_dp8_ep_layout():
    """DeepSeek-V3's weights (the V4 file's are not countable offline) on the manifest's DP 8 + EP layout: 32 of
    the 256 experts on each of the 8 H200s (EP 8 = TP 1 x DP 8, vllm-0.33.0/vllm/model_executor/layers/fused_moe/
    config.py:1227-1245) fit, where the whole model on one GPU per TP x PP group did not."""
    whole = recommend("deepseek-ai/DeepSeek-V3", gpu_profile="h200", offline=True, max_model_len=9280)
    assert not whole.fits  # one GPU per TP x PP group holds every expert
    config = json.loads(config_path("deepseek-ai__DeepSeek-V3").read_text())
    experts = expert_weight_bytes(config.get("config", config))
    code, report = check_json(DSV4, "--gpu-profile", "h200", "--model", "deepseek-ai/DeepSeek-V3")
    assert code == 0
    for row in report["deployments"]:
        assert row["weights_bytes"] == whole.weights_bytes - experts + experts * 32 // 256
        layout = row["recommend"]["parallel"]
        assert (layout["dp"], layout["ep_size"], layout["experts_per_gpu"], layout["kv_pools"]) == (8, 8, 32, 8)
        assert (
            "vllm serve" in row["recommend"]["flags"]["vllm"]
            and "--data-parallel-size 8" in (row["recommend"]["flags"]["vllm"])
        )


# ------------------------------------------------------------------------------------------- errors: exit 2


def test_no_gpu_type_is_exit_2_naming_gpu_profile():
    stderr = assert_one_error_line(run(DSV4), "dsv4/prefill: the manifest names no GPU type")
    assert "--gpu-profile" in stderr
    with pytest.raises(UsageError):
        load_manifest(DSV4)


def test_gpu_type_from_a_node_selector(tmp_path):
    """The real KServe P/D sample with `nvidia.com/gpu.product` node selectors added to its pools' templates."""
    text = KSERVE_PD.read_text()
    decode_only = text.replace(
        "  template:\n    # This affinity",
        "  template:\n    nodeSelector:\n      nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3\n    # This affinity",
        1,
    )
    both = decode_only.replace(
        "    template:\n      # This affinity",
        "    template:\n      nodeSelector:\n        nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB\n      # This affinity",
        1,
    )
    found = roles(write(tmp_path, both), model="Qwen/Qwen2.5-7B")
    assert found["qwen2-7b-instruct-pd/decode"].gpu == H100
    assert found["qwen2-7b-instruct-pd/prefill"].gpu == "a100-sxm-80gb"
    assert run(write(tmp_path, both, "both.yaml"), "--model", "Qwen/Qwen2.5-7B").exit_code == 0
    # a pool is scheduled by its own template: the prefill pool without a selector names no GPU type
    assert_one_error_line(
        run(write(tmp_path, decode_only, "decode.yaml"), "--model", "Qwen/Qwen2.5-7B"),
        "prefill: the manifest names no GPU type",
    )


def test_unknown_gpu_label_is_exit_2(tmp_path):
    text = KSERVE_ISVC.read_text().replace(
        "node.kubernetes.io/instance-type: g5.8xlarge", "nvidia.com/gpu.product: NVIDIA-Z9000"
    )
    assert_one_error_line(
        run(write(tmp_path, text), "--model", "meta-llama/Llama-3.1-8B"),
        "no hardware profile matches GPU 'NVIDIA-Z9000'",
    )


def test_unknown_kind_is_exit_2_naming_it(tmp_path):
    path = write(tmp_path, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: vllm}\n")
    assert_one_error_line(run(path), "unknown manifest kind 'Deployment'")
    alone = write(tmp_path, "apiVersion: v1\nkind: ConfigMap\ndata: {}\n", "cm.yaml")
    assert_one_error_line(run(alone), "unknown manifest kind 'ConfigMap'")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            """
            apiVersion: nvidia.com/v1alpha1
            kind: DynamoGraphDeployment
            metadata: {name: x}
            spec:
              services:
                w: {componentType: worker, resources: {limits: {gpu: "1"}}, extraPodSpec: {mainContainer: {args: {a: 1}}}}
            """,
            "expected a list of strings",
        ),
        (
            """
            apiVersion: nvidia.com/v1alpha1
            kind: DynamoGraphDeployment
            metadata: {name: x}
            spec:
              services:
                w:
                  componentType: worker
                  extraPodSpec: {mainContainer: {command: [sh, -c], args: ["exec python3 -m dynamo.vllm --model 'oops"]}}
            """,
            "cannot split the shell script",
        ),
        (
            """
            apiVersion: serving.kserve.io/v1alpha1
            kind: LLMInferenceService
            metadata: {name: x}
            spec:
              model: {name: meta-llama/Llama-3.1-8B}
              template:
                containers:
                  - name: main
                    args: ["--max-model-len", "lots"]
                    resources: {limits: {nvidia.com/gpu: "1"}}
            """,
            "expected a positive token count",
        ),
        (
            """
            apiVersion: serving.kserve.io/v1alpha1
            kind: LLMInferenceService
            metadata: {name: x}
            spec:
              model: {name: meta-llama/Llama-3.1-8B}
              template:
                containers:
                  - name: main
                    args: ["--tensor-parallel-size", "2"]
                    resources: {limits: {nvidia.com/gpu: "1"}}
            """,
            "1 GPUs cannot hold tensor_parallel_size 2",
        ),
        (
            """
            applications:
              - name: app
                args:
                  llm_configs: [./model_config/llm_config.yaml]
            """,
            "expected an LLMConfig mapping",
        ),
        ("servingEngineSpec:\n  modelSpec: []\n", "expected a non-empty list"),
        ("apiVersion: serving.kserve.io/v1alpha1\nkind: LLMInferenceService\nspec: [\n", "invalid YAML"),
    ],
)
def test_malformed_manifests_are_one_error_line(tmp_path, body, needle):
    assert_one_error_line(run(write(tmp_path, body), "--gpu-profile", H100), needle)


def test_plan_files_still_read_as_plans(tmp_path):
    path = write(
        tmp_path,
        "deployments:\n  - {name: a, model: meta-llama/Llama-3.1-8B, gpu: h100-sxm-80gb, max_model_len: 8192}\n",
    )
    assert run(path).exit_code == 0
    assert_one_error_line(
        run(path, "--model", "x"), "--gpu and --model apply to manifests and --engine-config files only"
    )


# ------------------------------------------------------------------------------------------- llm-d parallelism

LLM_D_VALUES = """
multinode: {multinode}
modelArtifacts: {{name: Qwen/Qwen3-30B-A3B, uri: "hf://Qwen/Qwen3-30B-A3B"}}
decode:
  replicas: 1
  parallelism: {{tensor: 1, data: 4, dataLocal: {local}, workers: {workers}}}
  containers:
    - name: vllm
      modelCommand: {command}
{body}
"""


def test_llm_d_vllm_serve_takes_data_parallelism(tmp_path):
    """modelCommand vllmServe: the chart starts vLLM with --data-parallel-size `data` and
    --data-parallel-size-local `dataLocal` (llm-d-incubation/llm-d-modelservice 3051935 charts/llm-d-modelservice/
    templates/_helpers.tpl:577-586), GPUs per pod dataLocal x tensor (:230-232), `workers` pods with multinode
    (:212-225); --enable-expert-parallel from the container's args."""
    body = '      args: ["--enable-expert-parallel"]'
    path = write(tmp_path, LLM_D_VALUES.format(multinode="true", local=2, workers=2, command="vllmServe", body=body))
    (dep,) = load_manifest(path, gpu=H100)
    assert (dep.tensor_parallel_size, dep.data_parallel_size, dep.enable_expert_parallel, dep.gpus) == (1, 4, True, 4)
    assert "not modelled: the role is checked per TP x PP group" not in " | ".join(dep.notes)


def test_llm_d_custom_command_reads_the_charts_env(tmp_path):
    """modelCommand custom: nothing is added to the command; the chart's env TP_SIZE/DP_SIZE (_helpers.tpl:695-702,
    after the values' env) is what `$DP_SIZE` in the script reads."""
    body = """      command: ["/bin/bash", "-c"]
      args:
        - |
          vllm serve Qwen/Qwen3-30B-A3B --tensor-parallel-size $TP_SIZE \\
            --data-parallel-size ${DP_SIZE} --enable-expert-parallel
      env:
        - {name: DP_SIZE, value: "2"}
      resources: {limits: {nvidia.com/gpu: "4"}}"""
    path = write(tmp_path, LLM_D_VALUES.format(multinode="false", local=4, workers=1, command="custom", body=body))
    (dep,) = load_manifest(path, gpu=H100)
    assert (dep.tensor_parallel_size, dep.data_parallel_size, dep.enable_expert_parallel, dep.gpus) == (1, 4, True, 4)
    assert "modelCommand custom: the chart passes parallelism only as env" in " | ".join(dep.notes)


@pytest.mark.parametrize("flags", [["--attn-dp-size", "8"], ["--dp-size", "8", "--enable-dp-attention"]])
def test_sglang_dp_attention_is_said_not_modelled(tmp_path, flags):
    """SGLang 0.5.23's DP attention (--attn-dp-size, or the deprecated --dp-size with --enable-dp-attention:
    sglang/srt/arg_groups/fields/parallel.py:81-90, :192-194) changes the weights and KV pools per GPU: a note says
    it is not modelled and why (kvplan.engines.sglang.SGLANG_DP_ATTENTION), never 'no effect on KV memory'."""
    args = ", ".join(f'"{a}"' for a in ["--model-path", "Qwen/Qwen2.5-7B", "--tp-size", "8", *flags, "--ep-size", "8"])
    path = write(
        tmp_path,
        f"""
        apiVersion: serving.kserve.io/v1alpha2
        kind: LLMInferenceService
        metadata: {{name: sg}}
        spec:
          model: {{name: Qwen/Qwen2.5-7B}}
          template:
            containers:
              - name: main
                command: ["python3", "-m", "sglang.launch_server"]
                args: [{args}]
                resources: {{limits: {{nvidia.com/gpu: "8"}}}}
        """,
    )
    (dep,) = load_manifest(path, gpu=H100)
    notes = " | ".join(dep.notes)
    assert dep.engine == "sglang" and dep.tensor_parallel_size == 8
    assert "ep_size 8" in notes and ("attn_dp_size 8" in notes or "enable_dp_attention" in notes)
    assert "SGLang's DP attention (attn_dp_size N: N KV pools inside the TP group" in notes
    assert "ignored (no effect on KV memory): --attn-dp-size" not in notes
