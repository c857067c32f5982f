"""Engine configs users already have, read as `Deployment`s: a vLLM `--config` YAML, SGLang server arguments
(YAML or JSON) and Xinference launch options (YAML or JSON): every engine whose registry entry has a config
vocabulary (kvplan.engines.entry.ConfigVocabulary, kept in the engine's module).

Keys are matched in the engine's own spellings (`max-model-len` and `max_model_len` alike) and mapped onto
the plan keys of kvplan.checking.plans, then validated by the same code as a plan file. Keys that kvplan does not
model are never an error: those known to change memory use (`enforce-eager`, `quantization`, ...) give a
note saying the figures leave them out, the others a note that they were ignored. Loaded with the safe
YAML loader only. Pure Python; nothing here is specific to one engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvplan.checking.plans import Deployment, build_deployment
from kvplan.engines import canonical_engine
from kvplan.engines.entry import ConfigVocabulary
from kvplan.engines.registry import config_kinds, config_vocabulary, detect_config_kind
from kvplan.errors import ConfigError, UsageError
from kvplan.sources.yaml_files import Entry, load_yaml, node_line, read_text


def normalise(key: Any) -> str:
    return str(key).strip().lower().lstrip("-").replace("-", "_")


@dataclass
class MappedArguments:
    """Engine arguments mapped onto plan keys: the entries, how the source spells each key, and what was left."""

    entries: dict[str, Entry] = field(default_factory=dict)
    spelling: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unmodelled: list[str] = field(default_factory=list)  # known to change memory use, not modelled
    ignored: list[str] = field(default_factory=list)  # no effect on KV memory
    repeated: list[str] = field(default_factory=list)  # given again later (`last_wins`)


def map_arguments(
    vocabulary: ConfigVocabulary,
    items: list[tuple[str, Any, int, str]],
    *,
    source: str,
    gpus: int | None = None,
    last_wins: bool = False,
) -> MappedArguments:
    """Map engine arguments `(key as written, value, line, label)` onto plan keys through the engine's
    vocabulary (kvplan.engines.entry.ConfigVocabulary): an engine config file's keys, or the flags of a command
    line in a deployment manifest. A key given twice is an error, unless `last_wins` (a command line: the
    engine's argument parser keeps the later value, and a note says so)."""
    out = MappedArguments()
    mapping, memory = vocabulary.keys, vocabulary.memory_keys
    for raw_key, value, line, label in items:
        key = normalise(raw_key)
        plan_key = mapping.get(key)
        if plan_key is None:
            (out.unmodelled if key in memory else out.ignored).append(raw_key)
            continue
        if plan_key in out.entries and out.entries[plan_key].value is not None:
            if not last_wins:
                raise ConfigError(
                    f"{source}:{line}: key '{raw_key}' repeats '{out.spelling[plan_key]}'",
                    hint="give each setting once",
                )
            out.repeated.append(raw_key)
            out.notes.append(f"{raw_key} given twice: the later value {value!r} is used (as the engine's parser does)")
        if plan_key == "engine" and value is not None:
            value = canonical_engine(value)  # e.g. Xinference's model_engine: vLLM, SGLang, llama.cpp, ...
        if plan_key == "num_redundant_experts":  # vLLM's --eplb-config: JSON (or a mapping) holding the count
            value = _redundant_experts(value, source, line, raw_key)
        if plan_key == "gpus" and str(value).strip().lower() == "auto":
            out.notes.append(f"{raw_key}: auto: planned on {gpus or 1} GPU(s) (pass --gpus)")
            continue
        out.entries[plan_key] = Entry(value, line, label)
        out.spelling[plan_key] = raw_key
    if vocabulary.combine is not None:  # plan keys several engine keys make (SGLang's speculative_* options)
        where = {normalise(raw_key): (raw_key, line, label) for raw_key, _, line, label in items}
        for plan_key, (value, key) in vocabulary.combine({normalise(k): v for k, v, _, _ in items}).items():
            raw_key, line, label = where[key]
            out.entries[plan_key] = Entry(value, line, label)
            out.spelling[plan_key] = raw_key
            used = {k for k in where if k.startswith(key.split("_")[0] + "_")}
            out.unmodelled = [k for k in out.unmodelled if normalise(k) not in used]
    return out


def _redundant_experts(value: Any, source: str, line: int, key: str) -> Any:
    """`num_redundant_experts` of vLLM's `eplb_config` (vllm-0.33.0/vllm/config/parallel.py:77, a JSON string on
    the command line or a mapping in a config file); 0 when it names none."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(
                f"{source}:{line}: key '{key}': expected JSON such as "
                + '{"num_redundant_experts": 32}'
                + f", got {value!r}",
                hint="write the EPLB config as JSON",
            ) from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}:{line}: key '{key}': expected a mapping with num_redundant_experts",
            hint='write e.g. {"num_redundant_experts": 32}',
        )
    return value.get("num_redundant_experts", 0)


def detect_kind(keys: list[str]) -> str:
    """Guess the engine from the keys (each config vocabulary's `detect`, the most specific first)."""
    return detect_config_kind({normalise(k) for k in keys})


def load_engine_config(
    path: str | Path,
    *,
    kind: str | None = None,
    gpu: str | None = None,
    gpus: int | None = None,
    model: str | None = None,
    profiles_dir: str | None = None,
) -> Deployment:
    """Read one engine config as a Deployment. `gpu` is required (configs do not name hardware); `model` and
    `gpus` override the file's."""
    text = read_text(path, "engine config")
    data, node = load_yaml(path, text)
    if data is None:
        raise ConfigError(f"{path}: file is empty", hint="pass an engine config with at least the model")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:{node_line(node)}: expected a mapping of engine arguments at the top level",
            hint="an engine config is a YAML/JSON mapping such as `max-model-len: 32768`",
        )
    notes: list[str] = []
    if kind is None:
        kind = detect_kind([str(k) for k in data])
        notes.append(f"read as {kind} arguments (pass --engine {'|'.join(config_kinds())} to choose)")
    kind = kind.lower()
    vocabulary = config_vocabulary(kind) if kind in config_kinds() else None
    if vocabulary is None:
        raise UsageError(
            f"--engine: unknown engine config kind {kind!r}", hint="use one of: " + ", ".join(config_kinds())
        )
    if not gpu:
        raise UsageError(
            "--gpu-profile (--gpu) is required with --engine-config (an engine config does not name the GPU)",
            hint="pass e.g. --gpu-profile h100-sxm-80gb, or auto for the local GPU (see `kvplan profiles list`)",
        )

    lines: dict[str, int] = {}
    if node is not None and hasattr(node, "value"):
        for key_node, _ in node.value:
            lines.setdefault(str(getattr(key_node, "value", "")), key_node.start_mark.line + 1)

    items = [(str(raw_key), value, lines.get(str(raw_key), 1), f"key '{raw_key}'") for raw_key, value in data.items()]
    mapped = map_arguments(vocabulary, items, source=str(path), gpus=gpus)
    entries, spelling = mapped.entries, mapped.spelling
    notes.extend(mapped.notes)
    unmodelled, ignored = mapped.unmodelled, mapped.ignored
    if not vocabulary.names_engine:  # the file's kind is the engine that runs it
        entries["engine"] = Entry(kind, 1, "--engine")
        spelling["engine"] = "--engine"
    if vocabulary.tp_from_gpus and "tensor_parallel_size" not in entries and "gpus" in entries:
        entries["tensor_parallel_size"] = entries["gpus"]  # e.g. Xinference runs vLLM/SGLang with TP = n_gpu
        spelling["tensor_parallel_size"] = spelling["gpus"]
    for key, value in (("model", model), ("gpu", gpu), ("gpus", gpus)):
        if value is not None:
            if key in entries and entries[key].value not in (None, value) and key == "model":
                notes.append(f"--model {value} replaces the file's {spelling[key]} {entries[key].value}")
            entries[key] = Entry(value, 1, f"--{key}")
            spelling[key] = f"--{key}"
    if model is None and vocabulary.model_ids is not None and "model" in entries:
        candidates = vocabulary.model_ids({normalise(k): v for k, v in data.items()})
        if candidates:
            from kvplan.sources.catalog import catalog_path

            hub_id = next((c for c in candidates if catalog_path(c) is not None), candidates[0])
            notes.append(f"{spelling['model']} {entries['model'].value} is the registry name of {hub_id}")
            entries["model"] = Entry(hub_id, entries["model"].line, entries["model"].label)
    if "model" not in entries or entries["model"].value is None:
        raise ConfigError(
            f"{path}: the engine config names no model", hint="pass --model (a Hub id, catalog name or path)"
        )
    entries["name"] = Entry(Path(path).name, 1, "name")
    if unmodelled:
        notes.append("not modelled, affect memory: " + ", ".join(unmodelled))
    if ignored:
        notes.append("ignored (no effect on KV memory): " + ", ".join(ignored))
    base = Path(path).parent if model is None else None
    return build_deployment(
        entries,
        source=str(path),
        line=1,
        where="",
        profiles_dir=profiles_dir,
        base=base,
        lenient=True,
        notes=tuple(notes),
        spelling=spelling,
    )
