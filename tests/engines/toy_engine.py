"""A toy engine for tests/engines/test_registry.py: one byte per cached K/V element of full-attention layers, and a
serving model that keeps half of the GPU's memory. Everything an engine is lives here; registering ENTRY is all
kvplan needs to estimate, recommend and check with it."""

from __future__ import annotations

from fractions import Fraction

from kvplan.core import specs as L
from kvplan.engines import EngineEntry
from kvplan.engines.base import KindCost, Request, group_costs, kv_heads_per_rank
from kvplan.engines.serving import BudgetInputs, BudgetTerm, FlagInputs, ServingModel
from kvplan.errors import UsageError

SHARE = 0.5


class ToyStorage:
    name = "toy"
    follows = "toy: 1 byte per cached K/V element"

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if req.kv_dtype == "int4":
            raise UsageError("toy has no int4 KV cache", hint="use --kv-dtype auto")

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        return None

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        items = []
        for cache in caches:
            if isinstance(cache, L.KVAttention):
                per_token = Fraction(cache.elements_per_token(kv_heads_per_rank(cache.num_kv_heads, req.tp)))
                items.append((cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len))
            else:
                items.append((cache.kind, 0, Fraction(0), None))
        return group_costs(items)


class ToyServing(ServingModel):
    summary = "toy (half the memory)"
    utilization_help = "toy share of memory (default 0.5)"

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        return SHARE

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        usable = int(b.profile.memory_bytes * b.utilization)
        terms = [
            BudgetTerm("toy_share", usable, f"{b.profile.id} memory x {b.utilization}"),
            BudgetTerm("weights", -b.weights_per_gpu, f"weights / {b.tp * b.pp}"),
        ]
        return terms, usable - b.weights_per_gpu

    def command(self, f: FlagInputs) -> str:
        return f"toy-serve {f.model} --len {f.max_model_len} --seqs {f.max_num_seqs}" + (
            " --planned" if f.planned else ""
        )


ENTRY = EngineEntry(
    name="toy",
    aliases=("toy-engine",),
    display="Toy",
    storage=lambda shape: ToyStorage(),
    serving=ToyServing(),
    plannable=True,
    splits_heads=True,
    estimate_help="toy (one byte per element)",
)
