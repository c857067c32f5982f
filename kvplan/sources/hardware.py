"""Hardware profiles: accelerator memory, bandwidth and compute figures, loaded from YAML files.

A profile is one `<id>.yaml` file (the shipped ones live in the top-level `profiles/` directory, installed as
`kvplan/profiles`). `memory_bytes` is the total memory *as the runtime reports it* (torch / vLLM), not the
marketing figure; every figure names its source. Sizes are bytes or a size with its unit (`memory: 48GiB`,
`bandwidth: 3.35TB/s`); optional keys have the defaults `_validate` lists; `kvplan profiles new` prints a
commented template (`profile_template`). Files are read on demand with the safe YAML loader
(kvplan.sources.yaml_files) only and are validated strictly: every problem of a file, each with its line, is
reported together in one one-line `ProfileError` naming the file.

Search order for a name: the `profiles_dir` argument (`--profiles-dir`), then the user's directory
(`$KVPLAN_PROFILES_DIR`, else `$XDG_CONFIG_HOME/kvplan/profiles` or `~/.config/kvplan/profiles`), then the
built-ins. A profile in an earlier directory shadows a built-in of the same id. No torch imports here.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kvplan.core.units import KV_DTYPE_CHOICES, parse_size
from kvplan.errors import ProfileError, UsageError
from kvplan.sources.yaml_files import load_yaml

VENDORS = ("nvidia", "amd", "generic")
TFLOPS_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")
REQUIRED_TFLOPS_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8")
INTERCONNECT_TYPES = (
    "pcie3",
    "pcie4",
    "pcie5",
    "nvlink3",
    "nvlink4",
    "nvlink5",
    "nvlink-bridge",
    "infinity-fabric",
)
_KEYS = (
    "id",
    "name",
    "vendor",
    "generic",
    "aliases",
    "memory_bytes",
    "memory_bandwidth_bytes_per_s",
    "dense_tflops",
    "kv_cache_dtypes",
    "interconnect",
    "compute_capability",
    "host_memory_bytes",
    "gpus_per_node",
    "nvlink_domain_gpus",
    "sources",
    "notes",
)
_REQUIRED = ("vendor", "memory_bytes", "sources")  # every other key has a default (see _validate)
_FIGURES = ("memory_bandwidth_bytes_per_s", "dense_tflops", "kv_cache_dtypes", "interconnect")
_NODE_KEYS = ("gpus_per_node", "nvlink_domain_gpus")  # the system the GPU is sold in (null: unknown)
_SOURCE_KEYS = ("memory_bytes", *_FIGURES, "compute_capability", "host_memory_bytes", *_NODE_KEYS)
_CAPABILITY_RE = re.compile(r"^\d+\.\d+$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_PLACEHOLDER = re.compile(r"^\s*<.*>\s*$", re.S)  # `kvplan profiles new`'s "<...>", not yet filled in
_FILL = "your figure in place of the template's placeholder"


@dataclass(frozen=True)
class Interconnect:
    """GPU-to-GPU link: its kind and the vendor's (bidirectional) bandwidth figure in bytes/s, if known."""

    type: str
    bandwidth_bytes_per_s: int | None


@dataclass(frozen=True)
class HardwareProfile:
    """One accelerator (or a generic memory class). Generic profiles carry memory only; other figures are None.

    `compute_capability` is an NVIDIA GPU's CUDA compute capability ("9.0" for Hopper), which engines choose
    kernels by (vLLM's attention backends and block sizes); None where unknown or not NVIDIA."""

    id: str
    name: str
    vendor: str
    aliases: tuple[str, ...]
    memory_bytes: int
    memory_bandwidth_bytes_per_s: int | None
    dense_tflops: dict[str, float | None] | None = field(hash=False)
    kv_cache_dtypes: tuple[str, ...] | None
    interconnect: Interconnect | None
    sources: dict[str, str] = field(hash=False)
    generic: bool = False
    notes: str | None = None
    path: str | None = field(default=None, compare=False)
    compute_capability: str | None = None
    host_memory_bytes: int | None = None  # the host RAM of one node (superchips, fixed systems); None: unknown
    gpus_per_node: int | None = None  # the GPUs of one node (an HGX/DGX board: 8; a GB200 compute tray: 4)
    nvlink_domain_gpus: int | None = None  # GPUs one NVLink domain links across nodes (GB200 NVL72: 72); None: a node

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / 2**30

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the YAML schema), e.g. for JSON output."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "generic": self.generic,
            "aliases": list(self.aliases),
            "memory_bytes": self.memory_bytes,
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "dense_tflops": None if self.dense_tflops is None else dict(self.dense_tflops),
            "kv_cache_dtypes": None if self.kv_cache_dtypes is None else list(self.kv_cache_dtypes),
            "interconnect": None
            if self.interconnect is None
            else {
                "type": self.interconnect.type,
                "bandwidth_bytes_per_s": self.interconnect.bandwidth_bytes_per_s,
            },
            "compute_capability": self.compute_capability,
            "host_memory_bytes": self.host_memory_bytes,
            "gpus_per_node": self.gpus_per_node,
            "nvlink_domain_gpus": self.nvlink_domain_gpus,
            "sources": dict(self.sources),
            "notes": self.notes,
        }


# ----------------------------------------------------------------------------------------------- directories


def builtin_profiles_dir() -> Any:
    """The shipped profiles: `kvplan/profiles` inside an installed wheel, else the repo's top-level `profiles/`."""
    try:
        packaged = resources.files("kvplan") / "profiles"
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError, NotImplementedError):  # pragma: no cover - exotic loaders
        pass
    return Path(__file__).resolve().parents[2] / "profiles"


def user_profiles_dir() -> Path:
    """`$KVPLAN_PROFILES_DIR`, else `$XDG_CONFIG_HOME/kvplan/profiles`, else `~/.config/kvplan/profiles`."""
    explicit = os.environ.get("KVPLAN_PROFILES_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "kvplan" / "profiles"


def search_dirs(profiles_dir: str | Path | None = None) -> list[Any]:
    """The directories searched, highest priority first. Missing optional directories are left out."""
    dirs: list[Any] = []
    if profiles_dir is not None:
        given = Path(profiles_dir).expanduser()
        if not _is(given, "dir"):
            raise ProfileError(
                f"profiles directory not found: {given}",
                hint="pass --profiles-dir a directory that holds <id>.yaml files",
            )
        dirs.append(given)
    user = user_profiles_dir()
    if user.is_dir():
        dirs.append(user)
    elif os.environ.get("KVPLAN_PROFILES_DIR"):
        raise ProfileError(
            f"KVPLAN_PROFILES_DIR is not a directory: {user}",
            hint="point KVPLAN_PROFILES_DIR at a directory of <id>.yaml files, or unset it",
        )
    dirs.append(builtin_profiles_dir())
    return dirs


def _is(path: Path, kind: str) -> bool:
    """path.is_dir() / is_file(), False for a path the OS cannot even look up (a NUL byte, too long)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False


def _yaml_files(directory: Any) -> Iterator[Any]:
    if isinstance(directory, Path):  # one scandir (file types come with the names) instead of a stat per file
        with os.scandir(directory) as found:
            listing = sorted((entry.name, entry.is_file()) for entry in found)
        for name, is_file in listing:
            if name.endswith((".yaml", ".yml")) and not name.startswith(".") and is_file:
                yield directory / name
        return
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")) and not entry.name.startswith(".") and entry.is_file():
            yield entry


def _stem(entry: Any) -> str:
    return entry.name.rsplit(".", 1)[0]


def _index(profiles_dir: str | Path | None) -> dict[str, Any]:
    """id (lower-case file stem) -> file, the first directory in search order winning."""
    found: dict[str, Any] = {}
    for directory in search_dirs(profiles_dir):
        for entry in _yaml_files(directory):
            found.setdefault(_stem(entry).lower(), entry)
    return found


# ------------------------------------------------------------------------------------------------- public API


def load_profile(name_or_path: str | Path, *, profiles_dir: str | Path | None = None) -> HardwareProfile:
    """Load a profile by id, then by alias (both case-insensitive), or from a path to a `.yaml` file; `auto`: the
    local GPU's (kvplan.sources.local_gpu)."""
    text = str(name_or_path).strip()
    if not isinstance(name_or_path, Path) and text.lower() == "auto":
        return _local_profile(profiles_dir)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        path = Path(text).expanduser()
        if not _is(path, "file"):
            raise ProfileError(
                f"profile file not found: {path}",
                hint="give a profile id (see `kvplan profiles list`) or an existing .yaml file",
            )
        return _load_file(path)
    wanted = _norm(text)
    index = _index(profiles_dir)
    if wanted in index:
        return _load_file(index[wanted])
    problems: list[str] = []
    profiles = _readable(index.values(), problems)  # one half-edited file does not hide every other alias
    for profile in profiles:
        if wanted in (_norm(a) for a in profile.aliases):
            return profile
    names = {p.id: p.id for p in profiles}
    names.update({_norm(a): p.id for p in profiles for a in p.aliases})
    close = difflib.get_close_matches(wanted, list(names), n=8, cutoff=0.5)
    suggestions = list(dict.fromkeys(names[c] for c in close))[:4]
    unread = f" ({len(problems)} profile file(s) could not be read: {problems[0]})" if problems else ""
    raise ProfileError(
        f"unknown hardware profile '{text}'"
        + (f"; close matches: {', '.join(suggestions)}" if suggestions else "")
        + unread,
        hint="run `kvplan profiles list` to see the known ids, or pass a path to a .yaml profile",
    )


def _local_profile(profiles_dir: str | Path | None) -> HardwareProfile:
    from kvplan.sources import local_gpu

    gpu = local_gpu.detect()
    if len(set(gpu.names)) > 1:
        raise ProfileError(
            f"--gpu-profile auto: {gpu.tool} lists different GPUs ({', '.join(dict.fromkeys(gpu.names))})",
            hint="pass the profile of the GPUs the engine runs on, e.g. --gpu-profile h100-sxm-80gb",
        )
    try:
        return load_profile(gpu.name, profiles_dir=profiles_dir)
    except ProfileError as exc:
        raise ProfileError(
            f"--gpu-profile auto: {gpu.tool} names the GPU '{gpu.name}', which no profile has as id or alias"
            + (f" ({str(exc.message).split('; ', 1)[1]})" if "; close matches" in str(exc.message) else ""),
            hint=f"pass a profile id (see `kvplan profiles list`), or add '{gpu.name}' to a profile's aliases",
        ) from None


def list_profiles(
    profiles_dir: str | Path | None = None, *, problems: list[str] | None = None
) -> list[HardwareProfile]:
    """Every profile in search order (a profile shadows later ones of the same id), sorted by id.

    A file that cannot be read or parsed is left out and its error appended to `problems` (when given): one
    half-edited YAML in a profiles directory does not break the list."""
    return sorted(_readable(_index(profiles_dir).values(), problems), key=lambda p: p.id)


def _readable(entries: Iterable[Any], problems: list[str] | None) -> list[HardwareProfile]:
    found = []
    for entry in entries:
        try:
            found.append(_load_file(entry))
        except ProfileError as exc:
            if problems is not None:
                problems.append(exc.message)
    return found


def _norm(name: str) -> str:
    return " ".join(name.split()).lower()


def profile_template(profile_id: str = "my-gpu") -> str:
    """A commented profile for `profile_id` to fill in: every `<...>` is a placeholder (a file that still holds
    one is refused, each placeholder named with its line); the commented-out keys show their defaults."""
    if not _ID_RE.match(profile_id):
        raise ProfileError(
            f"cannot use {profile_id!r} as a profile id",
            hint="an id is lower-case letters, digits, '-' and '.', e.g. rtx-pro-6000 (it is the file name stem)",
        )
    links = ", ".join(INTERCONNECT_TYPES)
    kv = ", ".join(KV_DTYPE_CHOICES)
    id_line = f"id: {profile_id}"
    return f"""\
# kvplan hardware profile. Fill in every <...>, save as {profile_id}.yaml in a profiles directory
# (--profiles-dir, $KVPLAN_PROFILES_DIR or ~/.config/kvplan/profiles), then `kvplan profiles show {profile_id}`.
# Every figure needs a source under `sources:` (a datasheet URL, or a log line quoted); say which figure
# it is where a datasheet gives several (dense or sparse FLOP/s, marketing or runtime memory).
# Sizes take units: 48GiB (2^30), 80GB (10^9), 3.35TB/s; or plain integers of bytes.
# Commented-out keys are optional and show their default.
{id_line:<42}# default: the file name stem (it must equal it)
name: "<the card's full name, e.g. NVIDIA H100 SXM5 80GB>"   # default: the id
vendor: <nvidia or amd or generic>
# the device names torch / nvidia-smi / engine logs print, so logs and --gpu-profile find this profile
aliases: ["<e.g. NVIDIA H100 80GB HBM3>"]   # default: []
# memory as the runtime reports it (what vLLM budgets from): torch.cuda.mem_get_info()[1], vLLM's
# "Free memory on device (x/TOTAL GiB)" or a CUDA OOM's "total capacity of TOTAL GiB"; not the marketing size
memory: <e.g. 79.19GiB>
bandwidth: <e.g. 3.35TB/s>                # default: null (unknown: no roofline bounds)
# dense (no sparsity) tensor TFLOP/s per dtype; null where unsupported; a dtype left out is null
dense_tflops: {{fp32: <e.g. 67>, bf16: <e.g. 989>, fp16: <e.g. 989>, fp8: <number or null>, int8: <number or null>}}
# kv_cache_dtypes: [auto]                 # default: [auto]; from {kv}
# interconnect: {{type: pcie5, bandwidth: 128GB/s}}   # default: null (unknown); types: {links}
# compute_capability: "9.0"               # default: null; NVIDIA only (https://developer.nvidia.com/cuda-gpus)
# gpus_per_node: 8                        # default: null (unknown); the GPUs of one node (recommend --nodes)
# nvlink_domain_gpus: 72                  # default: null (the node); GPUs one NVLink domain links across nodes
# generic: false                          # default: true exactly when vendor is generic (memory only)
# notes: "..."                            # default: none
sources:
  memory: "<where the memory figure comes from: a quoted log line and its URL>"
  bandwidth: "<datasheet title and URL>"
  dense_tflops: "<datasheet title and URL; dense or halved from sparse>"
"""


# ------------------------------------------------------------------------------------------ loading & checks


# A profile is a page of YAML; a bigger file (or /dev/zero, an endless pipe) is refused before it is read whole.
MAX_PROFILE_BYTES = 1024 * 1024


def _load_file(entry: Any) -> HardwareProfile:
    where = str(entry)
    try:
        with entry.open("rb") as stream:
            raw = stream.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{where}: over {MAX_PROFILE_BYTES:,} bytes, too big for a hardware profile")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ProfileError(f"{where}: UTF-16 text (PowerShell's default)", hint="save the file as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{where}: not UTF-8 text (bad byte at offset {exc.start})", hint="save it as UTF-8"
        ) from None
    return _parse(where, _stem(entry), text)


@functools.lru_cache(maxsize=256)
def _parse(where: str, stem: str, text: str) -> HardwareProfile:
    """A profile file's text, parsed and validated once per process (a plan re-read for each GPU of a check or a
    sweep of recommendations would parse the same YAML again and again); an edited file is parsed anew."""
    data, node = load_yaml(
        where,
        text,
        error=ProfileError,
        describe=functools.partial(_yaml_message, where, text),
        hint="profiles are plain YAML without !!tags; check quoting and indentation there",
    )
    return _validate(where, stem, data, node)


def _yaml_message(where: str, text: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    if mark is None:
        return f"{where}: invalid YAML: {problem}"
    lines = text.splitlines()
    key = None
    start = getattr(exc, "context_mark", None) or mark  # where the broken value began, if the parser knows
    for lineno in range(min(start.line, len(lines) - 1), -1, -1):
        match = re.match(r"^\s*([A-Za-z_][\w-]*)\s*:", lines[lineno])
        if match:
            key = match.group(1)
            break
    at = f"line {mark.line + 1}" + (f", key '{key}'" if key else "")
    if "constructor" in problem or "tag" in problem:
        problem = "unsupported tag (only plain YAML values are allowed): " + problem
    return f"{where}: invalid YAML at {at}: {problem}"


# The profile schema, written once: every key, what it holds, and the default of an optional one. The loader's
# checks, `kvplan profiles new` and README's "Hardware profiles" section follow this table.
SYNONYMS = {
    "memory": "memory_bytes",
    "bandwidth": "memory_bandwidth_bytes_per_s",
    "host_memory": "host_memory_bytes",
}  # short spelling -> key
_LINK_SYNONYMS = {"bandwidth": "bandwidth_bytes_per_s"}
_LINK_KEYS = ("type", "bandwidth_bytes_per_s")
_HINT = "fix the profile file; `kvplan profiles new` prints a commented template with every key"


@dataclass(frozen=True)
class _Problem:
    line: int | None
    text: str
    hint: str | None = None


class _Problems:
    """Every problem of one file, each with the line it is on; raised together as one ProfileError."""

    def __init__(self, where: str, node: yaml.Node | None) -> None:
        self.where = where
        self.node = node
        self.items: list[_Problem] = []

    def line(self, *path: str) -> int | None:
        """The line key `path` (top-level key, then nested keys) was written on; its parent's line when missing."""
        node, line = self.node, None
        for key in path:
            if not isinstance(node, yaml.MappingNode):
                break
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    node, line = value_node, key_node.start_mark.line + 1
                    break
            else:
                break
        return line

    def add(self, path: tuple[str, ...], text: str, hint: str | None = None) -> None:
        self.items.append(_Problem(self.line(*path), text, hint))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        ordered = sorted(self.items, key=lambda p: (p.line is None, p.line or 0))
        if len(ordered) == 1:
            only = ordered[0]
            at = f"{self.where}:{only.line}" if only.line else self.where
            raise ProfileError(f"{at}: {only.text}", hint=only.hint or _HINT)
        listed = "; ".join((f"line {p.line}: " if p.line else "") + p.text for p in ordered)
        raise ProfileError(f"{self.where}: {len(ordered)} problems: {listed}", hint=_HINT)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return repr(value)


def _expected(label: str, expected: str, got: Any = None, *, show_got: bool = True) -> str:
    return f"key '{label}': expected {expected}" + (f", got {_show(got)}" if show_got else "")


def _unknown(label: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    key = label.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, allowed, n=1)
    dym = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{label}'{dym}", "allowed keys: " + ", ".join(allowed)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _size(value: Any, *, rate: bool = False) -> int | None:
    """Bytes (or bytes/s) from a positive integer or a size with its unit ("48GiB", "80GB"; "3.35TB/s" for a
    rate, kvplan.core.units.parse_size: GB = 10^9, GiB = 2^30); None when it is neither."""
    if _is_int(value):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if rate and text.lower().endswith("/s"):
        text = text[:-2]
    elif not text or not text[-1:].isalpha():
        return None  # a bare number in quotes ("85899345920") is a typo for an integer more often than not
    try:
        return parse_size(text)
    except UsageError:
        return None


class _Reader:
    """The checks of one profile's mapping: each check records its problem and returns a usable value."""

    def __init__(self, where: str, data: dict, problems: _Problems) -> None:
        self.where, self.data, self.problems = where, data, problems
        self.written: dict[str, str] = {}  # canonical key -> the spelling the file used

    def label(self, key: str) -> str:
        return self.written.get(key, key)

    def bad(self, key: str, expected: str, got: Any = None, *, show_got: bool = True, sub: str = "") -> None:
        label = self.label(key) + (f".{sub}" if sub else "")
        path = (self.label(key), *([sub] if sub else []))
        self.problems.add(path, _expected(label, expected, got, show_got=show_got))

    def str_list(self, key: str, *, allowed: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
        value = self.data[key]
        if not isinstance(value, list):
            self.bad(key, "a list of strings", value)
            return None
        ok = True
        for item in value:
            if not isinstance(item, str) or not item.strip():
                self.bad(key, "a list of non-empty strings", item)
                ok = False
            elif _PLACEHOLDER.match(item):
                self.bad(key, _FILL, item)
                ok = False
            elif allowed is not None and item not in allowed:
                self.bad(key, "dtypes from " + ", ".join(allowed), item)
                ok = False
        if ok and len({_norm(i) for i in value}) != len(value):
            self.bad(key, "no duplicate entries", show_got=False)
            ok = False
        return tuple(value) if ok else None


def _validate(where: str, stem: str, data: Any, node: yaml.Node | None = None) -> HardwareProfile:
    """Check a profile's mapping and build it; every problem of the file is reported in one ProfileError.

    Required: `vendor` (nvidia, amd, generic), `memory_bytes` (or `memory`: the total as the runtime reports it,
    an integer of bytes or a size with its unit, "79.19GiB" / "80GB") and `sources` (a source text for memory
    and for each of bandwidth, dense_tflops and compute_capability that is given). Optional, with defaults:

    - `id`: the file name stem (if given, it must equal the stem); `name`: the id; `aliases`: none;
      `generic`: true exactly when vendor is generic; `notes`: none.
    - `memory_bandwidth_bytes_per_s` (or `bandwidth`: bytes/s, "3.35TB/s"): null, unknown (no roofline bounds).
    - `dense_tflops`: null, unknown; a dtype of fp32, tf32, bf16, fp16, fp8, int8, fp4 left out: null.
    - `kv_cache_dtypes`: [auto] (the engine's default only). `interconnect`: null, unknown; its
      `bandwidth_bytes_per_s` (or `bandwidth`, "900GB/s"): null. `compute_capability`: null.
    - `host_memory_bytes` (or `host_memory`): null, unknown; the host RAM of one node (a superchip's or a fixed
      system's), which `recommend`/`check` judge the KV offload tiers against when --host-memory is not given.
    - `gpus_per_node`: null, unknown; the GPUs of one node of the system the GPU is sold in (an HGX board's 8),
      which `recommend --nodes` takes when --gpus-per-node is not given. `nvlink_domain_gpus`: null (the NVLink
      domain is the node); the GPUs one NVLink domain links across nodes (GB200 NVL72: 72).
    A generic profile (a memory class) carries memory only: every other figure null or left out.
    """
    if data is None:
        raise ProfileError(f"{where}: file is empty", hint="a profile needs at least vendor, memory and its source")
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping of keys at the top level, got {_show(data)}")
    problems = _Problems(where, node)
    reader = _Reader(where, {}, problems)
    for key, value in data.items():
        name = SYNONYMS.get(key, key) if isinstance(key, str) else key
        if not isinstance(name, str) or name not in _KEYS:
            text, hint = _unknown(str(key), _KEYS + tuple(SYNONYMS))
            problems.add((str(key),), text, hint)
            continue
        if name in reader.data:
            problems.add((str(key),), f"key '{key}': give either '{reader.label(name)}' or '{key}', not both")
            continue
        reader.data[name] = value
        reader.written[name] = str(key)
    data = reader.data
    for key in _REQUIRED:
        if key not in data:
            problems.add((), f"key '{key}': missing (required)")

    pid = data.get("id", stem)
    if not isinstance(pid, str) or not _ID_RE.match(pid):
        reader.bad("id", "a lower-case id of letters, digits, '-' and '.'", pid)
    elif pid != stem:
        reader.bad("id", f"the file name stem '{stem}'", pid)
    name = data.get("name", pid)
    if not isinstance(name, str) or not name.strip():
        reader.bad("name", "a non-empty string", name)
    elif _PLACEHOLDER.match(name):
        reader.bad("name", _FILL, name)
    vendor = data.get("vendor")
    if "vendor" in data and vendor not in VENDORS:
        reader.bad("vendor", "one of " + ", ".join(VENDORS), vendor)
    generic = data.get("generic", vendor == "generic")
    if not isinstance(generic, bool):
        reader.bad("generic", "true or false", generic)
    elif "vendor" in data and generic != (vendor == "generic"):
        reader.bad("generic", "true exactly when vendor is 'generic'", generic)
    aliases = reader.str_list("aliases") if "aliases" in data else ()
    memory = None
    if "memory_bytes" in data:
        memory = _size(data["memory_bytes"])
        if memory is None:
            reader.bad("memory_bytes", "a positive integer (bytes) or a size such as 79.19GiB", data["memory_bytes"])

    host_memory: int | None = None
    if data.get("host_memory_bytes") is not None:
        host_memory = _size(data["host_memory_bytes"])
        if host_memory is None:
            reader.bad(
                "host_memory_bytes", "a positive integer (bytes) or a size such as 480GiB", data["host_memory_bytes"]
            )

    node_counts: dict[str, int | None] = dict.fromkeys(_NODE_KEYS)
    for key in _NODE_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if generic is True:
            reader.bad(key, "null for a generic profile (memory only)", value)
        elif type(value) is not int or value < 1:
            reader.bad(key, "a positive whole number of GPUs", value)
        else:
            node_counts[key] = value
    per_node, domain = node_counts["gpus_per_node"], node_counts["nvlink_domain_gpus"]
    if domain is not None and (per_node is None or domain < per_node or domain % per_node):
        reader.bad("nvlink_domain_gpus", "a multiple of gpus_per_node (given with it)", domain)

    bandwidth: int | None = None
    tflops: dict[str, float | None] | None = None
    kv_dtypes: tuple[str, ...] | None = None
    link: Interconnect | None = None
    if generic is True:
        for key in _FIGURES:
            if data.get(key) is not None:
                reader.bad(key, "null for a generic profile (memory only)", data[key])
    else:
        raw = data.get("memory_bandwidth_bytes_per_s")
        if raw is not None:
            bandwidth = _size(raw, rate=True)
            if bandwidth is None:
                reader.bad(
                    "memory_bandwidth_bytes_per_s", "a positive integer (bytes/s) or a rate such as 3.35TB/s", raw
                )
        if data.get("dense_tflops") is not None:
            tflops = _tflops(reader, data["dense_tflops"])
        kv_dtypes = ("auto",)
        if "kv_cache_dtypes" in data:
            kv_dtypes = reader.str_list("kv_cache_dtypes", allowed=KV_DTYPE_CHOICES)
            if kv_dtypes is not None and not kv_dtypes:
                reader.bad("kv_cache_dtypes", "at least one dtype", show_got=False)
        if data.get("interconnect") is not None:
            link = _interconnect(reader, data["interconnect"])

    sources: dict[str, str] = {}
    raw_sources = data.get("sources", {})
    if not isinstance(raw_sources, dict):
        reader.bad("sources", "a mapping of figure -> source text", raw_sources)
        raw_sources = {}
    for key, text in raw_sources.items():
        canonical = SYNONYMS.get(key, key) if isinstance(key, str) else key
        label = f"{reader.label('sources')}.{key}"
        if not isinstance(canonical, str) or canonical not in _SOURCE_KEYS:
            message, hint = _unknown(label, _SOURCE_KEYS + tuple(SYNONYMS))
            problems.add((reader.label("sources"), str(key)), message, hint)
        elif not isinstance(text, str) or not text.strip():
            problems.add(
                (reader.label("sources"), str(key)),
                _expected(label, "a non-empty string (URL or quoted log line)", text),
            )
        elif _PLACEHOLDER.match(text):
            problems.add((reader.label("sources"), str(key)), _expected(label, _FILL, text))
        else:
            sources[canonical] = text
    # the figures kvplan computes with need a source; the dtype list and the link are better with one
    needed = (
        "memory_bytes",
        "memory_bandwidth_bytes_per_s",
        "dense_tflops",
        "compute_capability",
        "host_memory_bytes",
        *_NODE_KEYS,
    )
    given = [k for k in needed if data.get(k) is not None]
    written = {SYNONYMS.get(k, k) for k in raw_sources if isinstance(k, str)}
    for key in given if "sources" in data else ():
        if key not in written and (key == "memory_bytes" or not generic):
            problems.add(
                ("sources",),
                f"key 'sources.{reader.label(key)}': missing (every figure needs a source: a URL or a quoted log line)",
            )
    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        reader.bad("notes", "a string", notes)
    capability = data.get("compute_capability")
    if capability is not None and (generic or not isinstance(capability, str) or not _CAPABILITY_RE.match(capability)):
        expected = "null for a generic profile" if generic else 'a CUDA compute capability string such as "9.0"'
        reader.bad("compute_capability", expected, capability)

    problems.raise_if_any()
    assert isinstance(pid, str) and isinstance(name, str) and isinstance(vendor, str) and memory is not None
    return HardwareProfile(
        id=pid,
        name=name,
        vendor=vendor,
        aliases=aliases or (),
        memory_bytes=memory,
        memory_bandwidth_bytes_per_s=bandwidth,
        dense_tflops=tflops,
        kv_cache_dtypes=kv_dtypes,
        interconnect=link,
        sources=sources,
        generic=bool(generic),
        notes=notes,
        path=where,
        compute_capability=capability,
        host_memory_bytes=host_memory,
        gpus_per_node=per_node,
        nvlink_domain_gpus=domain,
    )


def _tflops(reader: _Reader, value: Any) -> dict[str, float | None] | None:
    if not isinstance(value, dict):
        reader.bad("dense_tflops", "a mapping of dtype -> dense TFLOPS", value)
        return None
    found: dict[str, float | None] = dict.fromkeys(REQUIRED_TFLOPS_DTYPES)  # a dtype left out: unknown
    for key, number in value.items():
        if not isinstance(key, str) or key not in TFLOPS_DTYPES:
            label = f"{reader.label('dense_tflops')}.{key}"
            text, hint = _unknown(label, TFLOPS_DTYPES)
            reader.problems.add((reader.label("dense_tflops"), str(key)), text, hint)
        elif number is not None and (not _is_number(number) or number <= 0):
            reader.bad("dense_tflops", "a positive number (TFLOPS) or null", number, sub=key)
        else:
            found[key] = None if number is None else float(number)
    return found


def _interconnect(reader: _Reader, value: Any) -> Interconnect | None:
    if not isinstance(value, dict):
        reader.bad("interconnect", "a mapping with type and bandwidth_bytes_per_s", value)
        return None
    fields: dict[str, Any] = {}
    for key, item in value.items():
        name = _LINK_SYNONYMS.get(key, key) if isinstance(key, str) else key
        if name not in _LINK_KEYS or name in fields:
            label = f"{reader.label('interconnect')}.{key}"
            text, hint = _unknown(label, _LINK_KEYS + tuple(_LINK_SYNONYMS))
            if name in fields:
                text, hint = f"key '{label}': given twice (as bandwidth and bandwidth_bytes_per_s)", _HINT
            reader.problems.add((reader.label("interconnect"), str(key)), text, hint)
            continue
        fields[name] = (str(key), item)
    written, kind = fields.get("type", ("type", None))
    if kind not in INTERCONNECT_TYPES:
        reader.bad("interconnect", "one of " + ", ".join(INTERCONNECT_TYPES), kind, sub=written)
        kind = None
    written, raw = fields.get("bandwidth_bytes_per_s", ("bandwidth_bytes_per_s", None))
    bandwidth = None
    if raw is not None:
        bandwidth = _size(raw, rate=True)
        if bandwidth is None:
            reader.bad(
                "interconnect", "a positive integer (bytes/s), a rate such as 900GB/s, or null", raw, sub=written
            )
    return Interconnect(type=kind, bandwidth_bytes_per_s=bandwidth) if kind else None
