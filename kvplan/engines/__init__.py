"""Engine models: how each inference engine stores a model's caches. `get_engine(name, shape)` picks one."""

from __future__ import annotations

from kvplan.architectures import ModelShape
from kvplan.engines.base import Engine, KindCost, Request, pipeline_stages
from kvplan.engines.llamacpp import LlamaCppEngine
from kvplan.engines.naive import NaiveEngine
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.tensorrt_llm import TensorRtLlmEngine
from kvplan.engines.transformers import TransformersEngine, TransformersStaticEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import UsageError

ENGINES = ("vllm", "sglang", "transformers", "transformers-static", "llamacpp", "tensorrt-llm", "naive")


def get_engine(name: str, shape: ModelShape) -> Engine:
    """The engine model called `name` (one of ENGINES)."""
    key = name.strip().lower()
    if key == "vllm":
        return VllmEngine()
    if key == "sglang":
        return SglangEngine()
    if key in ("transformers", "hf"):
        return TransformersEngine()
    if key in ("transformers-static", "hf-static"):
        return TransformersStaticEngine()
    if key in ("llamacpp", "llama.cpp", "llama-cpp"):
        return LlamaCppEngine(shape.model_type)
    if key in ("tensorrt-llm", "trtllm", "trt-llm", "tensorrt_llm"):
        return TensorRtLlmEngine()
    if key == "naive":
        return NaiveEngine(shape.hidden_size)
    raise UsageError(f"unknown engine {name!r}", hint="use one of: " + ", ".join(ENGINES))


__all__ = ["ENGINES", "Engine", "KindCost", "Request", "get_engine", "pipeline_stages"]
