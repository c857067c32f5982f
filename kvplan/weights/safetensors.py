"""Total bytes of a model's weights from safetensors metadata, without loading any tensor.

Sources, in order: the model folder's `model.safetensors.index.json` (`metadata.total_size`); the headers of
its `*.safetensors` files (an 8-byte little-endian header length, then a JSON header whose `data_offsets` give
each tensor's byte range); and, where the Hub may be asked (`hub_lookup`), the same two files read over the
network (one HEAD request first, no retries; the whole lookup said on stderr and bounded by
`kvplan.sources.hub.bounded`). By default the Hub is asked only when the config itself was just downloaded from
it: a config found in the HF cache opens no socket for its weights unless the caller asks (`hub_lookup=True`:
`--hub-weights`, or nothing local sizes the weights, kvplan.planning.resolved). The answer is optional
information: None means unknown, never an error. `huggingface_hub` is imported only on the network path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from kvplan.errors import HubError, UsageError
from kvplan.sources import hub
from kvplan.sources.configs import LoadedConfig

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own cap on the JSON header
_SHARD = re.compile(r"-(\d+)-of-(\d+)\.safetensors$")  # model-00001-of-00004.safetensors


def safetensors_weight_bytes(
    loaded: LoadedConfig, *, offline: bool | None = None, token: str | None = None, hub_lookup: bool | None = None
) -> int | None:
    """Total tensor bytes of the model's safetensors weights, or None when unknown (or the Hub unreachable).

    The local files come first (the model folder, the HF cache snapshot). `hub_lookup` says whether a Hub repo's
    metadata may then be read over the network: None (default) only when the config came from the Hub in this
    run (`source == "hub"`), True also for a config from the HF cache, False never; offline mode never."""
    if loaded.folder is not None:
        local = local_weight_bytes(loaded.folder)
        if local is not None:
            return local
    if loaded.source not in ("hub", "hf-cache") or hub.is_offline(offline):
        return None
    if hub_lookup if hub_lookup is not None else loaded.source == "hub":
        return hub_weight_bytes(loaded.name, revision=loaded.revision, token=token)
    return None


def local_weight_bytes(folder: Path) -> int | None:
    """Weight bytes from a folder's index (`total_size`) or, lacking one, from its safetensors headers."""
    index = _read_json(folder / INDEX_NAME)
    if index is not None:
        total = index_total_size(index)
        if total is not None:
            return total
        files = sorted({folder / name for name in _weight_map(index).values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files or not _all_shards_present(files):
        return None
    return _sum_or_none(header_bytes(path) for path in files)


def header_bytes(path: Path) -> int | None:
    """Sum of the tensors' byte ranges in one .safetensors file, read from its header only."""
    try:
        with path.open("rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                return None
            length = int.from_bytes(prefix, "little")
            if length > MAX_HEADER_BYTES:
                return None
            header = json.loads(stream.read(length))
    except (OSError, ValueError, RecursionError):  # ValueError: JSONDecodeError, UnicodeDecodeError
        return None
    if not isinstance(header, dict):
        return None
    infos = [info for name, info in header.items() if name != "__metadata__"]
    return tensor_bytes(info.get("data_offsets") if isinstance(info, dict) else None for info in infos)


def tensor_bytes(offsets: Iterable[Sequence[int] | None]) -> int | None:
    """Sum of `end - start` over (start, end) byte ranges; None if any range is malformed."""
    total = 0
    for pair in offsets:
        if not _valid_range(pair):
            return None
        total += pair[1] - pair[0]
    return total


def index_total_size(index: dict[str, Any]) -> int | None:
    """`metadata.total_size` of a safetensors index, when it is a non-negative integer."""
    metadata = index.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


def hub_weight_bytes(repo_id: str, *, revision: str | None, token: str | None) -> int | None:
    """Weight bytes of a Hub repo from its index or its single file's header; None on any Hub/network error or
    when the Hub does not answer within `kvplan.sources.hub.timeout_s()` (the lookup is said on stderr)."""
    from huggingface_hub.errors import NotASafetensorsRepoError, SafetensorsParsingError

    expected: tuple[type[BaseException], ...] = (
        HubError,
        *hub.hub_errors(),
        NotASafetensorsRepoError,
        SafetensorsParsingError,
        ValueError,
    )
    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        return hub.bounded(
            f"the safetensors sizes of {where}", lambda: _hub_weight_bytes(repo_id, revision=revision, token=token)
        )
    except expected:
        return None


def _hub_weight_bytes(repo_id: str, *, revision: str | None, token: str | None) -> int | None:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    if not api.file_exists(repo_id, INDEX_NAME, revision=revision):  # one HEAD, no retries
        meta = api.parse_safetensors_file_metadata(repo_id, SINGLE_NAME, revision=revision)
        return tensor_bytes(info.data_offsets for info in meta.tensors.values())
    index_path = api.hf_hub_download(repo_id, INDEX_NAME, revision=revision, cache_dir=hub.hub_cache_dir())
    total = index_total_size(_read_json(Path(index_path)) or {})
    if total is not None:
        return total
    repo_meta = api.get_safetensors_metadata(repo_id, revision=revision)
    infos = (info for file_meta in repo_meta.files_metadata.values() for info in file_meta.tensors.values())
    return tensor_bytes(info.data_offsets for info in infos)


def _valid_range(pair: Sequence[int] | None) -> TypeGuard[Sequence[int]]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return False
    start, end = pair
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    return ints and 0 <= start <= end


def _all_shards_present(files: list[Path]) -> bool:
    """False when the files are shards `-i-of-n` and some of the n are missing (a partial download)."""
    shards: dict[int, set[int]] = {}
    for path in files:
        match = _SHARD.search(path.name)
        if match:
            shards.setdefault(int(match.group(2)), set()).add(int(match.group(1)))
    return all(indices == set(range(1, count + 1)) for count, indices in shards.items())


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _weight_map(index: dict[str, Any]) -> dict[str, str]:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        return {}
    return {k: v for k, v in weight_map.items() if isinstance(v, str) and "/" not in v}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def unusable_weight_file(folder: Path) -> tuple[Path, str] | None:
    """The first `*.safetensors` file in `folder` that cannot be the weights, and why: a Git LFS pointer (the
    text file a clone without `git lfs` leaves) or a truncated file (shorter than its header says). None when
    every file looks whole. Reads 8 bytes and the header of each file, never a tensor."""
    try:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix == ".safetensors" and p.is_file())
    except OSError:
        return None
    for path in files:
        try:
            size = path.stat().st_size
            with path.open("rb") as stream:
                prefix = stream.read(len(LFS_POINTER))
                if prefix.startswith(LFS_POINTER):
                    return path, "a Git LFS pointer, not the weights (the clone ran without git lfs)"
                stream.seek(0)
                head = stream.read(8)
                if len(head) < 8:
                    return path, f"truncated ({size} bytes)"
                length = int.from_bytes(head, "little")
                if length > MAX_HEADER_BYTES or 8 + length > size:
                    return (
                        path,
                        f"truncated or not safetensors (its header claims {length:,} bytes, the file has {size:,})",
                    )
                header = json.loads(stream.read(length))
        except (OSError, ValueError, RecursionError):
            return path, "not a readable safetensors file"
        if isinstance(header, dict):
            ends = [
                info["data_offsets"][1]
                for name, info in header.items()
                if name != "__metadata__" and isinstance(info, dict) and _valid_range(info.get("data_offsets"))
            ]
            if ends and 8 + length + max(ends) > size:
                return path, f"truncated ({size:,} bytes; its tensors end at byte {8 + length + max(ends):,})"
    return None


def refuse_unusable_weights(folder: Path) -> None:
    """A UsageError naming the first weight file of `folder` that is an LFS pointer or truncated."""
    found = unusable_weight_file(folder)
    if found is not None:
        path, why = found
        raise UsageError(
            f"{path} is {why}",
            hint=f"run `git lfs pull` in {folder} (or download the model again), or pass --random-weights",
        )
