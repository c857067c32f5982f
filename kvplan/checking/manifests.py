"""Deployment manifests read as `Deployment`s, one per role: what `kvplan check FILE` does with a file that is not a
kvplan plan.

Formats, recognised by content (`apiVersion`/`kind`, else the characteristic top-level keys):

- KServe `LLMInferenceService` (serving.kserve.io/v1alpha1, v1alpha2): `spec.model.name`, `spec.replicas`,
  `spec.parallelism` (tensor, pipeline, data, dataLocal, expert; each pool its own), `spec.template` (the decode
  pool when `spec.prefill` is given, else the aggregated one), `spec.prefill`, `spec.worker` (multi-node); the
  container `main`'s env `VLLM_ADDITIONAL_ARGS` and `args`. The engine command follows KServe's templates
  (kserve/kserve aaac4e2): `vllm serve` with `--tensor-parallel-size` from `parallelism.tensor`
  (config/llmisvcconfig/config-llm-decode-template.yaml:166-177), and with `worker` and data parallelism
  `--enable-expert-parallel`, `--data-parallel-size` and `--data-parallel-size-local` from `expert`, `data` and
  `dataLocal` (config-llm-worker-data-parallel.yaml:193-196: planned as vLLM's DP and EP), then
  `${VLLM_ADDITIONAL_ARGS}`, then the container's args.
- KServe `InferenceService` (serving.kserve.io/v1beta1): `spec.predictor.model` (or its first container) with
  `args`, `resources`, `spec.predictor.nodeSelector`, `minReplicas`/`maxReplicas`.
- llm-d modelservice Helm values (`modelArtifacts:` with `decode:`/`prefill:`): `modelArtifacts.name`,
  `<role>.replicas`, `<role>.parallelism` (GPUs per pod = dataLocal x tensor, as the chart's
  `llm-d-modelservice.numGpuPerWorker`; `tensor` and `data` as vLLM's TP and DP for modelCommand vllmServe and
  imageDefault, env TP_SIZE/DP_SIZE/DP_SIZE_LOCAL for a custom command), `<role>.containers[].args`.
- NVIDIA Dynamo `DynamoGraphDeployment` (nvidia.com/v1alpha1): `spec.services.<name>` with `componentType:
  worker` (`subComponentType` prefill/decode), `replicas`, `multinode.nodeCount`, `resources.limits.gpu`,
  `extraPodSpec.mainContainer.command`/`args` (a `sh -c` script included; `${VAR}` from the container's env),
  TensorRT-LLM's `--extra-engine-args` read from a ConfigMap in the same file.
- Ray Serve LLM configs: a serve config (`applications[].args.llm_configs`, or `prefill_config`/`decode_config`
  of `build_pd_openai_app`) or one `LLMConfig` (`model_loading_config`, `engine_kwargs`, `accelerator_type`,
  `deployment_config`).
- vLLM production-stack Helm values (`servingEngineSpec.modelSpec[]`): `modelURL`, `replicaCount`, `requestGPU`,
  `vllmConfig` rendered as helm/templates/deployment-vllm-multi.yaml:149-197 does (vllm-project/production-stack
  a6c01db: `maxModelLen` -> `--max-model-len`, ..., then `extraArgs`), `lmcacheConfig.kvRole` (prefill/decode).

Engine arguments go through the engine's config vocabulary (kvplan.checking.engine_configs.map_arguments), then
the same validation as a plan file (kvplan.checking.plans.build_deployment). The GPU type comes from a node selector
or affinity on `nvidia.com/gpu.product` (or GKE's `cloud.google.com/gke-accelerator`), or Ray's
`accelerator_type`; else `--gpu-profile` must be given. Keys kvplan does not interpret (SGLang's data and expert
parallelism, a KServe `parallelism.data`/`expert` its single-node template does not pass, disaggregation
connectors, speculative decoding, ...) are notes on the role, never dropped. Each role is checked as one replica: TP x PP, and vLLM's DP, EP and DCP
where its arguments give them. Pure Python; YAML only through kvplan.sources.yaml_files.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from kvplan.checking.engine_configs import map_arguments
from kvplan.checking.plans import Deployment, build_deployment, load_plan
from kvplan.engines import canonical_engine
from kvplan.engines.launchers import (
    KSERVE_LLM_FORMATS,
    MANIFEST_DEFAULT_ENGINE,
    argument_vocabulary,
    launched_engine,
    takes_positional_model,
)
from kvplan.engines.offload import OFFLOAD_ENV
from kvplan.errors import ConfigError, KvplanError, UsageError
from kvplan.sources.yaml_files import Entry, load_yaml_documents, read_text

FORMATS = {
    "kserve-llminferenceservice": "KServe LLMInferenceService",
    "kserve-inferenceservice": "KServe InferenceService",
    "llm-d": "llm-d modelservice values",
    "dynamo": "Dynamo DynamoGraphDeployment",
    "ray": "Ray Serve LLM config",
    "production-stack": "vLLM production-stack values",
}
KINDS = {
    ("serving.kserve.io", "LLMInferenceService"): "kserve-llminferenceservice",
    ("serving.kserve.io", "InferenceService"): "kserve-inferenceservice",
    ("nvidia.com", "DynamoGraphDeployment"): "dynamo",
}
# Node labels that name the GPU model: NVIDIA's GPU feature discovery, GKE's accelerator label.
GPU_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator")
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu")
HINT_GPU = "pass --gpu-profile (e.g. --gpu-profile h100-sxm-80gb; see `kvplan profiles list`)"
# Parallelism arguments: named in a note on the role where the engine's vocabulary does not map them onto plan keys
# (vLLM's data_parallel_size, enable_expert_parallel and decode_context_parallel_size are planned).
PARALLEL_KEYS = (
    "data_parallel_size",
    "data_parallel_size_local",
    "enable_expert_parallel",
    "dp_size",
    "dp",
    "ep_size",
    "expert_parallel_size",
    "enable_dp_attention",
    "attn_dp_size",
    "attention_data_parallel_size",
    "decode_context_parallel_size",
    "dcp",
    "moe_expert_parallel_size",
)
DISAGG_KEYS = ("kv_transfer_config", "disaggregation_mode", "disaggregation_transfer_backend")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# ------------------------------------------------------------------------------------------- located values


@dataclass(frozen=True)
class Node:
    """A value of the manifest with where it was written: its YAML node, its dotted label and its line."""

    value: Any
    node: yaml.Node | None
    label: str
    line: int

    def get(self, key: str) -> Node | None:
        if not isinstance(self.value, dict) or key not in self.value:
            return None
        sub, line = None, self.line
        if isinstance(self.node, yaml.MappingNode):
            for key_node, value_node in self.node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    sub, line = value_node, key_node.start_mark.line + 1
                    break
        label = f"{self.label}.{key}" if self.label else key
        return Node(self.value[key], sub, label, line)

    def path(self, *keys: str) -> Node | None:
        here: Node | None = self
        for key in keys:
            here = here.get(key) if here is not None else None
        return here

    def items(self) -> list[tuple[str, Node]]:
        if not isinstance(self.value, dict):
            return []
        return [(str(k), n) for k in self.value if (n := self.get(k)) is not None]

    def list(self) -> list[Node]:
        if not isinstance(self.value, list):
            return []
        nodes = self.node.value if isinstance(self.node, yaml.SequenceNode) else [None] * len(self.value)
        return [
            Node(v, n, f"{self.label}[{i}]", n.start_mark.line + 1 if n is not None else self.line)
            for i, (v, n) in enumerate(zip(self.value, nodes, strict=False))
        ]

    def entry(self, value: Any = None) -> Entry:
        return Entry(self.value if value is None else value, self.line, self.label)


def _mapping(node: Node | None) -> TypeGuard[Node]:
    return node is not None and isinstance(node.value, dict)


# ------------------------------------------------------------------------------------------- one role


@dataclass
class Role:
    """One role of a manifest (aggregated, prefill or decode), as the manifest writes it."""

    name: str  # "<manifest name>/<role>"
    kind: str  # aggregated | prefill | decode
    at: Node  # the role's own subtree
    engine: str = MANIFEST_DEFAULT_ENGINE
    engine_at: Node | None = None
    args: list[tuple[str, Any, int, str]] = field(default_factory=list)  # engine arguments in order
    model: Entry | None = None
    gpus_per_pod: Entry | None = None
    nodes: int = 1
    gpu_label: Entry | None = None
    notes: list[str] = field(default_factory=list)
    fields: dict[str, Entry] = field(default_factory=dict)  # plan keys set by manifest fields (parallelism.tensor)
    gpus_note: bool = True  # say so when no GPU count is found (Ray: TP x PP GPUs per replica is the rule)


# options that take several values (argparse nargs="+"/"*"): vLLM's --lora-target-modules (vllm-0.33.0
# vllm/engine/arg_utils.py:1629, a list field) and SGLang's (srt/arg_groups/fields/lora.py:46-53, nargs="*")
_MULTI_VALUE = frozenset({"--lora-target-modules", "--lora_target_modules"})


def _flags(
    tokens: list[str], line: Callable[[str], int], label: str
) -> tuple[list[tuple[str, Any, int, str]], list[str]]:
    """`--key value`, `--key=value`, `-tp 2` and bare `--flag` (True) from a command line; positional tokens. An
    option of _MULTI_VALUE takes every value up to the next option (`q_proj v_proj` -> "q_proj,v_proj")."""
    out: list[tuple[str, Any, int, str]] = []
    positional: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _MULTI_VALUE and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
            values = []
            while i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                values.append(tokens[i + 1])
                i += 1
            out.append((token, ",".join(values), line(token), label))
        elif token.startswith("-") and len(token) > 1 and not _number(token):
            if "=" in token:
                key, value = token.split("=", 1)
                out.append((key, value, line(token), label))
            elif i + 1 < len(tokens) and (not tokens[i + 1].startswith("-") or _number(tokens[i + 1])):
                out.append((token, tokens[i + 1], line(token), label))
                i += 1
            else:
                out.append((token, True, line(token), label))
        else:
            positional.append(token)
        i += 1
    return out, positional


def command_flags(words: list[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """The (flag, value) pairs and the positional words of an engine's command line (`--key value`,
    `--key=value`, bare `--flag` -> True)."""
    flags, positional = _flags(words, _at_line(1), "")
    return [(k, v) for k, v, _, _ in flags], positional


def _at_line(line: int) -> Callable[[str], int]:
    """Every token of an argument list written on one line."""
    return lambda token: line


def _number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


_SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/env")


def _substitute(token: str, env: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name in env:
            return env[name]
        return m.group(2) if m.group(2) is not None else m.group(0)

    return _ENV_REF.sub(repl, token)


def _command(
    role: Role, container: Node, env: dict[str, str], source: str
) -> tuple[list[tuple[str, Any, int, str]], str | None]:
    """The engine arguments of a container's command + args, and the engine its entrypoint names (None: the
    format's default). A `sh -c SCRIPT` is split as the shell would (line continuations, comments, `${VAR}` from
    the container's env) and the command that starts the engine is taken from it."""
    parts: list[tuple[str, int, str, str | None]] = []  # token, line, label, script text (for lines)
    for key in ("command", "args"):
        node = container.get(key)
        if node is None:
            continue
        if isinstance(node.value, str):  # one string: a script or a command line
            parts.append((node.value, node.line, node.label, node.value))
            continue
        if not isinstance(node.value, list):
            raise ConfigError(
                f"{source}:{node.line}: {node.label}: expected a list of strings, got {type(node.value).__name__}",
                hint="write the command as a YAML list",
            )
        for item in node.list():
            if isinstance(item.value, (dict, list)) or item.value is None:
                raise ConfigError(
                    f"{source}:{item.line}: {item.label}: expected a string", hint="write each argument as a string"
                )
            parts.append((str(item.value), item.line, item.label, None))
    tokens: list[tuple[str, int, str]] = []
    shell = False
    for index, (text, line, label, _) in enumerate(parts):
        prev = parts[index - 1][0] if index else ""
        if shell or (prev == "-c" and any(p[0] in _SHELLS for p in parts[:index])):
            shell = False
            script = re.sub(r"\\\r?\n", " ", text)
            try:
                words = shlex.split(script, comments=True)
            except ValueError as exc:
                raise ConfigError(
                    f"{source}:{line}: {label}: cannot split the shell script: {exc}", hint="check its quoting"
                ) from None
            base = line + (1 if "\n" in text else 0)
            rows = text.splitlines()
            for word in words:
                word = _substitute(word, env)
                offset = next((i for i, row in enumerate(rows) if word in row), 0)
                tokens.append((word, base + offset, label))
        else:
            tokens.append((_substitute(text, env), line, label))
    words = [t for t, _, _ in tokens]
    launched = launched_engine(words)
    engine, start = launched if launched is not None else (None, 0)
    if engine is None and words and words[0].rsplit("/", 1)[-1] in ("python", "python3") + _SHELLS:
        role.notes.append(
            f"command {' '.join(words[:3])} ... names no engine kvplan knows: its arguments are read as {role.engine}'s"
        )
    rest = tokens[start:]
    for stop, (word, _, _) in enumerate(rest):
        if word in (";", "&&", "||", "|"):
            rest = rest[:stop]
            break
    lines = {t: ln for t, ln, _ in reversed(rest)}
    label = rest[0][2] if rest else container.label
    flags, positional = _flags([t for t, _, _ in rest], lambda t: lines.get(t, container.line), label)
    if positional and rest and engine is not None and takes_positional_model(engine) and rest[0][0] == positional[0]:
        flags.insert(0, ("model", positional[0], rest[0][1], rest[0][2]))  # `vllm serve MODEL`, `trtllm-serve MODEL`
    return flags, engine


def _env(container: Node) -> tuple[dict[str, str], Node | None]:
    env: dict[str, str] = {}
    node = container.get("env")
    for item in node.list() if node is not None else []:
        if isinstance(item.value, dict) and isinstance(item.value.get("name"), str) and "value" in item.value:
            env[item.value["name"]] = str(item.value["value"])
    return env, node


def _container_args(
    role: Role,
    container: Node,
    source: str,
    *,
    additional_args: bool = False,
    chart_env: dict[str, str] | None = None,
) -> None:
    """The container's engine arguments into `role`: env `VLLM_ADDITIONAL_ARGS` (KServe's template puts it before
    the container's args), then command/args; `VLLM_*` env kvplan does not read are named in a note. `chart_env`:
    variables the chart adds after the container's env (a later entry of a name wins)."""
    env, env_node = _env(container)
    env.update(chart_env or {})
    if additional_args and env.get("VLLM_ADDITIONAL_ARGS"):
        extra = _item_of(env_node, "VLLM_ADDITIONAL_ARGS")
        try:
            words = shlex.split(env["VLLM_ADDITIONAL_ARGS"])
        except ValueError as exc:
            raise ConfigError(
                f"{source}:{extra.line if extra else container.line}: VLLM_ADDITIONAL_ARGS: cannot split: {exc}",
                hint="check its quoting",
            ) from None
        line = extra.line if extra else container.line
        flags, _ = _flags(words, _at_line(line), (extra.label if extra else container.label))
        role.args.extend(flags)
    flags, engine = _command(role, container, env, source)
    if engine is not None:
        role.engine = engine
    role.args.extend(flags)
    for name, plan_key in OFFLOAD_ENV.items():  # LMCache's and Dynamo KVBM's tiers (kvplan.engines.offload)
        if name in env:
            item = _item_of(env_node, name)
            at = item if item is not None else container
            role.fields[plan_key] = Entry(env[name], at.line, f"env {name}")
    others = sorted(n for n in env if n.startswith(("VLLM_", "SGLANG_")) and n != "VLLM_ADDITIONAL_ARGS")
    if others:
        role.notes.append("environment not interpreted: " + ", ".join(others))
    _gpus_from_resources(role, container)


def _item_of(env_node: Node | None, name: str) -> Node | None:
    for item in env_node.list() if env_node is not None else []:
        if isinstance(item.value, dict) and item.value.get("name") == name:
            return item.get("value") or item
    return None


def _gpus_from_resources(role: Role, container: Node) -> None:
    """GPUs per pod: the container's `resources.limits` (else `requests`) of `nvidia.com/gpu` (Dynamo: `gpu`)."""
    for where in ("limits", "requests"):
        res = container.path("resources", where)
        for name in GPU_RESOURCES:
            node = res.get(name) if _mapping(res) else None
            if node is not None and role.gpus_per_pod is None:
                role.gpus_per_pod = node.entry()
                return


def _gpu_label(role: Role, *trees: Node | None) -> None:
    """The GPU type from a node selector or a node-affinity term on a GPU label, anywhere under the trees."""
    for tree in trees:
        if tree is None or role.gpu_label is not None:
            continue
        found = _find_label(tree, 0)
        if found is not None:
            role.gpu_label = found


def _find_label(tree: Node, depth: int) -> Entry | None:
    if depth > 12:
        return None
    if isinstance(tree.value, dict):
        for key in GPU_LABELS:
            node = tree.get(key)
            if node is not None and isinstance(node.value, str):
                return node.entry()
        if tree.value.get("key") in GPU_LABELS and isinstance(tree.value.get("values"), list):
            values = tree.get("values")
            if values is not None and len(values.value) == 1 and tree.value.get("operator", "In") == "In":
                return values.list()[0].entry()
        for _, sub in tree.items():
            found = _find_label(sub, depth + 1)
            if found is not None:
                return found
    elif isinstance(tree.value, list):
        for sub in tree.list():
            found = _find_label(sub, depth + 1)
            if found is not None:
                return found
    return None


def _profile_for(label: Entry, source: str, profiles_dir: str | None) -> str:
    """A node label's GPU product ("NVIDIA-H100-80GB-HBM3") or Ray accelerator type ("A10G") as a profile id."""
    from kvplan.sources.hardware import load_profile

    raw = str(label.value).strip()
    rest = raw[7:] if raw.lower().startswith("nvidia-") else raw
    candidates = [raw, raw.replace("-", " "), f"NVIDIA {rest}", f"NVIDIA {rest.replace('-', ' ')}", rest]
    for name in dict.fromkeys(candidates):
        try:
            return load_profile(name, profiles_dir=profiles_dir).id
        except KvplanError:
            continue
    raise ConfigError(f"{source}:{label.line}: {label.label}: no hardware profile matches GPU {raw!r}", hint=HINT_GPU)


def _parallel_notes(role: Role, args: dict[str, Any], modelled: frozenset[str] = frozenset(), why: str = "") -> None:
    """Notes on the parallelism arguments the engine's vocabulary does not map (`modelled`: those it maps onto
    plan keys, vLLM's data_parallel_size, enable_expert_parallel, decode_context_parallel_size; `why`: the
    engine's own reason, ConfigVocabulary.parallel_note)."""
    from kvplan.checking.engine_configs import normalise

    given = {normalise(k): v for k, v, _, _ in role.args}
    given.update(args)
    parallel = [k if given[k] is True else f"{k} {given[k]}" for k in PARALLEL_KEYS if k in given and k not in modelled]
    if parallel:
        role.notes.append(
            "data/expert parallelism not modelled (" + ", ".join(parallel) + "): the role is checked per "
            "TP x PP group (kvplan models vLLM's DP, EP and DCP from its arguments)" + (f"; {why}" if why else "")
        )
    disagg = [k for k in DISAGG_KEYS if k in given]
    if disagg:
        role.notes.append(
            f"{role.kind} role: disaggregation settings not interpreted (" + ", ".join(disagg) + "): KV held "
            "for transfer is not added"
        )


def _deployment(
    role: Role,
    *,
    source: str,
    gpu: str | None,
    model: str | None,
    profiles_dir: str | None,
    fields: dict[str, Entry] | None = None,
    fields_spelling: dict[str, str] | None = None,
) -> Deployment:
    """One role as a Deployment: manifest fields first (e.g. `parallelism.tensor`), the engine's arguments over
    them (the engine sees them later on its command line), then --model / --gpu-profile."""
    engine = canonical_engine(role.engine)
    vocabulary = argument_vocabulary(engine)
    if vocabulary is None:
        line = role.engine_at.line if role.engine_at else role.at.line
        raise ConfigError(
            f"{source}:{line}: {role.name}: kvplan reads no {role.engine} engine arguments",
            hint="kvplan reads vLLM, SGLang and TensorRT-LLM arguments in manifests",
        )
    mapped = map_arguments(vocabulary, role.args, source=source, last_wins=True)
    entries: dict[str, Entry] = dict(fields or {})
    spelling: dict[str, str] = dict(fields_spelling or {})
    notes = [f"role: {role.kind}"]
    for key, entry in mapped.entries.items():
        if key in entries and str(entries[key].value) != str(entry.value):
            notes.append(f"{mapped.spelling[key]} {entry.value} overrides {entries[key].label} {entries[key].value}")
        entries[key] = entry
        spelling[key] = mapped.spelling[key]
    notes.extend(mapped.notes)
    if role.model is not None and "model" not in entries:
        entries["model"], spelling["model"] = role.model, role.model.label
    if model is not None:
        if "model" in entries and entries["model"].value != model:
            notes.append(f"--model {model} replaces the manifest's {entries['model'].value}")
        entries["model"], spelling["model"] = Entry(model, 1, "--model"), "--model"
    if "model" not in entries or not entries["model"].value:
        raise ConfigError(
            f"{source}:{role.at.line}: {role.name}: the manifest names no model",
            hint="pass --model (a Hub id, catalog name or path)",
        )
    if isinstance(entries["model"].value, str) and entries["model"].value.startswith("hf://"):
        entries["model"] = Entry(entries["model"].value[5:].strip('"'), entries["model"].line, entries["model"].label)
    if gpu is not None:
        if role.gpu_label is not None:
            notes.append(f"--gpu-profile {gpu} replaces the manifest's GPU {role.gpu_label.value}")
        entries["gpu"], spelling["gpu"] = Entry(gpu, 1, "--gpu-profile"), "--gpu-profile"
    elif role.gpu_label is not None:
        entries["gpu"] = Entry(
            _profile_for(role.gpu_label, source, profiles_dir), role.gpu_label.line, role.gpu_label.label
        )
        spelling["gpu"] = role.gpu_label.label
    else:
        raise UsageError(
            f"{source}:{role.at.line}: {role.name}: the manifest names no GPU type (no nvidia.com/gpu.product node "
            "selector or accelerator_type)",
            hint=HINT_GPU,
        )
    if role.gpus_per_pod is not None:
        per_pod = role.gpus_per_pod.value
        if isinstance(per_pod, str) and per_pod.strip().isdigit():
            per_pod = int(per_pod.strip())
        if isinstance(per_pod, int) and not isinstance(per_pod, bool) and per_pod > 0:
            total = per_pod * role.nodes
            entries["gpus"] = Entry(total, role.gpus_per_pod.line, role.gpus_per_pod.label)
            if role.nodes > 1:
                notes.append(f"{total} GPUs per replica ({per_pod} per pod x {role.nodes} nodes)")
        else:
            entries["gpus"] = role.gpus_per_pod  # build_deployment names the bad value
        spelling["gpus"] = role.gpus_per_pod.label
    elif role.gpus_note:
        notes.append("no GPU request found: planned on tensor x pipeline parallel size GPUs")
    entries["engine"] = Entry(engine, role.engine_at.line if role.engine_at else role.at.line, "engine")
    spelling["engine"] = role.engine_at.label if role.engine_at else "engine"
    entries["name"] = Entry(role.name, role.at.line, "name")
    _parallel_notes(role, {}, frozenset(vocabulary.keys), vocabulary.parallel_note)
    notes.extend(role.notes)
    said = set(PARALLEL_KEYS) | set(DISAGG_KEYS)  # named in the notes above
    unmodelled = [k for k in dict.fromkeys(mapped.unmodelled) if _norm(k) not in said]
    if unmodelled:
        notes.append("not modelled, affect memory: " + ", ".join(unmodelled))
    ignored = [k for k in dict.fromkeys(mapped.ignored) if _norm(k) not in said]
    if ignored:
        notes.append("ignored (no effect on KV memory): " + ", ".join(ignored))
    return build_deployment(
        entries,
        source=source,
        line=role.at.line,
        where=role.at.label,
        profiles_dir=profiles_dir,
        base=None,
        lenient=True,
        notes=tuple(notes),
        spelling=spelling,
    )


# ------------------------------------------------------------------------------------------- the formats


def _replicas(role: Role, node: Node | None, what: str = "replicas") -> None:
    if node is not None and node.value is not None:
        role.notes.append(f"{what} {node.value} ({node.label}): each replica checked alike")


def _name(doc: Node, fallback: str) -> str:
    name = doc.path("metadata", "name")
    return str(name.value) if name is not None and isinstance(name.value, (str, int)) else fallback


def _main_container(template: Node | None, source: str, name: str = "main") -> Node | None:
    containers = template.get("containers") if _mapping(template) else None
    items = containers.list() if containers is not None else []
    for item in items:
        if isinstance(item.value, dict) and item.value.get("name") == name:
            return item
    return items[0] if items else None


def _kserve_llmisvc(doc: Node, source: str, others: list[Node]) -> list[Role]:
    spec = doc.get("spec")
    if not _mapping(spec):
        raise ConfigError(
            f"{source}:{doc.line}: LLMInferenceService has no spec", hint="give spec.model and spec.template"
        )
    assert spec is not None
    name = _name(doc, Path(source).stem)
    model = spec.path("model", "name") or spec.path("model", "uri")
    pools = [("prefill", spec.get("prefill")), ("decode" if spec.get("prefill") else "aggregated", spec)]
    roles = []
    for kind, pool in pools:
        if not _mapping(pool):
            continue
        assert pool is not None
        role = Role(f"{name}/{kind}", kind, pool)
        role.model = model.entry() if model is not None and isinstance(model.value, str) else None
        parallel = pool.get("parallelism")  # each pool its own: the prefill templates read .Spec.Prefill.Parallelism
        container = _main_container(pool.get("template"), source)
        if container is None:
            raise ConfigError(
                f"{source}:{pool.line}: {pool.label}.template: no container", hint="give template.containers[main]"
            )
        _container_args(role, container, source, additional_args=True)
        fields = _kserve_parallelism(role, parallel, pool.get("worker")) if _mapping(parallel) else {}
        _gpu_label(role, pool.get("template"))  # a pool is scheduled by its own template only
        _replicas(role, pool.get("replicas"))
        role.fields = {**role.fields, **fields}
        roles.append(role)
    return roles


def _kserve_parallelism(role: Role, parallel: Node, worker: Node | None) -> dict[str, Entry]:
    """A pool's `parallelism` as KServe's templates pass it to vLLM (kserve/kserve aaac4e2). The fields are
    ParallelismSpec's (pkg/apis/serving/v1alpha2/llm_inference_service_types.go:733-759, v1alpha1 the same: tensor, pipeline, data,
    dataLocal, dataRPCPort, expert). With `worker` and data parallelism (data or dataLocal, types_func.go:84-89)
    KServe picks the worker-data-parallel template (pkg/controller/v1alpha2/llmisvc/config_merge.go:324-351), which
    starts `vllm serve` with --enable-expert-parallel when `expert`, --tensor-parallel-size `tensor`,
    --data-parallel-size `data` (1 unset) and --data-parallel-size-local `dataLocal`
    (config/llmisvcconfig/config-llm-worker-data-parallel.yaml:193-196, decode-worker: 254-257, prefill-worker:
    194-197); the LeaderWorkerSet has data / dataLocal pods (types_func.go:98-108). The single-node templates pass
    --tensor-parallel-size only (config-llm-template.yaml:172, decode: 172, prefill: 173). Read for the templates'
    engine (vLLM); a container that starts another engine gets a note."""
    fields: dict[str, Entry] = {}
    for key, plan_key in (("tensor", "tensor_parallel_size"), ("pipeline", "pipeline_parallel_size")):
        node = parallel.get(key)
        if node is not None:
            fields[plan_key] = node.entry()
    data, local, expert = parallel.get("data"), parallel.get("dataLocal"), parallel.get("expert")
    given = [n for n in (data, local) if n is not None and isinstance(n.value, int) and n.value > 0]
    dp_keys = [f"{n.label.rsplit('.', 1)[-1]} {n.value}" for n in (data, local, expert) if n is not None]
    templated = canonical_engine(role.engine) == canonical_engine(MANIFEST_DEFAULT_ENGINE)
    if _mapping(worker) and given and templated:
        if data is not None:
            fields["data_parallel_size"] = data.entry()
        else:
            fields["data_parallel_size"] = Entry(1, parallel.line, f"{parallel.label}.data (unset: 1)")
        if expert is not None and expert.value is True:
            fields["enable_expert_parallel"] = expert.entry()
        role.nodes = max(1, _count(data) // _count(local))  # the LeaderWorkerSet's pods (GetSize)
    elif dp_keys and any(n.value not in (None, False) for n in (data, local, expert) if n is not None):
        why = (
            f"{role.engine} is started by the container's own command"
            if not templated
            else "without `worker` KServe's single-node template passes only --tensor-parallel-size "
            "(config/llmisvcconfig/config-llm-template.yaml:172)"
        )
        role.notes.append(f"{parallel.label}: " + ", ".join(dp_keys) + f" not given to the engine: {why}")
    pipeline = parallel.get("pipeline")
    if _mapping(worker) and not given and _count(pipeline) > 1:
        role.nodes = _count(pipeline)  # pipeline parallelism: `pipeline` pods (types_func.go:109-111)
    return fields


def _count(node: Node | None) -> int:
    """A positive integer field's value; 1 when unset or not a positive integer."""
    value = node.value if node is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _kserve_isvc(doc: Node, source: str, others: list[Node]) -> list[Role]:
    predictor = doc.path("spec", "predictor")
    if not _mapping(predictor):
        raise ConfigError(f"{source}:{doc.line}: InferenceService has no spec.predictor", hint="give spec.predictor")
    assert predictor is not None
    role = Role(f"{_name(doc, Path(source).stem)}/aggregated", "aggregated", predictor)
    model = predictor.get("model")
    container = model if _mapping(model) else _main_container(predictor, source, "kserve-container")
    if container is None:
        raise ConfigError(
            f"{source}:{predictor.line}: {predictor.label}: no model or container", hint="give spec.predictor.model"
        )
    fmt = container.path("modelFormat", "name")
    if fmt is not None and str(fmt.value).lower() not in KSERVE_LLM_FORMATS:
        raise ConfigError(
            f"{source}:{fmt.line}: {fmt.label}: model format {fmt.value!r} is not an LLM runtime kvplan reads",
            hint="kvplan reads the huggingface (vLLM backend) runtime's arguments",
        )
    _container_args(role, container, source)
    role.args = [(("model" if _norm(k) in ("model_id", "model_name") else k), v, ln, lb) for k, v, ln, lb in role.args]
    _gpu_label(role, predictor.get("nodeSelector"), predictor.get("affinity"))
    _replicas(role, predictor.get("minReplicas"), "minReplicas")
    _replicas(role, predictor.get("maxReplicas"), "maxReplicas")
    return [role]


def _norm(key: str) -> str:
    return key.strip().lower().lstrip("-").replace("-", "_")


def _llm_d(doc: Node, source: str, others: list[Node]) -> list[Role]:
    model = doc.path("modelArtifacts", "name")
    roles = []
    for kind in ("prefill", "decode"):
        pool = doc.get(kind)
        if not _mapping(pool):
            continue
        assert pool is not None
        create = pool.value.get("create", True)
        if create is False:
            continue
        role = Role(f"{Path(source).stem}/{kind}", kind, pool)
        role.model = model.entry() if model is not None else None
        containers = pool.get("containers")
        container = next(iter(containers.list()), None) if containers is not None else None
        if container is None:
            raise ConfigError(f"{source}:{pool.line}: {kind}: no containers", hint=f"give {kind}.containers")
        command = container.value.get("modelCommand", "vllmServe") if isinstance(container.value, dict) else None
        if command not in ("vllmServe", "imageDefault", "custom"):
            raise ConfigError(
                f"{source}:{container.line}: {container.label}.modelCommand: {command!r} is not vllmServe, "
                "imageDefault or custom",
                hint="the chart accepts vllmServe, imageDefault and custom",
            )
        parallel = pool.get("parallelism")
        role.gpus_per_pod = None
        chart_env = _llm_d_env(parallel)
        _container_args(role, container, source, chart_env=chart_env if command == "custom" else None)
        if role.gpus_per_pod is None:  # the chart fills the limit from parallelism unless the values set it
            role.gpus_per_pod = (
                Entry(1, pool.line, f"{pool.label} (the chart's default: 1 GPU)")
                if not _mapping(parallel)
                else Entry(
                    int(chart_env["TP_SIZE"]) * int(chart_env["DP_SIZE_LOCAL"]),
                    parallel.line,
                    f"{parallel.label} (dataLocal x tensor)",
                )
            )
        fields = _llm_d_parallelism(role, parallel, command, bool(doc.value.get("multinode")))
        _gpu_label(role, pool, doc.get("accelerator"))
        _replicas(role, pool.get("replicas"))
        role.fields = {**role.fields, **fields}
        roles.append(role)
    return roles


# llm-d-modelservice's defaults for `<role>.parallelism` (charts/llm-d-modelservice/values.yaml:292-296 decode,
# :521-525 prefill, 3051935), merged by Helm under what the values file gives
LLM_D_PARALLELISM = {"tensor": 1, "data": 1, "dataLocal": 1, "workers": 1}


def _llm_d_value(parallel: Node | None, key: str) -> tuple[int, Node | None]:
    node = parallel.get(key) if _mapping(parallel) else None
    value = node.value if node is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, node
    return LLM_D_PARALLELISM[key], None


def _llm_d_env(parallel: Node | None) -> dict[str, str]:
    """The env the chart gives every container (llm-d-modelservice.parallelismEnv, charts/llm-d-modelservice/
    templates/_helpers.tpl:695-702, after the values' env :486-489): DP_SIZE = data, TP_SIZE = tensor,
    DP_SIZE_LOCAL = dataLocal (the helpers :151-204 with the chart's defaults merged: each its value)."""
    tensor, _ = _llm_d_value(parallel, "tensor")
    data, _ = _llm_d_value(parallel, "data")
    local, _ = _llm_d_value(parallel, "dataLocal")
    return {"DP_SIZE": str(data), "TP_SIZE": str(tensor), "DP_SIZE_LOCAL": str(local)}


def _llm_d_parallelism(role: Role, parallel: Node | None, command: str, multinode: bool) -> dict[str, Entry]:
    """`<role>.parallelism` as llm-d-modelservice passes it (charts/llm-d-modelservice/templates/_helpers.tpl,
    llm-d-incubation/llm-d-modelservice 3051935): modelCommand vllmServe and imageDefault start vLLM with
    --tensor-parallel-size `tensor`, --data-parallel-size `data` and --data-parallel-size-local `dataLocal` (each
    when above 1, :572-586 and :602-616); `custom` gets them only as env TP_SIZE/DP_SIZE/DP_SIZE_LOCAL (read where
    its command uses them, _llm_d_env). With `multinode`, a LeaderWorkerSet of `workers` pods (numWorkers,
    :206-225; templates/decode-lws.yaml:31). The chart has no expert field: EP is the container's
    --enable-expert-parallel."""
    if not _mapping(parallel):
        return {}
    assert parallel is not None
    workers, _ = _llm_d_value(parallel, "workers")
    if multinode and workers > 1:
        role.nodes = workers
    if command == "custom":
        role.notes.append(
            f"{parallel.label}: modelCommand custom: the chart passes parallelism only as env TP_SIZE, DP_SIZE, "
            "DP_SIZE_LOCAL (read where the command uses them)"
        )
        return {}
    if canonical_engine(role.engine) != canonical_engine(MANIFEST_DEFAULT_ENGINE):
        role.notes.append(f"{parallel.label}: not read: {role.engine} does not take the chart's vLLM arguments")
        return {}
    fields: dict[str, Entry] = {}
    for key, plan_key in (("tensor", "tensor_parallel_size"), ("data", "data_parallel_size")):
        _, node = _llm_d_value(parallel, key)
        if node is not None:
            fields[plan_key] = node.entry()
    return fields


def _dynamo(doc: Node, source: str, others: list[Node]) -> list[Role]:
    spec = doc.get("spec")
    services = spec.get("services") if _mapping(spec) else None
    if not _mapping(services):
        raise ConfigError(f"{source}:{doc.line}: DynamoGraphDeployment has no spec.services", hint="give spec.services")
    assert spec is not None and services is not None
    name = _name(doc, Path(source).stem)
    backend = spec.get("backendFramework")
    roles = []
    skipped = []
    for service, node in services.items():
        if not isinstance(node.value, dict):
            continue
        if str(node.value.get("componentType", "")).lower() not in ("worker", "main"):
            skipped.append(service)
            continue
        sub = str(node.value.get("subComponentType") or "").lower()
        kind = sub if sub in ("prefill", "decode") else "aggregated"
        role = Role(f"{name}/{kind}", kind, node)
        if backend is not None:
            role.engine, role.engine_at = str(backend.value), backend
        nodes = node.path("multinode", "nodeCount")
        if nodes is not None and isinstance(nodes.value, int) and nodes.value > 0:
            role.nodes = nodes.value
        container = node.path("extraPodSpec", "mainContainer")
        if not _mapping(container):
            raise ConfigError(
                f"{source}:{node.line}: {node.label}: no extraPodSpec.mainContainer", hint="give the worker's command"
            )
        assert container is not None
        _container_args(role, container, source)
        _gpus_from_resources(role, node)
        _extra_engine_args(role, node, container, others, source)
        _gpu_label(role, node)
        _replicas(role, node.get("replicas"))
        roles.append(role)
    if not roles:
        raise ConfigError(f"{source}:{services.line}: spec.services: no worker service", hint="give a worker service")
    counts: dict[str, int] = {}
    for role in roles:
        counts[role.kind] = counts.get(role.kind, 0) + 1
    for role in roles:  # two services of one role: name them by service
        if counts[role.kind] > 1:
            role.name = f"{name}/{role.at.label.rsplit('.', 1)[-1]}"
    if skipped:
        roles[0].notes.append("services without an engine (not checked): " + ", ".join(skipped))
    return roles


def _extra_engine_args(role: Role, service: Node, container: Node, others: list[Node], source: str) -> None:
    """TensorRT-LLM's `--extra-engine-args FILE`: read from the ConfigMap mounted at FILE's folder when the manifest
    holds it, its keys flattened (`kv_cache_config.dtype`); else a note."""
    path = next((v for k, v, _, _ in role.args if _norm(k) in ("extra_engine_args", "config")), None)
    if not isinstance(path, str):
        return
    role.args = [a for a in role.args if _norm(a[0]) not in ("extra_engine_args", "config")]
    folder, _, filename = path.rpartition("/")
    volume = None
    mounts = container.get("volumeMounts")
    for mount in mounts.list() if mounts is not None else []:
        if isinstance(mount.value, dict) and str(mount.value.get("mountPath", "")).rstrip("/") == folder:
            volume = mount.value.get("name")
    config_map = None
    volumes = service.path("extraPodSpec", "volumes")
    for item in volumes.list() if volumes is not None else []:
        if isinstance(item.value, dict) and item.value.get("name") == volume:
            config_map = (item.value.get("configMap") or {}).get("name")
    for doc in others:
        if doc.value.get("kind") == "ConfigMap" and _name(doc, "") == config_map:
            data = doc.path("data", filename)
            if data is None or not isinstance(data.value, str):
                continue
            from kvplan.sources.yaml_files import load_yaml

            parsed, pnode = load_yaml(f"{source}:{data.label}", data.value)
            if not isinstance(parsed, dict):
                raise ConfigError(
                    f"{source}:{data.line}: {data.label}: expected a mapping of engine arguments",
                    hint="the extra engine arguments are a YAML mapping",
                )
            inner = Node(parsed, pnode, data.label, data.line)
            for key, node in _flatten(inner):  # a block scalar's text starts on the line after its key
                role.args.append((key, node.value, data.line + node.line, node.label))
            role.notes.append(f"engine arguments from ConfigMap {config_map} {filename}")
            return
    role.notes.append(f"--extra-engine-args {path}: not in this file (its settings are not read)")


def _flatten(tree: Node, prefix: str = "") -> list[tuple[str, Node]]:
    """Nested engine arguments as dotted keys (`kv_cache_config.dtype`), each with its node."""
    out: list[tuple[str, Node]] = []
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if isinstance(node.value, dict):
            out.extend(_flatten(node, name + "."))
        else:
            out.append((name, node))
    return out


def _ray_config(cfg: Node, role_name: str, kind: str, source: str) -> Role:
    if not _mapping(cfg):
        raise ConfigError(
            f"{source}:{cfg.line}: {cfg.label}: expected an LLMConfig mapping (a path to a file is not read)",
            hint="write the LLMConfig inline",
        )
    role = Role(role_name, kind, cfg, gpus_note=False)
    role.notes.append("Ray Serve places tensor x pipeline parallel size GPUs per replica")
    engine = cfg.get("llm_engine")
    if engine is not None:
        role.engine, role.engine_at = str(engine.value), engine
    loading = cfg.get("model_loading_config")
    source_node = loading.get("model_source") if _mapping(loading) else None
    model_id = loading.get("model_id") if _mapping(loading) else None
    if source_node is not None and isinstance(source_node.value, str):
        role.model = source_node.entry()
    elif model_id is not None:
        role.model = model_id.entry()
    kwargs = cfg.get("engine_kwargs")
    for key, node in kwargs.items() if _mapping(kwargs) else []:
        role.args.append((key, node.value, node.line, node.label))
    accel = cfg.get("accelerator_type")
    if accel is not None and accel.value:
        role.gpu_label = accel.entry()
    deploy = cfg.get("deployment_config")
    if _mapping(deploy):
        assert deploy is not None
        _replicas(role, deploy.get("num_replicas"), "num_replicas")
        auto = deploy.get("autoscaling_config")
        if _mapping(auto):
            assert auto is not None
            lo, hi = auto.value.get("min_replicas"), auto.value.get("max_replicas")
            role.notes.append(f"replicas {lo}-{hi} ({auto.label}): each replica checked alike")
    return role


def _ray(doc: Node, source: str, others: list[Node]) -> list[Role]:
    if "model_loading_config" in doc.value:  # one LLMConfig
        model_id = doc.path("model_loading_config", "model_id")
        name = str(model_id.value) if model_id is not None else Path(source).stem
        return [_ray_config(doc, f"{name}/aggregated", "aggregated", source)]
    roles = []
    apps = doc.get("applications")
    for app in apps.list() if apps is not None else []:
        args = app.get("args")
        if not _mapping(app) or not _mapping(args):
            continue
        assert args is not None
        app_name = str(app.value.get("name") or Path(source).stem)
        for kind in ("prefill", "decode"):
            cfg = args.get(f"{kind}_config")
            if cfg is not None:
                roles.append(_ray_config(cfg, f"{app_name}/{kind}", kind, source))
        configs = args.get("llm_configs")
        items = configs.list() if configs is not None else []
        for item in items:
            mid = item.path("model_loading_config", "model_id") if _mapping(item) else None
            label = str(mid.value) if mid is not None else item.label
            roles.append(
                _ray_config(
                    item, f"{app_name}/{label}" if len(items) > 1 else f"{app_name}/aggregated", "aggregated", source
                )
            )
    if not roles:
        raise ConfigError(
            f"{source}:{doc.line}: no LLM configs under applications[].args",
            hint="give args.llm_configs or prefill_config/decode_config",
        )
    return roles


# production-stack's vllmConfig keys as its chart renders them (helm/templates/deployment-vllm-multi.yaml:149-197)
PRODUCTION_STACK_FLAGS = {
    "enableChunkedPrefill": "--enable-chunked-prefill",
    "enablePrefixCaching": "--enable-prefix-caching",
    "maxModelLen": "--max-model-len",
    "dtype": "--dtype",
    "tensorParallelSize": "--tensor-parallel-size",
    "maxNumSeqs": "--max-num-seqs",
    "gpuMemoryUtilization": "--gpu_memory_utilization",
    "maxLoras": "--max_loras",
    "runner": "--runner",
    "convert": "--convert",
}


def _production_stack(doc: Node, source: str, others: list[Node]) -> list[Role]:
    specs = doc.path("servingEngineSpec", "modelSpec")
    if specs is None or not isinstance(specs.value, list) or not specs.value:
        raise ConfigError(
            f"{source}:{doc.line}: servingEngineSpec.modelSpec: expected a non-empty list",
            hint="list the models under servingEngineSpec.modelSpec",
        )
    roles = []
    for spec in specs.list():
        if not _mapping(spec):
            raise ConfigError(
                f"{source}:{spec.line}: {spec.label}: expected a mapping", hint="each modelSpec is a mapping"
            )
        kv_role = str(
            spec.value.get("lmcacheConfig", {}).get("kvRole", "")
            if isinstance(spec.value.get("lmcacheConfig"), dict)
            else ""
        )
        kind = {"kv_producer": "prefill", "kv_consumer": "decode"}.get(kv_role, "aggregated")
        label = str(spec.value.get("name") or spec.label)
        role = Role(f"{Path(source).stem}/{label}", kind, spec)
        url = spec.get("modelURL")
        role.model = url.entry() if url is not None else None
        config = spec.get("vllmConfig")
        for key, node in config.items() if _mapping(config) else []:
            flag = PRODUCTION_STACK_FLAGS.get(key)
            if flag is not None:
                role.args.append((flag, node.value, node.line, node.label))
            elif key == "extraArgs":
                words = (
                    [str(v) for v in node.value or []] if isinstance(node.value, list) else shlex.split(str(node.value))
                )
                flags, _ = _flags(words, _at_line(node.line), node.label)
                role.args.extend(flags)
            elif key not in ("v0",):
                role.notes.append(f"{node.label} not interpreted")
        revision = spec.get("modelRevision")
        if revision is not None and revision.value:
            role.args.append(("--revision", revision.value, revision.line, revision.label))
        gpus = spec.get("requestGPU")
        if gpus is not None:
            role.gpus_per_pod = gpus.entry()
        gpu_type = spec.get("requestGPUType")
        if gpu_type is not None and gpu_type.value:
            role.notes.append(f"requestGPUType {gpu_type.value}: a device resource, not a GPU model")
        if kv_role:
            role.notes.append(
                f"lmcacheConfig.kvRole {kv_role}: disaggregation not interpreted (KV held for transfer is not added)"
            )
        _gpu_label(
            role, spec.get("nodeSelectorTerms"), spec.get("affinity"), doc.path("servingEngineSpec", "nodeSelector")
        )
        env, _ = _env(spec)
        others_env = sorted(n for n in env if n.startswith("VLLM_"))
        if others_env:
            role.notes.append("environment not interpreted: " + ", ".join(others_env))
        _replicas(role, spec.get("replicaCount"), "replicaCount")
        roles.append(role)
    return roles


READERS: dict[str, Callable[[Node, str, list[Node]], list[Role]]] = {
    "kserve-llminferenceservice": _kserve_llmisvc,
    "kserve-inferenceservice": _kserve_isvc,
    "llm-d": _llm_d,
    "dynamo": _dynamo,
    "ray": _ray,
    "production-stack": _production_stack,
}


# ------------------------------------------------------------------------------------------- detection


def detect_format(data: Any) -> str | None:
    """The manifest format of one YAML document, None for a kvplan plan (or anything else `load_plan` judges).
    A document with an `apiVersion`/`kind` kvplan does not read raises naming the kind."""
    if not isinstance(data, dict):
        return None
    if "deployments" in data:
        return None
    kind, api = data.get("kind"), data.get("apiVersion")
    if kind is not None or api is not None:
        group = str(api or "").split("/", 1)[0]
        found = KINDS.get((group, str(kind)))
        if found is not None:
            return found
        return "unknown"
    if "servingEngineSpec" in data:
        return "production-stack"
    if "modelArtifacts" in data and ("decode" in data or "prefill" in data):
        return "llm-d"
    if "applications" in data or "model_loading_config" in data or "llm_configs" in data:
        return "ray"
    return None


def load_manifest(
    path: str | Path,
    *,
    gpu: str | None = None,
    model: str | None = None,
    profiles_dir: str | None = None,
    text: str | None = None,
) -> list[Deployment]:
    """Every role of a deployment manifest as a Deployment (named `<manifest name>/<role>`); a ConfigError or
    UsageError naming file:line for anything kvplan cannot read. `gpu` (--gpu-profile) and `model` (--model)
    replace the manifest's; `text`: the file's text when it was read already."""
    source = str(path)
    docs = _documents(path, text)
    found = _manifests(source, docs)
    if not found:
        raise ConfigError(f"{source}: not a deployment manifest kvplan reads", hint=_formats_hint())
    out: list[Deployment] = []
    for fmt, doc in found:
        others = [d for d in docs if d is not doc]
        for role in READERS[fmt](doc, source, others):
            spelling = {k: e.label for k, e in role.fields.items()}
            out.append(
                _deployment(
                    role,
                    source=source,
                    gpu=gpu,
                    model=model,
                    profiles_dir=profiles_dir,
                    fields=role.fields,
                    fields_spelling=spelling,
                )
            )
    names: dict[str, int] = {}
    for dep in out:
        names[dep.name] = names.get(dep.name, 0) + 1
    if any(n > 1 for n in names.values()):
        out = [replace(d, name=f"{d.name}@{d.line}") if names[d.name] > 1 else d for d in out]
    return out


def _formats_hint() -> str:
    return "kvplan check reads plan files and " + ", ".join(FORMATS.values())


def _documents(path: str | Path, text: str | None = None) -> list[Node]:
    if text is None:
        text = read_text(path, "manifest")
    return [
        Node(data, node, "", node.start_mark.line + 1)
        for data, node in load_yaml_documents(path, text)
        if data is not None
    ]


def _manifests(source: str, docs: list[Node]) -> list[tuple[str, Node]]:
    found = []
    skipped = []
    for doc in docs:
        fmt = detect_format(doc.value)
        if fmt == "unknown":
            if doc.value.get("kind") in ("ConfigMap", "Secret", "Service"):  # beside a workload: read by it
                skipped.append(str(doc.value.get("kind")))
                continue
            kind = doc.value.get("kind")
            raise ConfigError(
                f"{source}:{doc.line}: unknown manifest kind {str(kind)!r} (apiVersion {doc.value.get('apiVersion')!r})",
                hint="kvplan check reads " + ", ".join(FORMATS.values()) + " and kvplan plan files",
            )
        if fmt is not None:
            found.append((fmt, doc))
    if not found and skipped:
        raise ConfigError(
            f"{source}:{docs[0].line}: unknown manifest kind {skipped[0]!r}: no workload kvplan reads",
            hint="kvplan check reads " + ", ".join(FORMATS.values()) + " and kvplan plan files",
        )
    return found


def is_manifest(path: str | Path, text: str | None = None) -> bool:
    """Whether `kvplan check` reads the file (or its `text`, read once) as a manifest (else as a plan file)."""
    try:
        docs = _documents(path, text)
    except KvplanError:
        return False  # load_plan reports the problem as it does today
    if len(docs) != 1:
        return bool(docs)
    return detect_format(docs[0].value) is not None


def load_check_file(
    path: str | Path,
    *,
    gpu: str | None = None,
    model: str | None = None,
    profiles_dir: str | None = None,
) -> tuple[list[Deployment], bool]:
    """What `kvplan check FILE` checks: a manifest's roles, else the plan file's deployments; and whether it was
    a manifest. The file is read once (a pipe or `/dev/stdin` can be read only once)."""
    text = read_text(path, "plan file or manifest")
    if is_manifest(path, text):
        return load_manifest(path, gpu=gpu, model=model, profiles_dir=profiles_dir, text=text), True
    return load_plan(path, text=text), False


__all__ = [
    "FORMATS",
    "command_flags",
    "detect_format",
    "is_manifest",
    "load_check_file",
    "load_manifest",
]
