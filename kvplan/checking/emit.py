"""`kvplan recommend ... --emit FORMAT`: a deployment file for a plan, in the real field names of each project, that
reads back through `kvplan check` (kvplan.checking.manifests; a vLLM config through `--engine-config`).

The engine arguments are the plan's own vLLM command (`Recommendation.flags`, built by kvplan.engines.vllm), so
the emitted file starts the engine kvplan planned. Formats:

- `vllm-config`: a vLLM `--config` YAML (long option names as keys: `max-model-len: 32768`);
- `kserve`: a KServe `LLMInferenceService` (serving.kserve.io/v1alpha1): `spec.model`, `spec.replicas`,
  `spec.parallelism.tensor`/`pipeline` (the template renders `--tensor-parallel-size` from it,
  config/llmisvcconfig/config-llm-decode-template.yaml:172), the container `main` with `args` and
  `nvidia.com/gpu` limits, and a `nvidia.com/gpu.product` node selector;
- `llm-d`: llm-d modelservice values: `modelArtifacts`, `decode` (`parallelism.tensor`, `containers[]` with
  `modelCommand: vllmServe` and `args`, `nodeSelector`, charts/llm-d-modelservice/templates/decode-deployment.yaml:40),
  `prefill.create: false`;
- `dynamo`: a Dynamo `DynamoGraphDeployment` (nvidia.com/v1alpha1): a Frontend and one vLLM worker service
  (`python3 -m dynamo.vllm` with the arguments, `resources.limits.gpu`, `extraPodSpec.nodeSelector`);
- `ray`: a Ray Serve config (`applications[].args.llm_configs[]` of `ray.serve.llm:build_openai_app`) with
  `engine_kwargs` and `accelerator_type` (Ray's names: "H100", "A10G", "L4", ...).

The GPU type is written where the format has a place for it and kvplan reads it back as the same profile; a
profile without such a name (e.g. a generic `16gb`) is left out with a note, and reading back needs --gpu-profile.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from kvplan.checking.manifests import command_flags
from kvplan.engines.launchers import MANIFEST_DEFAULT_ENGINE, launched_engine
from kvplan.engines.registry import canonical_engine, engine_entry, flag_key
from kvplan.errors import KvplanError, UsageError

EMIT_FORMATS = ("vllm-config", "kserve", "llm-d", "dynamo", "ray")
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# The llm-d and Dynamo images the projects' own examples use (llm-d-modelservice examples/values-pd.yaml;
# Dynamo's vLLM runtime image).
LLM_D_IMAGE = "ghcr.io/llm-d/llm-d-cuda:latest"
DYNAMO_IMAGE = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:latest"
_PARALLEL_FLAGS = ("--tensor-parallel-size", "--pipeline-parallel-size")


def _value(text: Any) -> Any:
    """A command-line value as YAML would type it: 32768 -> int, 0.92 -> float, others as written."""
    if not isinstance(text, str):
        return text
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", text):
        return float(text)
    return text


def _vllm_command(rec: Any) -> tuple[str, list[tuple[str, Any]]]:
    """The model and the (flag, value) pairs of the plan's vLLM command."""
    if canonical_engine(rec.engine) != MANIFEST_DEFAULT_ENGINE:
        raise UsageError(
            f"--emit writes manifests that run {engine_entry(MANIFEST_DEFAULT_ENGINE).display}; "
            f"this plan is for {rec.engine}",
            hint=f"pass --engine {MANIFEST_DEFAULT_ENGINE}",
        )
    words = shlex.split(rec.flags[flag_key(MANIFEST_DEFAULT_ENGINE)])
    launched = launched_engine(words)
    start = launched[1] if launched is not None else 0
    flags, positional = command_flags(words[start:])
    model = positional[0] if positional else rec.model
    return model, [(k, _value(v)) for k, v in flags]


def _gpu_names(gpu_profile: str, profiles_dir: str | None) -> tuple[str | None, str | None]:
    """The GPU as a `nvidia.com/gpu.product` label value and as a Ray accelerator type, each only when kvplan
    reads it back as the same profile."""
    from kvplan.sources.hardware import load_profile

    profile = load_profile(gpu_profile, profiles_dir=profiles_dir)

    def same(name: str) -> bool:
        try:
            return load_profile(name, profiles_dir=profiles_dir).id == profile.id
        except KvplanError:
            return False

    label = next(
        (a.replace(" ", "-") for a in (profile.name, *profile.aliases) if a.startswith("NVIDIA ") and same(a)), None
    )
    ray = next(
        (
            n.upper()
            for n in (profile.id, *profile.aliases)
            if re.fullmatch(r"[A-Za-z]+\d+[A-Za-z]*", n) and same(n.upper())
        ),
        None,
    )
    return label, ray


def _args(flags: list[tuple[str, Any]], drop: tuple[str, ...] = ()) -> list[str]:
    out: list[str] = []
    for key, value in flags:
        if key in drop:
            continue
        out.append(key)
        if value is not True:
            out.append(str(value))
    return out


def _name(model: str) -> str:
    tail = model.rstrip("/").rsplit("/", 1)[-1].lower()
    return re.sub(r"[^a-z0-9-]+", "-", tail).strip("-")[:50] or "model"


def emit_manifest(rec: Any, fmt: str, *, profiles_dir: str | None = None) -> tuple[str, list[str]]:
    """The text of a deployment file in `fmt` for recommendation `rec`, and notes on what was left out."""
    if fmt not in EMIT_FORMATS:
        raise UsageError(f"--emit: unknown format {fmt!r}", hint="use one of: " + ", ".join(EMIT_FORMATS))
    model, flags = _vllm_command(rec)
    label, ray_type = _gpu_names(rec.gpu_profile, profiles_dir)
    parallel = getattr(rec, "parallel", None) or {}
    gpus = rec.tp * rec.pp * parallel.get("dp", 1)  # the data-parallel ranks run in the same pod (one node)
    name = _name(model)
    notes: list[str] = []
    head = f"# written by kvplan recommend --emit {fmt}: {model} on {gpus} x {rec.gpu_profile}\n"
    doc: dict[str, Any]
    selector = {GPU_PRODUCT_LABEL: label} if label else None
    if fmt in ("kserve", "llm-d", "dynamo") and not label:
        notes.append(
            f"{rec.gpu_profile} has no {GPU_PRODUCT_LABEL} name: no node selector written (pass --gpu-profile)"
        )
    if fmt == "vllm-config":
        doc = {"model": model, **{k.lstrip("-"): v for k, v in flags}}
    elif fmt == "kserve":
        parallelism = {"tensor": rec.tp, **({"pipeline": rec.pp} if rec.pp > 1 else {})}
        template: dict[str, Any] = {
            "containers": [
                {
                    "name": "main",
                    "args": _args(flags, _PARALLEL_FLAGS),
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}},
                }
            ]
        }
        if selector:
            template = {"nodeSelector": selector, **template}
        doc = {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "LLMInferenceService",
            "metadata": {"name": name},
            "spec": {
                "model": {"uri": f"hf://{model}", "name": model},
                "replicas": 1,
                "parallelism": parallelism,
                "router": {"route": {}, "gateway": {}, "scheduler": {}},
                "template": template,
            },
        }
    elif fmt == "llm-d":
        decode: dict[str, Any] = {
            "create": True,
            "replicas": 1,
            "parallelism": {"tensor": rec.tp},
            "containers": [
                {
                    "name": MANIFEST_DEFAULT_ENGINE,  # llm-d's examples name the container after the engine
                    "image": LLM_D_IMAGE,
                    "modelCommand": "vllmServe",
                    "args": _args(flags, _PARALLEL_FLAGS[:1]),
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}},
                    "mountModelVolume": True,
                }
            ],
        }
        if selector:
            decode["nodeSelector"] = selector
        doc = {
            "multinode": False,
            "modelArtifacts": {"name": model, "uri": f"hf://{model}", "labels": {"llm-d.ai/model": name}},
            "decode": decode,
            "prefill": {"create": False},
        }
    elif fmt == "dynamo":
        pod: dict[str, Any] = {
            "mainContainer": {
                "image": DYNAMO_IMAGE,
                "command": ["python3", "-m", "dynamo.vllm"],
                "args": ["--model", model, *_args(flags)],
            }
        }
        if selector:
            pod = {"nodeSelector": selector, **pod}
        doc = {
            "apiVersion": "nvidia.com/v1alpha1",
            "kind": "DynamoGraphDeployment",
            "metadata": {"name": name},
            "spec": {
                "backendFramework": MANIFEST_DEFAULT_ENGINE,
                "services": {
                    "Frontend": {"componentType": "frontend", "replicas": 1},
                    "VllmWorker": {
                        "componentType": "worker",
                        "replicas": 1,
                        "resources": {"limits": {"gpu": str(gpus)}},
                        "extraPodSpec": pod,
                    },
                },
            },
        }
    else:  # ray
        config: dict[str, Any] = {
            "model_loading_config": {"model_id": model, "model_source": model},
            "engine_kwargs": {k.lstrip("-").replace("-", "_"): v for k, v in flags},
            "deployment_config": {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}},
        }
        if ray_type:
            config = {
                "model_loading_config": config.pop("model_loading_config"),
                "accelerator_type": ray_type,
                **config,
            }
        else:
            notes.append(f"{rec.gpu_profile} has no Ray accelerator type: none written (pass --gpu-profile)")
        doc = {
            "applications": [
                {
                    "name": name,
                    "route_prefix": "/",
                    "import_path": "ray.serve.llm:build_openai_app",
                    "args": {"llm_configs": [config]},
                }
            ]
        }
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), notes


__all__ = ["EMIT_FORMATS", "emit_manifest"]
