"""One request sized with an engine's storage model, per pipeline stage and on the fullest GPU.

The arithmetic `kvplan estimate` reports (kvplan.planning.estimate) and the serving models' fits
(kvplan.engines.serving) share: each stage's per-kind costs, the fullest GPU's bytes and its marginal bytes per
token. Pure arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.shapes import ModelShape
from kvplan.engines.base import Engine, KindCost, Request, pipeline_stages


def number(value: Fraction) -> float | int:
    """A Fraction as kvplan reports it: an int when whole, else a float."""
    return int(value) if value.denominator == 1 else float(value)


def pipeline_costs(storage: Engine, shape: ModelShape, req: Request) -> list[list[KindCost]]:
    """Per pipeline stage, the per-kind costs on one GPU of that stage: the storage model's own layer split where
    it has one (`layer_stages(shape, pp)`: SGLang's for DeepSeek-V4), else vLLM's (`pipeline_stages`)."""
    split = getattr(storage, "layer_stages", None)
    stages = split(shape, req.pp) if split is not None else pipeline_stages(shape.num_layers, req.pp)
    # an engine that builds the drafter's layers on the last stage only (`draft_on_last_stage`: TensorRT-LLM's MTP)
    # gets the other stages' requests without them
    bare = req
    if getattr(storage, "draft_on_last_stage", False) and req.speculative is not None:
        bare = replace(req, speculative=replace(req.speculative, draft_caches=()))
    return [
        storage.stage_costs([c for i in rng for c in shape.layers[i]], req if k == len(stages) - 1 else bare)
        for k, rng in enumerate(stages)
    ]


def fullest_stage(shape: ModelShape, pp: int) -> tuple[list[L.Layer], int]:
    """The caches of the pipeline stage with the most layers, and its layer count."""
    stages = pipeline_stages(shape.num_layers, pp)
    fullest = max(stages, key=len)
    return [c for i in fullest for c in shape.layers[i]], len(fullest)


@dataclass(frozen=True)
class GpuKv:
    """A request on the fullest GPU: `bytes` (estimate's kv_cache_bytes_per_gpu), `bytes_per_token` (its
    bytes_per_token_per_gpu: the largest stage's marginal bytes per token) and the engine's block size."""

    bytes: int
    bytes_per_token: float | int
    block_size: int | None


def gpu_kv(storage: Engine, shape: ModelShape, req: Request) -> GpuKv:
    """`req` sized by `storage` on the fullest GPU (the storage model's own checks apply)."""
    stages = pipeline_costs(storage, shape, req)
    totals = [sum(c.bytes for c in costs) for costs in stages]
    per_token = max(sum((c.bytes_per_token for c in costs), Fraction(0)) for costs in stages)
    return GpuKv(max(totals), number(per_token), storage.block_size(shape.caches(), req))
