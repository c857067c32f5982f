"""The only place that prints: Rich tables for people, JSON documents for programs.

stdout carries the data (a table, or exactly one JSON document with `--json`); notes, warnings and errors
go to stderr. Depends on result dataclasses only. Rich is imported by the functions that draw with it, so a
`--json` answer (the stdlib's json) without notes never imports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

from kvplan.core.units import format_bytes, format_tokens
from kvplan.engines.registry import DEFAULT_ENGINE, flag_key

if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod

    from kvplan.planning.estimate import Estimate

KIND_LABELS = {
    "full_attention": "full attention",
    "sliding_window": "sliding window",
    "chunked_local": "chunked local",
    "mla_latent": "MLA latent",
    "recurrent_state": "recurrent state",
    "no_cache": "no cache",
    "index_keys": "indexer keys",
    "naive_mha": "naive MHA",
    "shared_kv_sliding": "sliding K=V",
    "compressed_sparse": "CSA compressed",
    "heavily_compressed": "HCA compressed",
    "compressed_kv": "CSA/HCA + index",  # vLLM's DeepSeek-V4 groups (kvplan.engines.vllm.V4_LABELS)
    "compressor_state": "compressor ring",
}


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def whole_column(table: Any, name: str, values: list[str], **kwargs: Any) -> None:
    """A column of ids or names a user copies: never wrapped or cut with "…" (as wide as its longest line; the
    other columns wrap first, and `print_whole` widens the table when even that cannot fit)."""
    width = max(len(line) for text in [name, *values] for line in text.splitlines())
    table.add_column(name, no_wrap=True, min_width=width, overflow="fold", **kwargs)


def wrap_column(table: Any, name: str, values: list[str], **kwargs: Any) -> None:
    """A column that wraps at spaces, kept as wide as its longest word (up to 20 characters: a longer one folds)."""
    words = [len(w) for text in [name, *values] for w in text.split()]
    table.add_column(name, min_width=min(20, max(words or [1])), overflow="fold", **kwargs)


def minimum_width(table: Any) -> int:
    """The narrowest a table of `whole_column`s and `wrap_column`s prints at: their minimum widths, padding and
    borders."""
    padding = table.padding[1] + table.padding[3]
    edges = 0 if table.pad_edge else padding
    return sum(max(c.min_width or 0, 1) + padding for c in table.columns) - edges + table._extra_width


def print_whole(table: Any, out: Console | None = None) -> None:
    """Print a table at the console's width (80 columns in a pipe or a CI log), its other columns wrapped so that
    the `whole_column`s fit; wider when even their minimum widths do not fit: a long line in a log keeps every
    id whole, where Rich would crop the table at the width or cut an id with "…"."""
    out = out or stdout()
    minimum = minimum_width(table)
    if minimum > out.width:
        out.width = minimum
    out.print(table)


def escape(text: str) -> str:
    """Text as Rich markup that prints as written."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_json(data: Any) -> None:
    """Exactly one strict JSON document on stdout (kvplan.jsonout: a figure that is not finite is null, and a
    note on stderr names where)."""
    from kvplan.jsonout import dumps

    text, where = dumps(data)
    sys.stdout.write(text + "\n")
    if where:
        notes([f"{path} is not a finite number; written as null" for path in where])


def notes(lines: tuple[str, ...] | list[str]) -> None:
    if not lines:
        return
    err = stderr()
    for line in lines:
        err.print(f"[yellow]note:[/] {escape(line)}")


def _fmt_per_token(value: float) -> str:
    return f"{value:,.0f} B" if float(value).is_integer() else f"{value:,.1f} B"


CONFIG_SOURCES = {
    "catalog": "kvplan's built-in catalog",
    "file": "a config.json file",
    "folder": "a model folder",
    "hf-cache": "the Hugging Face cache",
    "hub": "the Hugging Face Hub (downloaded now)",
    "gguf": "a GGUF file's header",
}


def config_origin(source: str, revision: str | None) -> str:
    """Where a model's config was read, in words, with its Hub snapshot when known."""
    words = CONFIG_SOURCES.get(source, source)
    return f"{words}, snapshot {revision[:12]}" if revision else words


def estimate_table(est: Estimate) -> None:
    """The per-kind table and totals of one estimate."""
    from rich.table import Table

    out = stdout()
    title = (
        f"{est.model} · {est.engine} · {est.kv_dtype} KV · batch {est.batch} × {format_tokens(est.seq_len)} tokens"
        + (f" · TP {est.tp}" if est.tp > 1 else "")
        + (f" DCP {est.dcp}" if getattr(est, "dcp", 1) > 1 else "")
        + (f" · PP {est.pp}" if est.pp > 1 else "")
        + (f" · block {est.block_size}" if est.block_size else "")
        + (f" · vLLM {est.vllm_version}" if getattr(est, "vllm_version", None) else "")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("layer kind")
    table.add_column("layers", justify="right")
    table.add_column("tokens kept / seq", justify="right")
    table.add_column("bytes / token", justify="right")
    table.add_column(f"bytes @ {format_tokens(est.seq_len)} × {est.batch}", justify="right")
    for k in est.layers:
        tokens = (
            "constant"
            if k.tokens_per_sequence is None and k.kind == "recurrent_state"
            else ("-" if k.tokens_per_sequence is None else f"{k.tokens_per_sequence:,}")
        )
        table.add_row(
            KIND_LABELS.get(k.kind, k.kind),
            str(k.count),
            tokens,
            _fmt_per_token(k.bytes_per_token),
            format_bytes(k.bytes),
        )
    for k in getattr(est, "draft_layers", ()):  # the drafter's KV (--speculative-config), in the totals below
        label = KIND_LABELS.get(k.kind, k.kind) + (" (group padding)" if not k.count else "")
        table.add_row(
            f"draft · {label}",
            str(k.count),
            "-" if k.tokens_per_sequence is None else f"{k.tokens_per_sequence:,}",
            _fmt_per_token(k.bytes_per_token),
            format_bytes(k.bytes),
        )
    out.print(table)
    spec = getattr(est, "speculative", None)
    if spec is not None:
        out.print(
            f"Speculative: {escape(spec['method'])}"
            + (f" {escape(spec['model'])}" if spec["model"] else "")
            + f", {spec['num_speculative_tokens']} token(s); the drafter's KV: "
            + (format_bytes(sum(k.bytes for k in est.draft_layers)) if est.draft_layers else "none counted")
            + " (in the totals)"
        )
    out.print(
        f"KV cache: [bold]{format_bytes(est.bytes_per_sequence)}[/] per sequence, "
        f"[bold]{format_bytes(est.kv_cache_bytes)}[/] for the batch"
        + (
            f", [bold]{format_bytes(est.kv_cache_bytes_per_gpu)}[/] on the fullest of {est.tp * est.pp} GPUs"
            if est.tp * est.pp > 1
            else ""
        )
    )
    out.print(
        f"Marginal cost: {_fmt_per_token(est.bytes_per_token)} per token per sequence"
        + (f" ({_fmt_per_token(est.bytes_per_token_per_gpu)} on the fullest GPU)" if est.tp * est.pp > 1 else "")
    )
    if est.weights_bytes is not None:
        out.print(f"Weights: {format_bytes(est.weights_bytes)} ({est.weights_source})")
    else:
        out.print("Weights: unknown (see the notes)")
    if est.config_source != "dict":
        out.print(f"Config: {escape(config_origin(est.config_source, est.revision))}")
    out.print(
        f"Naive formula 2×layers×seq×hidden×batch×bytes: {format_bytes(est.naive_bytes)} "
        f"= [bold]{est.naive_ratio:.2f}×[/] this estimate"
    )
    notes(est.notes)


def sweep_table(ests: list[Estimate]) -> None:
    """Memory against length: a table with a bar per row."""
    from rich.table import Table

    out = stdout()
    first = ests[0]
    peak = max(e.kv_cache_bytes for e in ests) or 1
    table = Table(
        title=f"{first.model} · {first.engine} · {first.kv_dtype} KV · batch {first.batch}"
        + (f" · TP {first.tp} · PP {first.pp}" if first.tp * first.pp > 1 else "")
        + (f" · vLLM {first.vllm_version}" if getattr(first, "vllm_version", None) else ""),
        title_justify="left",
    )
    for name, justify in (
        ("seq len", "right"),
        ("KV / sequence", "right"),
        ("KV / batch", "right"),
        ("KV / GPU", "right"),
        ("bytes / token", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=cast("JustifyMethod", justify))
    for e in ests:
        bar = "█" * max(1, round(30 * e.kv_cache_bytes / peak)) if e.kv_cache_bytes else ""
        table.add_row(
            format_tokens(e.seq_len),
            format_bytes(e.bytes_per_sequence),
            format_bytes(e.kv_cache_bytes),
            format_bytes(e.kv_cache_bytes_per_gpu),
            _fmt_per_token(e.bytes_per_token),
            f"[cyan]{bar}[/]",
        )
    out.print(table)
    notes(tuple(dict.fromkeys(n for e in ests for n in e.notes)))


def profiles_table(profiles: list) -> None:
    from rich.table import Table

    table = Table(title=f"{len(profiles)} hardware profiles", title_justify="left")
    whole_column(table, "id", [p.id for p in profiles])
    wrap_column(table, "name", [p.name for p in profiles])
    for name in ("memory", "bandwidth"):
        table.add_column(name, justify="right", no_wrap=True, min_width=10 if name == "memory" else 9)
    table.add_column("bf16\nTFLOP/s", justify="right", no_wrap=True)
    wrap_column(table, "KV dtypes", [", ".join(p.kv_cache_dtypes or ()) for p in profiles])
    for p in profiles:
        bw = f"{p.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s" if p.memory_bandwidth_bytes_per_s else "-"
        bf16 = (p.dense_tflops or {}).get("bf16")
        table.add_row(
            p.id,
            p.name,
            f"{p.memory_gib:.2f} GiB",
            bw,
            "-" if bf16 is None else f"{bf16:g}",
            ", ".join(p.kv_cache_dtypes or ()),
        )
    print_whole(table)


def profile_card(p) -> None:
    out = stdout()
    out.print(f"[bold]{p.id}[/] · {p.name} ({p.vendor})")
    out.print(f"memory: {p.memory_bytes:,} bytes ({p.memory_gib:.2f} GiB, as the runtime reports it)")
    if p.memory_bandwidth_bytes_per_s:
        out.print(f"bandwidth: {p.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s")
    if p.dense_tflops:
        out.print("dense TFLOP/s: " + ", ".join(f"{k} {v:g}" for k, v in p.dense_tflops.items() if v is not None))
    if p.kv_cache_dtypes:
        out.print("KV-cache dtypes: " + ", ".join(p.kv_cache_dtypes))
    if p.gpus_per_node is not None:
        domain = f", {p.nvlink_domain_gpus}-GPU NVLink domain" if p.nvlink_domain_gpus is not None else ""
        out.print(f"node: {p.gpus_per_node} GPUs{domain}")
    if p.aliases:
        out.print("aliases: " + "; ".join(p.aliases))
    for key, text in (p.sources or {}).items():
        out.print(f"[dim]source of {key}: {text}[/]")


def _dp(rec) -> str:
    """The " DP n" of a plan with data-parallel ranks ("" otherwise)."""
    layout = getattr(rec, "parallel", None)
    return f" DP {layout['dp']}" if layout and layout["dp"] > 1 else ""


def _parallel_rows(layout: dict | None) -> list[tuple[str, str]]:
    """The layout beyond TP x PP (Recommendation.parallel) as rows: the layout, the experts on one GPU, the KV
    pools (one per DP rank) and their total capacity."""
    if not layout:
        return []
    shape = f"TP {layout['tp']} x PP {layout['pp']} x DP {layout['dp']} = {layout['gpus_used']} GPUs"
    if layout["dcp"] > 1:
        shape += f", DCP {layout['dcp']} in each TP group"
    if layout["nodes"] is not None:
        shape += f" ({layout['nodes']} nodes x {layout['gpus_per_node']})"
    rows = [("layout", shape)]
    if layout["ep_size"] is not None:
        redundant = f" + {layout['redundant_experts']} redundant" if layout["redundant_experts"] else ""
        how = f"EP {layout['ep_size']}" if layout["ep_size"] > 1 else "split by TP x DP"
        rows.append(
            (
                "routed experts per GPU",
                f"{layout['experts_per_gpu']} of {layout['num_experts']}{redundant} ({how}), "
                f"{format_bytes(layout['expert_weights_per_gpu_bytes'])}",
            )
        )
    if layout["weights_per_gpu_bytes"] is not None:
        rows.append(("weights per GPU", format_bytes(layout["weights_per_gpu_bytes"])))
    if layout["kv_pools"] > 1:
        rows.append(
            (
                f"KV pools (one per DP rank) x {layout['kv_pools']}",
                f"{layout['kv_cache_tokens_total']:,} tokens, {layout['max_concurrency_total']:g}x in all",
            )
        )
    return rows


def recommendation_table(rec) -> None:
    """A `kvplan recommend` result: the per-GPU budget, what it holds, and the serve command."""
    from rich.table import Table

    out = stdout()
    title = (
        f"{rec.model} on {rec.gpus} x {rec.gpu_profile} · {rec.engine} · TP {rec.tp} PP {rec.pp}"
        + (f" DP {rec.parallel['dp']}" if getattr(rec, "parallel", None) and rec.parallel["dp"] > 1 else "")
        + f" · KV {rec.kv_dtype}"
        + (f" · vLLM {rec.vllm_version}" if getattr(rec, "vllm_version", None) else "")
    )
    budget = Table(title=title, title_justify="left")
    budget.add_column("per GPU")
    budget.add_column("bytes", justify="right")
    budget.add_column("source", overflow="fold")
    for term in rec.budget:
        budget.add_row(term.name, format_bytes(term.bytes), term.source)
    budget.add_row("[bold]KV cache[/]", f"[bold]{format_bytes(rec.available_kv_memory_bytes)}[/]", "")
    out.print(budget)
    table = Table(show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("KV cache tokens", f"{rec.kv_cache_tokens:,}"),
        ("blocks x block size", f"{rec.num_blocks:,} x {rec.block_size}"),
        ("max_model_len", f"{rec.max_model_len:,}"),
        ("max concurrency at max_model_len", f"{rec.max_concurrency:g}x"),
        ("largest max_model_len for one request", f"{rec.max_model_len_fit:,}"),
        ("fits", "yes" if rec.fits else "[bold red]no[/]"),
        ("max_num_seqs / max_num_batched_tokens", f"{rec.max_num_seqs} / {rec.max_num_batched_tokens}"),
    ]
    if rec.min_tp_to_fit is not None and not rec.fits:
        rows.append(("smallest TP that fits", str(rec.min_tp_to_fit)))
    if rec.fp8_kv:
        f8 = rec.fp8_kv
        rows.append(
            (
                "with fp8 KV",
                f"{f8['kv_cache_tokens']:,} tokens, {f8['max_concurrency']:g}x, fits: {'yes' if f8['fits'] else 'no'}",
            )
        )
    if getattr(rec, "mamba_cache_blocks", None) is not None:
        rows.append(("Mamba cache blocks", f"{rec.mamba_cache_blocks:,}"))
    rows += _parallel_rows(getattr(rec, "parallel", None))
    if getattr(rec, "lora_host_bytes", None) is not None:
        rows.append(("LoRA adapters in host memory", format_bytes(rec.lora_host_bytes)))
    for label, value in rows:
        table.add_row(label, value)
    out.print(table)
    host_table(rec, out)
    error = getattr(rec, "startup_error", None)
    if error:
        who = f"vLLM {rec.vllm_version}" if getattr(rec, "vllm_version", None) else "the engine"
        out.print(f"[bold red]{who} would not start:[/] {escape(error)}", soft_wrap=True)
    bounds = getattr(rec, "throughput_bounds", ())
    if bounds:
        tput = Table(
            title=f"throughput UPPER BOUNDS (roofline, not predictions) at context {bounds[0]['context_tokens']:,}",
            title_justify="left",
        )
        for name in ("batch", "decode tok/s ≤ (memory)", "decode tok/s ≤ (compute)", "decode tok/s ≤"):
            tput.add_column(name, justify="right")
        for row in bounds:
            tput.add_row(
                str(row["batch"]),
                *(
                    "-" if row[k] is None else f"{row[k]:,.0f}"
                    for k in (
                        "memory_bound_tokens_per_s",
                        "compute_bound_tokens_per_s",
                        "decode_tokens_per_s_upper_bound",
                    )
                ),
            )
        out.print(tput)
        if rec.prefill_tokens_per_s_upper_bound:
            out.print(f"prefill tok/s ≤ {rec.prefill_tokens_per_s_upper_bound:,.0f} (compute bound)")
    command = rec.flags.get(flag_key(rec.engine), rec.flags.get(flag_key(DEFAULT_ENGINE), ""))
    out.print(command, highlight=False, markup=False, soft_wrap=True)
    notes(tuple(rec.notes) + tuple(getattr(rec, "throughput_assumptions", ())))


def host_table(rec: Any, out: Any, name: str | None = None, detail: bool = True) -> None:
    """The KV offload tiers of a recommendation (kvplan.engines.offload): tokens each holds, host bytes per node,
    and the host memory they are judged against (`name`: the deployment's, in `check`). Nothing when the plan has
    no tiers."""
    from rich.table import Table

    tiers = getattr(rec, "host_tiers", ())
    if not tiers:
        return
    title = "KV offload tiers (host, per node)" + (f" · {name}" if name else "")
    host = Table(title=escape(title), title_justify="left")
    for name in ("tier", "setting"):
        host.add_column(name, overflow="fold")
    for name in ("tokens", "host bytes"):
        host.add_column(name, justify="right", overflow="fold")
    for tier in tiers:
        per = f"{tier['ranks']} x {format_bytes(tier['bytes_per_rank'])}" if tier["ranks"] > 1 else ""
        size = format_bytes(tier["bytes_per_node"]) + (f" ({per})" if per else "")
        where = " (disk)" if tier["medium"] == "disk" else (" (/dev/shm)" if tier["shm_bytes"] else "")
        tokens = "-" if tier["tokens"] is None else f"{tier['tokens']:,}"
        host.add_row(tier["name"] + where, tier["setting"], tokens, size)
    known = rec.host_memory_bytes is not None
    verdict = {True: "fits", False: "[bold red]does not fit[/]", None: "unchecked"}[rec.host_fits]
    memory = f"{format_bytes(rec.host_memory_bytes)} ({rec.host_memory_source})" if known else "unknown"
    host.add_row("[bold]host RAM[/]", memory, verdict, f"[bold]{format_bytes(rec.host_ram_bytes or 0)}[/]")
    out.print(host)
    if rec.host_detail and detail:
        out.print(f"[bold red]{escape(rec.host_detail)}[/]", soft_wrap=True)


# ------------------------------------------------------------------------------------------ kvplan profile


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}×"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:,.2f}"


class ProgressBar:
    """A Rich progress bar on stderr over the units of a long job; `step(description, total)` per unit.

    Where stderr is not a terminal (a pipe, a CI log) a bar cannot draw: one plain `progress:` line is written
    instead, at the first unit and then at most every `PLAIN_EVERY_S` seconds, so a long run is never silent."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = stderr()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not (enabled and console.is_terminal),
        )
        self._task: Any = None
        self._started = False
        self._plain = enabled and not console.is_terminal
        self._steps = 0
        self._last: float | None = None

    def __enter__(self) -> ProgressBar:
        return self  # the display starts with the first step, so early errors print alone

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self._progress.__exit__(*exc)

    def step(self, description: str, total: int) -> None:
        if self._plain:
            import time

            self._steps += 1
            now = time.monotonic()
            if self._last is None or now - self._last >= self.PLAIN_EVERY_S:
                sys.stderr.write(f"progress: {self._steps}/{total} {description}\n")
                sys.stderr.flush()
                self._last = now
            return
        if not self._started:
            self._progress.__enter__()
            self._started = True
        if self._task is None:
            self._task = self._progress.add_task(description, total=total)
        else:
            self._progress.advance(self._task)
            self._progress.update(self._task, description=description, total=total)


def profile_report(report: Any) -> None:
    """The measured-vs-estimated tables of `kvplan profile` (a kvplan.profiling.profiler.ProfileReport): memory, then speed."""
    from rich.table import Table

    out = stdout()
    env = report.env
    layers = f" · {report.layers_used}/{report.layers_full} layers" if report.layers_used != report.layers_full else ""
    memory = Table(
        title=f"{report.model} · {report.dtype} · {env.get('device')}{layers} · memory",
        title_justify="left",
        caption=f"weights: {report.weights}\nmemory read with "
        f"{env.get('memory_method')}; peak = above what was in use before the model was loaded",
        caption_justify="left",
    )
    speed = Table(title="speed (median of the timed passes)", title_justify="left")
    sharded = any(len(getattr(r, "peak_memory_bytes_per_device", None) or {}) > 1 for r in report.runs)
    for col in ("batch", "seq", "cache", "KV measured", "KV estimate", "ratio", "peak", "weights+KV", "peak/floor") + (
        ("peak per device",) if sharded else ()
    ):
        memory.add_column(col, justify="left" if col in ("cache", "peak per device") else "right")
    bounded = any(getattr(r, "decode_tokens_per_s_upper_bound", None) for r in report.runs)
    for col in (
        "batch",
        "seq",
        "cache",
        "TTFT ms",
        "prefill tok/s",
        "decode tok/s",
        "ITL ms",
        "no-cache tok/s",
        "speed-up",
    ) + (("decode bound", "of bound") if bounded else ()):
        speed.add_column(col, justify="left" if col == "cache" else "right")
    for r in report.runs:
        key = (str(r.batch), format_tokens(r.seq_len), r.cache)
        estimate = "—" if r.kv_cache_bytes_estimated is None else format_bytes(r.kv_cache_bytes_estimated)
        status = f"[red]out of memory ({r.oom_phase})[/]" if r.oom else "[yellow]error (see notes)[/]"
        if r.kv_cache_bytes_measured is None:
            memory.add_row(*key, status, estimate, *["—"] * (5 if sharded else 4))
            speed.add_row(*key, *["—"] * (8 if bounded else 6))
            continue
        if r.oom:  # memory was measured; a timed pass ran out
            speed.add_row(*key, status, *["—"] * (7 if bounded else 5))
        memory.add_row(
            *key,
            format_bytes(r.kv_cache_bytes_measured),
            estimate,
            _ratio(r.kv_cache_ratio),
            format_bytes(r.peak_memory_bytes),
            "—" if r.estimated_floor_bytes is None else format_bytes(r.estimated_floor_bytes),
            _ratio(r.peak_to_floor_ratio),
            *(
                (", ".join(f"{d} {format_bytes(b)}" for d, b in (r.peak_memory_bytes_per_device or {}).items()),)
                if sharded
                else ()
            ),
        )
        if r.oom:
            continue
        speed.add_row(
            *key,
            _ms(r.ttft_s),
            _rate(r.prefill_tokens_per_s),
            _rate(r.decode_tokens_per_s),
            _ms(r.inter_token_latency_s),
            _rate(r.decode_tokens_per_s_no_cache),
            "—" if r.cache_speedup is None else f"{r.cache_speedup:.1f}×",
            *(
                (
                    _rate(r.decode_tokens_per_s_upper_bound),
                    "—"
                    if not (r.decode_tokens_per_s and r.decode_tokens_per_s_upper_bound)
                    else f"{r.decode_tokens_per_s / r.decode_tokens_per_s_upper_bound:.0%}",
                )
                if bounded
                else ()
            ),
        )
    out.print(memory)
    if any(r.ttft_s is not None for r in report.runs):
        out.print(speed)
    if report.searches:
        search = Table(title="largest batch / length that fits", title_justify="left")
        for col in (
            "search",
            "cache",
            "fixed",
            "measured max",
            "kvplan predicts",
            "measured/predicted",
            "weights+KV bound",
            "probes",
        ):
            search.add_column(col)
        for s in report.searches:
            fixed = ", ".join(f"{k} {v}" for k, v in s.fixed.items())
            search.add_row(
                s.kind,
                s.cache,
                fixed,
                _count(s.measured_max),
                _count(s.predicted_max),
                _ratio(s.ratio),
                _count(s.predicted_max_kv_only),
                str(s.probes),
            )
        out.print(search)
        basis: dict[str, list[str]] = {}
        for s in report.searches:
            basis.setdefault(s.predicted_by, []).append(f"{s.kind} / {s.cache}")
        for text, which in basis.items():
            out.print(f"[dim]{', '.join(dict.fromkeys(which))}: {escape(text)}[/]")
        out.print("[dim]weights+KV bound: weights + estimated KV cache only, no activations (an upper bound).[/]")
    if getattr(report, "speculative", None) is not None:
        _assisted_table(report.speculative, out)


def _assisted_table(d: Any, out: Any) -> None:
    """`kvplan profile --speculative-config`: the draft's and the target's caches after one assisted generation."""
    from rich.table import Table

    title = (
        f"assisted generation · draft {d.model} ({d.layers} layers) · {d.num_speculative_tokens} tokens per round · "
        f"batch {d.batch} · prompt {format_tokens(d.seq_len)} + {d.decode_tokens}"
    )
    table = Table(
        title=title, title_justify="left", caption=f"draft weights: {d.weights or '—'}", caption_justify="left"
    )
    for col in ("cache", "tokens held", "KV measured", "KV estimate", "ratio"):
        table.add_column(col, justify="left" if col == "cache" else "right")

    def size(n: Any) -> str:
        return "—" if n is None else format_bytes(n)

    if d.oom or d.draft_kv_bytes_measured is None:
        status = "[red]out of memory[/]" if d.oom else "[yellow]error (see notes)[/]"
        table.add_row("draft", "—", status, size(d.draft_kv_bytes_estimated), "—")
    else:
        peak_ratio = (
            d.draft_kv_bytes_peak_measured / d.draft_kv_bytes_estimated_at_sequence
            if d.draft_kv_bytes_estimated_at_sequence
            else None
        )
        table.add_row(
            "draft",
            f"{d.draft_tokens_held:,}",
            size(d.draft_kv_bytes_measured),
            size(d.draft_kv_bytes_estimated),
            _ratio(d.draft_kv_ratio),
        )
        table.add_row(
            f"draft, largest after its {d.draft_forwards} forwards",
            f"≤ {d.sequence_tokens:,} (final)",
            size(d.draft_kv_bytes_peak_measured),
            size(d.draft_kv_bytes_estimated_at_sequence),
            _ratio(peak_ratio),
        )
        table.add_row(
            "target",
            f"{d.target_tokens_held:,}",
            size(d.target_kv_bytes_measured),
            size(d.target_kv_bytes_estimated),
            _ratio(d.target_kv_ratio),
        )
    table.add_row("draft weights", "", size(d.weights_bytes_measured), size(d.weights_bytes_estimated), "")
    out.print(table)


# ------------------------------------------------------------------------------------------- kvplan check


def check_messages(report: Any) -> None:
    """Config lint and notes of a `kvplan check` report, on stderr (lint as errors under --strict)."""
    err = stderr()
    label = "[bold red]lint error:[/]" if report.strict else "[yellow]warning:[/]"
    for r in report.results:
        name = escape(r.deployment.name)
        for w in r.lint:
            err.print(f"{label} {name}: {escape(w.message)} [dim]({w.code})[/]")
        for line in r.notes:
            err.print(f"[yellow]note:[/] {name}: {escape(line)}")


def check_table(report: Any) -> None:
    """A `kvplan check` report (kvplan.checking.check.CheckReport): one row per deployment, then why each failure fails
    and what would fix it."""
    from rich.table import Table

    out = stdout()
    results = report.results
    title = f"kvplan check · {len(results)} deployment{'s' if len(results) != 1 else ''}"
    if report.min_headroom:
        title += f" · min headroom {report.min_headroom:.1%}"
    # the strings a reader copies each kept whole on its own line: the deployment's name over its model id, the
    # GPU profile id over the engine; where that does not fit the width, the GPU and engine go under the model
    rows = []
    for r in results:
        dep, rec = r.deployment, r.recommendation
        headroom = "-" if r.headroom_bytes is None else format_bytes(r.headroom_bytes)
        if r.headroom_fraction is not None and r.headroom_fraction >= -1:
            headroom += f"\n({r.headroom_fraction:.1%})"
        engine = f"{dep.engine} TP {rec.tp}" + (f" PP {rec.pp}" if rec.pp > 1 else "") + _dp(rec)
        rows.append(
            (
                (dep.name, rec.model),
                f"{rec.gpus} × {rec.gpu_profile}\n{engine}\nKV {rec.kv_dtype}",
                f"{format_tokens(rec.max_model_len)} × {r.required_concurrency}",
                f"{format_bytes(rec.available_kv_memory_bytes)}\n{headroom}",
                "pass" if r.ok else f"FAIL {r.binding_constraint}",
            )
        )
    for merged in (False, True):
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=not merged)
        first = [f"{name}\n{model}" + (f"\n{gpus}" if merged else "") for (name, model), gpus, *_ in rows]
        whole_column(table, "deployment\nmodel" + ("\nGPUs · engine" if merged else ""), first)
        if not merged:
            whole_column(table, "GPUs\nengine", [row[1] for row in rows])
        whole_column(table, "len ×\nrequests", [row[2] for row in rows], justify="right")  # required, not the cap
        whole_column(table, "KV available\nheadroom", [row[3] for row in rows], justify="right")
        wrap_column(table, "result", [row[4] for row in rows])
        if minimum_width(table) <= out.width:
            break
    for r, ((name, model), gpus, length, memory, _) in zip(results, rows, strict=True):
        result = "[green]pass[/]" if r.ok else f"[bold red]FAIL[/] {r.binding_constraint}"
        cells = [f"{escape(name)}\n[dim]{escape(model)}[/]" + (f"\n{escape(gpus)}" if merged else "")]
        cells += [] if merged else [escape(gpus)]
        table.add_row(*cells, length, memory, result)
    print_whole(table, out)
    for r in results:  # the KV offload tiers of each deployment that has them, against the host's memory
        host_table(r.recommendation, out, r.deployment.name, detail=False)
    for r in results:
        if r.ok:
            continue
        out.print(
            f"[bold red]✗[/] [bold]{escape(r.deployment.name)}[/] ({escape(r.deployment.at())}): "
            f"{r.binding_constraint}: {escape(r.binding_detail or '')}",
            highlight=False,
        )
        for fix in r.fixes:
            out.print(f"    fix: {escape(fix.text)}", highlight=False)
        if not r.fixes and r.binding_constraint == "host_memory":
            out.print("    no single change found (more host RAM, or smaller offload tiers)", highlight=False)
        elif not r.fixes and r.binding_constraint != "lint":
            out.print("    no single change found (a larger GPU, more GPUs or a smaller model)", highlight=False)
    passed = sum(r.ok for r in results)
    out.print(f"{passed} of {len(results)} deployment{'s' if len(results) != 1 else ''} pass", highlight=False)
    check_messages(report)


def _md(text: Any) -> str:
    """A Markdown table cell: pipes escaped, lines joined."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def check_markdown(report: Any) -> str:
    """A `kvplan check` report as GitHub-flavoured Markdown, for `$GITHUB_STEP_SUMMARY` (`check --summary-md`):
    a heading with the verdict, one table row per deployment, then each failure with its fixes."""
    results = report.results
    passed = sum(r.ok for r in results)
    plural = "s" if len(results) != 1 else ""
    mark = "✅" if passed == len(results) else "❌"
    lines = [f"### {mark} kvplan check: {passed} of {len(results)} deployment{plural} pass", ""]
    if report.min_headroom:
        lines += [f"Minimum headroom: {report.min_headroom:.1%}", ""]
    lines += [
        "| deployment | model | GPUs | engine | max_model_len × requests | KV available | headroom | result |",
        "|---|---|---|---|--:|--:|--:|---|",
    ]
    for r in results:
        dep, rec = r.deployment, r.recommendation
        headroom = "-" if r.headroom_bytes is None else format_bytes(r.headroom_bytes)
        if r.headroom_fraction is not None and r.headroom_fraction >= -1:
            headroom += f" ({r.headroom_fraction:.1%})"
        engine = (
            f"{dep.engine} TP {rec.tp}" + (f" PP {rec.pp}" if rec.pp > 1 else "") + _dp(rec) + f", KV {rec.kv_dtype}"
        )
        cells = [
            dep.name,
            f"`{rec.model}`",
            f"{rec.gpus} × `{rec.gpu_profile}`",
            engine,
            f"{format_tokens(rec.max_model_len)} × {r.required_concurrency}",
            format_bytes(rec.available_kv_memory_bytes),
            headroom,
            "pass" if r.ok else f"**FAIL** {r.binding_constraint}",
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    failures = [r for r in results if not r.ok]
    if failures:
        lines += ["", "#### Failures", ""]
        for r in failures:
            lines.append(f"- **{_md(r.deployment.name)}** ({_md(r.deployment.at())}): {r.binding_constraint}: ")
            lines[-1] += _md(r.binding_detail or "")
            lines += [f"  - fix: {_md(fix.text)}" for fix in r.fixes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ kvplan explain

_EXPLAIN_UNITS = {"GiB": " GiB", "MiB": " MiB", "x": "x", "%": "%"}


def _logged(value: int | float | None, decimals: int, unit: str, extra: int = 0) -> str:
    """A figure as the log prints it (`decimals` places, thousands separated), with its unit."""
    if value is None:
        return "—"
    places = decimals + extra if isinstance(value, float) or decimals else 0
    text = f"{value:,.{places}f}" if places else f"{round(value):,}"
    return text + _EXPLAIN_UNITS.get(unit, "")


def _kvplan_cell(n: Any) -> str:
    if n.kvplan is None:
        return "—"
    extra = 2 if n.decimals else 0
    text = _logged(n.kvplan, n.decimals, n.unit, extra)
    if n.kvplan_range is not None and n.kvplan_range[0] != n.kvplan_range[1]:
        low, high = (_logged(v, n.decimals, "", extra) for v in n.kvplan_range)
        text += f" ({low} – {high})"
    return text


def _difference(n: Any) -> str:
    if n.difference is None:
        return "—"
    extra = 2 if n.decimals else 0
    if n.difference == 0:
        return "0"
    sign = "+" if n.difference > 0 else "-"
    return sign + _logged(abs(n.difference), n.decimals, n.unit, extra)


def explain_table(result: Any) -> None:
    """A `kvplan explain` result (kvplan.checking.explain.Explanation): each logged figure against kvplan's,
    then the inputs and where each came from."""
    from rich.table import Table

    from kvplan.engines.registry import lookup

    out = stdout()
    entry = lookup(result.engine)
    version = f" {result.engine_version}" if result.engine_version else ""
    title = f"{entry.display if entry else result.engine}{version} log · {result.model}" + (
        f" · {result.gpu_profile}" if result.gpu_profile else ""
    )
    table = Table(title=escape(title), title_justify="left")
    for name, justify in (
        ("number", "left"),
        ("logged", "right"),
        ("kvplan", "right"),
        ("difference", "right"),
        ("within rounding", "left"),
        ("term", "left"),
    ):
        table.add_column(name, justify=cast("JustifyMethod", justify))
    for n in result.numbers:
        within = "[green]yes[/]" if n.within_rounding else "[bold red]no[/]"
        table.add_row(
            escape(n.name),
            _logged(n.logged, n.decimals, n.unit),
            _kvplan_cell(n),
            _difference(n),
            within,
            escape(n.term),
        )
    out.print(table)
    inputs = Table(title="inputs", title_justify="left")
    for name in ("setting", "value", "from"):
        inputs.add_column(name)
    for s in result.settings:
        inputs.add_row(escape(s.name), "—" if s.value is None else escape(str(s.value)), escape(s.source))
    out.print(inputs)
    good = sum(n.within_rounding for n in result.numbers)
    verdict = "[green]all reproduce[/]" if result.all_within_rounding else "[bold red]not all reproduce[/]"
    out.print(f"{good} of {len(result.numbers)} figures within print rounding: {verdict}", highlight=False)
    if result.not_explained:
        out.print("not recomputed: " + escape(", ".join(result.not_explained)), highlight=False)
    notes(result.notes)


def throughput_table(result: dict[str, Any]) -> None:
    """`kvplan throughput`: the bound and the estimate of one point, then the notes."""
    from rich.table import Table

    console = stdout()
    title = (
        f"{result['model']} on {result['gpus']} x {result['gpu_profile']} (tp {result['tp']}, attention dp "
        f"{result['attention_dp']}), batch {result['batch']}, isl {result['isl']}, osl {result['osl']}"
    )
    table = Table(title=escape(title), show_header=True)
    table.add_column("figure")
    table.add_column("bound", justify="right")
    table.add_column("estimate", justify="right")
    tpot_est, ttft_est = result["tpot_ms_estimate"], result["ttft_ms_estimate"]
    per_s = None if tpot_est is None else round(result["batch"] * result["attention_dp"] * 1000 / tpot_est, 1)
    table.add_row("decode tokens/s", f"<= {result['decode_tokens_per_s_upper_bound']:,.1f}", _rate(per_s))
    table.add_row("TPOT", f">= {result['tpot_ms_lower_bound']:.3f} ms", _milliseconds(tpot_est))
    table.add_row("TTFT", f">= {result['ttft_ms_lower_bound']:.3f} ms", _milliseconds(ttft_est))
    console.print(table)
    for line in result["notes"]:
        console.print(f"note: {escape(line)}", highlight=False)


def _milliseconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.3f} ms"


_LIMITS = {"tpot_slo": "TPOT", "kv_cache": "KV", "max_num_seqs": "seqs", "prefill_rate": "rate"}


def fleet_table(plan: dict[str, Any]) -> None:
    """`kvplan fleet`: one row per pool (workers, GPUs, concurrency, TPOT/TTFT), then thresholds, cost and notes."""
    from rich.table import Table

    console = stdout()
    w = plan["workload"]
    title = (
        f"{plan['model']} on {plan['gpu_profile']} (tp {plan['tp']}), {plan['rate_requests_per_s']:g} req/s of "
        f"{w['name']} ({w['mean_input_tokens']:g} in / {w['mean_output_tokens']:g} out), TTFT <= "
        f"{plan['ttft_slo_ms']:g} ms, TPOT <= {plan['tpot_slo_ms']:g} ms"
    )
    table = Table(title=escape(title), show_header=True)
    for column in ("pool", "workers", "GPUs", "batch", "KV reqs", "TPOT ms", "TTFT ms", "limit"):
        table.add_column(column, justify="left" if column in ("pool", "limit") else "right", no_wrap=True)
    for p in plan["pools"]:
        table.add_row(
            p["role"],
            str(p["workers"]),
            str(p["gpus"]),
            str(p["concurrency_per_worker"]),
            f"{p['kv_capacity_requests']:,.1f}",
            "—" if p["tpot_ms_estimate"] is None else f"{p['tpot_ms_estimate']:,.2f}",
            "—" if p["ttft_ms_estimate"] is None else f"{p['ttft_ms_estimate']:,.1f}",
            _LIMITS.get(p["limited_by"], p["limited_by"]),
        )
    if plan["pools"]:  # a plan refused before any pool was sized has none
        console.print(table)
        kv = ", ".join(f"{p['role']} {p['kv_tokens_per_request']:,}" for p in plan["pools"])
        console.print(
            f"KV tokens per request: {kv} (KV reqs: requests of that length one worker holds)", highlight=False
        )
    else:
        console.print(escape(title), highlight=False)
    if not plan["fits"]:
        console.print(f"does not fit: {escape(plan['reason'] or '')}", highlight=False)
    else:
        line = f"replicas: {plan['replicas']} ({plan['gpus']} GPUs)"
        if plan["prefill_to_decode_ratio"] is not None:
            line += (
                f", prefill : decode = {plan['prefill_to_decode_ratio']:g} (at least "
                f"{plan['prefill_to_decode_ratio_lower_bound']:g}: {plan['prefill_workers_lower_bound']} prefill workers)"
            )
        line += (
            f"; Little's law: {plan['concurrency_needed']:g} requests in flight ({plan['request_latency_s']:g} s each)"
        )
        console.print(line, highlight=False)
        t = plan["autoscaling"]
        m = t["metrics"] or {"running": "running", "kv_cache_usage": "KV-cache usage", "waiting": "waiting"}
        console.print(
            f"autoscaling ({t['role']}, per replica): {m['running']} {t['running_requests_per_replica']}, "
            f"{m['kv_cache_usage']} {t['kv_cache_usage_per_replica']:g}, {m['waiting']} "
            f"{t['waiting_requests_per_replica']}; replicas {t['min_replicas']}..{t['max_replicas']}",
            highlight=False,
        )
        cost, price = plan["cost"], plan["price"]
        if cost is not None and price is not None:
            console.print(
                f"cost: ${cost['usd_per_hour']:,.2f}/h, ${cost['usd_per_million_tokens']:,.4f} per 1M tokens, "
                f"${cost['usd_per_million_output_tokens']:,.4f} per 1M output tokens (${price['usd_per_gpu_hour']:g}/GPU-h, "
                f"{escape(price['provider'] or price['gpu_profile'])}, {price['date']})",
                highlight=False,
            )
    for line in plan["notes"]:
        console.print(f"note: {escape(line)}", highlight=False)
