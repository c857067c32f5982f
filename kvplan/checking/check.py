"""`kvplan check`: run `recommend()` for each deployment and judge it: fits or not, headroom, the binding
constraint, the smallest changes that make it fit (each re-checked with `recommend()`), model-config lint,
and a JUnit XML report for CI.

Definitions (per GPU, the fullest pipeline stage):
- required concurrency: the deployment's `concurrency` requests of `max_model_len` tokens, else 1 (what an
  engine needs to start: vLLM checks that one request of max_model_len fits,
  vllm-0.33.0/vllm/v1/core/kv_cache_planning.py:151-195 `check_enough_kv_cache_memory`). `max_num_seqs`
  (vLLM's `max-num-seqs`, SGLang's `max-running-requests`) is the engine's cap on running sequences, not a
  requirement: vLLM's scheduler runs at most that many (v1/core/sched/scheduler.py:131) and starts with any
  cap whose one request fits, so a cap above the KV-limited concurrency passes. Only an engine whose sequence
  setting reserves each sequence's context at start (`ServingModel.reserves_seqs`: llama.cpp's `-np`) takes
  `max_num_seqs` as the requirement when `concurrency` is not given;
- needed KV bytes: what those requests take in the engine's own storage model (vLLM: blocks per request x
  page bytes x requests, exactly as `recommend()` counts them; SGLang: its per-token pool); for engines
  whose internals kvplan does not repeat here, available x requested / max concurrency;
- headroom: available KV memory - needed KV bytes; headroom fraction: headroom / available
  (for vLLM equal to 1 - requested / max concurrency);
- binding constraint of a plan that does not fit: `weights` (weights and overheads leave no KV memory),
  `max_model_len` (one request of max_model_len does not fit), `concurrency` (the requested concurrency
  does not), `startup` (it fits, but the engine release would refuse to start: vLLM's start-up checks,
  kvplan.engines.vllm.startup, e.g. max_num_seqs above the Mamba cache blocks or max_num_batched_tokens), `headroom` (it fits with less
  than --min-headroom spare), `lint` (--strict and config lint). The engine's max_num_seqs cap for the start-up
  checks (e.g. vLLM's Mamba check, vllm-0.33.0/vllm/config/compilation.py:1517-1532) is the plan's
  max_num_seqs, else the release's scheduler default.
Pure arithmetic: never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kvplan.checking.lint import LintWarning, lint_model_config
from kvplan.checking.manifests import load_check_file
from kvplan.checking.plans import Deployment
from kvplan.core.bisection import largest
from kvplan.core.units import format_bytes
from kvplan.engines import Request, canonical_engine
from kvplan.engines.registry import serving_model, sized_engines
from kvplan.errors import KvplanError, Spelling, UsageError, spell
from kvplan.planning.recommend import TP_CHOICES, request_kv_bytes
from kvplan.planning.resolved import ResolvedModel, resolve

SCHEMA = "kvplan.check/1"
CONSTRAINTS = ("weights", "max_model_len", "concurrency", "startup", "host_memory", "headroom", "lint")
MAX_SUGGESTED_UTILIZATION = 0.95
# recommend()'s fields (kvplan.errors) -> the plan keys that set them; messages name fields, and a plan's
# messages name them as the plan does (an engine config: as the file spells the key). Fields without a key
# here keep their CLI flag.
PLAN_KEYS = {
    "kv_memory": "kv_cache_memory",
    "tp": "tensor_parallel_size",
    "pp": "pipeline_parallel_size",
    "gpus": "gpus",
    "max_model_len": "max_model_len",
    "concurrency": "concurrency",
    "max_num_seqs": "max_num_seqs",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "block_size": "block_size",
    "max_num_batched_tokens": "max_num_batched_tokens",
    "kv_dtype": "kv_cache_dtype",
    "engine": "engine",
    "weights_bytes": "weights_bytes",
    "assume_llama": "assume_llama",
    "quantization": "quantization",
    "speculative_config": "speculative_config",
    "kv_offloading_size": "kv_offloading_size",
    "kv_offloading_backend": "kv_offloading_backend",
    "hicache_ratio": "hicache_ratio",
    "hicache_size": "hicache_size",
    "lmcache_cpu_size": "lmcache_max_local_cpu_size",
    "lmcache_disk_size": "lmcache_max_local_disk_size",
    "lmcache_version": "lmcache_version",
    "kvbm_cpu_cache_gb": "kvbm_cpu_cache_gb",
    "kvbm_disk_cache_gb": "kvbm_disk_cache_gb",
    "host_memory": "host_memory",
    "dp": "data_parallel_size",
    "dcp": "decode_context_parallel_size",
    "expert_parallel": "enable_expert_parallel",
    "redundant_experts": "num_redundant_experts",
    "max_loras": "max_loras",
    "max_lora_rank": "max_lora_rank",
    "max_cpu_loras": "max_cpu_loras",
    "lora_dtype": "lora_dtype",
    "lora_target_modules": "lora_target_modules",
    "limit_mm_per_prompt": "limit_mm_per_prompt",
    "mamba_full_memory_ratio": "mamba_full_memory_ratio",
    "max_mamba_cache_size": "max_mamba_cache_size",
    "mamba_ssm_dtype": "mamba_ssm_dtype",
}


def supported_engines() -> tuple[str, ...]:
    """The engines kvplan.planning.recommend sizes (those with a serving model in kvplan.engines.registry)."""
    return sized_engines()


def recommend_engine(plan_engine: str) -> str:
    """A plan's engine as kvplan.planning.recommend names it, or a UsageError when recommend cannot size it."""
    engine = canonical_engine(plan_engine)
    if engine in supported_engines():
        return engine
    raise UsageError(
        f"kvplan check cannot size engine '{plan_engine}' yet (it sizes {', '.join(supported_engines())})",
        hint="set engine to one of: " + ", ".join(supported_engines()),
    )


@dataclass(frozen=True)
class Fix:
    """One change that makes the deployment pass, re-checked with recommend()."""

    key: str
    value: Any
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "text": self.text}


@dataclass(frozen=True)
class DeploymentResult:
    deployment: Deployment
    recommendation: Any  # kvplan.planning.recommend.Recommendation
    required_concurrency: int
    needed_kv_bytes: int | None
    headroom_bytes: int | None
    headroom_fraction: float | None
    fits: bool
    ok: bool
    binding_constraint: str | None
    binding_detail: str | None
    fixes: tuple[Fix, ...]
    lint: tuple[LintWarning, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        dep, rec = self.deployment, self.recommendation
        return {
            "name": dep.name,
            "source": dep.source,
            "line": dep.line,
            "engine": dep.engine,
            "model": rec.model,
            "config_source": rec.config_source,
            "revision": rec.revision,
            "gpu_profile": rec.gpu_profile,
            "gpus": dep.gpu_count,
            "tensor_parallel_size": rec.tp,
            "pipeline_parallel_size": rec.pp,
            "max_model_len": rec.max_model_len,
            "max_num_seqs": dep.max_num_seqs,
            "concurrency": dep.concurrency,
            "required_concurrency": self.required_concurrency,
            "kv_cache_dtype": rec.kv_dtype,
            "fits": self.fits,
            "ok": self.ok,
            "headroom_bytes": self.headroom_bytes,
            "headroom_fraction": None if self.headroom_fraction is None else round(self.headroom_fraction, 6),
            "needed_kv_bytes": self.needed_kv_bytes,
            "binding_constraint": self.binding_constraint,
            "binding_detail": self.binding_detail,
            "fix": [f.to_dict() for f in self.fixes],
            "lint": [w.to_dict() for w in self.lint],
            "notes": list(self.notes),
            "available_kv_memory_bytes": rec.available_kv_memory_bytes,
            "kv_cache_tokens": rec.kv_cache_tokens,
            "num_blocks": rec.num_blocks,
            "block_size": rec.block_size,
            "max_concurrency": rec.max_concurrency,
            "max_model_len_fit": rec.max_model_len_fit,
            "weights_bytes": rec.weights_bytes,
            "weights_source": rec.weights_source,
            "gpu_memory_utilization": rec.gpu_memory_utilization,
            "fp8_kv": rec.fp8_kv,
            "min_tp_to_fit": rec.min_tp_to_fit,
            "host_ram_bytes": rec.host_ram_bytes,
            "host_memory_bytes": rec.host_memory_bytes,
            "host_fits": rec.host_fits,
            "recommend": rec.to_dict(),
        }


@dataclass(frozen=True)
class CheckReport:
    results: tuple[DeploymentResult, ...]
    min_headroom: float = 0.0
    strict: bool = False

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        passed = sum(r.ok for r in self.results)
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "min_headroom": self.min_headroom,
            "strict": self.strict,
            "summary": {"deployments": len(self.results), "passed": passed, "failed": len(self.results) - passed},
            "deployments": [r.to_dict() for r in self.results],
        }


# ------------------------------------------------------------------------------------------------ checking


def parse_headroom(text: str | float | None) -> float:
    """--min-headroom: "5%" or 0.05 -> 0.05, in [0, 1)."""
    if text is None:
        return 0.0
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--min-headroom: cannot read {raw!r}", hint="write e.g. 5% or 0.05") from None
    if not raw.endswith("%") and value >= 1:
        raise UsageError(f"--min-headroom: {raw} is not a fraction", hint=f"write {raw}% or {value / 100:g}")
    if not 0 <= value < 1 or math.isnan(value):
        raise UsageError(f"--min-headroom must be in [0%, 100%), got {raw!r}", hint="write e.g. 5% or 0.05")
    return value


def check_deployments(
    deployments: list[Deployment],
    *,
    min_headroom: float = 0.0,
    strict: bool = False,
    offline: bool | None = None,
    profiles_dir: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> CheckReport:
    """Evaluate every deployment. Bad input (unknown GPU or model, an engine kvplan cannot size, values the
    engine would refuse) raises a KvplanError naming the file, line and key; a plan that does not fit is a
    result with ok=False. `progress(name, total)` is called before each deployment (the CLI's progress bar)."""
    models: dict[
        tuple[str, str | None, bool, bool | None], ResolvedModel
    ] = {}  # each model is read once, however many use it
    results: list[DeploymentResult] = []
    for d in deployments:
        if progress is not None:
            progress(d.name, len(deployments))
        if d.share_gpu_with:
            d = replace(d, gpu_used_by_others=_shared_memory(d, results))
        results.append(
            _check_one(d, models, min_headroom=min_headroom, strict=strict, offline=offline, profiles_dir=profiles_dir)
        )
    return CheckReport(tuple(results), min_headroom, strict)


def _profile_id(dep: Deployment) -> str:
    from kvplan.sources.hardware import load_profile

    return load_profile(dep.gpu, profiles_dir=dep.profiles_dir).id


def _shared_memory(dep: Deployment, before: list[DeploymentResult]) -> int:
    """What the deployments `dep` names in `share_gpu_with` hold per GPU once started (ServingModel.footprint):
    each must come before it in the plan (started first) and run on the same GPU model."""
    done = {r.deployment.name: r for r in before}
    total = 0
    for name in dep.share_gpu_with:
        other = done.get(name)
        if other is None:
            raise UsageError(
                f"{dep.at('share_gpu_with')}: {name!r} is not a deployment listed before {dep.name!r}",
                hint="name deployments of the same plan that start first (listed above this one)",
            )
        if other.recommendation.gpu_profile != _profile_id(dep):
            raise UsageError(
                f"{dep.at('share_gpu_with')}: {name!r} runs on {other.recommendation.gpu_profile}, {dep.name!r} on "
                f"{dep.gpu}",
                hint="deployments that share a GPU name the same gpu",
            )
        total += other.recommendation.gpu_footprint_bytes or 0
    return total


def check(
    plans: str | Path | Deployment | Iterable[str | Path | Deployment],
    *,
    min_headroom: float | str = 0.0,
    strict: bool = False,
    offline: bool | None = None,
    profiles_dir: str | None = None,
) -> CheckReport:
    """`kvplan.check`: check plan files and/or deployments, as `kvplan check` does, and return the CheckReport.

    plans: a plan file path (or a deployment manifest: kvplan.checking.manifests), a `Deployment` (kvplan.checking.plans; an engine config read with
    kvplan.checking.engine_configs.load_engine_config is one), or a list of them. min_headroom: the spare KV
    memory each deployment must keep, 0.05 or "5%". strict: config lint fails a deployment. Bad input raises a
    KvplanError naming the file, line and key; a deployment that does not fit is a result with ok=False
    (`report.ok`, `report.exit_code`, `report.to_dict()`)."""
    items = [plans] if isinstance(plans, (str, Path, Deployment)) else list(plans)
    deployments: list[Deployment] = []
    for item in items:
        if isinstance(item, Deployment):
            deployments.append(item)
        elif isinstance(item, (str, Path)):
            deployments.extend(load_check_file(item, profiles_dir=profiles_dir)[0])  # a plan or a manifest
        else:
            raise UsageError(
                f"cannot check {type(item).__name__} {item!r}", hint="pass plan file paths or Deployment objects"
            )
    return check_deployments(
        deployments,
        min_headroom=parse_headroom(min_headroom),
        strict=strict,
        offline=offline,
        profiles_dir=profiles_dir,
    )


def spelling(dep: Deployment) -> Spelling:
    """How `dep`'s messages name recommend()'s fields: its source's keys (`max-model-len` in a vLLM config); the
    required concurrency as the key that sets it (Deployment.concurrency_key)."""
    names = {name: dep.key_name(key) for name, key in PLAN_KEYS.items()}
    if dep.concurrency_key is not None:
        names["concurrency"] = dep.key_name(dep.concurrency_key)
    return names


def _located(exc: KvplanError, prefix: str, names: Spelling) -> KvplanError:
    """The same error, its message prefixed with file:line: key and its fields named as the plan names them."""
    message, hint = exc.spelled(names)
    return type(exc)(f"{prefix}: {message}", hint, field=exc.field)


class _Evaluator:
    """One deployment: recommend() with overrides, and the KV bytes its requests need."""

    def __init__(
        self,
        dep: Deployment,
        engine: str,
        resolved: ResolvedModel,
        *,
        offline: bool | None,
        profiles_dir: str | None,
        min_headroom: float,
    ) -> None:
        self.dep, self.engine, self.resolved, self.shape = dep, engine, resolved, resolved.shape
        self.serving = serving_model(engine)
        self.offline, self.profiles_dir, self.min_headroom = offline, profiles_dir, min_headroom
        self._capability: tuple[str | None] | None = None

    @property
    def compute_capability(self) -> str | None:
        """The GPU's compute capability (its profile), which some engines' block sizes depend on."""
        if self._capability is None:
            from kvplan.sources.hardware import load_profile

            self._capability = (load_profile(self.dep.gpu, profiles_dir=self.profiles_dir).compute_capability,)
        return self._capability[0]

    def recommend(self, **over: Any) -> Any:
        from kvplan.planning.recommend import recommend

        d = self.dep
        args: dict[str, Any] = dict(
            gpu_profile=d.gpu,
            gpus=d.gpu_count,
            engine=self.engine,
            gpu_memory_utilization=d.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            concurrency=d.required_concurrency,
            dtype=d.dtype,
            kv_dtype=d.kv_cache_dtype,
            tp=d.tensor_parallel_size,
            pp=d.pipeline_parallel_size,
            block_size=d.block_size,
            kv_memory=d.kv_cache_memory,
            max_num_batched_tokens=d.max_num_batched_tokens,
            profiles_dir=self.profiles_dir,
            offline=self.offline,
            revision=d.revision,
            vllm_version=d.vllm_version,
        )
        args.update(  # the parallelism beyond TP x PP (an engine that does not model it refuses it when given)
            dp=d.data_parallel_size,
            dcp=d.decode_context_parallel_size,
            expert_parallel=d.enable_expert_parallel,
            redundant_experts=d.num_redundant_experts,
        )
        if d.weights_bytes is not None:  # e.g. a quantized GGUF's file size
            args["weights_bytes"] = d.weights_bytes
        if d.quantization is not None:  # the engine's online quantization (vLLM --quantization fp8_per_tensor)
            args["quantization"] = d.quantization
        if d.speculative_config is not None:  # vLLM's --speculative-config (the drafter's KV, weights, Mamba slots)
            args["speculative_config"] = d.speculative_config
        if d.max_num_seqs is not None:  # the engine runs with this cap (vLLM's sampler warm-up uses it)
            args["max_num_seqs"] = d.max_num_seqs
        if d.offload is not None:  # the KV offload tiers (kvplan.engines.offload) and the host RAM they must fit in
            args["offload"] = d.offload
        if d.host_memory is not None:
            args["host_memory"] = d.host_memory
        lora = dict(
            max_loras=d.max_loras,
            max_lora_rank=d.max_lora_rank,
            max_cpu_loras=d.max_cpu_loras,
            lora_dtype=d.lora_dtype,
            lora_target_modules=d.lora_target_modules,
        )
        if d.gpu_used_by_others:  # other deployments of the plan on the same GPUs (share_gpu_with)
            args["gpu_used_by_others"] = d.gpu_used_by_others
        if d.limit_mm_per_prompt is not None:  # vLLM's items per prompt by modality (0: no tower)
            args["limit_mm_per_prompt"] = d.limit_mm_per_prompt
        if d.mamba_full_memory_ratio is not None:  # SGLang's state / full-attention split of a hybrid's budget
            args["mamba_full_memory_ratio"] = d.mamba_full_memory_ratio
        if d.max_mamba_cache_size is not None:
            args["max_mamba_cache_size"] = d.max_mamba_cache_size
        if d.mamba_ssm_dtype is not None:
            args["mamba_ssm_dtype"] = d.mamba_ssm_dtype
        if d.enable_lora or any(v is not None for v in lora.values()):  # LoRA serving: the `lora` budget row
            args.update(enable_lora=True, **{k: v for k, v in lora.items() if v is not None})
        args.update(over)
        return recommend(self.resolved, **args)  # read once: every recommend() of this deployment reuses it

    @property
    def max_model_len(self) -> int | str | None:
        """The plan's max_model_len ("auto": vLLM's auto-fit), else the model's limit."""
        return self.dep.max_model_len or self.shape.max_position_embeddings

    def per_request(self, rec: Any, seq_len: int) -> int | None:
        """KV bytes one request of seq_len takes on the fullest GPU under rec's settings, in the engine's storage
        model (kvplan.planning.recommend.request_kv_bytes: what recommend's max_concurrency divides by)."""
        try:
            req = Request(
                seq_len,
                1,
                rec.cache_dtype,
                rec.model_dtype,
                rec.tp,
                rec.pp,
                self.dep.block_size,
                rec.max_num_batched_tokens,
                engine_version=rec.vllm_version,
                compute_capability=self.compute_capability,
                speculative=rec.speculative,  # the drafter's KV layers and speculative state slots
                dcp=self.dep.decode_context_parallel_size,
            )
            return request_kv_bytes(self.resolved, self.engine, req)
        except KvplanError:
            return None

    def needed(self, rec: Any, seq_len: int | None = None, concurrency: int | None = None) -> int | None:
        """KV bytes `concurrency` requests of `seq_len` need under rec's settings, on one GPU of the fullest DP
        rank: the requests split over the data-parallel ranks, each with its own pool (ceil(n / dp) a rank)."""
        n = concurrency or getattr(rec, "concurrency", None) or self.dep.required_concurrency
        n = -(-n // self.dep.data_parallel_size)
        one = self.per_request(rec, seq_len or rec.max_model_len)
        if one is not None and one > 0:
            return n * one
        if seq_len not in (None, rec.max_model_len) or not rec.max_concurrency:
            return None
        return int(rec.available_kv_memory_bytes * n / rec.max_concurrency)

    def accepts(self, rec: Any) -> bool:
        """rec fits and the engine starts with it (TP vs heads aside: lint's), its offload tiers fit in the host's
        memory, with min_headroom of its KV memory spare."""
        if not rec.fits or (rec.startup_error and rec.startup_rule != "tp_heads") or rec.host_fits is False:
            return False
        if self.min_headroom <= 0:
            return True
        need = self.needed(rec)
        avail = rec.available_kv_memory_bytes
        return need is not None and avail > 0 and (avail - need) / avail >= self.min_headroom

    def try_recommend(self, **over: Any) -> Any | None:
        try:
            return self.recommend(**over)
        except KvplanError:
            return None


def _check_one(
    dep: Deployment,
    models: dict[tuple[str, str | None, bool, bool | None], ResolvedModel],
    *,
    min_headroom: float,
    strict: bool,
    offline: bool | None,
    profiles_dir: str | None,
) -> DeploymentResult:
    from kvplan.sources.hardware import load_profile

    names = spelling(dep)
    try:
        engine = recommend_engine(dep.engine)
    except KvplanError as exc:
        raise _located(exc, dep.at("engine"), names) from None
    pdir = profiles_dir or dep.profiles_dir
    try:
        load_profile(dep.gpu, profiles_dir=pdir)  # an unknown GPU is named here, with the plan's file and line
    except KvplanError as exc:
        raise _located(exc, dep.at("gpu"), names) from None
    try:
        key = (dep.model, dep.revision, dep.assume_llama, dep.hub_weights)
        resolved = models.get(key)
        if resolved is None:
            resolved = models[key] = resolve(
                dep.model,
                revision=dep.revision,
                offline=offline,
                assume_llama=dep.assume_llama,
                hub_weights=dep.hub_weights,
            )
        loaded = resolved.loaded
    except KvplanError as exc:
        error = _located(exc, dep.at("model"), names)
        if dep.key_name("model") == "model_name":  # Xinference's registry name, not a Hub id
            more = "pass --model with the Hugging Face repo id"
            error.hint = f"{error.hint}; or {more}" if error.hint else more
        raise error from None

    ev = _Evaluator(dep, engine, resolved, offline=offline, profiles_dir=pdir, min_headroom=min_headroom)
    lint = tuple(
        lint_model_config(
            loaded.config,
            engine=dep.engine,
            tp=dep.tensor_parallel_size,
            pp=dep.pipeline_parallel_size,
            max_model_len=ev.max_model_len if not isinstance(ev.max_model_len, str) else None,
        )
    )
    try:
        rec = ev.recommend()
    except KvplanError as exc:
        raise _located(exc, dep.at(), names) from None

    notes = list(dep.notes)
    if dep.max_model_len is None:
        notes.append(f"max_model_len not set: planned at the model's limit ({rec.max_model_len:,} tokens)")
    used = rec.tp * rec.pp * dep.data_parallel_size
    if dep.gpus and dep.gpus > used:
        what = "tensor x pipeline" + (" x data" if dep.data_parallel_size > 1 else "")
        notes.append(f"{dep.gpus} GPUs given, {what} parallel uses {used}")
    for note in rec.notes:
        spelled = spell(note, names) or note
        if spelled not in notes:
            notes.append(spelled)

    conc = dep.required_concurrency
    avail = rec.available_kv_memory_bytes
    need = ev.needed(rec)
    headroom = None if need is None else avail - need
    if headroom is not None and (headroom >= 0) != rec.fits:  # never contradict recommend(): it decides fits
        headroom = 0 if rec.fits else min(headroom, -1)
    fraction = None if headroom is None or avail <= 0 else headroom / avail

    binding, detail = None, None
    # an engine that cannot build its state pool does not start, whatever the KV figures (SGLang's hybrids)
    if not rec.fits and rec.startup_rule != "mamba_state":
        if avail <= 0:
            binding = "weights"
            weights = format_bytes(rec.weights_bytes) if rec.weights_bytes is not None else "the weights"
            detail = (
                f"weights {weights} and the engine's overheads leave no KV memory in "
                f"{format_bytes(rec.gpu_memory_bytes)} x {rec.gpu_memory_utilization}"
            )
        elif rec.max_model_len_fit < rec.max_model_len:
            binding = "max_model_len"
            detail = (
                f"one request of {rec.max_model_len:,} tokens does not fit in {format_bytes(avail)} of KV "
                f"memory; the largest that fits is {rec.max_model_len_fit:,}"
            )
        else:
            binding = "concurrency"
            detail = (
                f"{conc} requests x {rec.max_model_len:,} tokens need "
                f"{format_bytes(need) if need is not None else 'more than'} of KV memory, "
                f"{format_bytes(avail)} available (max concurrency {rec.max_concurrency:g}x)"
            )
    elif rec.startup_error and rec.startup_rule != "tp_heads":  # TP vs heads is lint's (tp-heads; --strict fails)
        binding = "startup"
        release = f"vLLM {rec.vllm_version}" if rec.vllm_version else rec.engine  # SGLang's hybrids: no release
        detail = f"{release} would not start: {rec.startup_error}"
    elif rec.host_fits is False:  # an offload tier runs the host out of RAM or /dev/shm (kvplan.engines.offload)
        binding = "host_memory"
        detail = rec.host_detail
    elif min_headroom > 0 and (fraction is None or fraction < min_headroom):
        binding = "headroom"
        detail = f"headroom {format_bytes(headroom)} ({(fraction or 0):.1%}) is below the required {min_headroom:.1%}"
    elif strict and lint:
        binding = "lint"
        detail = f"{len(lint)} config lint error(s) under --strict"
    if rec.host_fits is False and binding != "host_memory" and rec.host_detail not in notes:
        notes.append(f"also: {rec.host_detail}")
    if binding == "startup":
        fixes: Iterable[Fix] = _startup_fixes(ev, rec)
    elif binding == "host_memory":
        fixes = _host_fixes(ev, rec)
    elif binding in ("weights", "max_model_len", "concurrency", "headroom"):
        fixes = _fixes(ev, rec, binding)
    else:
        fixes = ()
    return DeploymentResult(
        deployment=dep,
        recommendation=rec,
        required_concurrency=conc,
        needed_kv_bytes=need,
        headroom_bytes=headroom,
        headroom_fraction=fraction,
        fits=rec.fits and binding not in ("startup", "host_memory"),
        ok=binding is None,
        binding_constraint=binding,
        binding_detail=detail,
        fixes=tuple(fixes),
        lint=lint,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------------------- fixes


def _startup_fixes(ev: _Evaluator, rec: Any) -> list[Fix]:
    """The setting the engine's start-up check asks for (Recommendation.startup_fix), re-checked with recommend().

    max_num_seqs (vLLM's Mamba check, vllm-0.33.0/vllm/config/compilation.py:1517-1532: "Please lower
    max_num_seqs to at most" the Mamba cache blocks; its scheduler's, config/scheduler.py:331-336: at most
    max_num_batched_tokens): the cap is lowered, re-checked as the engine's cap; the concurrency required stays
    the plan's own. max_num_batched_tokens (the scheduler's check): raised to the cap."""
    dep, out = ev.dep, []
    for field, value in rec.startup_fix.items():
        if field == "max_num_seqs":
            checked = ev.try_recommend(max_num_seqs=value)
            if rec.startup_rule == "scheduler":
                why = f"vLLM's scheduler needs max_num_batched_tokens {value} >= max_num_seqs"
            else:
                why = f"vLLM's Mamba check allows at most {rec.mamba_cache_blocks}"
            text = f"lower {dep.key_name('max_num_seqs')} to {value} ({why})"
            key = "max_num_seqs"
        elif field == "max_num_batched_tokens":
            checked = ev.try_recommend(max_num_batched_tokens=value)
            text = f"raise {dep.key_name('max_num_batched_tokens')} to {value} (at least max_num_seqs)"
            key = "max_num_batched_tokens"
        elif field == "max_model_len":
            checked = ev.try_recommend(max_model_len=value)
            text = f"lower {dep.key_name('max_model_len')} to {value:,} (vLLM's estimated maximum model length)"
            key = "max_model_len"
        elif field == "tp":
            checked = ev.try_recommend(tp=value, gpus=max(dep.gpu_count, value * rec.pp * dep.data_parallel_size))
            text = f"set {dep.key_name('tensor_parallel_size')} to {value} (it divides the attention heads)"
            key = "tensor_parallel_size"
        elif field == "gpu_memory_utilization":  # vLLM's free-memory check beside share_gpu_with deployments
            checked = ev.try_recommend(gpu_memory_utilization=value)
            text = (
                f"lower {dep.key_name('gpu_memory_utilization')} to {value} (the share of the GPU the deployments "
                "it shares with leave free at its start)"
            )
            key = "gpu_memory_utilization"
        else:
            continue
        if checked is not None and ev.accepts(checked):
            out.append(Fix(key, value, text))
    return out


# the plan key of each per-rank or total size setting of a tier (kvplan.engines.offload tier names), in GiB/GB
_TIER_KEYS = {
    "vllm-cpu": "kv_offloading_size",
    "lmcache-cpu": "lmcache_max_local_cpu_size",
    "hicache-host": "hicache_size",
    "kvbm-cpu": "kvbm_cpu_cache_gb",
}
_GB_KEYS = ("hicache_size", "kvbm_cpu_cache_gb")  # sizes in GB (1e9); the others in GiB
_PER_RANK_KEYS = ("lmcache_max_local_cpu_size", "hicache_size")  # sizes each rank allocates


def _host_fixes(ev: _Evaluator, rec: Any) -> list[Fix]:
    """The largest size of each RAM tier that leaves the host enough, the others as they are (whole GiB, or GB for
    SGLang's --hicache-size), each re-checked with recommend()."""
    dep, out = ev.dep, list[Fix]()
    host = rec.host_memory_bytes
    if host is None:
        return out
    for tier in rec.host_tiers:
        key = _TIER_KEYS.get(tier["name"])
        if key is None or tier["medium"] != "ram":
            continue
        others = sum(t["bytes_per_node"] for t in rec.host_tiers if t is not tier and t["medium"] == "ram")
        unit = 10**9 if key in _GB_KEYS else 2**30
        # LMCache and HiCache sizes are per rank; vLLM's and KVBM's the total across one DP rank's workers (each
        # DP rank on the node holds its own: kvplan.planning.recommend)
        room = (host - others) // (tier["ranks"] if key in _PER_RANK_KEYS else dep.data_parallel_size)
        best = int(room // unit)
        # the largest whole size, then one less, then the largest power of two (LMCache's pinned rounding before
        # 0.3.3 takes the next power of two of the size)
        for value in dict.fromkeys(v for v in (best, best - 1, 1 << (best.bit_length() - 1) if best else 0) if v >= 1):
            over = {"hicache_ratio": None} if key == "hicache_size" else {}
            checked = ev.try_recommend(offload=_with(dep.offload, key, float(value), over))
            if checked is not None and ev.accepts(checked):
                text = f"lower {dep.key_name(key)} to {value} (its host RAM then fits beside the other tiers)"
                out.append(Fix(key, value, text))
                break
    return out


def _with(offload: Any, key: str, value: float, over: dict[str, Any]) -> Any:
    """The deployment's Offload with one plan key's setting replaced."""
    from dataclasses import replace

    field = {
        "kv_offloading_size": "kv_offloading_size",
        "lmcache_max_local_cpu_size": "lmcache_cpu_size",
        "hicache_size": "hicache_size",
        "kvbm_cpu_cache_gb": "kvbm_cpu_cache_gb",
    }[key]
    return replace(offload, **{field: value, **over})


def _fixes(ev: _Evaluator, rec: Any, binding: str) -> list[Fix]:
    dep = ev.dep
    conc = dep.required_concurrency
    avail = rec.available_kv_memory_bytes
    budget = avail * (1 - ev.min_headroom)
    out: list[Fix] = []
    spare = f" with {ev.min_headroom:.0%} headroom" if ev.min_headroom > 0 else ""
    what = f"{conc} request{'s' if conc > 1 else ''}"

    # 1. the largest max_model_len that fits (as is, then re-checked by recommend())
    if binding != "weights" and avail > 0:

        def fits_len(n: int) -> bool:
            need = ev.needed(rec, seq_len=n)
            return need is not None and need <= budget

        cap = min(rec.max_model_len - 1, ev.shape.max_position_embeddings or rec.max_model_len - 1)

        def accepted(n: int) -> bool:
            return bool((r := ev.try_recommend(max_model_len=n)) and ev.accepts(r))

        if ev.per_request(rec, cap) is not None:
            best = largest(fits_len, cap)
            if rec.max_model_len_fit > 0:  # the engine's own one-request length (vLLM: the null block held back)
                best = min(best, rec.max_model_len_fit)
            if best and not accepted(best):  # the engine's checks are stricter at the edge: ask recommend()
                best = largest(accepted, best - 1)
        else:  # no storage model here: search with recommend() itself
            best = largest(accepted, cap)
        checked = ev.try_recommend(max_model_len=best) if best else None
        if checked is not None and ev.accepts(checked):
            out.append(
                Fix(
                    "max_model_len",
                    best,
                    f"lower {dep.key_name('max_model_len')} to {best:,} (the largest that fits {what}{spare})",
                )
            )

    # 2. an fp8 KV cache, where the GPU has one
    if rec.fp8_kv is not None and binding != "weights":
        value = (ev.serving and ev.serving.fp8_plan_value) or str(rec.fp8_kv.get("kv_dtype") or "fp8")
        checked = ev.try_recommend(kv_dtype=value)
        if checked is not None and ev.accepts(checked):
            out.append(
                Fix(
                    "kv_cache_dtype",
                    value,
                    f"set {dep.key_name('kv_cache_dtype')} to {value} (max concurrency {checked.max_concurrency:g}x)",
                )
            )

    # 3. more tensor parallelism
    if dep.kv_cache_memory is None:
        for tp in (t for t in TP_CHOICES if t > rec.tp):
            need = tp * rec.pp * dep.data_parallel_size
            gpus = max(dep.gpu_count, need)
            checked = ev.try_recommend(tp=tp, gpus=gpus)
            if checked is not None and ev.accepts(checked):
                extra = f" (needs {need} GPUs, the plan has {dep.gpu_count})" if need > dep.gpu_count else ""
                out.append(
                    Fix("tensor_parallel_size", tp, f"raise {dep.key_name('tensor_parallel_size')} to {tp}{extra}")
                )
                break

    # 4. fewer concurrent requests: the key that set the requirement (concurrency; llama.cpp: max_num_seqs)
    key = dep.concurrency_key
    if binding in ("concurrency", "headroom") and key is not None and conc > 1:
        one = ev.needed(rec, concurrency=1)
        best = min(int(budget // one), conc - 1) if one else 0
        over: dict[str, int] = {"max_num_seqs": best} if key == "max_num_seqs" else {}
        checked = ev.try_recommend(concurrency=best, **over) if best >= 1 else None
        if checked is not None and ev.accepts(checked):
            out.append(
                Fix(
                    key,
                    best,
                    f"lower {dep.key_name(key)} to {best} (the most "
                    f"{rec.max_model_len:,}-token requests that fit{spare})",
                )
            )

    # 5. a larger share of GPU memory
    utilization_fix = ev.serving is not None and ev.serving.suggests_utilization
    if utilization_fix and dep.kv_cache_memory is None and rec.gpu_memory_utilization:
        need = ev.needed(rec)
        raw = sum(t.bytes for t in rec.budget)  # the budget before clamping at 0
        if need is not None and rec.gpu_memory_bytes:
            target = need / (1 - ev.min_headroom)
            util = math.ceil((rec.gpu_memory_utilization + (target - raw) / rec.gpu_memory_bytes) * 100) / 100
            if rec.gpu_memory_utilization < util <= MAX_SUGGESTED_UTILIZATION:
                checked = ev.try_recommend(gpu_memory_utilization=util)
                if checked is not None and ev.accepts(checked):
                    out.append(
                        Fix(
                            "gpu_memory_utilization",
                            util,
                            f"raise {dep.key_name('gpu_memory_utilization')} to {util:g}",
                        )
                    )
    return out


__all__ = [
    "CONSTRAINTS",
    "SCHEMA",
    "CheckReport",
    "DeploymentResult",
    "Fix",
    "check",
    "check_deployments",
    "parse_headroom",
    "recommend_engine",
]
