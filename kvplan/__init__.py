"""kvplan: KV-cache memory planning and profiling for LLM serving.

The Python API (typed keyword arguments; no torch needed except for `profile`):

    import kvplan
    model = kvplan.resolve("meta-llama/Llama-3.1-8B")  # read once: config, shape, weights
    est = kvplan.estimate(model, seq_len=32768, batch=8, kv_dtype="fp8", tp=2)
    rec = kvplan.recommend(model, gpu_profile="h100-sxm-80gb", max_model_len=32768)
    report = kvplan.check("kvplan.yaml", min_headroom="5%")
    run = kvplan.profile("./tiny/config.json", seq_lens=(512,), batches=(1,))  # imports torch

This module imports nothing at all: every name is loaded on first use (PEP 562 `__getattr__`), so
`kvplan estimate --json` imports only what it uses, torch never but for `profile`, and the console script's
Ctrl-C guard (kvplan.__main__.run) holds before any of kvplan is imported.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvplan.checking.check import CheckReport, check
    from kvplan.checking.plans import Deployment
    from kvplan.core.shapes import ModelShape, model_shape
    from kvplan.engines.offload import Offload
    from kvplan.errors import ConfigError, HubError, KvplanError, UnsupportedArchitecture, UsageError
    from kvplan.planning.estimate import Estimate, estimate, estimate_config
    from kvplan.planning.recommend import Recommendation, recommend
    from kvplan.planning.resolved import ResolvedModel, load, resolve
    from kvplan.profiling.profiler import ProfileReport as ProfileReport
    from kvplan.profiling.profiler import ProfileRequest as ProfileRequest
    from kvplan.profiling.profiler import profile_model as profile  # noqa: F401

# name -> (module, attribute): loaded on first access, so `import kvplan` imports nothing (the console script's
# guard, kvplan.__main__.run, is in place before any of kvplan's code is imported)
_LAZY = {
    "ModelShape": ("kvplan.core.shapes", "ModelShape"),
    "model_shape": ("kvplan.core.shapes", "model_shape"),
    "ConfigError": ("kvplan.errors", "ConfigError"),
    "HubError": ("kvplan.errors", "HubError"),
    "KvplanError": ("kvplan.errors", "KvplanError"),
    "UnsupportedArchitecture": ("kvplan.errors", "UnsupportedArchitecture"),
    "UsageError": ("kvplan.errors", "UsageError"),
    "Estimate": ("kvplan.planning.estimate", "Estimate"),
    "estimate": ("kvplan.planning.estimate", "estimate"),
    "estimate_config": ("kvplan.planning.estimate", "estimate_config"),
    "ResolvedModel": ("kvplan.planning.resolved", "ResolvedModel"),
    "load": ("kvplan.planning.resolved", "load"),
    "resolve": ("kvplan.planning.resolved", "resolve"),
    "recommend": ("kvplan.planning.recommend", "recommend"),
    "Recommendation": ("kvplan.planning.recommend", "Recommendation"),
    "check": ("kvplan.checking.check", "check"),
    "CheckReport": ("kvplan.checking.check", "CheckReport"),
    "Deployment": ("kvplan.checking.plans", "Deployment"),
    "Offload": ("kvplan.engines.offload", "Offload"),
    "profile": ("kvplan.profiling.profiler", "profile_model"),
    "ProfileReport": ("kvplan.profiling.profiler", "ProfileReport"),
    "ProfileRequest": ("kvplan.profiling.profiler", "ProfileRequest"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kvplan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# `profile`, `ProfileReport` and `ProfileRequest` are left out so that `from kvplan import *` never imports torch
__all__ = [
    "CheckReport",
    "ConfigError",
    "Deployment",
    "Estimate",
    "HubError",
    "KvplanError",
    "ModelShape",
    "Offload",
    "Recommendation",
    "ResolvedModel",
    "UnsupportedArchitecture",
    "UsageError",
    "__version__",
    "check",
    "estimate",
    "estimate_config",
    "load",
    "model_shape",
    "recommend",
    "resolve",
]
