"""A speculative-decoding setup (`--speculative-config`) as the planned engine runs it, shared by `estimate` and
`recommend`: the draft model it names read when kvplan can, the engine's rules (its ServingModel.speculative)
asked, and the setup as a `--json` document spells it.

Pure arithmetic and config reading; never imports torch.
"""

from __future__ import annotations

from typing import Any

from kvplan.core.units import DTYPE_BYTES
from kvplan.engines.base import Speculative
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import ServingModel, SpeculativeInputs
from kvplan.errors import READ_ERRORS, KvplanError
from kvplan.planning.resolved import ResolvedModel, resolve


def speculative_inputs(
    setup: Speculative, resolved: ResolvedModel, model_dtype: str, *, offline: bool | None = None
) -> SpeculativeInputs:
    """What the engines' speculative rules read: the setup, the target, and the draft model it names read when kvplan
    can (a catalog name, a path or a Hub id; unreadable: `draft_error` says why, and the rules say the drafter is not
    counted)."""
    draft: dict[str, Any] = {}
    if setup.model is not None:
        try:
            d = resolve(setup.model, offline=offline)
            weights, source = d.weights(model_dtype)
            draft = dict(draft_config=d.config, draft_shape=d.shape, draft_weights=weights)
            draft["draft_weights_source"] = f"{d.name} ({source or 'not counted'})"
        except KvplanError as exc:
            draft = dict(draft_error=str(exc))

    def stored_bytes(
        copies: list[tuple[int, str]],
        extra: list[tuple[str, tuple[int, ...], str]],
        role: str | None = None,
        parts: tuple[str, ...] | None = None,
    ) -> int | None:
        """Copies of decoder layers (index, the module prefix they are stored under; an index past the model's
        layers is a checkpoint MTP layer, kvplan.weights.tensors.mtp_tensors) and extra tensors, priced as the
        checkpoint's quantization_config stores tensors of those names (kvplan.weights.stored); with `role`, only
        the tensors of that role; with `parts`, only those whose names hold one of them."""
        from kvplan.weights.stored import tensors_bytes
        from kvplan.weights.tensors import Tensor, mtp_tensors, weight_tensors

        try:
            tensors = resolved.memo("weight_tensors", lambda: weight_tensors(resolved.config))
            tensors = tensors + resolved.memo("mtp_tensors", lambda: mtp_tensors(resolved.config))
            renamed = []
            for index, prefix in copies:
                marker = f".layers.{index}."
                layer = [t for t in tensors if marker in t.name]
                if not layer:
                    return None
                renamed += [t._replace(name=prefix + "." + t.name.split(marker, 1)[1]) for t in layer]
            renamed += [Tensor(name, shape, kind) for name, shape, kind in extra]
            if role is not None:
                renamed = [t for t in renamed if t.role == role]
            if parts is not None:
                renamed = [t for t in renamed if any(p in t.name for p in parts)]
            return tensors_bytes(resolved.config, renamed, int(DTYPE_BYTES[model_dtype]))
        except READ_ERRORS:
            return None

    def expert_bytes(copies: list[tuple[int, str]]) -> int | None:
        return stored_bytes(copies, [], "expert")

    def named_bytes(
        copies: list[tuple[int, str]], extra: list[tuple[str, tuple[int, ...], str]], parts: tuple[str, ...]
    ) -> int | None:
        return stored_bytes(copies, extra, None, parts)

    return SpeculativeInputs(
        setup, resolved.config, resolved.shape, model_dtype, stored_bytes, expert_bytes, named_bytes, **draft
    )


def engine_speculative(entry: EngineEntry, inputs: SpeculativeInputs) -> Speculative:
    """The setup as engine `entry` runs it: its serving model's rules (ServingModel.speculative); an engine without a
    serving model answers with its entry's rules (EngineEntry.speculative: transformers' assisted generation), or keeps
    the setup as given and says the drafter is left out."""
    if isinstance(entry.serving, ServingModel):
        return entry.serving.speculative(inputs)
    if entry.speculative is not None:
        spec: Speculative = entry.speculative(inputs)
        return spec
    return Speculative(
        inputs.setup.method,
        inputs.setup.num_speculative_tokens,
        inputs.setup.model,
        inputs.setup.draft_tp,
        notes=(
            f"speculative decoding is not modelled for {entry.display}: the drafter's KV cache and weights are left "
            "out",
        ),
    )


def speculative_summary(spec: Speculative | None) -> dict[str, Any] | None:
    """The speculative setup of a plan as its JSON says it: method, tokens, draft model, the drafter's KV layers and
    weights (whole drafter; null: not counted)."""
    if spec is None:
        return None
    return {
        "method": spec.method,
        "num_speculative_tokens": spec.num_speculative_tokens,
        "model": spec.model,
        "draft_kv_layers": len(spec.draft_caches),
        "draft_weights_bytes": spec.draft_weights,
    }
