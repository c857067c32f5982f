"""kvplan: KV-cache memory planning and profiling for LLM serving.

The Python API (no torch needed):

    import kvplan
    est = kvplan.estimate("meta-llama/Llama-3.1-8B", seq_len=32768, batch=8, kv_dtype="fp8", tp=2)
    est.kv_cache_bytes, est.kv_cache_bytes_per_gpu, est.layers

This module must never import torch or transformers; the profiler is imported lazily.
"""

from __future__ import annotations

__version__ = "0.1.0"

from kvplan.core.shapes import ModelShape, model_shape
from kvplan.errors import ConfigError, HubError, KvplanError, UnsupportedArchitecture, UsageError
from kvplan.planning.estimate import Estimate, estimate, estimate_config
from kvplan.planning.resolved import ResolvedModel, load, resolve

__all__ = [
    "ConfigError",
    "Estimate",
    "HubError",
    "KvplanError",
    "ModelShape",
    "ResolvedModel",
    "UnsupportedArchitecture",
    "UsageError",
    "__version__",
    "estimate",
    "estimate_config",
    "load",
    "model_shape",
    "resolve",
]
