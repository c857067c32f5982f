"""The textbook formula `2 x layers x seq x hidden x batch x bytes`, shown so users see how far off it is.

It assumes every layer is full multi-head attention over `hidden_size` (no GQA, MLA, windows or states)
and divides the cache evenly across TP ranks. Exact only for MHA models.
"""

from __future__ import annotations

from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.units import DTYPE_BYTES, cdiv
from kvplan.engines.base import KindCost, Request
from kvplan.engines.entry import EngineEntry

NAIVE = "naive_mha"


class NaiveEngine:
    name = "naive"
    follows = "2 x layers x seq x hidden x batch x bytes"

    def __init__(self, hidden_size: int) -> None:
        self.hidden_size = hidden_size

    def check(self, caches: list[L.Layer], req: Request) -> None:
        return None

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        return None

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        # an indexer's key cache (MiniMax-M3) sits in a layer beside its K/V: not a layer of its own
        layers = sum(1 for c in caches if not isinstance(c, L.IndexKeys))
        per_token = 2 * self.hidden_size * DTYPE_BYTES[req.kv_dtype] / req.tp * layers
        total = per_token * req.seq_len * req.batch
        return [KindCost(NAIVE, layers, cdiv(total.numerator, total.denominator), Fraction(per_token), req.seq_len)]


ENTRY = EngineEntry(
    name="naive",
    storage=lambda shape: NaiveEngine(shape.hidden_size),
    kv_ggml=True,  # the formula takes any dtype's bytes
    estimate_help="naive (the textbook formula)",
)
