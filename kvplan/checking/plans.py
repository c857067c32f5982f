"""Deployment plans: the `Deployment` that `kvplan check` evaluates, and the loading of plan files.

A plan file is YAML (read with `yaml.SafeLoader` only: no tags, nothing executed) holding a list of
deployments, each a mapping of the keys in `KEYS`; a top-level `defaults:` mapping is merged into each
deployment, `profiles_dir:` names a folder of extra hardware profiles (relative to the plan file) and
top-level `x-...` keys are ignored (a place for YAML anchors, as in docker-compose). Every
problem is one `ConfigError` naming the file, the line and the key, e.g.
`plan.yaml:7: deployments[0]: unknown key 'max_model_length' (did you mean 'max_model_len'?)`.

Engine configs (vLLM, SGLang, Xinference) are mapped onto the same keys by kvplan.checking.engine_configs and built
with `build_deployment`, so both are validated by the same code. Pure Python + PyYAML; no torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kvplan.core.units import MAX_INT, SHORT_NAMES, canonical_dtype, parse_length, parse_size
from kvplan.engines import DEFAULT_ENGINE, canonical_engine
from kvplan.engines.registry import plan_engines, serving_model
from kvplan.engines.vllm import parse_speculative_config, parse_vllm_version
from kvplan.errors import ConfigError, KvplanError
from kvplan.sources.yaml_files import (
    Entry,
    child,
    did_you_mean,
    dotted,
    load_yaml,
    mapping_entries,
    node_line,
    read_text,
)

# The engines a plan may name come from kvplan.engines.registry (`plan_engines()`); kvplan.checking.check sizes
# those with a serving model.

KEYS = (
    "name",
    "model",
    "revision",
    "gpu",
    "gpus",
    "engine",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "max_model_len",
    "max_num_seqs",
    "concurrency",
    "kv_cache_dtype",
    "dtype",
    "gpu_memory_utilization",
    "block_size",
    "max_num_batched_tokens",
    "kv_cache_memory",
    "weights_bytes",
    "vllm_version",
    "assume_llama",
    "hub_weights",
    "quantization",
    "speculative_config",
    "kv_offloading_size",
    "kv_offloading_backend",
    "hicache_ratio",
    "hicache_size",
    "lmcache_max_local_cpu_size",
    "lmcache_max_local_disk_size",
    "lmcache_version",
    "kvbm_cpu_cache_gb",
    "kvbm_disk_cache_gb",
    "host_memory",
    "data_parallel_size",
    "decode_context_parallel_size",
    "enable_expert_parallel",
    "num_redundant_experts",
    "enable_lora",
    "max_loras",
    "max_lora_rank",
    "max_cpu_loras",
    "lora_dtype",
    "lora_target_modules",
    "limit_mm_per_prompt",
    "mamba_full_memory_ratio",
    "max_mamba_cache_size",
    "mamba_ssm_dtype",
    "share_gpu_with",
)
REQUIRED = ("name", "model", "gpu", "max_model_len")
TOP_LEVEL_KEYS = ("deployments", "defaults", "profiles_dir")


@dataclass(frozen=True)
class Deployment:
    """One deployment to check. `None` means "the engine's default". `lines` maps each key given to the line
    it was given on; `spelling` maps a key to the name the source file uses for it (engine configs).

    `max_num_seqs` is the engine's cap on running sequences (vLLM's `--max-num-seqs`, SGLang's
    `--max-running-requests`): what it starts with, never a count of max_model_len requests that must fit
    (vLLM starts when one does: vllm-0.33.0/vllm/v1/core/kv_cache_planning.py:151-195). `concurrency` is that
    requirement, given explicitly: requests of max_model_len that must fit at once."""

    name: str
    model: str
    gpu: str
    max_model_len: int | str | None  # "auto": vLLM's auto-fit
    source: str = "<plan>"
    line: int = 1
    where: str = ""
    engine: str = DEFAULT_ENGINE
    revision: str | None = None
    gpus: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_num_seqs: int | None = None
    concurrency: int | None = None
    kv_cache_dtype: str = "auto"
    dtype: str = "auto"
    gpu_memory_utilization: float | None = None
    block_size: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_memory: int | None = None
    weights_bytes: int | None = None
    quantization: str | None = None  # the engine's online quantization (vLLM's --quantization fp8_per_tensor)
    # speculative decoding as vLLM's --speculative-config JSON (a mapping in a plan file; None: none)
    speculative_config: str | None = None
    vllm_version: str | None = None  # the vLLM release the deployment runs (None: kvplan's default)
    assume_llama: bool = False  # read an unknown model_type llama-like despite signals of another cache
    # whether a config from the HF cache may ask the Hub for its safetensors sizes (kvplan.planning.resolved:
    # True always, False never, None only when nothing local sizes the weights; the CLI's --hub-weights)
    hub_weights: bool | None = None
    # the KV offload tiers (kvplan.engines.offload), as the stacks spell them, and the host RAM per node they must
    # fit in (a size or "auto"; None: the GPU profile's host_memory_bytes, else unchecked)
    kv_offloading_size: float | None = None  # vLLM: GiB in total across the workers
    kv_offloading_backend: str | None = None  # vLLM: native (default) or lmcache
    hicache_ratio: float | None = None  # SGLang
    hicache_size: float | None = None  # SGLang: GB per rank
    lmcache_max_local_cpu_size: float | None = None  # LMCache: GiB per rank
    lmcache_max_local_disk_size: float | None = None  # LMCache: GiB per rank
    lmcache_version: str | None = None
    kvbm_cpu_cache_gb: float | None = None  # Dynamo KVBM: GB in total across the workers
    kvbm_disk_cache_gb: float | None = None
    host_memory: int | str | None = None
    # the parallelism beyond TP x PP (kvplan.engines.serving.Layout; vLLM's spellings)
    data_parallel_size: int = 1
    decode_context_parallel_size: int = 1
    enable_expert_parallel: bool = False
    num_redundant_experts: int = 0
    # LoRA serving (kvplan.planning.recommend: the `lora` budget row); None: the engine's default / not given
    enable_lora: bool = False
    max_loras: int | None = None
    max_lora_rank: int | None = None
    max_cpu_loras: int | None = None
    lora_dtype: str | None = None
    lora_target_modules: str | None = None  # comma-separated PEFT names, or all
    limit_mm_per_prompt: str | None = None  # vLLM's JSON object (a plan's mapping is written as one)
    # SGLang's split of a Mamba / linear-attention hybrid's budget (kvplan.engines.sglang.sglang_mamba_pool)
    mamba_full_memory_ratio: float | None = None
    max_mamba_cache_size: int | None = None
    mamba_ssm_dtype: str | None = None
    # the deployments of the same plan already running on this one's GPUs (kvplan.checking.check: their memory is
    # in use when it starts); `gpu_used_by_others` is what they hold per GPU, filled in by check
    share_gpu_with: tuple[str, ...] = ()
    gpu_used_by_others: int = 0
    profiles_dir: str | None = None
    notes: tuple[str, ...] = ()
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    spelling: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def offload(self) -> Any:
        """The offload settings as one kvplan.engines.offload.Offload, or None when the plan sets none."""
        from kvplan.engines.offload import Offload

        o = Offload(
            kv_offloading_size=self.kv_offloading_size,
            kv_offloading_backend=self.kv_offloading_backend or "native",
            hicache_ratio=self.hicache_ratio,
            hicache_size=self.hicache_size,
            lmcache_cpu_size=self.lmcache_max_local_cpu_size,
            lmcache_disk_size=self.lmcache_max_local_disk_size,
            lmcache_version=self.lmcache_version,
            kvbm_cpu_cache_gb=self.kvbm_cpu_cache_gb,
            kvbm_disk_cache_gb=self.kvbm_disk_cache_gb,
        )
        return o if o.given or self.lmcache_version is not None or self.kv_offloading_backend else None

    @property
    def gpu_count(self) -> int:
        """GPUs the deployment has: `gpus`, else tensor x pipeline x data parallel size."""
        return self.gpus or self.tensor_parallel_size * self.pipeline_parallel_size * self.data_parallel_size

    @property
    def concurrency_key(self) -> str | None:
        """The key that sets the required concurrency: `concurrency`; else `max_num_seqs` for an engine whose
        sequence setting reserves each sequence's whole context at start (ServingModel.reserves_seqs: llama.cpp's
        `-np` slots); else None (one request)."""
        if self.concurrency is not None:
            return "concurrency"
        serving = serving_model(canonical_engine(self.engine))
        if self.max_num_seqs is not None and serving is not None and serving.reserves_seqs:
            return "max_num_seqs"
        return None

    @property
    def required_concurrency(self) -> int:
        """Requests of max_model_len that must fit at once (`concurrency_key`'s value), else 1: what an engine needs
        to start."""
        key = self.concurrency_key
        return 1 if key is None else int(getattr(self, key))

    def key_name(self, key: str) -> str:
        """The key as the source file spells it (`max-model-len` in a vLLM config)."""
        return self.spelling.get(key, key)

    def at(self, key: str | None = None) -> str:
        """`file:line: where.key` for messages about this deployment (or one of its keys)."""
        line = self.lines.get(key, self.line) if key else self.line
        label = self.where
        if key:
            name = self.key_name(key)
            if name.startswith("--"):  # given on the command line, not in the file
                label = name
            else:
                label = f"{label}.{name}" if label else f"key '{name}'"
        return f"{self.source}:{line}: {label}" if label else f"{self.source}:{line}"


# ------------------------------------------------------------------------------------------- YAML with lines


# ------------------------------------------------------------------------------------------- plan files


def load_plan(path: str | Path, *, text: str | None = None) -> list[Deployment]:
    """Read and validate a plan file; every deployment fully typed, or one ConfigError naming file:line: key.
    `text`: the file's text when the caller read it already (a pipe can be read once)."""
    if text is None:
        text = read_text(path)
    data, node = load_yaml(path, text)
    if data is None:
        raise ConfigError(f"{path}: file is empty", hint="a plan holds `deployments:`, a list of deployments")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:{node_line(node)}: expected a mapping with `deployments:` at the top level, got {_kind(data)}",
            hint="start the file with `deployments:`",
        )
    for key in data:
        if isinstance(key, str) and key.startswith("x-"):  # extension keys, e.g. to hold YAML anchors
            continue
        if not isinstance(key, str) or key not in TOP_LEVEL_KEYS:
            line = _key_line(node, key)
            raise ConfigError(
                f"{path}:{line}: unknown top-level key '{key}'{did_you_mean(str(key), TOP_LEVEL_KEYS)}",
                hint="a plan file has: " + ", ".join(TOP_LEVEL_KEYS),
            )
    if "deployments" not in data:
        raise ConfigError(
            f"{path}:1: missing required key 'deployments'", hint="list the deployments under `deployments:`"
        )
    profiles_dir = data.get("profiles_dir")
    if profiles_dir is not None:
        if not isinstance(profiles_dir, str) or not profiles_dir.strip() or "\0" in profiles_dir:
            raise ConfigError(
                f"{path}:{_key_line(node, 'profiles_dir')}: profiles_dir: expected a folder path, "
                f"got {_show(profiles_dir)}",
                hint="write e.g. profiles_dir: ./profiles",
            )
        profiles_dir = (
            str((Path(path).parent / Path(profiles_dir).expanduser()).resolve())
            if not Path(profiles_dir).expanduser().is_absolute()
            else str(Path(profiles_dir).expanduser())
        )

    defaults: dict[str, Entry] = {}
    if data.get("defaults") is not None:
        dnode = child(node, "defaults")
        if not isinstance(data["defaults"], dict):
            raise ConfigError(
                f"{path}:{node_line(dnode)}: defaults: expected a mapping of deployment keys, got "
                f"{_kind(data['defaults'])}",
                hint="e.g. defaults: {gpu: h100-sxm-80gb, engine: vllm}",
            )
        defaults = mapping_entries(data["defaults"], dnode, lambda k: f"defaults.{k}", node_line(dnode))
        allowed = tuple(k for k in KEYS if k != "name")
        for key, entry in defaults.items():
            if key not in allowed:
                raise ConfigError(
                    f"{path}:{entry.line}: defaults: unknown key '{key}'{did_you_mean(key, allowed)}",
                    hint="allowed keys: " + ", ".join(allowed),
                )

    deployments = data["deployments"]
    dnode = child(node, "deployments")
    if not isinstance(deployments, list) or not deployments:
        raise ConfigError(
            f"{path}:{node_line(dnode)}: deployments: expected a non-empty list of deployments, got "
            f"{_kind(deployments)}",
            hint="write `deployments:` then `- name: ...` items",
        )
    items = dnode.value if isinstance(dnode, yaml.SequenceNode) else [None] * len(deployments)
    out: list[Deployment] = []
    names: dict[str, int] = {}
    for index, (item, item_node) in enumerate(zip(deployments, items, strict=True)):
        where = f"deployments[{index}]"
        line = node_line(item_node, node_line(dnode))
        if not isinstance(item, dict):
            raise ConfigError(
                f"{path}:{line}: {where}: expected a mapping of keys, got {_kind(item)}",
                hint="each deployment is a mapping: name, model, gpu, max_model_len, ...",
            )
        entries = mapping_entries(item, item_node, functools.partial(dotted, where), line)
        for key, entry in entries.items():
            if key not in KEYS:
                raise ConfigError(
                    f"{path}:{entry.line}: {where}: unknown key '{key}'{did_you_mean(key, KEYS)}",
                    hint="allowed keys: " + ", ".join(KEYS),
                )
        merged = {**defaults, **entries}
        for key in REQUIRED:
            if key not in merged or merged[key].value is None:
                raise ConfigError(
                    f"{path}:{line}: {where}: missing required key '{key}'",
                    hint="each deployment needs " + ", ".join(REQUIRED),
                )
        dep = build_deployment(
            merged, source=str(path), line=line, where=where, profiles_dir=profiles_dir, base=Path(path).parent
        )
        if dep.name in names:
            raise ConfigError(
                f"{path}:{merged['name'].line}: {where}.name: duplicate deployment name '{dep.name}' "
                f"(also deployments[{names[dep.name]}])",
                hint="give each deployment its own name",
            )
        names[dep.name] = index
        out.append(dep)
    return out


def _key_line(node: yaml.Node | None, key: Any) -> int:
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                return key_node.start_mark.line + 1
    return node_line(node)


# ------------------------------------------------------------------------------------------- typed values


@dataclass(frozen=True)
class _Reader:
    """Typed readers of a deployment's plan-key entries (values as written), each error naming file:line: key.
    `lenient` also takes numbers written as strings (engine configs are command-line arguments)."""

    entries: dict[str, Entry]
    source: str
    lenient: bool
    base: Path | None

    def get(self, key: str, parse: Callable[[Entry], Any], default: Any = None) -> Any:
        entry = self.entries.get(key)
        if entry is None or entry.value is None:
            return default
        return parse(entry)

    def fail(self, entry: Entry, expected: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            f"{self.source}:{entry.line}: {entry.label}: expected {expected}, got {_show(entry.value)}",
            hint=hint or "fix the value in the file",
        )

    def text(self, entry: Entry) -> str:
        value = entry.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            raise self.fail(entry, "a non-empty string")
        if not isinstance(entry.value, str) and not self.lenient:
            raise self.fail(entry, "a string (quote it)")
        return str(entry.value).strip()

    def integer(self, entry: Entry) -> int:
        value = entry.value
        if self.lenient and isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_INT:
            raise self.fail(entry, "a positive integer", "write e.g. 2")
        return value

    def whole(self, entry: Entry) -> int:
        """A count that may be 0 (num_redundant_experts)."""
        value = entry.value
        if self.lenient and isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
            raise self.fail(entry, "a whole number (0 or more)", "write e.g. 32")
        return value

    def boolean(self, entry: Entry) -> bool:
        value = entry.value
        if self.lenient and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise self.fail(entry, "true or false", "write true or false")
        return value

    def names(self, entry: Entry) -> str:
        """A list of names (`[q_proj, v_proj]`) or one string of them (`q_proj,v_proj`, `q_proj v_proj`), as one
        comma-separated string."""
        value = entry.value
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            return ",".join(v.strip() for v in value)
        if isinstance(value, str) and value.strip():
            return ",".join(value.replace(",", " ").split())
        raise self.fail(entry, "a list of module names", "write e.g. [q_proj, v_proj] or all")

    def deployment_names(self, entry: Entry) -> tuple[str, ...]:
        """share_gpu_with: a list of the plan's deployment names (or one name), each once."""
        value = entry.value
        if isinstance(value, str) and value.strip():
            value = value.replace(",", " ").split()
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(dict.fromkeys(v.strip() for v in value))
        raise self.fail(entry, "a list of deployment names", "write e.g. [llama] (deployments listed above this one)")

    def mm_limits(self, entry: Entry) -> str:
        """vLLM's limit_mm_per_prompt: a mapping (`{image: 0}`) or its JSON text, as JSON text."""
        import json

        value = entry.value
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if isinstance(value, dict) and all(
            (isinstance(v, int) and not isinstance(v, bool) and v >= 0) or isinstance(v, dict) for v in value.values()
        ):
            return json.dumps(value)
        raise self.fail(entry, "a mapping of modality to item count", "write e.g. {image: 0} or '{\"image\": 2}'")

    def length_or_auto(self, entry: Entry) -> int | str:
        if isinstance(entry.value, str) and entry.value.strip().lower() == "auto":
            return "auto"  # vLLM's auto-fit (kvplan.planning.recommend)
        return self.length(entry)

    def length(self, entry: Entry) -> int:
        value = entry.value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail(entry, "a positive token count", "write e.g. 32768 or 32k")
        try:
            tokens = parse_length(value)
        except KvplanError:
            raise self.fail(entry, "a positive token count", "write e.g. 32768 or 32k") from None
        if tokens > MAX_INT:
            raise self.fail(entry, f"at most {MAX_INT:,} tokens", "write e.g. 32768 or 32k")
        return tokens

    def _lenient_float(self, entry: Entry) -> Any:
        """The entry's value; a string read as a float when the reader is lenient (an engine's own config)."""
        value = entry.value
        if self.lenient and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        return value

    def fraction(self, entry: Entry) -> float:
        value = self._lenient_float(entry)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise self.fail(entry, "a fraction in (0, 1]", "write e.g. 0.9")
        return float(value)

    def number(self, entry: Entry, example: str = "100") -> float:
        value = self._lenient_float(entry)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise self.fail(entry, "a positive number", f"write e.g. {example}")
        return float(value)

    def ratio(self, entry: Entry) -> float:
        return self.number(entry, "0.9")

    def backend(self, entry: Entry) -> str:
        from kvplan.engines.offload import BACKENDS

        value = self.text(entry).lower()
        if value not in BACKENDS:
            raise self.fail(entry, "one of " + ", ".join(BACKENDS), "write native or lmcache")
        return value

    def size_or_auto(self, entry: Entry) -> int | str:
        if isinstance(entry.value, str) and entry.value.strip().lower() == "auto":
            return "auto"  # this machine's MemTotal or cgroup limit (kvplan.sources.host)
        return self.size(entry)

    def size(self, entry: Entry) -> int:
        value = entry.value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail(entry, "a memory size", "write e.g. 40GiB, 54.5GB or a number of bytes")
        try:
            return parse_size(value)
        except KvplanError:
            raise self.fail(entry, "a memory size", "write e.g. 40GiB, 54.5GB or a number of bytes") from None

    def engine(self, entry: Entry) -> str:
        value = canonical_engine(self.text(entry))
        allowed = plan_engines()
        if value not in allowed:
            raise ConfigError(
                f"{self.source}:{entry.line}: {entry.label}: unknown engine {_show(entry.value)}"
                f"{did_you_mean(value, allowed)}",
                hint="use one of: " + ", ".join(allowed),
            )
        return value

    def kv_dtype(self, entry: Entry) -> str:
        value = self.text(entry).lower()
        if value == "auto":
            return value
        try:
            canonical_dtype(value, what="kv dtype")
        except KvplanError:
            raise self.fail(entry, "a KV-cache dtype (auto, fp8, fp8_e4m3, fp8_e5m2, bf16, fp16, ...)") from None
        return value

    def model_dtype(self, entry: Entry) -> str:
        value = self.text(entry).lower()
        if value == "auto":
            return value
        try:
            name = canonical_dtype(value)  # the one table of dtype spellings (kvplan.core.units)
        except KvplanError:
            name = None
        if name not in SHORT_NAMES:  # compute dtypes only
            raise self.fail(entry, "a model dtype (auto, bfloat16, float16, float32)")
        return SHORT_NAMES[name]

    def release(self, entry: Entry) -> str:
        value = self.text(entry)
        try:
            parse_vllm_version(value)
        except KvplanError:
            raise self.fail(
                entry, 'a vLLM version such as "0.19.1" (quoted)', 'write e.g. vllm_version: "0.33.0"'
            ) from None
        return value

    def speculative(self, entry: Entry) -> str:
        """A speculative-decoding setup: a mapping (plan files, vLLM YAML configs) or its JSON string (command lines),
        in vLLM's keys (method, num_speculative_tokens, model); kept as canonical JSON."""
        import json

        try:
            parse_speculative_config(entry.value)
        except KvplanError as exc:
            raise self.fail(
                entry,
                "a speculative config: a mapping with method and num_speculative_tokens (and model for a draft)",
                f"write e.g. {{method: mtp, num_speculative_tokens: 3}} ({exc})",
            ) from None
        value = json.loads(entry.value) if isinstance(entry.value, str) else entry.value
        return json.dumps(value, sort_keys=True)

    def model(self, entry: Entry) -> str:
        value = self.text(entry)
        if self.base is not None and value.startswith(("./", "../")):
            value = str((self.base / value).resolve())
        return value

    def name(self, entry: Entry) -> str:
        value = self.text(entry)
        if len(value) > 200 or any(ch in value for ch in "\n\r\t"):
            raise self.fail(entry, "a short one-line name")
        return value


def build_deployment(
    entries: dict[str, Entry],
    *,
    source: str,
    line: int,
    where: str,
    profiles_dir: str | None = None,
    base: Path | None = None,
    lenient: bool = False,
    notes: tuple[str, ...] = (),
    spelling: dict[str, str] | None = None,
) -> Deployment:
    """A Deployment from plan-key entries (values as written). `lenient` also takes numbers written as strings
    (engine configs are command-line arguments); plan files are typed strictly."""
    r = _Reader(entries, source, lenient, base)
    get = r.get
    dep = Deployment(
        name=get("name", r.name, ""),
        model=get("model", r.model, ""),
        gpu=get("gpu", r.text, ""),
        max_model_len=get("max_model_len", r.length_or_auto),
        source=source,
        line=line,
        where=where,
        engine=get("engine", r.engine, DEFAULT_ENGINE),
        revision=get("revision", r.text),
        gpus=get("gpus", r.integer),
        tensor_parallel_size=get("tensor_parallel_size", r.integer, 1),
        pipeline_parallel_size=get("pipeline_parallel_size", r.integer, 1),
        max_num_seqs=get("max_num_seqs", r.integer),
        concurrency=get("concurrency", r.integer),
        kv_cache_dtype=get("kv_cache_dtype", r.kv_dtype, "auto"),
        dtype=get("dtype", r.model_dtype, "auto"),
        gpu_memory_utilization=get("gpu_memory_utilization", r.fraction),
        block_size=get("block_size", r.integer),
        max_num_batched_tokens=get("max_num_batched_tokens", r.integer),
        kv_cache_memory=get("kv_cache_memory", r.size),
        weights_bytes=get("weights_bytes", r.size),
        quantization=get("quantization", r.text),
        speculative_config=get("speculative_config", r.speculative),
        vllm_version=get("vllm_version", r.release),
        assume_llama=get("assume_llama", r.boolean, False),
        hub_weights=get("hub_weights", r.boolean),
        kv_offloading_size=get("kv_offloading_size", r.number),
        kv_offloading_backend=get("kv_offloading_backend", r.backend),
        hicache_ratio=get("hicache_ratio", lambda e: r.number(e, "2")),
        hicache_size=get("hicache_size", r.number),
        lmcache_max_local_cpu_size=get("lmcache_max_local_cpu_size", r.number),
        lmcache_max_local_disk_size=get("lmcache_max_local_disk_size", r.number),
        lmcache_version=get("lmcache_version", r.text),
        kvbm_cpu_cache_gb=get("kvbm_cpu_cache_gb", r.number),
        kvbm_disk_cache_gb=get("kvbm_disk_cache_gb", r.number),
        host_memory=get("host_memory", r.size_or_auto),
        data_parallel_size=get("data_parallel_size", r.integer, 1),
        decode_context_parallel_size=get("decode_context_parallel_size", r.integer, 1),
        enable_expert_parallel=get("enable_expert_parallel", r.boolean, False),
        num_redundant_experts=get("num_redundant_experts", r.whole, 0),
        enable_lora=get("enable_lora", r.boolean, False),
        max_loras=get("max_loras", r.integer),
        max_lora_rank=get("max_lora_rank", r.integer),
        max_cpu_loras=get("max_cpu_loras", r.integer),
        lora_dtype=get("lora_dtype", r.text),
        lora_target_modules=get("lora_target_modules", r.names),
        limit_mm_per_prompt=get("limit_mm_per_prompt", r.mm_limits),
        mamba_full_memory_ratio=get("mamba_full_memory_ratio", r.ratio),
        max_mamba_cache_size=get("max_mamba_cache_size", r.integer),
        mamba_ssm_dtype=get("mamba_ssm_dtype", r.text),
        share_gpu_with=get("share_gpu_with", r.deployment_names, ()),
        profiles_dir=profiles_dir,
        notes=notes,
        lines={k: e.line for k, e in entries.items()},
        spelling=dict(spelling or {}),
    )
    need = dep.tensor_parallel_size * dep.pipeline_parallel_size * dep.data_parallel_size
    if dep.gpus is not None and dep.gpus < need:
        entry = entries["gpus"]
        dp = dep.data_parallel_size
        raise ConfigError(
            f"{source}:{entry.line}: {entry.label}: {dep.gpus} GPUs cannot hold tensor_parallel_size "
            f"{dep.tensor_parallel_size} x pipeline_parallel_size {dep.pipeline_parallel_size}"
            + (f" x data_parallel_size {dp}" if dp > 1 else "")
            + f" = {need}",
            hint=f"set gpus to at least {need}",
        )
    return dep


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
