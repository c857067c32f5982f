"""Load a model's `config.json` from a MODEL string: a file, a folder, a catalog name, or a Hub repo id; or the
config a llama.cpp `.gguf` file's header describes (kvplan.sources.gguf: a `.gguf` path, a file that starts with
the GGUF magic, or a folder without config.json that holds one model GGUF).

Resolution order: an existing path, then the built-in catalog (`kvplan.sources.catalog`) and its aliases, then
the Hugging Face Hub (`kvplan.sources.hub`: local cache first, then the network unless offline); when the Hub
cannot give a quantized build's config (`...-FP8`, `-AWQ`, `-NVFP4`), the catalog model it was built from is read
for the layout, its weights left uncounted. Every substitution is said in `LoadedConfig.notes`. The config is returned raw (nested
text configs are resolved later, by `kvplan.core.config.text_config`). A config is data: `auto_map` is
never followed, and neither transformers nor remote code is imported or run here. `huggingface_hub` is
imported only on the Hub path, so a local file does not pay for it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvplan.errors import ConfigError, HubError, UsageError
from kvplan.sources import catalog, gguf, hub

CONFIG_NAME = "config.json"
MAX_CONFIG_BYTES = 32 * 1024 * 1024  # real configs are < 1 MB; anything this big is a weights file or worse
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


@dataclass(frozen=True)
class LoadedConfig:
    """A raw config.json and where it came from.

    `source` is "file", "folder", "catalog", "hf-cache" (the local HF cache), "gguf" (a llama.cpp GGUF file) or "hub" (downloaded now).
    `folder` is where weight files may lie: the model folder, the folder of a file named config.json, or the
    HF cache snapshot; None for the catalog. `revision` is the commit of a Hub snapshot, else None. `notes` say
    which config stood in for the name given (a catalog alias or a quantized build's base model);
    `weights_unknown`: that config's weights are not this model's (a quantized build's quantization is unknown).
    `weights_bytes`: the weights' bytes as stored, where the source itself says them (a GGUF file's tensors).
    """

    config: dict[str, Any]
    name: str
    source: str
    path: Path | None
    folder: Path | None
    revision: str | None
    notes: tuple[str, ...] = ()
    weights_unknown: bool = False
    weights_bytes: int | None = None


def load_model_config(
    model: str,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    token: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedConfig:
    """Find and read the config.json that MODEL names.

    `revision` (branch, tag or commit) applies to Hub repos only, and skips the catalog. `offline=None` follows
    HF_HUB_OFFLINE. `token=None` lets huggingface_hub use HF_TOKEN or the stored login. `trust_remote_code` is
    accepted for symmetry with transformers, but nothing here ever runs code: the config is only read as JSON.
    """
    del trust_remote_code  # reading JSON never needs it; see the docstring
    if not model.strip():
        raise UsageError("no model given", hint="pass a config.json, a model folder, a catalog name or a Hub id")
    path = Path(model).expanduser()
    if path.exists():
        return _load_path(model, path, revision)
    if revision is None:
        found = _catalog_match(model) or _alias_match(model)
        if found is not None:
            return found
    repo_id = _repo_id(model)
    try:
        return _load_hub(repo_id, revision=revision, offline=offline, token=token)
    except HubError as exc:
        build = catalog.quantized_build(model) if revision is None else None
        if build is None:
            raise
        return _quantized_build(model, *build, why=exc.message)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a config.json (or a folder's config.json) strictly: a UTF-8 JSON object, else a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        path = _folder_config(str(path), path)
    text = _decode(_read_bytes(path), path)
    return _parse(text, path)


def _load_path(model: str, path: Path, revision: str | None) -> LoadedConfig:
    if revision is not None:
        raise UsageError(
            f"a revision applies only to Hub repos, and `{model}` is a local path",
            hint="drop --revision, or pass the Hub repo id",
        )
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            found = gguf.gguf_in_folder(path)
            if found is not None:
                return _load_gguf(model, found)
        config_path = _folder_config(model, path)
        return LoadedConfig(read_config_file(config_path), model, "folder", config_path, path, None)
    if path.suffix.lower() == ".gguf" or gguf.is_gguf(path):
        return _load_gguf(model, path)
    folder = path.parent if path.name == CONFIG_NAME else None
    return LoadedConfig(read_config_file(path), model, "file", path, folder, None)


def _load_gguf(model: str, path: Path) -> LoadedConfig:
    """A GGUF file read from its header (kvplan.sources.gguf): its config, and its tensors' bytes as the weights.
    `folder` is None: there are no safetensors beside it to size the weights again."""
    found = gguf.read_gguf(path)
    return LoadedConfig(found.config, model, "gguf", path, None, None, found.notes, weights_bytes=found.weights_bytes)


def _folder_config(model: str, folder: Path) -> Path:
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(
            f"folder {model} has no {CONFIG_NAME}",
            hint="pass the model folder that holds config.json (or one .gguf), or the config file itself",
        )
    return config_path


def _catalog_match(model: str) -> LoadedConfig | None:
    found = catalog.matches(model)
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise ConfigError(f"`{model}` matches several catalog models: {names}", hint="give the full name, org/name")
    if not found:
        return None
    name, path = found[0]
    return LoadedConfig(read_config_file(path), name, "catalog", path, None, None)


def _alias_match(model: str) -> LoadedConfig | None:
    found = catalog.alias_matches(model)
    if len(found) > 1:
        names = ", ".join(a.name for a in found)
        raise ConfigError(f"`{model}` matches several catalog aliases: {names}", hint="give the full name, org/name")
    if not found:
        return None
    alias = found[0]
    path = catalog.catalog_path(alias.config)
    if path is None:  # aliases.json names a config the catalog lacks: a packaging bug, said plainly
        raise ConfigError(f"catalog alias {alias.name} names {alias.config}, which the catalog lacks")
    config = read_config_file(path)
    dropped = alias.drop_quantization and _drop_quantization(config)
    note = f"{alias.name} is read from the catalog's {alias.config} config ({alias.source})"
    if dropped:
        note += "; its quantization_config is dropped (the alias names the unquantized release)"
    if alias.weights_unknown:
        note += "; this build's quantization is not in the catalog, so its weights are not counted"
    return LoadedConfig(config, alias.name, "catalog", path, None, None, (note,), alias.weights_unknown)


def _quantized_build(model: str, base: str, suffix: str, *, why: str) -> LoadedConfig:
    path = catalog.catalog_path(base)
    assert path is not None  # quantized_build only returns catalog names
    config = read_config_file(path)
    _drop_quantization(config)
    note = (
        f"the Hub gave no config for {model} ({why}); its layout is read from the catalog's {base} config, "
        f"its name makes it the {suffix.lstrip('-')} build of; its quantization is unknown, so its weights are not "
        "counted (pass the weights' size, or the build's own config.json)"
    )
    return LoadedConfig(config, model, "catalog", path, None, None, (note,), True)


def _drop_quantization(config: dict[str, Any]) -> bool:
    """Remove the quantization_config of a config and of its text_config; True when there was one."""
    found = config.pop("quantization_config", None) is not None
    inner = config.get("text_config")
    if isinstance(inner, dict):
        found = inner.pop("quantization_config", None) is not None or found
    return found


def _repo_id(model: str) -> str:
    """`model` as a Hub repo id, or a ConfigError saying it names nothing kvplan can read."""
    if model.lower().endswith((".json", ".gguf")):
        raise ConfigError(f"no such file: {model}", hint="check the path")
    if "/" not in model:
        raise ConfigError(
            f"`{model}` is not an existing file or folder, a catalog name, or a Hub repo id (org/name)",
            hint=_suggestion(model),
        )
    hub.check_repo_id(model)
    return model


def _suggestion(model: str) -> str:
    names = catalog.catalog_names()
    by_key = {name.lower(): name for name in names} | {name.split("/", 1)[1].lower(): name for name in names}
    close = difflib.get_close_matches(model.lower(), list(by_key), n=1, cutoff=0.6)
    listing = "`kvplan models` lists the built-in catalog"
    return f"did you mean {by_key[close[0]]}? {listing}" if close else listing


def _load_hub(repo_id: str, *, revision: str | None, offline: bool | None, token: str | None) -> LoadedConfig:
    path = hub.cached_file(repo_id, CONFIG_NAME, revision)
    source = "hf-cache"
    if path is None:
        if hub.is_offline(offline):
            raise hub.offline_miss(f"{repo_id}@{revision}" if revision else repo_id)
        path = hub.fetch_file(repo_id, CONFIG_NAME, revision=revision, token=token)
        source = "hub"
    commit = hub.snapshot_commit(path) or revision
    return LoadedConfig(read_config_file(path), repo_id, source, path, path.parent, commit)


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:  # a regular file says its size: refused without reading
            raise ConfigError(
                f"{path} is {size:,} bytes, too big for a config.json",
                hint="pass the model's config.json (a few kB), not a weights file",
            )
        with path.open("rb") as stream:  # bounded: /dev/zero or an endless pipe is refused, not read to exhaustion
            raw = stream.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path} is over {MAX_CONFIG_BYTES:,} bytes, too big for a config.json",
                hint="pass the model's config.json (a few kB), not a weights file",
            )
        return raw
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}", hint="check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path's permissions") from None


def _decode(raw: bytes, path: Path) -> str:
    hint = "pass the model's config.json (a JSON object of hyperparameters)"
    if not raw.strip():
        raise ConfigError(f"{path} is empty", hint=hint)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(f"{path} is UTF-16 text (PowerShell's default)", hint="save it as UTF-8")
    if b"\x00" in raw:
        raise ConfigError(f"{path} is a binary file, not a JSON config", hint=hint)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})", hint=hint) from None


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        raise ConfigError(
            f"{path} is nested too deeply for a config.json", hint="pass the model's config.json"
        ) from None
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(text.rstrip())
        what = "ends before the JSON is complete (truncated?)" if ends_early else f"is not valid JSON: {exc.msg}"
        raise ConfigError(
            f"{path} {what} at line {exc.lineno}, column {exc.colno}",
            hint="re-download the config.json, or fix it by hand",
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise ConfigError(
            f"{path} holds a value kvplan cannot read: {exc}", hint="fix the value in config.json"
        ) from None
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
        raise ConfigError(f"{path} holds {kind}, not a JSON object", hint="a config.json is one JSON object: {...}")
    return value
