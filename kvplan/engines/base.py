"""What every engine model shares: the request being sized, the per-kind cost it returns, TP/PP arithmetic.

Pure Python. An engine model turns the caches of one pipeline stage into per-GPU byte counts; everything
about a layer's shape comes from kvplan.core.specs, everything about storage policy stays in the engine module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from kvplan.core import specs as L
from kvplan.core.shapes import M3_SPARSE_FROM_LAYER_TYPES, M3_TEXT_DROPS_SPARSE_CONFIG
from kvplan.core.units import cdiv
from kvplan.core.units import split_exact as split_exact  # re-exported: engines import it from here
from kvplan.errors import Text, UsageError


@dataclass(frozen=True)
class Speculative:
    """A speculative-decoding setup, in vLLM's vocabulary (`--speculative-config`): `method` (mtp, eagle, eagle3,
    draft_model, dflash, ngram, ...), `num_speculative_tokens` and the draft model named (`model`: a catalog name,
    path or Hub id; None for MTP, which drafts with the target's own layers, and for ngram).

    Filled in by the planned engine's rules (ServingModel.speculative): `draft_caches`, the drafter's attention
    layers whose KV shares the target's pool (on the stage sized); `draft_weights`, the bytes the drafter loads
    beside the target (whole drafter; None: not counted) with `weights_source`; `notes`, what is and is not
    modelled."""

    method: str
    num_speculative_tokens: int
    model: str | None = None
    draft_tp: int | None = None  # vLLM's draft_tensor_parallel_size (None: the target's TP)
    draft_caches: tuple[L.Layer, ...] = ()
    draft_weights: int | None = None
    weights_source: str = ""
    draft_expert_weights: int = 0  # the routed experts' bytes within draft_weights (placed as the target's are)
    draft_replicated_weights: int = 0  # the bytes within draft_weights the engine keeps whole on every TP rank
    notes: tuple[str, ...] = ()
    # the other keys given (prompt_lookup_max, ...) as a JSON object: kept for the serve command, not planned
    extra_json: str = field(default="", compare=False)

    def config_json(self) -> str:
        """The setup as vLLM's --speculative-config JSON (method, model, num_speculative_tokens, then the other
        keys given)."""
        import json

        data: dict[str, object] = {"method": self.method}
        if self.model:
            data["model"] = self.model
        data["num_speculative_tokens"] = self.num_speculative_tokens
        if self.draft_tp is not None:
            data["draft_tensor_parallel_size"] = self.draft_tp
        if self.extra_json:
            data.update({k: v for k, v in json.loads(self.extra_json).items() if k not in data})
        return json.dumps(data, separators=(", ", ": "))


@dataclass(frozen=True)
class Request:
    """One sizing question: `batch` sequences of `seq_len` tokens, split over `tp` x `pp` GPUs.

    `kv_dtype` and `model_dtype` are canonical dtype names (kvplan.core.units); `kv_dtype` is already resolved
    from "auto". `block_size` is None for the engine's default; `max_num_batched_tokens` is the prefill
    token budget vLLM adds to sliding-window reservations; `n_ubatch` is llama.cpp's micro-batch (`-ub`),
    which its sliding-window cache adds to the window.

    Settings of the engine release being modelled (read by the engines whose rules change with them, vLLM
    today): `engine_version` (None: the newest release the engine models), `prefix_caching` and
    `async_scheduling` (None: the release's default) and `compute_capability`, the GPU's CUDA compute
    capability ("9.0", from its hardware profile; None: no GPU given, GPU-specific kernel choices are left
    out); `speculative`, the speculative-decoding setup (None: none), whose draft layers and speculative state
    slots the engines that model it add.

    `dcp` is the decode-context-parallel size: the ranks of one TP group that split the token positions of the
    caches the engine shards that way (vLLM's `--decode-context-parallel-size`; 1: none).

    `mamba_full_memory_ratio` and `max_mamba_cache_size` are SGLang's split of a hybrid's KV budget between its
    Mamba / linear-attention state pool and its full-attention pool (None: SGLang's own; read by
    kvplan.engines.sglang only).
    """

    seq_len: int
    batch: int
    kv_dtype: str
    model_dtype: str
    tp: int = 1
    pp: int = 1
    block_size: int | None = None
    max_num_batched_tokens: int = 8192
    n_ubatch: int = 512
    engine_version: str | None = None
    prefix_caching: bool | None = None
    async_scheduling: bool | None = None
    compute_capability: str | None = None
    speculative: Speculative | None = None

    @property
    def num_speculative_tokens(self) -> int:
        return self.speculative.num_speculative_tokens if self.speculative is not None else 0

    dcp: int = 1
    # the GPU's vendor from its hardware profile ("nvidia", "amd", "generic"; None: no GPU given): what an engine
    # that runs a cache on CUDA only refuses elsewhere (SGLang's nvfp4)
    vendor: str | None = None
    mamba_full_memory_ratio: float | None = None
    max_mamba_cache_size: int | None = None
    mamba_ssm_dtype: str | None = None  # SGLang's --mamba-ssm-dtype (None: the config's, else float32)


@dataclass(frozen=True)
class KindCost:
    """One layer kind on one GPU of one pipeline stage.

    `bytes` holds the whole batch; `bytes_per_token` is the marginal cost of one more token of one
    sequence at this length (0 once a window is full); `tokens` is how many tokens one sequence keeps.
    """

    kind: str
    layers: int
    bytes: int
    bytes_per_token: Fraction
    tokens: int | None


class Engine(Protocol):
    name: str
    follows: str

    def check(self, caches: list[L.Layer], req: Request) -> None: ...

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]: ...

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None: ...


def kv_heads_per_rank(num_kv_heads: int, tp: int) -> int:
    """KV heads one TP rank holds: split when TP divides them, one replicated head each when TP exceeds them
    (vLLM's and SGLang's `max(1, heads // tp)`)."""
    if num_kv_heads >= tp:
        if num_kv_heads % tp:
            raise UsageError(
                Text("{tp} {t} does not divide the model's {n} KV heads", t=tp, n=num_kv_heads),
                hint="engines need TP to divide the KV heads (or be a multiple of them)",
                field="tp",
            )
        return num_kv_heads // tp
    if tp % num_kv_heads:
        raise UsageError(
            Text("{tp} {t} is not a multiple of the model's {n} KV heads", t=tp, n=num_kv_heads),
            hint="choose a TP size that divides, or is a multiple of, the KV heads",
            field="tp",
        )
    return 1


def pipeline_stages(num_layers: int, pp: int, *, remainder_last: bool = False) -> list[range]:
    """Layer ranges per pipeline stage, as vLLM's `get_pp_indices` splits them: equal shares, the remainder
    going one each to the stages before the last (the last also holds the LM head); `remainder_last`: to the last
    stages instead (SGLang's split, kvplan.engines.sglang.sglang_pp_stages)."""
    if pp > num_layers:
        raise UsageError(
            Text("{pp} {p} is larger than the model's {n} layers", p=pp, n=num_layers),
            hint="use at most one stage per layer",
            field="pp",
        )
    sizes = [num_layers // pp] * pp
    for i in range(1, num_layers % pp + 1) if remainder_last else range(2, num_layers % pp + 2):
        sizes[-i] += 1
    stages, start = [], 0
    for size in sizes:
        stages.append(range(start, start + size))
        start += size
    return stages


def merge_kinds(costs: list[KindCost]) -> list[KindCost]:
    """Merge costs of the same kind (summing layers, bytes and per-token bytes), in first-seen order."""
    return _merged([(c.kind, c.layers, c.bytes, c.bytes_per_token, c.tokens) for c in costs], costs)


def group_costs(items: list[tuple[str, int, Fraction, int | None]]) -> list[KindCost]:
    """One KindCost per kind from per-layer (kind, bytes, bytes_per_token, tokens) tuples."""
    return _merged([(kind, 1, nbytes, per_token, tokens) for kind, nbytes, per_token, tokens in items])


def _merged(rows: list[tuple], costs: list[KindCost] | None = None) -> list[KindCost]:
    """(kind, layers, bytes, per-token bytes, tokens) rows summed per kind, in first-seen order. Per-token bytes
    are summed exactly, numerators per denominator (most layers of a model share one), not one Fraction
    addition per layer; a kind's tokens are the most any of its layers keeps (None when none keeps any)."""
    acc: dict[str, list] = {}
    for index, (kind, layers, nbytes, per_token, tokens) in enumerate(rows):
        entry = acc.get(kind)
        if entry is None:
            acc[kind] = [index, layers, nbytes, {per_token.denominator: per_token.numerator}, tokens, 1]
            continue
        entry[1] += layers
        entry[2] += nbytes
        fractions = entry[3]
        fractions[per_token.denominator] = fractions.get(per_token.denominator, 0) + per_token.numerator
        if tokens is not None or entry[4] is not None:
            entry[4] = max(entry[4] or 0, tokens or 0)
        entry[5] += 1
    out = []
    for kind, (index, layers, nbytes, fractions, tokens, count) in acc.items():
        if count == 1:  # a kind seen once is that cost itself
            out.append(costs[index] if costs is not None else KindCost(kind, layers, nbytes, rows[index][3], tokens))
            continue
        per_token = sum((Fraction(n, d) for d, n in fractions.items()), Fraction(0))
        out.append(KindCost(kind, layers, nbytes, per_token, tokens))
    return out


def window_tokens(cache: L.KVAttention, seq_len: int, keep: int) -> int:
    """Tokens a windowed layer keeps for one sequence, given how many the engine keeps at most."""
    return min(seq_len, keep) if cache.kind in (L.SLIDING, L.CHUNKED) else seq_len


def pages(tokens: int, block_size: int) -> int:
    return cdiv(tokens, block_size)


def refuse_compressed_attention(engine: str, caches: list[L.Layer], why: str = "") -> None:
    """Engines whose DeepSeek-V4 storage kvplan has not read refuse the model in one line instead of sizing its
    CSA/HCA layers as something else (or as nothing); `why`: what the engine does that kvplan has not modelled."""
    if any(isinstance(c, L.CompressedAttention) for c in caches):
        raise UsageError(
            f"kvplan's {engine} storage model does not size deepseek_v4 (CSA/HCA compressed attention) yet"
            + (f": {why}" if why else ""),
            hint=Text(
                "use {engine} transformers for this model: it sizes deepseek_v4 from transformers' real cache tensors"
            ),
            field="engine",
        )


# vLLM 0.33 and SGLang 0.5.23 register MiniMax-M3 only under these architectures (vllm-0.33.0/vllm/model_executor/
# models/registry.py:169-171 and :523-525; sglang-0.5.23/sglang/srt/models/minimax_m3.py:2274 and
# minimax_m3_vl.py:479 EntryClass), not the MiniMaxM3ForCausalLM of the published config.
MINIMAX_M3_SERVED = ("MiniMaxM3SparseForCausalLM", "MiniMaxM3SparseForConditionalGeneration")

# The config model_types under which either engine's config loader builds a MiniMax-M3 config. vLLM 0.33: its own
# registry has minimax_m3_vl (and minimax_m3_mtp, the drafter's) (vllm/transformers_utils/config.py:155-156), anything
# else goes to transformers' AutoConfig (:445), and vLLM takes transformers >= 5.16.1, < 5.21.0
# (requirements/common.txt:11). SGLang 0.5.23: its own MiniMaxM3VLConfig is minimax_m3_vl (srt/configs/
# minimax_vl.py:61-62, registered with AutoConfig in srt/utils/hf_transformers/common.py:117-187 and :282-284), the
# rest goes to AutoConfig (srt/utils/hf_transformers/config.py:228-233), with transformers==5.19.0 (its METADATA).
# transformers 5.16.1, 5.19.0 and 5.20.2 know minimax_m3_vl and minimax_m3_vl_text and no `minimax_m3`
# (models/auto/auto_mappings.py:393-394, :405-406, :414-415), nor a MiniMaxM3ForCausalLM class, so neither
# engine's Transformers-backend fallback can load that architecture either.
MINIMAX_M3_CONFIG_TYPES = ("minimax_m3_vl", "minimax_m3_vl_text")
# The published config's architecture: no class of that name in transformers 5.16.1, 5.19.0, 5.20.2 or 5.24.0 (its
# text model is MiniMaxM3VLForCausalLM, models/auto/modeling_auto.py:802 / :823 / :841 / :907).
PUBLISHED_M3_ARCHITECTURE = "MiniMaxM3ForCausalLM"


def refuse_m3_layer_types(engine: str, features: frozenset[str], where: str) -> None:
    """MiniMax-M3 configs whose sparse layers `layer_types` names against or without `sparse_attention_freq`
    (`M3_SPARSE_FROM_LAYER_TYPES`: transformers' reading): an engine that picks them from `sparse_attention_config.sparse_attention_freq` alone (`where`: its
    source and what it does without the list) is refused rather than sized on layers it would not build."""
    if M3_SPARSE_FROM_LAYER_TYPES in features:
        raise UsageError(
            f"{engine} picks MiniMax-M3's sparse layers from `sparse_attention_config.sparse_attention_freq` only "
            f"({where}), which this config lacks or contradicts: its `layer_types` names them, as transformers "
            "reads them",
            hint=Text(
                "add sparse_attention_config.sparse_attention_freq (1 on each minimax_m3_sparse layer) to the "
                "config, or use {engine} transformers"
            ),
            field="engine",
        )


def refuse_m3_dropped_sparse_config(engine: str, features: frozenset[str], built: bool, where: str) -> None:
    """A MiniMax-M3 text config of model_type minimax_m3_vl_text (`M3_TEXT_DROPS_SPARSE_CONFIG`) that the engine
    builds through transformers' MiniMaxM3VLTextConfig (`built`), which drops `sparse_attention_config`, where the
    engine then reads that key (`where`: its source and what it does without it): refused rather than sized with
    sparse layers the engine would not build."""
    if built and M3_TEXT_DROPS_SPARSE_CONFIG in features:
        raise UsageError(
            f"{engine} would not see this config's `sparse_attention_config`: its text model_type minimax_m3_vl_text "
            "is built by transformers' MiniMaxM3VLTextConfig, whose __post_init__ pops that key "
            f"(configuration_minimax_m3_vl.py:122 in transformers 5.19.0, :121-123 in 5.16.1-5.20.2), and {where}",
            hint=Text(
                "pass the checkpoint's minimax_m3_vl config (the text model in text_config, no text model_type), "
                "or use {engine} transformers"
            ),
            field="engine",
        )


def refuse_index_keys(
    engine: str,
    caches: list[L.Layer],
    architectures: tuple[str, ...] = (),
    served: tuple[str, ...] = (),
    why: str = "",
    model_type: str | None = None,
    loader: str = "",
    registry: str = "",
    sized: bool = False,
) -> None:
    """Engines whose storage of a sparse indexer's own key cache beside GQA K/V (MiniMax-M3, `IndexKeys`) kvplan
    has not read refuse the model in one line instead of sizing the keys as nothing.

    `served`: the architectures the engine registers for such a model; `model_type`: the config's, checked
    against `MINIMAX_M3_CONFIG_TYPES` when given. When the config names no served architecture or a model_type
    the engine's config loader cannot build, the engine does not load it as written, and the message says which
    string fails where (`loader`, `registry`: the engine's source for each). `why`: the engine's own storage
    kvplan has not modelled (said when the engine would load the config). `sized`: the engine's storage model
    sizes the layout of a config it serves (vLLM 0.33), so only an unserved config is refused."""
    if not any(isinstance(c, L.IndexKeys) for c in caches):
        return
    reasons = []
    if model_type is not None and model_type not in MINIMAX_M3_CONFIG_TYPES:
        reasons.append(
            f"its config loader builds MiniMax-M3 only from model_type {' / '.join(MINIMAX_M3_CONFIG_TYPES)}, and "
            f"neither it nor transformers knows the config's {model_type!r}" + (f" ({loader})" if loader else "")
        )
    if served and not any(a in served for a in architectures):
        named = ", ".join(architectures) or "no architecture"
        fallback = (
            ", which transformers does not define, so the Transformers-backend fallback cannot load it either"
            if PUBLISHED_M3_ARCHITECTURE in architectures
            else ""
        )
        reasons.append(
            f"it registers MiniMax-M3's sparse-attention model only as {' / '.join(served)}, and the config names "
            f"{named}{fallback}" + (f" ({registry})" if registry else "")
        )
    if reasons:
        message = f"{engine} does not serve this config as written: " + "; ".join(reasons)
    elif sized:
        return
    else:
        message = f"kvplan's {engine} storage model does not size MiniMax-M3's indexer key cache yet" + (
            f": {why}" if why else ""
        )
    hint = "use {engine} transformers for this model: it sizes minimax_m3 from transformers' real cache tensors"
    if reasons and sized:
        # the engine sizes the layout it serves: say what a config it loads names (vllm-0.33.0 tests/models/
        # registry.py:450-454 and :1165-1169 test MiniMaxAI/MiniMax-M3 under both MiniMaxM3Sparse* architectures)
        hint += (
            f"; or pass a minimax_m3_vl config with the text model in text_config and architectures {served[-1]}, "
            "as vLLM's tests load MiniMaxAI/MiniMax-M3"
        )
    raise UsageError(message, hint=Text(hint), field="engine")
