"""`kvplan profile`: real prefill / decode passes that measure memory and tokens/s beside kvplan's estimate.

torch, transformers and accelerate are imported here and in the modules it uses (kvplan.profiling.device: the
device, memory and clocks; kvplan.profiling.model: loading or building the model; kvplan.profiling.passes: the
prefill / decode loops; kvplan.profiling.ground_truth: reading cache tensors), never by the planning commands: the CLI
imports this module inside the `profile` command only.

For each point of the grid (batch x prompt length x cache implementation) the profiler runs:
1. a warm-up with the real shapes (prefill + one step), then a memory pass: prefill (`logits_to_keep=1`),
   then `decode_tokens` one-token steps, with the peak memory of each phase (GPU: torch.cuda peak allocated and
   reserved, and the device-level use `total - free` as NVML sees it; CPU: glibc `mallinfo2` sampled every
   millisecond, see kvplan.profiling.memory) and the KV bytes read from the cache tensors afterwards;
2. `repeats` timed passes with a fresh cache each (CUDA events on one GPU, else the clock after
   synchronising): time to first token (prefill + argmax), decode tokens/s and the median inter-token latency;
3. with `no_cache_baseline`, greedy decoding with `use_cache=False` (the whole sequence every step) over
   `min(decode_tokens, no_cache_steps)` steps, and the speed-up the cache buys.
With `speculative_config` (method draft_model), after the grid and the searches the draft model is loaded the way
the target was (its weights when on disk, else random from its config; the same dtype and device) and one assisted
generation runs (`generate(..., assistant_model=draft)`, greedy, batch 1: the longest --seq-len, `decode_tokens`
new tokens, num_speculative_tokens drafted per round); both caches are read after it
(kvplan.profiling.ground_truth.measure_assisted_caches) and set beside kvplan's transformers estimate of each at
the tokens that cache holds: the draft's as `estimate --engine transformers --speculative-config` sizes the
drafter (kvplan.engines.transformers.assisted_generation).
The estimate for the same point comes from kvplan's transformers engine model (`transformers` for dynamic
and quantized caches, `transformers-static` for StaticCache) at `seq_len + decode_tokens` tokens.

The searches (`find_max_batch`, `find_max_len`) probe untimed passes under the memory limit and set beside
the measured maximum kvplan's prediction for the same limit: the memory in use before the search, the KV
estimate and the activations fitted on this cache's grid points (kvplan.profiling.activation_fit), and the weights + KV
bound, which ignores activations.

Out of memory is a result: the point is recorded with `oom: true`, its memory freed, and the grid goes on.
On the CPU `memory_limit` caps the process (kvplan.profiling.memory.address_space_limit) so that a too-large
allocation fails inside torch instead of waking the kernel's OOM killer; on a GPU it becomes
`torch.cuda.set_per_process_memory_fraction`.
"""

from __future__ import annotations

import gc
import itertools
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import transformers

from kvplan import __version__
from kvplan.atomic_file import write_text_atomically
from kvplan.core.bisection import largest
from kvplan.core.config import vocab_size
from kvplan.core.shapes import model_shape
from kvplan.core.units import short_dtype
from kvplan.engines.transformers import TransformersEngine, TransformersStaticEngine
from kvplan.errors import KvplanError, ProfilingError, UnsupportedArchitecture, UsageError
from kvplan.planning import resolved as api
from kvplan.planning.estimate import estimate_shape, resolve_dtypes
from kvplan.profiling.activation_fit import ActivationFit, Sample, fit_activations
from kvplan.profiling.device import Clock, Device, default_gpus, describe, is_oom
from kvplan.profiling.ground_truth import (
    cache_layer_bytes,
    hf_config_from_dict,
    measure_assisted_caches,
    total_nbytes,
)
from kvplan.profiling.memory import HeapMeter, available_memory_bytes, large_allocations_mapped, map_large_allocations
from kvplan.profiling.model import import_model_code, load_model, shrink_layers, weights_bytes
from kvplan.profiling.passes import CACHE_CHOICES, Runner, Unsupported, first_line

SCHEMA = "kvplan.profile/1"
# Which kvplan engine model and KV dtype describe each cache implementation.
_DYNAMIC, _STATIC = TransformersEngine.name, TransformersStaticEngine.name
_CACHE_MODEL = {
    "dynamic": (_DYNAMIC, "auto"),
    "static": (_STATIC, "auto"),
    "quantized": (_DYNAMIC, "fp8_e4m3"),  # QuantizedCache(backend="fp8"): 1 byte + 2 fp32 scales per layer
    "offloaded": (_DYNAMIC, "auto"),
    "offloaded-static": (_STATIC, "auto"),
}
MAX_SEARCH_BATCH = 1 << 16
MAX_SEARCH_LEN = 1 << 21


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ProfileRequest:
    """What to run. `gpus` empty = CPU. Lengths are prompt tokens; the cache ends at seq_len + decode_tokens."""

    model: str
    gpus: tuple[int, ...] = ()
    seq_lens: tuple[int, ...] = (512,)
    batches: tuple[int, ...] = (1,)
    decode_tokens: int = 128
    dtype: str = "auto"
    caches: tuple[str, ...] = ("dynamic",)
    no_cache_baseline: bool = False
    no_cache_steps: int = 8
    find_max_batch: bool = False
    find_max_len: bool = False
    repeats: int = 3
    layers: int | None = None
    memory_limit: int | None = None
    random_weights: bool = False
    trust_remote_code: bool = False
    assume_llama: bool = False  # the estimate beside: an unknown model_type read llama-like despite signals
    revision: str | None = None
    offline: bool | None = None
    seed: int = 0
    # vLLM's --speculative-config (a JSON string or a mapping), method draft_model only: one assisted generation
    speculative_config: str | dict[str, Any] | None = None


@dataclass
class Run:
    """One grid point. Byte counts are whole-model (all devices); `None` where a phase did not run.

    peak_memory_bytes: the highest memory in use during the point above what was in use before the model was
    loaded (weights + cache + activations + library workspaces); with several GPUs, the sum of each device's
    peak (they may peak at different moments). peak_prefill_bytes / peak_decode_bytes: each phase's peak above
    what was in use when the point started (weights excluded). peak_memory_bytes_per_device /
    peak_reserved_bytes: torch.cuda's peak allocated per device and the summed peak reserved (GPU only);
    device_used_bytes: the device-level use (total - free, as NVML sees it) read after the point's passes.
    """

    batch: int
    seq_len: int
    cache: str
    decode_tokens: int
    oom: bool = False
    oom_phase: str | None = None
    error: str | None = None
    kv_cache_bytes_measured: int | None = None
    kv_cache_bytes_estimated: int | None = None
    kv_cache_ratio: float | None = None
    weights_bytes_measured: int | None = None
    peak_memory_bytes: int | None = None
    peak_prefill_bytes: int | None = None
    peak_decode_bytes: int | None = None
    estimated_floor_bytes: int | None = None
    peak_to_floor_ratio: float | None = None
    peak_reserved_bytes: int | None = None
    device_used_bytes: int | None = None
    peak_memory_bytes_per_device: dict[str, int] | None = None
    ttft_s: float | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    inter_token_latency_s: float | None = None
    decode_tokens_per_s_no_cache: float | None = None
    no_cache_steps: int | None = None
    cache_speedup: float | None = None
    repeats: int = 0
    kv_cache_bytes_full_model_scaled: int | None = None
    decode_tokens_per_s_upper_bound: float | None = None
    prefill_tokens_per_s_upper_bound: float | None = None


@dataclass
class Search:
    """A --find-max-batch / --find-max-len result beside kvplan's predictions for the same memory limit.

    predicted_max: what fits when the memory in use before the search (weights, runtime, library state), the
    estimated KV cache and the activations fitted on this cache's measured grid points (kvplan.profiling.activation_fit)
    stay within the limit. predicted_max_kv_only: weights + estimated KV only, an upper bound. Both are None
    without a memory limit and for offloaded caches (their KV lives in CPU memory); predicted_max also without
    grid points of this cache to fit on.
    """

    kind: str  # "batch" or "seq_len"
    cache: str
    fixed: dict[str, int]
    measured_max: int
    predicted_max: int | None
    predicted_by: str
    probes: int
    limit_bytes: int | None
    error: str | None = None  # a failure other than out of memory that stopped the search
    predicted_max_kv_only: int | None = None
    activations: dict[str, float | int] | None = None  # the fit behind predicted_max
    resident_bytes: int | None = None  # in use before the search (weights, runtime, library state)

    @property
    def ratio(self) -> float | None:
        return round(self.measured_max / self.predicted_max, 3) if self.predicted_max else None


@dataclass
class DraftRun:
    """`speculative_config` (draft_model): one assisted generation, greedy, batch 1 (transformers drafts for one
    sequence only), prompt `seq_len` (the longest --seq-len) + `decode_tokens` new tokens, both caches read after it
    beside kvplan's transformers estimate at the tokens each holds. `draft_kv_bytes_peak_measured`: the largest the
    draft's cache was after any of its forwards; `draft_kv_bytes_estimated_at_sequence`: kvplan's figure for the
    drafter at the final length (what `estimate --seq-len` of prompt + decode plans), which bounds it. The draft's
    weights: `weights_bytes_measured` (its tensors) beside kvplan's count (`weights_bytes_estimated`, null: not
    counted). `None` where the run did not get that far (`oom`, `error`)."""

    method: str
    num_speculative_tokens: int
    model: str  # the draft, as the speculative config names it
    weights: str | None  # how the draft's weights were obtained
    layers: int  # the draft's decoder layers
    batch: int
    seq_len: int
    decode_tokens: int
    sequence_tokens: int | None = None  # the final sequence: prompt + new tokens
    oom: bool = False
    error: str | None = None
    draft_forwards: int | None = None
    draft_tokens_held: int | None = None
    draft_kv_bytes_measured: int | None = None
    draft_kv_bytes_estimated: int | None = None
    draft_kv_ratio: float | None = None
    draft_kv_bytes_peak_measured: int | None = None
    draft_kv_bytes_estimated_at_sequence: int | None = None
    target_tokens_held: int | None = None
    target_kv_bytes_measured: int | None = None
    target_kv_bytes_estimated: int | None = None
    target_kv_ratio: float | None = None
    weights_bytes_measured: int | None = None
    weights_bytes_estimated: int | None = None


@dataclass
class ProfileReport:
    model: str
    weights: str
    layers_full: int
    layers_used: int
    dtype: str
    env: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    searches: list[Search] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # cache implementation -> why it cannot run here
    config_source: str = "dict"  # where the config was read (kvplan.sources.configs.LoadedConfig.source)
    revision: str | None = None  # the Hub snapshot's commit hash, when the config came from the Hub or its cache
    speculative: DraftRun | None = None  # --speculative-config: the assisted generation (JSON key only then)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": SCHEMA,
            "model": self.model,
            "config_source": self.config_source,
            "revision": self.revision,
            "weights": self.weights,
            "layers_full": self.layers_full,
            "layers_used": self.layers_used,
            "dtype": self.dtype,
            "env": self.env,
            "runs": [asdict(r) for r in self.runs],
            "searches": [{**asdict(s), "ratio": s.ratio} for s in self.searches],
            "skipped_caches": dict(self.skipped),
            "notes": list(self.notes),
        }
        if self.speculative is not None:
            data["speculative"] = asdict(self.speculative)
        return data


# ------------------------------------------------------------------------------------------------ devices


class Profiler:
    """Prepares the model once and runs grid points and searches on it."""

    def __init__(self, req: ProfileRequest) -> None:
        _validate(req)
        self.req = req
        self.loaded = api.load(req.model, revision=req.revision, offline=req.offline)
        full_config = self.loaded.config
        self.full_shape = model_shape(full_config, assume_llama=req.assume_llama)
        self.config = shrink_layers(full_config, req.layers) if req.layers else dict(full_config)
        self.shape = model_shape(self.config, assume_llama=req.assume_llama)
        self.model_dtype, _ = resolve_dtypes(self.shape, req.dtype, "auto")
        self.notes: list[str] = list(self.shape.assumptions)
        if req.gpus and not torch.cuda.is_available():
            raise UsageError(
                "--gpu was given but torch sees no CUDA device",
                hint="use --device cpu, or install a CUDA build of torch",
            )
        if req.gpus:
            count = torch.cuda.device_count()
            for g in req.gpus:
                if g >= count:
                    raise UsageError(f"--gpu {g}: torch sees {count} CUDA device(s)", hint=f"use --gpu 0..{count - 1}")
        self._meter = None if req.gpus else HeapMeter()
        self.limit = req.memory_limit
        if self.limit is None and not req.gpus and (req.find_max_batch or req.find_max_len):
            available = available_memory_bytes()
            if available:
                self.limit = int(available * 0.8)
                self.notes.append(
                    f"CPU search capped at 80% of available memory ({self.limit} bytes); set --memory-limit to choose"
                )
        self.draft: Any = None  # the speculative setup as transformers runs it, the draft's config (when given)
        if req.speculative_config is not None:
            self.draft = self._read_draft(req)

    def _read_draft(self, req: ProfileRequest) -> tuple[Any, Any, Any]:
        """(the setup, the draft's LoadedConfig and shape, the drafter as kvplan's transformers rules size it), read
        before anything runs: a draft kvplan or transformers cannot read is refused now, not after the grid."""
        from kvplan.engines.registry import engine_entry
        from kvplan.engines.vllm import parse_speculative_config
        from kvplan.planning.speculative import engine_speculative, speculative_inputs

        setup = parse_speculative_config(req.speculative_config)
        if setup.method != "draft_model":
            raise UsageError(
                f"--speculative-config method {setup.method}: kvplan profile measures draft_model assisted generation "
                "only (transformers' generate(..., assistant_model=draft))",
                hint='pass \'{"method": "draft_model", "num_speculative_tokens": 4, "model": DRAFT}\'; '
                f"kvplan estimate --speculative-config plans {setup.method}",
            )
        assert setup.model is not None  # parse_speculative_config requires a draft_model's `model`
        try:
            loaded = api.load(setup.model, offline=req.offline)
            shape = model_shape(loaded.config, assume_llama=req.assume_llama)
            if not req.trust_remote_code:
                hf_config_from_dict(loaded.config)  # an architecture transformers does not know: refused now
        except KvplanError as exc:
            if isinstance(exc.message, str):  # which model the message is about
                exc.message = f"the draft model {setup.model}: {exc.message}"
            if isinstance(exc, UnsupportedArchitecture):
                exc.hint = "its own Python code runs only with --trust-remote-code, from a folder that holds it"
            raise
        inputs = speculative_inputs(
            setup, api.resolve(self.loaded, assume_llama=req.assume_llama), self.model_dtype, offline=req.offline
        )
        spec = engine_speculative(engine_entry(_DYNAMIC), inputs)
        return setup, (loaded, shape), spec

    def __enter__(self) -> Profiler:
        self._refuse_weights_over_the_limit()
        if self._meter is not None:
            self._meter.__enter__()
        self.device = Device(self.req.gpus, self._meter)
        import_model_code(self.config)  # so that module imports do not count as weights memory
        self.device.free()
        before = self.device.in_use()
        self.process_base = self.device.base = before
        try:
            self.model, self.hf_config, self.weights_how = load_model(
                self.req, self.loaded, self.config, self.model_dtype, self.device
            )
        except Exception as exc:
            if not is_oom(exc):
                raise
            raise ProfilingError(
                f"out of memory while loading the model ({first_line(exc)})",
                hint="use --layers N to keep fewer layers, a smaller --dtype, or more GPUs (--gpu 0,1)",
            ) from None
        self.device.sync()
        self.weights_in_memory = max(0, self.device.in_use() - before)
        self.weights_bytes = weights_bytes(self.model)
        vocab = int(getattr(self.hf_config, "vocab_size", None) or vocab_size(self.config))
        self.runner = Runner(self.model, self.hf_config, self.device, self.req, vocab)
        # one tiny forward first: one-time library set-up (kernels, workspaces) is not charged to the first point
        with torch.inference_mode():
            try:
                self.runner.generate(1, 8, "dynamic", 1)
            except Exception:
                pass
        self.device.free()
        # what exists now (the libraries, the model) lives until __exit__: the collector stops walking it, so the
        # many gc.collect() of the points and searches scan only what the passes create (0.2 s less each)
        gc.freeze()
        self.runtime_bytes = max(0, self.device.in_use() - before - self.weights_in_memory)
        self.activation_samples: dict[str, list[Sample]] = {}  # per cache, from the grid's memory passes
        return self

    def _refuse_weights_over_the_limit(self) -> None:
        """--memory-limit covers loading too: weights that alone exceed it are refused before they load (a model
        bigger than the cap would load, then fail every point; one bigger than RAM would meet the OOM killer)."""
        if self.req.memory_limit is None:
            return
        from kvplan.core.units import DTYPE_BYTES, format_bytes
        from kvplan.errors import READ_ERRORS
        from kvplan.weights.stored import weight_bytes as stored_weight_bytes

        try:
            needed = stored_weight_bytes(self.config, int(DTYPE_BYTES[self.model_dtype]))
        except READ_ERRORS:
            return  # weights kvplan cannot count: the limit applies to the passes only
        if needed > self.req.memory_limit:
            raise UsageError(
                f"the weights alone ({format_bytes(needed)}) exceed --memory-limit ({format_bytes(self.req.memory_limit)})",
                hint="raise --memory-limit, keep fewer layers (--layers N) or use a smaller --dtype",
            )

    def __exit__(self, *exc: object) -> None:
        self.model = None
        self.runner = None  # type: ignore[assignment]  # released on exit; the profiler is not used after it
        if self._meter is not None:
            self._meter.__exit__(*exc)
        gc.unfreeze()
        gc.collect()

    # estimates ------------------------------------------------------------------------------------------
    def estimated_kv(self, batch: int, tokens: int, impl: str, *, full_model: bool = False) -> int:
        engine, kv_dtype = _CACHE_MODEL[impl]
        shape = self.full_shape if full_model else self.shape
        return estimate_shape(
            shape, engine=engine, seq_len=tokens, batch=batch, dtype=self.model_dtype, kv_dtype=kv_dtype
        ).kv_cache_bytes

    def prefill_kv(self, batch: int, seq_len: int, impl: str) -> int:
        """The KV bytes held at the end of the prefill: a static cache is allocated whole up front."""
        static = _CACHE_MODEL[impl][0] == _STATIC
        return self.estimated_kv(batch, seq_len + (self.req.decode_tokens if static else 0), impl)

    def activation_fit(self, impl: str) -> ActivationFit | None:
        return fit_activations(self.activation_samples.get(impl, ()))

    def hardware_profile(self) -> Any:
        """The kvplan hardware profile of the (first) GPU, matched by the name CUDA reports; None on the CPU."""
        if not self.req.gpus:
            return None
        from kvplan.sources.hardware import load_profile

        try:
            return load_profile(torch.cuda.get_device_name(self.req.gpus[0]))
        except KvplanError:
            return None

    def add_bounds(self, run: Run, hw: Any) -> None:
        """Roofline upper bounds (kvplan.planning.throughput) for this point on the matched GPU profile: decode at the
        prompt length (the fastest step), prefill for the prompt."""
        from kvplan.planning.throughput import bounds, param_split

        if hw is None or run.kv_cache_bytes_measured is None:
            return
        gpus = len(self.req.gpus)
        try:
            rows, prefill, _ = bounds(
                shape=self.shape,
                split=param_split(self.config),
                weights_per_gpu=self.weights_bytes // gpus,
                kv_bytes_per_gpu=lambda b: self.estimated_kv(b, run.seq_len, run.cache) // gpus,
                batches=[run.batch],
                context=run.seq_len,
                bandwidth=hw.memory_bandwidth_bytes_per_s,
                tflops=hw.dense_tflops,
                model_dtype=self.model_dtype,
                gpus=gpus,
            )
        except KvplanError:
            return
        run.decode_tokens_per_s_upper_bound = rows[0]["decode_tokens_per_s_upper_bound"]
        run.prefill_tokens_per_s_upper_bound = prefill

    # assisted generation -------------------------------------------------------------------------------
    def estimated_draft_kv(self, tokens: int) -> int | None:
        """kvplan's transformers figure for the drafter's cache at `tokens` (None: the drafter is not counted)."""
        _, _, spec = self.draft
        if not spec.draft_caches:
            return None
        est = estimate_shape(
            self.shape, engine=_DYNAMIC, seq_len=tokens, batch=1, dtype=self.model_dtype, speculative=spec
        )
        return sum(k.bytes for k in est.draft_layers)

    def run_assisted(self) -> DraftRun:
        """One assisted generation with the draft loaded as the target was (see the module docstring)."""
        setup, (loaded, shape), spec = self.draft
        req = self.req
        seq_len, steps = max(req.seq_lens), req.decode_tokens
        run = DraftRun(
            method=setup.method,
            num_speculative_tokens=setup.num_speculative_tokens,
            model=str(setup.model),
            weights=None,
            layers=shape.num_layers,
            batch=1,
            seq_len=seq_len,
            decode_tokens=steps,
            weights_bytes_estimated=spec.draft_weights,
        )
        limits = [s.max_position_embeddings for s in (self.shape, shape) if s.max_position_embeddings]
        if limits and seq_len + steps > min(limits):
            run.error = (
                f"prompt + decode = {seq_len + steps} tokens exceeds max_position_embeddings {min(limits)} "
                "(the target's or the draft's)"
            )
            return run
        device = self.device
        draft = None
        try:
            with device.capped(self.limit):
                # the draft's weights as the target's: its files when on disk (the target's --revision is not the
                # draft's), else random from its config; the same dtype and device
                draft, hf_config, run.weights = load_model(
                    replace(req, revision=None), loaded, loaded.config, self.model_dtype, device
                )
                run.weights_bytes_measured = weights_bytes(draft)
                vocab = min(self.runner.vocab, int(getattr(hf_config, "vocab_size", None) or self.runner.vocab))
                gen = torch.Generator().manual_seed(req.seed + seq_len)
                ids = torch.randint(0, vocab, (1, seq_len), generator=gen).to(self.runner.input_device)
                measured = measure_assisted_caches(
                    self.model, draft, ids, max_new_tokens=steps, num_assistant_tokens=setup.num_speculative_tokens
                )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if is_oom(exc):
                run.oom = True
            else:
                run.error = f"{type(exc).__name__}: {first_line(exc)}"
            return run
        finally:
            del draft
            device.free()
        run.sequence_tokens = measured["sequence"]
        run.draft_tokens_held, draft_layers = measured["draft"]
        run.target_tokens_held, target_layers = measured["target"]
        run.draft_forwards = len(measured["draft_steps"])
        run.draft_kv_bytes_measured = total_nbytes(draft_layers)
        run.draft_kv_bytes_peak_measured = max(n for _, _, n in measured["draft_steps"])
        run.target_kv_bytes_measured = total_nbytes(target_layers)
        try:
            run.draft_kv_bytes_estimated = self.estimated_draft_kv(run.draft_tokens_held)
            run.draft_kv_bytes_estimated_at_sequence = self.estimated_draft_kv(run.sequence_tokens)
            run.target_kv_bytes_estimated = self.estimated_kv(1, run.target_tokens_held, "dynamic")
        except KvplanError as exc:
            run.error = f"no estimate: {exc.message}"
        if run.draft_kv_bytes_estimated:
            run.draft_kv_ratio = run.draft_kv_bytes_measured / run.draft_kv_bytes_estimated
        if run.target_kv_bytes_estimated:
            run.target_kv_ratio = run.target_kv_bytes_measured / run.target_kv_bytes_estimated
        return run

    # one grid point -------------------------------------------------------------------------------------
    def run_point(self, batch: int, seq_len: int, impl: str, *, timed: bool = True) -> Run:
        req = self.req
        steps = req.decode_tokens
        run = Run(
            batch=batch, seq_len=seq_len, cache=impl, decode_tokens=steps, weights_bytes_measured=self.weights_bytes
        )
        try:
            run.kv_cache_bytes_estimated = self.estimated_kv(batch, seq_len + steps, impl)
            run.estimated_floor_bytes = self.weights_bytes + run.kv_cache_bytes_estimated
        except KvplanError as exc:
            run.error = f"no estimate: {exc.message}"
        limit = self.shape.max_position_embeddings
        if limit and seq_len + steps > limit:
            run.error = (
                f"prompt + decode = {seq_len + steps} tokens exceeds the model's max_position_embeddings {limit}"
            )
            return run
        phase = {"name": "prefill"}
        device = self.device
        try:
            with device.capped(self.limit), torch.inference_mode():
                if timed:  # the real shapes once first: per-shape library caches (oneDNN packed weights,
                    # cuBLAS workspaces) then sit in the point's baseline; an OOM here names prefill or decode
                    self.runner.generate(
                        batch, seq_len, impl, min(1, steps), on_phase=lambda name: phase.update(name=name)
                    )
                    phase["name"] = "prefill"
                device.free()
                base = device.reset_peak()
                phases: dict[str, dict[str, tuple[int, int | None]]] = {}

                def close_phase() -> None:
                    phases[phase["name"]] = device.phase_peaks()
                    device.reset_peak()

                def on_phase(name: str) -> None:
                    if phase["name"] != name:
                        close_phase()
                    phase["name"] = name

                cache = self.runner.generate(batch, seq_len, impl, steps, on_phase=on_phase)
                close_phase()
                layers = cache_layer_bytes(cache)
                run.kv_cache_bytes_measured = total_nbytes(layers)
                # per phase: the sum over devices of each device's peak (devices may peak at different moments)
                totals = {name: sum(p[0] for p in peaks.values()) for name, peaks in phases.items()}
                run.peak_prefill_bytes = max(0, totals["prefill"] - base)
                run.peak_decode_bytes = max(0, totals["decode"] - base) if "decode" in totals else None
                run.peak_memory_bytes = max(totals.values()) - self.process_base
                if device.cuda:
                    names = list(phases["prefill"])
                    run.peak_memory_bytes_per_device = {d: max(p[d][0] for p in phases.values()) for d in names}
                    run.peak_reserved_bytes = sum(max(p[d][1] or 0 for p in phases.values()) for d in names)
                run.device_used_bytes = device.device_used()
                if timed and run.kv_cache_bytes_estimated is not None:  # grid points feed the searches' fit
                    self.activation_samples.setdefault(impl, []).append(
                        Sample(
                            batch,
                            seq_len,
                            steps,
                            run.peak_prefill_bytes - self.prefill_kv(batch, seq_len, impl),
                            None
                            if run.peak_decode_bytes is None
                            else run.peak_decode_bytes - run.kv_cache_bytes_estimated,
                        )
                    )
                del cache, layers
                device.free()
                if timed:
                    phase["name"] = "timing"
                    self._time(run, batch, seq_len, impl)
                    if req.no_cache_baseline and steps:
                        self._no_cache_baseline(run, batch, seq_len)
        except Unsupported as exc:
            run.error = str(exc)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if not is_oom(exc):
                if isinstance(exc, (SystemExit, GeneratorExit)):
                    raise
                run.error = f"{type(exc).__name__}: {first_line(exc)}"
            else:
                run.oom = True
                run.oom_phase = phase["name"]
        finally:
            device.free()
        if run.kv_cache_bytes_measured is not None and run.kv_cache_bytes_estimated:
            run.kv_cache_ratio = run.kv_cache_bytes_measured / run.kv_cache_bytes_estimated
        if run.peak_memory_bytes is not None and run.estimated_floor_bytes:
            run.peak_to_floor_ratio = run.peak_memory_bytes / run.estimated_floor_bytes
        return run

    def _no_cache_baseline(self, run: Run, batch: int, seq_len: int) -> None:
        """use_cache=False decoding; running out of memory here (it re-reads the whole sequence) keeps the rest."""
        n = min(run.decode_tokens, self.req.no_cache_steps)
        try:
            with self.device.untimed():
                run.decode_tokens_per_s_no_cache = self.runner.no_cache_decode(batch, seq_len, n)
        except Exception as exc:
            if not is_oom(exc):
                raise
            run.error = "the no-cache baseline ran out of memory (the cached runs above are complete)"
            return
        finally:
            self.device.free()
        run.no_cache_steps = n
        if run.decode_tokens_per_s:
            run.cache_speedup = run.decode_tokens_per_s / run.decode_tokens_per_s_no_cache

    def _time(self, run: Run, batch: int, seq_len: int, impl: str) -> None:
        ttfts: list[float] = []
        rates: list[float] = []
        gaps: list[float] = []
        steps = run.decode_tokens
        with self.device.untimed():
            for _ in range(self.req.repeats):
                clock = Clock(self.device)
                cache = self.runner.generate(batch, seq_len, impl, steps, clock=clock)
                del cache
                times = clock.seconds()
                ttfts.append(times[1] - times[0])
                step_times = [b - a for a, b in itertools.pairwise(times[1:])]
                gaps.extend(step_times)
                if step_times:
                    rates.append(batch * len(step_times) / sum(step_times))
        run.repeats = self.req.repeats
        run.ttft_s = statistics.median(ttfts)
        run.prefill_tokens_per_s = batch * seq_len / run.ttft_s if run.ttft_s > 0 else None
        if rates:
            run.decode_tokens_per_s = statistics.median(rates)
            run.inter_token_latency_s = statistics.median(gaps)

    # searches -------------------------------------------------------------------------------------------
    def fits(self, batch: int, seq_len: int, impl: str) -> bool:
        """Whether one prefill + decode pass runs without running out of memory; another error stops a search."""
        run = self.run_point(batch, seq_len, impl, timed=False)
        if run.error and not run.oom:
            raise _ProbeFailed(f"batch {batch}, seq {seq_len}: {run.error}")
        return not run.oom

    def predicted_max_batch(self, seq_len: int, impl: str, resident: int) -> tuple[int | None, int | None]:
        """(with the fitted activations, weights + KV only) largest batch of `seq_len`-token prompts, with
        `resident` bytes in use before it."""
        return self._predicted(lambda b: (b, seq_len), impl, MAX_SEARCH_BATCH, resident)

    def predicted_max_len(self, batch: int, impl: str, resident: int) -> tuple[int | None, int | None]:
        """(with the fitted activations, weights + KV only) longest prompt at `batch`."""
        return self._predicted(lambda n: (batch, n), impl, self._longest_prompt(), resident)

    def _predicted(
        self, point: Callable[[int], tuple[int, int]], impl: str, longest: int, resident: int
    ) -> tuple[int | None, int | None]:
        limit = self._limit_bytes()
        if limit is None or impl in _OFFLOADED:
            return None, None
        steps = self.req.decode_tokens
        fit = self.activation_fit(impl)

        def need(n: int) -> int:
            b, s = point(n)
            assert fit is not None
            return resident + max(
                self.prefill_kv(b, s, impl) + fit.prefill_bytes(b, s),
                self.estimated_kv(b, s + steps, impl) + fit.decode_bytes(b, s + steps),
            )

        def kv_only(n: int) -> int:
            b, s = point(n)
            return self.weights_bytes + self.estimated_kv(b, s + steps, impl)

        try:
            with_activations = largest(lambda n: need(n) <= limit, longest) if fit is not None else None
            return with_activations, largest(lambda n: kv_only(n) <= limit, longest)
        except KvplanError:
            return None, None

    def _longest_prompt(self) -> int:
        """The longest prompt a length search may try: the model's position limit less the decode steps."""
        return min(MAX_SEARCH_LEN, (self.shape.max_position_embeddings or MAX_SEARCH_LEN) - self.req.decode_tokens)

    def resident_bytes(self) -> int:
        """Memory in use now above what was in use before the model was loaded: weights, runtime and what
        libraries keep between passes (the CPU's oneDNN / MKL state grows over the first passes)."""
        self.device.free()
        return max(0, self.device.in_use() - self.process_base)

    def _limit_bytes(self) -> int | None:
        return self.limit if self.limit is not None else self.device.total_memory()

    def _search_result(
        self,
        kind: str,
        impl: str,
        fixed: dict[str, int],
        found: tuple[int, int, str | None],
        resident: int,
        predicted: tuple[int | None, int | None],
    ) -> Search:
        best, probes, error = found
        fit = self.activation_fit(impl)
        if impl in _OFFLOADED:
            by = "no prediction: an offloaded cache keeps most layers in CPU memory"
        elif fit is None:
            by = "no grid point of this cache ran to fit activations on; weights + KV only (an upper bound)"
        else:
            by = (
                "kvplan: memory in use before the search (weights, runtime, library state) + KV estimate + "
                f"activations fitted on the grid ({fit.describe()}) within the memory limit"
            )
        return Search(
            kind,
            impl,
            fixed,
            best,
            predicted[0],
            by,
            probes,
            self._limit_bytes(),
            error,
            predicted_max_kv_only=predicted[1],
            activations=fit.to_dict() if fit and impl not in _OFFLOADED else None,
            resident_bytes=resident,
        )

    def search_batch(self, seq_len: int, impl: str) -> Search:
        """The largest batch of `seq_len`-token prompts that runs (prefill + decode) without running out."""
        resident = self.resident_bytes()
        found = self._probe(lambda b: self.fits(b, seq_len, impl), 1, MAX_SEARCH_BATCH, lambda lo: 1)
        return self._search_result(
            "batch",
            impl,
            {"seq_len": seq_len, "decode_tokens": self.req.decode_tokens},
            found,
            resident,
            self.predicted_max_batch(seq_len, impl, resident),
        )

    def search_len(self, batch: int, impl: str, start: int) -> Search:
        """The longest prompt that runs at `batch` (to within 1/64 or 16 tokens), from `start` up or down."""
        longest = self._longest_prompt()
        resident = self.resident_bytes()
        found = self._probe(
            lambda n: self.fits(batch, n, impl), min(start, longest), longest, lambda lo: max(16, lo // 64)
        )
        return self._search_result(
            "seq_len",
            impl,
            {"batch": batch, "decode_tokens": self.req.decode_tokens},
            found,
            resident,
            self.predicted_max_len(batch, impl, resident),
        )

    @staticmethod
    def _probe(
        fits: Callable[[int], bool], start: int, limit: int, resolution: Callable[[int], int]
    ) -> tuple[int, int, str | None]:
        """(largest n that fits, how many runs it took, the error that stopped the search or None)."""
        probes = 0
        best = 0

        def ok(n: int) -> bool:
            nonlocal probes, best
            probes += 1
            good = fits(n)
            if good:
                best = max(best, n)
            return good

        try:
            return _search(ok, start, limit, resolution), probes, None
        except _ProbeFailed as exc:
            return best, probes, str(exc)


class _ProbeFailed(Exception):
    """A search probe failed for a reason other than memory: the search stops there."""


_OFFLOADED = ("offloaded", "offloaded-static")


def _search(ok: Callable[[int], bool], start: int, limit: int, resolution: Callable[[int], int]) -> int:
    """Largest n (>= 1) with ok(n): double from `start` until a failure, then bisect to `resolution(lo)`."""
    lo = 0
    n = max(1, start)
    if not ok(n):
        if n == 1:
            return 0
        hi = n
        n = 1
        if not ok(1):
            return 0
        lo = 1
    else:
        lo = n
        hi = None
        while hi is None:
            nxt = min(lo * 2, limit)
            if nxt == lo:
                return lo
            if ok(nxt):
                lo = nxt
            else:
                hi = nxt
    assert hi is not None  # both branches above set it
    while hi - lo > resolution(lo):
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _validate(req: ProfileRequest) -> None:
    if not req.caches:
        raise UsageError(
            "--cache names no cache implementation", hint="use one or more of: " + ", ".join(CACHE_CHOICES)
        )
    for impl in req.caches:
        if impl not in CACHE_CHOICES:
            raise UsageError(f"unknown --cache {impl!r}", hint="use one of: " + ", ".join(CACHE_CHOICES))
    if req.decode_tokens < 0:
        raise UsageError("--decode-tokens must be 0 or more")
    if req.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if req.memory_limit is not None and req.memory_limit <= 0:
        raise UsageError("--memory-limit must be positive", hint="pass e.g. --memory-limit 8GiB")
    if req.gpus and len(set(req.gpus)) != len(req.gpus):
        raise UsageError("--gpu lists a device twice", hint="pass e.g. --gpu 0,1")
    if req.speculative_config is not None and req.decode_tokens < 1:
        raise UsageError(
            "--speculative-config needs --decode-tokens 1 or more (the draft drafts while decoding)",
            hint="pass e.g. --decode-tokens 32",
        )


def environment(req: ProfileRequest, device_desc: str, memory_method: str) -> dict[str, Any]:
    import accelerate

    env = {
        "kvplan": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "platform": platform.platform(),
        "device": device_desc,
        "memory_method": memory_method,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if req.gpus else None,
    }
    if req.gpus:
        env["gpus"] = [
            {
                "index": g,
                "name": torch.cuda.get_device_name(g),
                "total_memory_bytes": torch.cuda.get_device_properties(g).total_memory,
            }
            for g in req.gpus
        ]
    return env


def profile(req: ProfileRequest, progress: Callable[[str, int], None] | None = None) -> ProfileReport:
    """Run the grid (and the searches) of `req`. `progress(description, total)` is called before each unit of
    work (total = the number of units, known up front for the grid; searches add one unit each)."""
    points = [(b, n, c) for c in req.caches for n in req.seq_lens for b in req.batches]
    searches = (len(req.seq_lens) * len(req.caches) if req.find_max_batch else 0) + (
        len(req.batches) * len(req.caches) if req.find_max_len else 0
    )
    total = len(points) + searches + (req.speculative_config is not None)
    transformers.logging.set_verbosity_error()  # kernel-fallback warnings would drown the progress bar
    mapped_before = large_allocations_mapped()
    with Profiler(req) as prof:
        memory_method = (
            "torch.cuda max_memory_allocated (+ mem_get_info for the device view)" if req.gpus else HeapMeter.method
        )
        report = ProfileReport(
            model=prof.loaded.name,
            config_source=prof.loaded.source,
            revision=prof.loaded.revision,
            weights=prof.weights_how,
            layers_full=prof.full_shape.num_layers,
            layers_used=prof.shape.num_layers,
            dtype=short_dtype(prof.model_dtype),
            env=environment(req, describe(req.gpus), memory_method),
            notes=prof.notes,
        )
        report.env["weights_bytes"] = prof.weights_bytes
        report.env["weights_in_memory_bytes"] = prof.weights_in_memory
        report.env["runtime_bytes_after_warmup"] = prof.runtime_bytes
        if req.layers and req.layers != prof.full_shape.num_layers:
            report.notes.append(
                f"--layers {req.layers}: measured with {req.layers} of {prof.full_shape.num_layers} layers; "
                "kv_cache_bytes_full_model_scaled = measured x (full-model estimate / shrunk estimate); "
                "memory and tokens/s are for the shrunk model"
            )
        if prof.limit is not None:
            report.env["memory_limit_bytes"] = prof.limit
        hw = prof.hardware_profile()
        if hw is not None:
            report.env["hardware_profile"] = hw.id
            report.notes.append(
                f"upper bounds from the {hw.id} profile (kvplan.planning.throughput roofline): decode at the "
                "prompt length, weights + KV read per step over memory bandwidth"
            )
        skipped = {}
        for impl in req.caches:
            try:
                prof.runner.new_cache(impl, 16)
            except Unsupported as exc:
                skipped[impl] = str(exc)
        for impl, reason in skipped.items():
            report.notes.append(f"--cache {impl} skipped: {reason}")
        report.skipped = skipped
        points = [p for p in points if p[2] not in skipped]
        for b, n, c in points:
            if progress:
                progress(f"batch {b}, seq {n}, {c}", total)
            run = prof.run_point(b, n, c)
            report.runs.append(run)
            if run.error:
                report.notes.append(f"batch {b}, seq {n}, {c}: {run.error}")
            prof.add_bounds(run, hw)
        caches = [c for c in req.caches if c not in skipped]
        if (req.find_max_batch or req.find_max_len) and caches and not req.gpus:
            _map_large_allocations(report.notes, already=mapped_before)
        for c in caches if req.find_max_batch else ():
            for n in req.seq_lens:
                if progress:
                    progress(f"find max batch: seq {n}, {c}", total)
                report.searches.append(prof.search_batch(n, c))
                if report.searches[-1].error:
                    report.notes.append(f"find max batch stopped: {report.searches[-1].error}")
        for c in caches if req.find_max_len else ():
            for b in req.batches:
                if progress:
                    progress(f"find max length: batch {b}, {c}", total)
                report.searches.append(prof.search_len(b, c, start=max(req.seq_lens)))
                if report.searches[-1].error:
                    report.notes.append(f"find max length stopped: {report.searches[-1].error}")
        if prof.draft is not None:
            if progress:
                progress(f"assisted generation: seq {max(req.seq_lens)}, draft", total)
            report.speculative = prof.run_assisted()
            draft = report.speculative
            if draft.oom:
                report.notes.append("assisted generation: out of memory (the grid above is complete)")
            elif draft.error:
                report.notes.append(f"assisted generation: {draft.error}")
            report.notes.extend(n for n in prof.draft[2].notes if n not in report.notes)
            if req.layers and req.layers != prof.full_shape.num_layers:
                report.notes.append(
                    f"--layers {req.layers}: the assisted generation's target ran with {req.layers} layers; the "
                    "draft with all of its own"
                )
        if req.layers and req.layers != prof.full_shape.num_layers:
            for run in report.runs:
                if run.kv_cache_bytes_measured is not None and run.kv_cache_bytes_estimated:
                    full = prof.estimated_kv(run.batch, run.seq_len + run.decode_tokens, run.cache, full_model=True)
                    run.kv_cache_bytes_full_model_scaled = round(
                        run.kv_cache_bytes_measured * full / run.kv_cache_bytes_estimated
                    )
    return report


def _map_large_allocations(notes: list[str], *, already: bool) -> None:
    """CPU memory caps count address space: from here on make it follow the heap (kvplan.profiling.memory)."""
    if not map_large_allocations():
        notes.append(
            "no glibc mallopt here: CPU searches count address space, which includes freed heap the "
            "allocator keeps, so they stop short of the memory limit"
        )
    elif already:
        notes.append(
            "allocations of 64 KiB or more were already mapped one by one in this process (glibc "
            "M_MMAP_THRESHOLD, set by an earlier search): the timed passes above ran with it, slower"
        )
    else:
        notes.append(
            "CPU searches map each allocation of 64 KiB or more on its own (glibc M_MMAP_THRESHOLD) so "
            "that the memory limit counts the heap in use, not freed heap the allocator keeps; the "
            "grid's timed passes ran before, without it"
        )


def profile_model(
    model: str,
    *,
    gpus: tuple[int, ...] = (),
    seq_lens: tuple[int, ...] = (512,),
    batches: tuple[int, ...] = (1,),
    decode_tokens: int = 128,
    dtype: str = "auto",
    caches: tuple[str, ...] = ("dynamic",),
    no_cache_baseline: bool = False,
    no_cache_steps: int = 8,
    find_max_batch: bool = False,
    find_max_len: bool = False,
    repeats: int = 3,
    layers: int | None = None,
    memory_limit: int | None = None,
    random_weights: bool = False,
    trust_remote_code: bool = False,
    assume_llama: bool = False,
    revision: str | None = None,
    offline: bool | None = None,
    seed: int = 0,
    speculative_config: str | dict[str, Any] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> ProfileReport:
    """`kvplan.profile`: run the grid of a `ProfileRequest` built from these arguments (see its fields; `gpus`
    empty runs on the CPU) and return the ProfileReport. `progress(description, total)` as for `profile`."""
    req = ProfileRequest(
        model=model,
        gpus=tuple(gpus),
        seq_lens=tuple(seq_lens),
        batches=tuple(batches),
        decode_tokens=decode_tokens,
        dtype=dtype,
        caches=tuple(caches),
        no_cache_baseline=no_cache_baseline,
        no_cache_steps=no_cache_steps,
        find_max_batch=find_max_batch,
        find_max_len=find_max_len,
        repeats=repeats,
        layers=layers,
        memory_limit=memory_limit,
        random_weights=random_weights,
        trust_remote_code=trust_remote_code,
        assume_llama=assume_llama,
        revision=revision,
        offline=offline,
        seed=seed,
        speculative_config=speculative_config,
    )
    return profile(req, progress=progress)


def write_json_atomically(path: str | Path, data: dict[str, Any]) -> None:
    """The report as strict JSON (kvplan.jsonout: a figure that is not finite is null), written atomically."""
    from kvplan.jsonout import dumps

    write_text_atomically(path, dumps(data)[0] + "\n")


__all__ = [
    "CACHE_CHOICES",
    "DraftRun",
    "ProfileReport",
    "ProfileRequest",
    "Profiler",
    "Run",
    "Search",
    "default_gpus",
    "profile",
    "profile_model",
    "shrink_layers",
    "write_json_atomically",
]
