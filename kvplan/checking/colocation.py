"""Several deployments on one GPU (`kvplan recommend --share-gpu-with PLAN`): what the deployments of PLAN hold on
each GPU once started, for a new deployment that starts beside them.

Each deployment of PLAN is checked as `kvplan check` would (kvplan.checking.check), and its engine's serving
model says what a started instance holds per GPU (`ServingModel.footprint`: vLLM its requested memory, total x
gpu_memory_utilization). They must run on the GPU model the new deployment is planned on. The new deployment's
start-up is then checked with that memory in use (`recommend(gpu_used_by_others=...)`: vLLM's free-memory check,
with each release's wording; the start order in its notes).

Pure arithmetic on top of check and recommend.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.errors import UsageError


@dataclass(frozen=True)
class SharedGpu:
    """What the deployments already on the GPU hold: `bytes` per GPU in all, and one line per deployment."""

    bytes: int
    lines: tuple[str, ...]


def shared_footprint(
    plans: list[str], *, gpu_profile: str, offline: bool | None = None, profiles_dir: str | None = None
) -> SharedGpu:
    """The memory per GPU the deployments of `plans` (plan files or manifests) hold once started on `gpu_profile`
    GPUs; a UsageError for a deployment on another GPU model or one that would not start."""
    import os

    from kvplan.checking.check import check
    from kvplan.core.units import format_bytes
    from kvplan.sources.hardware import load_profile

    target = load_profile(gpu_profile, profiles_dir=profiles_dir)
    once: dict[str, str] = {}  # a plan given twice (however spelled) is on the GPU once
    for plan in plans:
        once.setdefault(os.path.realpath(plan), plan)
    report = check(list(once.values()), offline=offline, profiles_dir=profiles_dir)
    total, lines = 0, []
    for result in report.results:
        dep, rec = result.deployment, result.recommendation
        if rec.gpu_profile != target.id:
            raise UsageError(
                f"{dep.at()}: {dep.name} runs on {rec.gpu_profile}, not {target.id}: co-located deployments share "
                "one GPU model",
                hint="plan on the GPU profile the other deployments run on",
                field="gpu_profile",
            )
        if rec.startup_error:
            raise UsageError(
                f"{dep.at()}: {dep.name} would not start on its own: {rec.startup_error}",
                hint=f"kvplan check {dep.source} says how to fix it first",
            )
        held = rec.gpu_footprint_bytes or 0
        total += held
        lines.append(
            f"{dep.name} ({rec.engine}, {rec.model}) holds {format_bytes(held)} per GPU: {rec.gpu_footprint_source}"
        )
    if not lines:
        raise UsageError("the plan given to --share-gpu-with has no deployments", hint="name a plan with deployments")
    return SharedGpu(total, tuple(lines))
