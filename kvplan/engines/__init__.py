"""Engine models: how each inference engine stores a model's caches. `get_engine(name, shape)` picks one."""

from __future__ import annotations

from kvplan.core.shapes import ModelShape
from kvplan.engines.base import Engine, KindCost, Request, pipeline_stages
from kvplan.engines.llamacpp import LlamaCppEngine
from kvplan.engines.naive import NaiveEngine
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.tensorrt_llm import TensorRtLlmEngine
from kvplan.engines.transformers import TransformersEngine, TransformersStaticEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import UsageError

ENGINES = ("vllm", "sglang", "transformers", "transformers-static", "llamacpp", "tensorrt-llm", "naive")
# Every spelling of an engine kvplan accepts (estimate, recommend, check plans, engine configs) -> its name.
# lightllm and tgi are serving engines recommend / check know by name (LightLLM's cell is SGLang's).
ENGINE_ALIASES = {
    "hf": "transformers",
    "hf-static": "transformers-static",
    "llama.cpp": "llamacpp",
    "llama-cpp": "llamacpp",
    "llama_cpp": "llamacpp",
    "trtllm": "tensorrt-llm",
    "trt-llm": "tensorrt-llm",
    "tensorrt_llm": "tensorrt-llm",
}


def canonical_engine(name: str) -> str:
    """An engine's name as kvplan spells it (`llama.cpp` -> `llamacpp`, `trtllm` -> `tensorrt-llm`)."""
    key = str(name).strip().lower()
    return ENGINE_ALIASES.get(key, key)


def get_engine(name: str, shape: ModelShape) -> Engine:
    """The engine model called `name` (one of ENGINES, or an alias of one)."""
    key = canonical_engine(name)
    if key == "vllm":
        return VllmEngine()
    if key == "sglang":
        return SglangEngine()
    if key == "transformers":
        return TransformersEngine.for_shape(shape)
    if key == "transformers-static":
        return TransformersStaticEngine.for_shape(shape)
    if key == "llamacpp":
        return LlamaCppEngine(shape.model_type)
    if key == "tensorrt-llm":
        return TensorRtLlmEngine()
    if key == "naive":
        return NaiveEngine(shape.hidden_size)
    raise UsageError(f"unknown engine {name!r}", hint="use one of: " + ", ".join(ENGINES))


__all__ = [
    "ENGINES",
    "ENGINE_ALIASES",
    "Engine",
    "KindCost",
    "Request",
    "canonical_engine",
    "get_engine",
    "pipeline_stages",
]
