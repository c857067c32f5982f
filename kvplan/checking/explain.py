"""`explain(LOG)`: recompute every KV-cache figure an engine's start-up log prints and say which term is responsible.

The log is read by kvplan.engines.logs (engine, version, model, settings, each figure with its printed decimals).
Whatever it leaves out comes from the options (`ExplainOptions`: options win over the log, and every setting
records where it came from). Then, per figure:

- *capacity* figures (vLLM: blocks, tokens in the running version's meaning, max concurrency, Mamba blocks, the
  memory one request needs and the longest max_model_len; SGLang: K/V pool sizes from its token count;
  llama.cpp: K/V sizes from its cells) are recomputed from the LOGGED quantity they derive from — vLLM's
  available KV memory is planned with `recommend(kv_memory=...)` at both ends of its print-rounding interval (a
  log that prints neither the memory nor the blocks but "GPU KV cache size: N tokens": the block counts that
  print N tokens in that release's meaning) — so block rounding and grouping are tested apart from the budget; a
  logged value anywhere between the two ends is "within print rounding";
- *budget* figures (available memory, weights, activation peak, non-torch, CUDA graphs, GPU memory x
  utilization) are kvplan's modelled values (`recommend` without `kv_memory`) against the log, with the error and
  the budget term responsible for a miss.

A printed figure with d decimals stands for the interval value +- 0.5 x 10^-d (LoggedNumber.interval). The
engine arithmetic is kvplan.engines.log_figures; this module only compares a plan with the evidence.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import ceil, floor
from pathlib import Path
from typing import Any, BinaryIO

from kvplan.core.units import canonical_dtype, dtype_name, short_dtype
from kvplan.engines import Request, lookup
from kvplan.engines.log_figures import (
    Figure,
    LogRules,
    llamacpp_cache_figures,
    rules_for,
    sglang_pool_figures,
    span,
    vllm_blocks_from_tokens,
    vllm_capacity_figures,
    vllm_cudagraph_bytes,
    vllm_reporting,
)
from kvplan.engines.logs import MAX_LOG_CHARS, NUMBER_NAMES, EngineLog, LoggedNumber, parse_log
from kvplan.engines.registry import serving_model
from kvplan.engines.sizing import fullest_stage
from kvplan.errors import KvplanError, UnsupportedArchitecture, UsageError

__all__ = [
    "SCHEMA",
    "ExplainOptions",
    "ExplainedNumber",
    "Explanation",
    "Setting",
    "detect_gpu",
    "explain",
    "explain_source",
    "read_source",
]

SCHEMA = "kvplan.explain/1"
GIB = 2**30
_BINARY_SNIFF = 64 * 1024
_HINT_LOG = "pass the engine's start-up log (the lines around 'Available KV cache memory' and 'GPU KV cache size')"
_HINT_MODEL = (
    "pass --model with a config.json, a model folder or a catalog name of the same architecture (see `kvplan models`)"
)
_HINT_GPU = "pass -g/--gpu-profile (see `kvplan profiles list`)"
_EPS = Fraction(1, 10**12)  # float noise on a printed value


# ----------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Setting:
    """One input of the recomputation: its value and where it came from ("flag", "log", "log: ...",
    "default: ...")."""

    name: str
    value: Any
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class ExplainedNumber:
    """One logged figure against kvplan's.

    `kvplan` is kvplan's value at the printed input (None where kvplan cannot say); `kvplan_range` the values at
    both ends of the input's print-rounding interval (capacity figures); `difference` = logged - kvplan;
    `within_rounding` whether the printed value is consistent with kvplan's (see the module docstring); `term` the
    rule or budget term that decides the figure, or is responsible for the difference; `kind` "capacity" or
    "budget"; `derived_from` the input; `detail` the arithmetic."""

    name: str
    logged: int | float
    kvplan: int | float | None
    unit: str
    within_rounding: bool
    term: str
    kind: str
    decimals: int
    line: int
    kvplan_range: tuple[int | float, int | float] | None = None
    difference: float | None = None
    derived_from: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "logged": self.logged,
            "kvplan": self.kvplan,
            "unit": self.unit,
            "within_rounding": self.within_rounding,
            "term": self.term,
            "kind": self.kind,
            "kvplan_range": None if self.kvplan_range is None else list(self.kvplan_range),
            "difference": self.difference,
            "decimals": self.decimals,
            "line": self.line,
            "derived_from": self.derived_from,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Explanation:
    """What `kvplan explain` found: the engine, the inputs with their sources, every figure compared."""

    engine: str
    engine_version: str | None
    model: str
    log_model: str | None
    gpu_profile: str | None
    settings: tuple[Setting, ...]
    numbers: tuple[ExplainedNumber, ...]
    not_explained: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    lines_read: int = 0
    config_source: str = "dict"  # where the model's config was read (ResolvedModel.config_source)
    revision: str | None = None  # the Hub snapshot's commit hash, when the config came from the Hub or its cache

    @property
    def all_within_rounding(self) -> bool:
        return bool(self.numbers) and all(n.within_rounding for n in self.numbers)

    @property
    def exit_code(self) -> int:
        """0 when every figure reproduces within print rounding, 1 otherwise."""
        return 0 if self.all_within_rounding else 1

    def setting(self, name: str) -> Setting | None:
        return next((s for s in self.settings if s.name == name), None)

    def number(self, name: str) -> ExplainedNumber | None:
        return next((n for n in self.numbers if n.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "model": self.model,
            "config_source": self.config_source,
            "revision": self.revision,
            "log_model": self.log_model,
            "gpu_profile": self.gpu_profile,
            "settings": {s.name: s.as_dict() for s in self.settings},
            "numbers": [n.as_dict() for n in self.numbers],
            "all_within_rounding": self.all_within_rounding,
            "not_explained": list(self.not_explained),
            "notes": list(self.notes),
            "lines_read": self.lines_read,
        }


@dataclass(frozen=True)
class ExplainOptions:
    """What the log may leave out (each wins over the log when given)."""

    model: str | None = None
    vllm_version: str | None = None
    gpu_profile: str | None = None
    tp: int | None = None
    pp: int | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    kv_dtype: str | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    profiles_dir: str | None = None
    offline: bool | None = None
    assume_llama: bool = False
    hub_weights: bool | None = None  # kvplan.planning.resolved: None asks the Hub only when nothing local sizes them


# ----------------------------------------------------------------------------------------------------- input


def read_source(source: str, stdin: BinaryIO | None = None) -> tuple[EngineLog, str]:
    """Read LOG (a path, or "-" for stdin) and parse it: (EngineLog, the text). A UsageError, one line with a hint,
    for a folder, a missing or unreadable file, an empty input or binary data."""
    where = "stdin" if source == "-" else source
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read(MAX_LOG_CHARS + 1)
    else:
        path = Path(source).expanduser()
        try:
            if path.is_dir():
                raise UsageError(f"{source} is a folder, not a log file", hint="pass a log file, or - to read stdin")
            if not path.exists():
                raise UsageError(f"no such file: {source}", hint="check the path, or pass - to read the log from stdin")
            with open(path, "rb") as handle:
                data = handle.read(MAX_LOG_CHARS + 1)
        except OSError as exc:
            raise UsageError(
                f"cannot read {source}: {exc.strerror or exc}", hint="check the file's permissions"
            ) from None
        except ValueError as exc:  # a NUL byte in the path
            raise UsageError(f"cannot read {source!r}: {exc}", hint="check the path") from None
    if isinstance(data, str):
        data = data.encode("utf-8", errors="replace")
    if not data.strip():
        raise UsageError(f"{where} is empty", hint=_HINT_LOG)
    head = data[:_BINARY_SNIFF]
    text_head = head.decode("utf-8", errors="replace")
    if b"\x00" in head or text_head.count("\ufffd") > max(8, len(text_head) // 20):
        raise UsageError(f"{where} is not a text log (it holds binary data)", hint=_HINT_LOG)
    text = data[:MAX_LOG_CHARS].decode("utf-8", errors="replace")
    log = parse_log(text)
    if len(data) > MAX_LOG_CHARS:
        log = replace(log, truncated=True)
    return log, text


def explain_source(source: str, options: ExplainOptions | None = None, stdin: BinaryIO | None = None) -> Explanation:
    """`read_source` then `explain`."""
    log, text = read_source(source, stdin)
    return explain(log, options, text=text)


# ----------------------------------------------------------------------------------------------------- the GPU


def detect_gpu(text: str, log: EngineLog, profiles_dir: str | None = None) -> tuple[str | None, str]:
    """The hardware profile a log names: (profile id, how it was found), or (None, why not).

    First a device name the log prints ("NVIDIA H100 80GB HBM3") that is a profile's name or alias (the longest
    one found wins); else the device's total memory the log prints (vLLM's "Free memory on device (x/79.19 GiB)")
    when exactly one non-generic profile has that memory at the printed rounding, or when every profile that has it
    has the same memory and compute capability too (variants of one card, such as the H100 SXM and the H800: every
    figure explain recomputes is the same with either; the first id is taken and the others are named)."""
    from kvplan.sources.hardware import list_profiles

    profiles = list_profiles(profiles_dir)
    hits: dict[str, tuple[int, str]] = {}
    for profile in profiles:
        for label in (profile.name, *profile.aliases):
            if len(label) < 8 or " " not in label.strip():
                continue  # short ids ("h100", "a100") also occur in prose; a device name has a vendor and a model
            if re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", text):
                best = hits.get(profile.id)
                if best is None or len(label) > best[0]:
                    hits[profile.id] = (len(label), label)
    if hits:
        longest = max(length for length, _ in hits.values())
        top = sorted(pid for pid, (length, _) in hits.items() if length == longest)
        if len(top) == 1:
            return top[0], f"log: device name {hits[top[0]][1]!r}"
    total = log.first("total_gpu_memory")
    if total is not None and total.unit == "GiB":
        low, high = _interval(total)
        found = sorted(
            (p for p in profiles if not p.generic and low <= Fraction(p.memory_bytes, GIB) <= high + _EPS),
            key=lambda p: p.id,
        )
        matches = [p.id for p in found]
        where = f"log: total GPU memory {total.value} GiB (line {total.line})"
        if len(matches) == 1:
            return matches[0], where
        if found and len({(p.memory_bytes, p.compute_capability) for p in found}) == 1:
            # variants of one card (H100 SXM and H800): the same memory and kernels give the same figures
            return matches[0], f"{where}; {', '.join(matches[1:])} has the same memory and compute capability"
        if matches:
            return None, f"the log's total GPU memory {total.value} GiB fits several profiles: {', '.join(matches)}"
    return None, "the log names no GPU kvplan has a profile for"


# ----------------------------------------------------------------------------------------------------- settings


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= 1 else None


class _Settings:
    """Settings with their sources: an option wins over the log, the log over a default."""

    def __init__(self, log: EngineLog, notes: list[str]) -> None:
        self.log = log
        self.notes = notes
        self.items: dict[str, Setting] = {}

    def pick(
        self,
        name: str,
        option: Any,
        log_key: str | None = None,
        convert: Callable[[Any], Any] = lambda v: v,
        fallback: Iterable[tuple[Any, str]] = (),
    ) -> Any:
        if option is not None:
            self.items[name] = Setting(name, option, "flag")
            return option
        if log_key is not None and log_key in self.log.settings:
            raw = self.log.settings[log_key]
            value = convert(raw)
            if value is not None:
                self.items[name] = Setting(name, value, "log")
                return value
            self.notes.append(f"the log's {log_key} {raw!r} is not usable here; set it with a flag if it matters")
        for value, source in fallback:
            if value is not None:
                self.items[name] = Setting(name, value, source)
                return value
        return None

    def default(self, name: str, value: Any, source: str) -> None:
        if name not in self.items:
            self.items[name] = Setting(name, value, source)

    def ordered(self) -> tuple[Setting, ...]:
        order = (
            "model",
            "engine_version",
            "gpu_profile",
            "tensor_parallel_size",
            "pipeline_parallel_size",
            "max_model_len",
            "gpu_memory_utilization",
            "kv_cache_dtype",
            "dtype",
            "max_num_seqs",
            "max_num_batched_tokens",
            "block_size",
        )
        return tuple(self.items[name] for name in order if name in self.items) + tuple(
            s for name, s in self.items.items() if name not in order
        )


def _speculative(value: Any) -> str | None:
    """The log's speculative_config as vLLM's JSON (None: not one kvplan reads)."""
    import json

    from kvplan.engines.vllm import parse_speculative_config

    try:
        parse_speculative_config(value)
    except KvplanError:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _kv_dtype(value: Any) -> str | None:
    text = str(value).strip()
    if text.lower() == "auto":
        return "auto"
    name = dtype_name(text)
    return short_dtype(name) if name else None


def _model_dtype(value: Any) -> str | None:
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    name = dtype_name(text)
    short = short_dtype(name) if name else None
    return short if short in ("fp32", "bf16", "fp16") else None


# ----------------------------------------------------------------------------------------------------- comparing


def _exact(number: LoggedNumber) -> Fraction:
    return Fraction(repr(number.value)) if isinstance(number.value, float) else Fraction(number.value)


def _interval(number: LoggedNumber) -> tuple[Fraction, Fraction]:
    """The printed value's interval, exactly: value +- half a unit in the last printed place."""
    value = _exact(number)
    half = Fraction(1, 2 * 10**number.decimals) if number.decimals else Fraction(0)
    return value - half, value + half


def _plain(value: Fraction, decimals: int) -> int | float:
    """A Fraction as JSON shows it: an int for whole figures, else a float rounded past the printed decimals."""
    if value.denominator == 1:
        return int(value)
    return round(float(value), max(decimals + 4, 6))


def _within(number: LoggedNumber, low: Fraction, high: Fraction) -> bool:
    """The printed value is consistent with kvplan's values between `low` and `high`."""
    lo, hi = _interval(number)
    if number.decimals == 0:
        return low - _EPS <= _exact(number) <= high + _EPS
    return lo <= high + _EPS and low - _EPS <= hi


def _unique(numbers: Iterable[LoggedNumber]) -> list[LoggedNumber]:
    """One figure per (name, printed value), in log order (TP ranks print the same line each)."""
    seen: set[tuple[str, Any]] = set()
    out = []
    for number in numbers:
        key = (number.name, number.value)
        if key not in seen:
            seen.add(key)
            out.append(number)
    return out


def _unit(name: str) -> str:
    return NUMBER_NAMES.get(name, ("", ""))[0]


# ----------------------------------------------------------------------------------------------------- explain


def explain(log: EngineLog, options: ExplainOptions | None = None, *, text: str = "") -> Explanation:
    """Recompute every figure of `log` that kvplan can (see the module docstring). `text` is the raw log, searched
    for a device name. Raises a UsageError (one line, with a hint) when the log is not an engine start-up log,
    prints nothing kvplan recomputes, names no model and none is given, or (vLLM) no GPU profile is known."""
    o = options or ExplainOptions()
    if log.engine is None:
        raise UsageError("no engine start-up lines found in the log", hint=_HINT_LOG)
    rules = rules_for(log.engine)
    entry = lookup(log.engine)
    display = entry.display if entry is not None else log.engine
    if rules is None:
        raise UsageError(
            f"kvplan explain does not recompute {display} logs yet",
            hint="it reads vLLM logs, and SGLang and llama.cpp KV-cache lines",
        )
    wanted = set(rules.capacity) | set(rules.budget)
    figures = [n for n in _unique(log.numbers) if n.name in wanted | {"total_gpu_memory"}]
    if not any(n.name in wanted for n in figures):
        raise UsageError(f"the log prints no {display} KV-cache figure kvplan recomputes", hint=_HINT_LOG)
    notes: list[str] = []
    settings = _Settings(log, notes)
    model_name = settings.pick("model", o.model, fallback=((log.model, "log"),))
    if model_name is None:
        raise UsageError("the log names no model", hint=_HINT_MODEL)
    resolved = _resolve(
        model_name, from_log=o.model is None, offline=o.offline, assume_llama=o.assume_llama, hub_weights=o.hub_weights
    )
    explainer = _Vllm if rules.plans_budget else _PoolSizes
    return explainer(log, text, o, rules, settings, resolved, notes).run(figures)


def _resolve(
    name: str, *, from_log: bool, offline: bool | None, assume_llama: bool, hub_weights: bool | None = None
) -> Any:
    from kvplan.planning.resolved import resolve

    try:
        return resolve(name, offline=offline, assume_llama=assume_llama, hub_weights=hub_weights)
    except KvplanError as exc:
        if not from_log or isinstance(exc, UnsupportedArchitecture):  # read, but refused: its own hint says why
            raise
        raise UsageError(f"cannot read the log's model {name!r}: {exc.message}", hint=_HINT_MODEL) from None


class _Explainer:
    """What every engine's explanation shares: the inputs, and the rows."""

    def __init__(
        self,
        log: EngineLog,
        text: str,
        options: ExplainOptions,
        rules: LogRules,
        settings: _Settings,
        resolved: Any,
        notes: list[str],
    ) -> None:
        self.log, self.text, self.o, self.rules = log, text, options, rules
        self.settings, self.resolved, self.notes = settings, resolved, notes
        self.rows: list[ExplainedNumber] = []
        self.gpu: str | None = None
        self.weights_from_log = False
        self.gpu_from_memory = False

    def parallel(self) -> tuple[int, int]:
        tp = self.settings.pick("tensor_parallel_size", self.o.tp, "tensor_parallel_size", _whole)
        pp = self.settings.pick("pipeline_parallel_size", self.o.pp, "pipeline_parallel_size", _whole)
        if tp is None:
            self.settings.default("tensor_parallel_size", 1, "default: 1")
        if pp is None:
            self.settings.default("pipeline_parallel_size", 1, "default: 1")
        return tp or 1, pp or 1

    def capacity_row(
        self,
        number: LoggedNumber,
        at: Figure | None,
        low: Figure | None,
        high: Figure | None,
        derived_from: str,
        missing: str = "",
    ) -> None:
        """A capacity figure: within print rounding when the logged value lies between kvplan's at both ends."""
        unit = _unit(number.name)
        if at is None or low is None or high is None:
            self.rows.append(
                ExplainedNumber(
                    number.name,
                    number.value,
                    None,
                    unit,
                    False,
                    missing or "not modelled",
                    "capacity",
                    number.decimals,
                    number.line,
                    derived_from=derived_from,
                )
            )
            return
        lo, hi = min(low.value, high.value), max(low.value, high.value)
        within = _within(number, lo, hi)
        term = at.term
        self.rows.append(
            ExplainedNumber(
                number.name,
                number.value,
                _plain(at.value, number.decimals),
                unit,
                within,
                term,
                "capacity",
                number.decimals,
                number.line,
                kvplan_range=(_plain(lo, number.decimals), _plain(hi, number.decimals)),
                difference=_plain(_exact(number) - at.value, number.decimals),
                derived_from=derived_from,
                detail=at.detail,
            )
        )

    def finish(self, engine_version: str | None, model: str) -> Explanation:
        used = {"max_concurrency_tokens", "requested_max_model_len", self.rules.source}
        if self.gpu_from_memory:
            used.add("total_gpu_memory")
        shown = {r.name for r in self.rows}
        not_explained = sorted(self.log.names - shown - used)
        return Explanation(
            engine=self.log.engine or "",
            engine_version=engine_version,
            model=model,
            log_model=self.log.model,
            gpu_profile=self.gpu,
            settings=self.settings.ordered(),
            numbers=tuple(self.rows),
            not_explained=tuple(not_explained),
            notes=tuple(dict.fromkeys(self.notes)),
            lines_read=self.log.lines_read,
            config_source=self.resolved.config_source,
            revision=self.resolved.revision,
        )


class _Vllm(_Explainer):
    """vLLM: capacity figures from the logged available KV memory, budget figures from kvplan's budget."""

    def run(self, figures: list[LoggedNumber]) -> Explanation:
        from kvplan.sources.hardware import load_profile

        log, o, s = self.log, self.o, self.settings
        gpu_text = o.gpu_profile
        if gpu_text is None:
            found, why = detect_gpu(self.text, log, o.profiles_dir)
            if found is None:
                raise UsageError(f"no GPU profile: {why}", hint=_HINT_GPU)
            s.items["gpu_profile"] = Setting("gpu_profile", found, why)
            gpu_text = found
            self.gpu_from_memory = "total GPU memory" in why
        else:
            s.items["gpu_profile"] = Setting("gpu_profile", gpu_text, "flag")
        profile = load_profile(gpu_text, profiles_dir=o.profiles_dir)
        self.gpu = profile.id
        tp, pp = self.parallel()
        version = s.pick("engine_version", o.vllm_version, fallback=((log.engine_version, "log"),))
        v0_lines = any(n.form.startswith("vllm.v0_") for n in log.numbers)
        try:
            reporting, why = vllm_reporting(version, v0_lines)
        except UsageError:
            if o.vllm_version is not None:
                raise
            self.notes.append(f"the log's version {version!r} is not one kvplan can read; pass --vllm-version")
            del s.items["engine_version"]
            version = None
            reporting, why = vllm_reporting(None, v0_lines)
        if version is None:
            s.default("engine_version", None, "not in the log: " + why.split(": ")[0])
        budget_version = version if version is not None else ("0.7" if v0_lines else None)
        shape = self.resolved.shape
        concurrency_len = log.first("max_concurrency_tokens")
        requested_len = log.first("requested_max_model_len")
        seq_len = s.pick(
            "max_model_len",
            o.max_model_len,
            "max_model_len",
            _whole,
            fallback=(
                (None if concurrency_len is None else concurrency_len.value, "log: the maximum concurrency line"),
                (None if requested_len is None else requested_len.value, "log: the start-up error"),
                (shape.max_position_embeddings, "default: vLLM's, the model's max_position_embeddings"),
            ),
        )
        if seq_len is None:
            raise UsageError("neither the log nor the model config gives max_model_len", hint="pass --max-model-len")
        serving = serving_model(log.engine or "")
        default_seqs = serving.scheduler_defaults(profile)[1] if serving else None
        utilization = s.pick("gpu_memory_utilization", o.gpu_memory_utilization, "gpu_memory_utilization", _fraction)
        kv_dtype = s.pick("kv_cache_dtype", o.kv_dtype, "kv_cache_dtype", _kv_dtype)
        dtype = s.pick("dtype", None, "dtype", _model_dtype)
        seqs = s.pick("max_num_seqs", o.max_num_seqs, "max_num_seqs", _whole)
        mnbt = s.pick("max_num_batched_tokens", o.max_num_batched_tokens, "max_num_batched_tokens", _whole)
        block = s.pick("block_size", o.block_size, "block_size", _whole)
        speculative = s.pick("speculative_config", None, "speculative_config", _speculative)
        if block is None:
            logged_block = log.first("block_size")
            if logged_block is not None and isinstance(logged_block.value, int):
                block = logged_block.value
                s.items["block_size"] = Setting("block_size", block, f"log: line {logged_block.line}")
        plan = dict(
            gpu_profile=gpu_text,
            gpus=tp * pp,
            engine=log.engine,
            tp=tp,
            pp=pp,
            max_model_len=seq_len,
            gpu_memory_utilization=utilization,
            kv_dtype=kv_dtype or "auto",
            dtype=dtype or "auto",
            max_num_seqs=seqs,
            max_num_batched_tokens=mnbt,
            block_size=block,
            vllm_version=budget_version,
            profiles_dir=o.profiles_dir,
            offline=o.offline,
            speculative_config=speculative,
        )
        budget = self._budget(plan, figures)
        rec = budget if budget is not None else self._plan(plan, kv_memory=1)
        s.default("gpu_memory_utilization", rec.gpu_memory_utilization, "default: vLLM's")
        s.default("kv_cache_dtype", rec.kv_dtype, "default: auto, the model dtype")
        s.default("dtype", rec.dtype, "default: auto, the config's")
        s.default("max_num_seqs", default_seqs, f"default: vLLM's for {profile.id}")
        s.default("max_num_batched_tokens", rec.max_num_batched_tokens, f"default: vLLM's for {profile.id}")
        s.default("block_size", rec.block_size, "default: vLLM's")
        caches, layers_on_gpu = fullest_stage(shape, pp)
        request = Request(
            rec.max_model_len,
            1,
            canonical_dtype(rec.kv_dtype, what="kv dtype"),
            canonical_dtype(rec.dtype),
            rec.tp,
            rec.pp,
            block,
            rec.max_num_batched_tokens,
            engine_version=rec.vllm_version,  # the release the plan modelled: its storage rules
            compute_capability=profile.compute_capability,
            speculative=rec.speculative,  # the drafter's KV layers and speculative state slots
        )
        self._capacity(figures, plan, caches, request, reporting, why, budget)
        if budget is not None:
            self._budget_rows(figures, budget, profile, layers_on_gpu)
        if pp > 1:
            self.notes.append(
                "with pipeline parallelism vLLM prints each stage's memory and sizes the cache by the smallest; "
                "kvplan recomputes the stage with the most layers"
            )
        return self.finish(version, self.resolved.name)

    # -- plans

    def _plan(self, plan: dict[str, Any], **extra: Any) -> Any:
        from kvplan.planning.recommend import recommend

        return recommend(self.resolved, **plan, **extra)

    def _budget(self, plan: dict[str, Any], figures: list[LoggedNumber]) -> Any:
        """kvplan's modelled budget; with the log's weights where kvplan cannot count them; None when neither."""
        from kvplan.planning.estimate import resolve_dtypes

        model_dtype, _ = resolve_dtypes(self.resolved.shape, plan["dtype"], "auto")
        if self.resolved.weights(model_dtype)[0] is not None:
            return self._plan(plan)
        weights = self.log.first("weights_memory")
        if weights is None or weights.unit != "GiB":
            self.notes.append("kvplan cannot count this model's weights and the log prints none: no budget figures")
            return None
        self.weights_from_log = True
        whole = int(_exact(weights) * GIB) * plan["tp"] * plan["pp"]
        self.notes.append(
            f"kvplan cannot count this model's weights: its budget uses the log's {weights.value} GiB per GPU"
        )
        return self._plan(plan, weights_bytes=whole)

    # -- capacity

    def _capacity(
        self,
        figures: list[LoggedNumber],
        plan: dict[str, Any],
        caches: list[Any],
        request: Request,
        reporting: str,
        why: str,
        budget: Any,
    ) -> None:
        from kvplan.engines.vllm import capacity

        names = [n for n in figures if n.name in self.rules.capacity]
        if not names:
            return
        memory = self._source_memory()
        if memory is not None:
            low, high = _interval(memory)
            lo_bytes, hi_bytes = max(0, ceil(low * GIB)), max(0, floor(high * GIB))
            mid_bytes = max(0, round(_exact(memory) * GIB))
            derived = f"log: available KV cache memory {memory.value} GiB (line {memory.line})"
        else:
            blocks = self.log.first("num_gpu_blocks")
            if blocks is not None:
                page = capacity(caches, request, 0)
                lo_bytes = hi_bytes = mid_bytes = int(blocks.value) * page.page_bytes * page.group_size
                derived = f"log: num_gpu_blocks {blocks.value:,} (line {blocks.line})"
                names = [n for n in names if n.name != "num_gpu_blocks"]
            elif (found := self._memory_from_tokens(caches, request, reporting, why)) is not None:
                lo_bytes, hi_bytes, mid_bytes, derived = found
                names = [n for n in names if n.name != "kv_cache_tokens"]
            elif budget is not None:
                lo_bytes = hi_bytes = mid_bytes = max(0, budget.available_kv_memory_bytes)
                derived = "kvplan's modelled budget (the log prints no KV memory)"
            else:
                for number in names:
                    self.capacity_row(number, None, None, None, "", "the log prints no KV memory to derive it from")
                return
        # the plan at both ends of the memory interval: recommend(kv_memory=...) checks the blocks below
        recs = [self._plan(plan, kv_memory=max(1, b)) for b in (lo_bytes, hi_bytes)]
        limit = request.seq_len

        def at(available: int) -> dict[str, Figure]:
            return vllm_capacity_figures(caches, request, available, reporting, limit)

        ends = span(at, lo_bytes, hi_bytes)
        for rec, figure in zip(recs, ends["num_gpu_blocks"], strict=True):
            if rec.num_blocks != figure.value:  # pragma: no cover - the two paths must agree
                raise AssertionError(
                    f"recommend ({rec.num_blocks} blocks) and the log arithmetic ({figure.value}) disagree"
                )
        middle = at(mid_bytes)
        for number in names:
            if number.name not in middle:
                self.capacity_row(number, None, None, None, derived, _missing(number.name))
                continue
            pair = ends[number.name]
            figure = middle[number.name]
            if number.name == "kv_cache_tokens":
                figure = replace(figure, detail=f"{figure.detail} ({why})")
            self.capacity_row(number, figure, pair[0], pair[1], derived)
        if derived.startswith("kvplan's modelled budget"):
            self._blame("budget")
        elif request.pp > 1 and memory is not None:
            self._blame("pipeline stage")

    def _memory_from_tokens(
        self, caches: list[Any], request: Request, reporting: str, why: str
    ) -> tuple[int, int, int, str] | None:
        """(lowest, highest, middle KV bytes, where from) for a log that prints "GPU KV cache size: N tokens" but
        neither the KV memory nor the blocks (vLLM 40691's Qwen3.5-27B): the block counts that print N tokens in
        the version's meaning (`vllm_blocks_from_tokens`), as the memory that makes them. None when the log prints
        no tokens, or no block count prints them (a note says so)."""
        from kvplan.engines.vllm import capacity

        tokens = self.log.first("kv_cache_tokens")
        if tokens is None or not isinstance(tokens.value, int):
            return None
        page = capacity(caches, request, 0)
        blocks = vllm_blocks_from_tokens(
            tokens.value, reporting, page.block_size, page.num_groups, page.blocks_per_request, request.seq_len
        )
        if blocks is None:
            self.notes.append(f"no block count prints {tokens.value:,} tokens ({why}): the tokens are not a source")
            return None
        unit = page.page_bytes * page.group_size
        low, high = blocks[0] * unit, (blocks[1] + 1) * unit - 1
        derived = (
            f"log: GPU KV cache size {tokens.value:,} tokens (line {tokens.line}): {blocks[0]:,}-{blocks[1]:,} "
            f"blocks ({why})"
        )
        return low, high, (low + high) // 2, derived

    def _blame(self, term: str) -> None:
        """Name `term` as responsible for every capacity figure that does not reproduce."""
        self.rows[:] = [
            replace(r, term=term) if r.kind == "capacity" and not r.within_rounding else r for r in self.rows
        ]

    def _source_memory(self) -> LoggedNumber | None:
        """The available KV memory the capacity figures derive from: the smallest the log prints (vLLM sizes the
        cache by the worker with the least)."""
        found = [n for n in self.log.get(self.rules.source) if n.unit == "GiB"]
        return min(found, key=lambda n: n.value) if found else None

    # -- budget

    def _budget_rows(self, figures: list[LoggedNumber], rec: Any, profile: Any, layers_on_gpu: int) -> None:
        terms = {t.name: t for t in rec.budget}
        labels = self.rules.labels
        modelled: dict[str, int] = {name: abs(t.bytes) for name, t in terms.items()}
        if "cudagraph" not in modelled:
            modelled["cudagraph"] = vllm_cudagraph_bytes(layers_on_gpu)
        single = {names[0]: figure for figure, names in self.rules.budget.items() if len(names) == 1}
        logged_terms = {
            term: n for term, figure in single.items() for n in figures if n.name == figure and n.unit == "GiB"
        }
        errors = {
            term: Fraction(modelled[term], GIB) - _exact(n) for term, n in logged_terms.items() if term in modelled
        }
        for figure, names in self.rules.budget.items():  # a sum the log prints whose other terms it prints too
            if figure == self.rules.source or len(names) < 2:
                continue
            unknown = [t for t in names if t not in errors]
            printed = [n for n in figures if n.name == figure and n.unit == "GiB"]
            if len(unknown) == 1 and printed and all(t in modelled for t in names):
                total = Fraction(sum(modelled[t] for t in names), GIB) - _exact(printed[0])
                errors[unknown[0]] = total - sum(errors[t] for t in names if t != unknown[0])
        for number in figures:
            if number.name == "total_gpu_memory":
                if not self.gpu_from_memory:  # else the profile was chosen by this very figure
                    self._budget_row(number, profile.memory_bytes, "GPU profile", f"{profile.id}: {profile.name}")
                continue
            term_names = self.rules.budget.get(number.name)
            if term_names is None or number.unit != "GiB":
                continue
            if number.name == self.rules.source:
                value = rec.available_kv_memory_bytes
                included = [t for t in term_names if t in terms]
                responsible = max((t for t in included if t in errors), key=lambda t: abs(errors[t]), default=None)
                term = labels.get(responsible, responsible) if responsible else "budget (no term of it is printed)"
                detail = " ".join(f"{t.name} {t.bytes / GIB:+.2f} GiB;" for t in rec.budget).rstrip(";")
                if errors:
                    detail += " | kvplan - log: " + ", ".join(
                        f"{labels.get(t, t)} {float(e):+.2f}" for t, e in errors.items()
                    )
                self._budget_row(number, value, term, detail)
                continue
            if self.weights_from_log and "weights" in term_names:
                self.rows.append(
                    ExplainedNumber(
                        number.name,
                        number.value,
                        None,
                        "GiB",
                        False,
                        "weights: kvplan cannot count them (its budget uses the log's)",
                        "budget",
                        number.decimals,
                        number.line,
                        derived_from="the log",
                    )
                )
                continue
            value = sum(modelled.get(t, 0) for t in term_names)
            if len(term_names) == 1:
                term = labels.get(term_names[0], term_names[0])
                source = (
                    terms[term_names[0]].source
                    if term_names[0] in terms
                    else "kvplan's model (not subtracted in this version)"
                )
            else:
                responsible = max((t for t in term_names if t in errors), key=lambda t: abs(errors[t]), default=None)
                term = (
                    labels.get(responsible, responsible)
                    if responsible
                    else " + ".join(labels.get(t, t) for t in term_names)
                )
                source = " + ".join(labels.get(t, t) for t in term_names)
            self._budget_row(number, value, term, source)

    def _budget_row(self, number: LoggedNumber, value: int, term: str, detail: str) -> None:
        kvplan = Fraction(value, GIB)
        low, high = _interval(number)
        within = low - _EPS <= kvplan <= high + _EPS
        self.rows.append(
            ExplainedNumber(
                number.name,
                number.value,
                round(float(kvplan), 4),
                "GiB",
                within,
                term,
                "budget",
                number.decimals,
                number.line,
                difference=round(float(_exact(number) - kvplan), 4),
                derived_from="kvplan's budget model",
                detail=detail,
            )
        )


def _missing(name: str) -> str:
    if name == "mamba_cache_blocks":
        return "model: kvplan sees no Mamba-style state layers in this config"
    if name.startswith("padding_"):
        return "group padding: kvplan's grouping of this config needs none (an extra layer, e.g. a draft's?)"
    return "not modelled for this model"


class _PoolSizes(_Explainer):
    """SGLang and llama.cpp: pool sizes recomputed from the token or cell counts the same lines print."""

    def run(self, figures: list[LoggedNumber]) -> Explanation:
        from kvplan.planning.estimate import resolve_dtypes

        s = self.settings
        tp, pp = self.parallel()
        shape = self.resolved.shape
        caches, _ = fullest_stage(shape, pp)
        dtype = s.pick("dtype", None, "dtype", _model_dtype) or "auto"
        by_line: dict[int, dict[str, LoggedNumber]] = {}
        for number in self.log.numbers:
            by_line.setdefault(number.line, {})[number.name] = number
        source = self.rules.source
        if source == "kv_cache_tokens":  # a token pool (SGLang); else a cache of cells (llama.cpp)
            kv = s.pick("kv_cache_dtype", self.o.kv_dtype, "kv_cache_dtype", _kv_dtype) or "auto"
            model_dtype, kv_dtype = resolve_dtypes(shape, dtype, kv)
            s.default("kv_cache_dtype", short_dtype(kv_dtype), "default: auto, the model dtype")
            for line, found in sorted(by_line.items()):
                tokens = found.get(source)
                if tokens is None or not isinstance(tokens.value, int):
                    continue
                req = Request(max(1, tokens.value), 1, kv_dtype, model_dtype, tp, pp)
                computed, why = sglang_pool_figures(caches, req, tokens.value)
                self._rows(found, computed, why, f"log: #tokens {tokens.value:,} (line {line})")
        else:
            for line, found in sorted(by_line.items()):
                cells = found.get(source)
                if cells is None or not isinstance(cells.value, int):
                    continue
                type_k = self._ggml(self.log.settings.get("cache_type_k"))
                type_v = self._ggml(self.log.settings.get("cache_type_v"))
                layers = found.get("llamacpp_kv_layers")
                streams = found.get("llamacpp_kv_streams")  # "4/4 seqs": 4 streams of the cells printed
                computed, why = llamacpp_cache_figures(
                    caches,
                    type_k,
                    type_v,
                    cells.value,
                    None if layers is None else int(layers.value),
                    1 if streams is None else int(streams.value),
                )
                self._rows(found, computed, why, f"log: {cells.value:,} cells (line {line})")
        if not self.rows:
            reasons = "; ".join(dict.fromkeys(self.notes)) or "no line pairs a pool size with its token count"
            raise UsageError(f"kvplan cannot recompute this log's figures: {reasons}", hint=_HINT_LOG)
        return self.finish(self.log.engine_version, self.resolved.name)

    def _ggml(self, value: Any) -> str:
        name = dtype_name(value) if value is not None else None
        return name or "float16"

    def _rows(self, found: dict[str, LoggedNumber], computed: dict[str, Figure], why: str | None, derived: str) -> None:
        if why:
            self.notes.append(why)
            return
        for name, number in found.items():
            figure = computed.get(name)
            if figure is not None:
                self.capacity_row(number, figure, figure, figure, derived)
