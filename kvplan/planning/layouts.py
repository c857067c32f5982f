"""`smallest_layout()`: the fewest GPUs a model fits on, for one engine, and the layout that holds the most there.

Static, pure arithmetic: every candidate layout is planned by `kvplan.planning.recommend.recommend` (the model read
once), so each is judged by the engine's own rules, refusals included (a DCP size vLLM refuses is no candidate).
Candidates: TP and PP in powers of two, and the engine's own parallelism beyond them (its serving model's
`parallelism`; vLLM: DP ranks, DCP inside the TP group, expert parallelism for a model with routed experts),
with TP x PP x DP at most `max_gpus`. The smallest GPU count with a layout that fits wins (one request of
max_model_len, or `concurrency` of them, spread over the DP ranks); among its layouts, the one with the most KV
capacity in all (DP ranks x requests a rank holds), then the fewest pipeline stages and DCP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from kvplan.errors import KvplanError, UsageError
from kvplan.planning.recommend import Recommendation, recommend
from kvplan.planning.resolved import ModelRef, ResolvedModel, resolve

DEFAULT_MAX_GPUS = 64
_LAYOUT_OPTIONS = ("tp", "pp", "dp", "dcp", "expert_parallel", "redundant_experts")


@dataclass(frozen=True)
class Candidate:
    """One layout tried: TP x PP x DP GPUs, DCP ranks inside each TP group, experts placed by EP or not."""

    tp: int
    pp: int
    dp: int = 1
    dcp: int = 1
    expert_parallel: bool = False

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def label(self) -> str:
        parts = [f"TP {self.tp}", f"PP {self.pp}", f"DP {self.dp}"]
        text = " x ".join(parts) + f" = {self.gpus} GPUs"
        if self.dcp > 1:
            text += f", DCP {self.dcp}"
        if self.expert_parallel:
            text += ", expert parallel"
        return text


def _powers(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out


def candidates(max_gpus: int, parallelism: frozenset[str], *, moe: bool, searches_tp: bool) -> list[Candidate]:
    """The layouts of at most `max_gpus` GPUs an engine with `parallelism` (ServingModel.parallelism) may run: TP
    (1 where the engine has none: `searches_tp`) and PP in powers of two, DP where it models DP, DCP at each power of
    two dividing TP where it models DCP, expert parallelism on a model with routed experts where it models EP (the
    experts are then placed whole, one EP rank per TP x DP GPU), fewest GPUs first."""
    out = []
    for tp in _powers(max_gpus) if searches_tp else [1]:
        for pp in _powers(max_gpus // tp):
            for dp in _powers(max_gpus // (tp * pp)) if "dp" in parallelism else [1]:
                for dcp in [d for d in _powers(tp) if "dcp" in parallelism] or [1]:
                    ep = moe and "expert_parallel" in parallelism and tp * dp > 1
                    out.append(Candidate(tp, pp, dp, dcp, ep))
    return sorted(out, key=lambda c: (c.gpus, c.pp, c.dcp, -c.tp))


def _capacity(rec: Recommendation) -> float:
    dp = rec.parallel["dp"] if rec.parallel else 1
    return float(rec.max_concurrency) * dp


def smallest_layout(
    model: ModelRef, *, engine: str, max_gpus: int = DEFAULT_MAX_GPUS, **options: Any
) -> Recommendation:
    """Plan MODEL at the smallest layout that fits on `engine` (at most `max_gpus` GPUs), with the search in
    `parallel["search"]`: GPUs searched, layouts planned and refused, and whether one fits. None fits: the plan of
    the largest GPU count tried, at its layout with the most KV memory (fits false). `options` are recommend()'s,
    less the layout's own (tp, pp, dp, dcp, expert_parallel, redundant_experts, gpus)."""
    from kvplan.engines.registry import lookup
    from kvplan.engines.serving import ServingModel

    given = [name for name in (*_LAYOUT_OPTIONS, "gpus", "nodes", "gpus_per_node") if options.get(name) is not None]
    if given:
        raise UsageError(
            "the layout search chooses TP, PP, DP, DCP and expert parallelism itself: "
            + ", ".join(given)
            + " cannot be given with it",
            hint="pass --gpus (or --nodes and --gpus-per-node) as the most GPUs to search, and drop the layout options",
            field="tp",
        )
    if type(max_gpus) is not int or max_gpus < 1:
        raise UsageError(
            f"the layout search needs at least one GPU, got {max_gpus!r}", hint="pass --gpus 8", field="gpus"
        )
    resolved = (
        model
        if isinstance(model, ResolvedModel)
        else resolve(
            model,
            revision=options.get("revision"),
            offline=options.get("offline"),
            assume_llama=bool(options.get("assume_llama")),
            hub_weights=options.get("hub_weights"),  # carried by the ResolvedModel every layout's plan reuses
        )
    )
    entry = lookup(engine)
    serving = entry.serving if entry is not None else None
    parallelism = (
        serving.parallelism_at(options.get("vllm_version")) if isinstance(serving, ServingModel) else frozenset()
    )
    searches_tp = serving.searches_tp if isinstance(serving, ServingModel) else True
    moe = _has_routed_experts(resolved)
    tried, refused = 0, 0
    best: Recommendation | None = None
    fallback: Recommendation | None = None
    count = max_gpus  # the GPU count of the best layout so far
    for cand in candidates(max_gpus, parallelism, moe=moe, searches_tp=searches_tp):
        if best is not None and cand.gpus > count:  # the smallest count that fits is settled
            break
        tried += 1
        try:
            rec = recommend(
                resolved,
                engine=engine,
                gpus=cand.gpus,
                tp=cand.tp,
                pp=cand.pp,
                dp=cand.dp,
                dcp=cand.dcp,
                expert_parallel=cand.expert_parallel,
                report_layout=True,
                **options,
            )
        except KvplanError:
            refused += 1
            continue
        if rec.fits and not rec.startup_error:
            if best is None or _better(rec, best):
                best, count = rec, cand.gpus
        elif fallback is None or (rec.gpus, rec.available_kv_memory_bytes) > (
            fallback.gpus,
            fallback.available_kv_memory_bytes,
        ):
            fallback = rec
    chosen = best or fallback
    if chosen is None:
        raise UsageError(
            f"no layout of up to {max_gpus} GPUs can be planned for this model on {engine}",
            hint="raise --gpus, or plan one layout with --tp/--pp",
            field="gpus",
        )
    search = {
        "max_gpus": max_gpus,
        "layouts_planned": tried - refused,
        "layouts_refused": refused,
        "fits": best is not None,
    }
    assert chosen.parallel is not None  # report_layout
    note = (
        f"smallest layout that fits on at most {max_gpus} GPUs: {_label(chosen)} ({tried} layouts tried)"
        if best is not None
        else f"no layout of up to {max_gpus} GPUs fits; the largest tried is shown ({_label(chosen)})"
    )
    return replace(chosen, parallel={**chosen.parallel, "search": search}, notes=(*chosen.notes, note))


def _better(rec: Recommendation, best: Recommendation) -> bool:
    """More KV capacity in all, then fewer pipeline stages, then fewer DCP ranks."""
    a, b = rec.parallel or {}, best.parallel or {}
    return (_capacity(rec), -rec.pp, -a.get("dcp", 1)) > (_capacity(best), -best.pp, -b.get("dcp", 1))


def _label(rec: Recommendation) -> str:
    layout = rec.parallel or {}
    return Candidate(
        rec.tp, rec.pp, layout.get("dp", 1), layout.get("dcp", 1), layout.get("expert_parallel", False)
    ).label()


def _has_routed_experts(resolved: ResolvedModel) -> bool:
    from kvplan.core.config import routed_experts
    from kvplan.errors import READ_ERRORS

    try:
        return routed_experts(resolved.config) is not None
    except READ_ERRORS:
        return False
