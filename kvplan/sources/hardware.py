"""Hardware profiles: accelerator memory, bandwidth and compute figures, loaded from YAML files.

A profile is one `<id>.yaml` file (the shipped ones live in the top-level `profiles/` directory, installed as
`kvplan/profiles`). `memory_bytes` is the total memory *as the runtime reports it* (torch / vLLM), not the
marketing figure; every figure names its source. Files are read on demand with the safe YAML loader (kvplan.sources.yaml_files) only and are
validated strictly; every problem is a one-line `ProfileError` naming the file and the key.

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

from kvplan.core.units import KV_DTYPE_CHOICES
from kvplan.errors import ProfileError
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
    "sources",
    "notes",
)
_REQUIRED = tuple(k for k in _KEYS if k not in ("generic", "notes", "compute_capability"))
_FIGURES = ("memory_bandwidth_bytes_per_s", "dense_tflops", "kv_cache_dtypes", "interconnect")
_SOURCE_KEYS = ("memory_bytes", *_FIGURES, "compute_capability")
_CAPABILITY_RE = re.compile(r"^\d+\.\d+$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


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


# ------------------------------------------------------------------------------------------ loading & checks


def _load_file(entry: Any) -> HardwareProfile:
    where = str(entry)
    try:
        text = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read file: {exc}") from None
    return _parse(where, _stem(entry), text)


@functools.lru_cache(maxsize=256)
def _parse(where: str, stem: str, text: str) -> HardwareProfile:
    """A profile file's text, parsed and validated once per process (a plan re-read for each GPU of a check or a
    sweep of recommendations would parse the same YAML again and again); an edited file is parsed anew."""
    data, _ = load_yaml(
        where,
        text,
        error=ProfileError,
        describe=functools.partial(_yaml_message, where, text),
        hint="profiles are plain YAML without !!tags; check quoting and indentation there",
    )
    return _validate(where, stem, data)


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


def _err(where: str, key: str, expected: str, got: Any = None, *, show_got: bool = True) -> ProfileError:
    got_text = f", got {_show(got)}" if show_got else ""
    return ProfileError(
        f"{where}: key '{key}': expected {expected}{got_text}",
        hint="fix the profile file; see profiles/h100-sxm-80gb.yaml for the schema",
    )


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


def _unknown(where: str, key: str, allowed: tuple[str, ...], prefix: str = "") -> ProfileError:
    close = difflib.get_close_matches(key, allowed, n=1)
    dym = f" (did you mean '{close[0]}'?)" if close else ""
    return ProfileError(f"{where}: unknown key '{prefix}{key}'{dym}", hint="allowed keys: " + ", ".join(allowed))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _str_list(where: str, key: str, value: Any, *, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _err(where, key, "a list of strings", value)
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _err(where, key, "a list of non-empty strings", item)
        if allowed is not None and item not in allowed:
            raise _err(where, key, "dtypes from " + ", ".join(allowed), item)
    if len({_norm(i) for i in value}) != len(value):
        raise _err(where, key, "no duplicate entries", None, show_got=False)
    return tuple(value)


def _validate(where: str, stem: str, data: Any) -> HardwareProfile:
    if data is None:
        raise ProfileError(f"{where}: file is empty", hint="a profile needs at least id, name and memory_bytes")
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping of keys at the top level, got {_show(data)}")
    for key in data:
        if not isinstance(key, str) or key not in _KEYS:
            raise _unknown(where, str(key), _KEYS)
    for key in _REQUIRED:
        if key not in data:
            raise ProfileError(
                f"{where}: key '{key}': missing (required)", hint="see profiles/h100-sxm-80gb.yaml for the schema"
            )

    pid = data["id"]
    if not isinstance(pid, str) or not _ID_RE.match(pid):
        raise _err(where, "id", "a lower-case id of letters, digits, '-' and '.'", pid)
    if pid != stem:
        raise _err(where, "id", f"the file name stem '{stem}'", pid)
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise _err(where, "name", "a non-empty string", name)
    vendor = data["vendor"]
    if vendor not in VENDORS:
        raise _err(where, "vendor", "one of " + ", ".join(VENDORS), vendor)
    generic = data.get("generic", False)
    if not isinstance(generic, bool):
        raise _err(where, "generic", "true or false", generic)
    if generic != (vendor == "generic"):
        raise _err(where, "generic", "true exactly when vendor is 'generic'", generic)
    aliases = _str_list(where, "aliases", data["aliases"])
    memory = data["memory_bytes"]
    if not _is_int(memory) or memory <= 0:
        raise _err(where, "memory_bytes", "a positive integer (bytes)", memory)

    if generic:
        for key in _FIGURES:
            if data[key] is not None:
                raise _err(where, key, "null for a generic profile (memory only)", data[key])
        bandwidth, tflops, kv_dtypes, link = None, None, None, None
    else:
        bandwidth = data["memory_bandwidth_bytes_per_s"]
        if not _is_int(bandwidth) or bandwidth <= 0:
            raise _err(where, "memory_bandwidth_bytes_per_s", "a positive integer (bytes/s)", bandwidth)
        tflops = _tflops(where, data["dense_tflops"])
        kv_dtypes = _str_list(where, "kv_cache_dtypes", data["kv_cache_dtypes"], allowed=KV_DTYPE_CHOICES)
        if not kv_dtypes:
            raise _err(where, "kv_cache_dtypes", "at least one dtype", None, show_got=False)
        link = _interconnect(where, data["interconnect"])

    sources = data["sources"]
    if not isinstance(sources, dict):
        raise _err(where, "sources", "a mapping of figure -> source text", sources)
    for key, text in sources.items():
        if not isinstance(key, str) or key not in _SOURCE_KEYS:
            raise _unknown(where, str(key), _SOURCE_KEYS, prefix="sources.")
        if not isinstance(text, str) or not text.strip():
            raise _err(where, f"sources.{key}", "a non-empty string (URL or quoted log line)", text)
    needed = ("memory_bytes",) if generic else ("memory_bytes", "memory_bandwidth_bytes_per_s", "dense_tflops")
    for key in needed:
        if key not in sources:
            raise ProfileError(
                f"{where}: key 'sources.{key}': missing (every figure needs a source)",
                hint="add a URL or a quoted log line under sources",
            )
    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise _err(where, "notes", "a string", notes)
    capability = data.get("compute_capability")
    if capability is not None:
        if generic or not isinstance(capability, str) or not _CAPABILITY_RE.match(capability):
            expected = "null for a generic profile" if generic else 'a CUDA compute capability string such as "9.0"'
            raise _err(where, "compute_capability", expected, capability)
        if "compute_capability" not in sources:
            raise ProfileError(
                f"{where}: key 'sources.compute_capability': missing (every figure needs a source)",
                hint="add a URL or a quoted log line under sources",
            )

    return HardwareProfile(
        id=pid,
        name=name,
        vendor=vendor,
        aliases=aliases,
        memory_bytes=memory,
        memory_bandwidth_bytes_per_s=bandwidth,
        dense_tflops=tflops,
        kv_cache_dtypes=kv_dtypes,
        interconnect=link,
        sources=dict(sources),
        generic=generic,
        notes=notes,
        path=where,
        compute_capability=capability,
    )


def _tflops(where: str, value: Any) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise _err(where, "dense_tflops", "a mapping of dtype -> dense TFLOPS", value)
    for key, number in value.items():
        if not isinstance(key, str) or key not in TFLOPS_DTYPES:
            raise _unknown(where, str(key), TFLOPS_DTYPES, prefix="dense_tflops.")
        if number is not None and (not _is_number(number) or number <= 0):
            raise _err(where, f"dense_tflops.{key}", "a positive number (TFLOPS) or null", number)
    for key in REQUIRED_TFLOPS_DTYPES:
        if key not in value:
            raise ProfileError(f"{where}: key 'dense_tflops.{key}': missing (use null where unsupported)")
    return {k: (None if v is None else float(v)) for k, v in value.items()}


def _interconnect(where: str, value: Any) -> Interconnect:
    if not isinstance(value, dict):
        raise _err(where, "interconnect", "a mapping with type and bandwidth_bytes_per_s", value)
    allowed = ("type", "bandwidth_bytes_per_s")
    for key in value:
        if key not in allowed:
            raise _unknown(where, str(key), allowed, prefix="interconnect.")
    kind = value.get("type")
    if kind not in INTERCONNECT_TYPES:
        raise _err(where, "interconnect.type", "one of " + ", ".join(INTERCONNECT_TYPES), kind)
    if "bandwidth_bytes_per_s" not in value:
        raise ProfileError(f"{where}: key 'interconnect.bandwidth_bytes_per_s': missing (use null if unknown)")
    bandwidth = value["bandwidth_bytes_per_s"]
    if bandwidth is not None and (not _is_int(bandwidth) or bandwidth <= 0):
        raise _err(where, "interconnect.bandwidth_bytes_per_s", "a positive integer (bytes/s) or null", bandwidth)
    return Interconnect(type=kind, bandwidth_bytes_per_s=bandwidth)
