"""The passes of one profile point: a fresh cache of the chosen implementation, a prefill, greedy decode steps
(optionally timed with a Clock), and the no-cache baseline. Imports torch and transformers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache, QuantizedCache, StaticCache

from kvplan.errors import UsageError
from kvplan.profiling.device import Clock, Device
from kvplan.profiling.ground_truth import cache_keyword

__all__ = ["CACHE_CHOICES", "CUDA_ONLY", "Runner", "Unsupported", "first_line"]

CACHE_CHOICES = ("dynamic", "static", "quantized", "offloaded", "offloaded-static")
CUDA_ONLY = ("offloaded", "offloaded-static")


class Runner:
    """Runs the passes of one grid point on a prepared model."""

    def __init__(self, model: torch.nn.Module, hf_config: Any, device: Device, req: Any, vocab: int) -> None:
        self.model = model
        self.hf_config = hf_config
        self.device = device
        self.req = req
        self.vocab = vocab
        self.cache_arg = cache_keyword(model)  # `cache` from transformers 5.24, `past_key_values` before
        self.own_state = self.cache_arg == "cache_params"  # Mamba before 5.24: it builds its own state cache
        self.input_device = _input_device(model, device.main)

    def ids(self, batch: int, seq_len: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.req.seed + batch * 7919 + seq_len)
        return torch.randint(0, self.vocab, (batch, seq_len), generator=gen).to(self.input_device)

    def new_cache(self, impl: str, max_len: int) -> Any:
        if self.own_state:
            if impl != "dynamic":
                raise Unsupported(f"{type(self.model).__name__} keeps its own state cache; only `dynamic` applies")
            return None
        if impl in CUDA_ONLY and not self.device.cuda:
            raise Unsupported(f"the {impl} cache moves layers between GPU and CPU with CUDA streams: needs --gpu")
        try:
            if impl == "dynamic":
                return DynamicCache(config=self.hf_config)
            if impl == "offloaded":
                return DynamicCache(config=self.hf_config, offloading=True)
            if impl == "static":
                return StaticCache(config=self.hf_config, max_cache_len=max_len)
            if impl == "offloaded-static":
                return StaticCache(config=self.hf_config, max_cache_len=max_len, offloading=True)
            if impl == "quantized":
                return QuantizedCache(backend="fp8", config=self.hf_config)
        except (ValueError, ImportError, TypeError) as exc:
            raise Unsupported(f"transformers refuses a {impl} cache for this model: {first_line(exc)}") from None
        raise UsageError(f"unknown cache {impl!r}", hint="use one of: " + ", ".join(CACHE_CHOICES))

    def _forward(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": True, "logits_to_keep": 1}
        if cache is not None:
            kwargs[self.cache_arg] = cache
        out = self.model(**kwargs)
        return out.logits[:, -1:].argmax(-1), getattr(out, self.cache_arg)

    def generate(
        self,
        batch: int,
        seq_len: int,
        impl: str,
        steps: int,
        on_phase: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> Any:
        """Prefill then `steps` greedy decode steps; returns the cache. `clock.mark()` after the start, the
        prefill (with its argmax) and each step; `on_phase(name)` before each phase."""
        ids = self.ids(batch, seq_len)
        cache = self.new_cache(impl, seq_len + steps)
        if on_phase:
            on_phase("prefill")
        self.device.sync()
        if clock:
            clock.mark()
        nxt, cache = self._forward(ids, cache)
        if clock:
            clock.mark()
        else:
            self.device.sync()
        if on_phase and steps:
            on_phase("decode")
        for _ in range(steps):
            nxt, cache = self._forward(nxt, cache)
            if clock:
                clock.mark()
        self.device.sync()
        return cache

    def no_cache_decode(self, batch: int, seq_len: int, steps: int) -> float:
        """Tokens/s of greedy decoding that re-reads the whole sequence each step (use_cache=False)."""
        seq = self.ids(batch, seq_len)
        self.device.sync()
        start = time.perf_counter()
        for _ in range(steps):
            out = self.model(input_ids=seq, use_cache=False, logits_to_keep=1)
            seq = torch.cat([seq, out.logits[:, -1:].argmax(-1)], dim=1)
        self.device.sync()
        return batch * steps / (time.perf_counter() - start)


class Unsupported(Exception):
    pass


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _input_device(model: torch.nn.Module, default: torch.device) -> torch.device:
    try:
        return model.get_input_embeddings().weight.device
    except (AttributeError, NotImplementedError):
        return default


# ---------------------------------------------------------------------------------------------- profiling
