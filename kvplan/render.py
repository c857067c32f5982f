"""The only place that prints: Rich tables for people, JSON documents for programs.

stdout carries the data (a table, or exactly one JSON document with `--json`); notes, warnings and errors
go to stderr. Depends on result dataclasses only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from kvplan.estimate import Estimate
from kvplan.units import format_bytes, format_tokens

KIND_LABELS = {
    "full_attention": "full attention",
    "sliding_window": "sliding window",
    "chunked_local": "chunked local",
    "mla_latent": "MLA latent",
    "recurrent_state": "recurrent state",
    "no_cache": "no cache",
    "naive_mha": "naive MHA",
}


def stdout() -> Console:
    return Console(soft_wrap=False)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def notes(lines: tuple[str, ...] | list[str]) -> None:
    err = stderr()
    for line in lines:
        err.print(f"[yellow]note:[/] {line}")


def _fmt_per_token(value: float) -> str:
    return f"{value:,.0f} B" if float(value).is_integer() else f"{value:,.1f} B"


def estimate_table(est: Estimate) -> None:
    """The per-kind table and totals of one estimate."""
    out = stdout()
    title = (f"{est.model} · {est.engine} · {est.kv_dtype} KV · batch {est.batch} × {format_tokens(est.seq_len)} tokens"
             + (f" · TP {est.tp}" if est.tp > 1 else "") + (f" · PP {est.pp}" if est.pp > 1 else "")
             + (f" · block {est.block_size}" if est.block_size else ""))
    table = Table(title=title, title_justify="left")
    table.add_column("layer kind")
    table.add_column("layers", justify="right")
    table.add_column("tokens kept / seq", justify="right")
    table.add_column("bytes / token", justify="right")
    table.add_column(f"bytes @ {format_tokens(est.seq_len)} × {est.batch}", justify="right")
    for k in est.layers:
        tokens = "constant" if k.tokens_per_sequence is None and k.kind == "recurrent_state" else (
            "-" if k.tokens_per_sequence is None else f"{k.tokens_per_sequence:,}")
        table.add_row(KIND_LABELS.get(k.kind, k.kind), str(k.count), tokens, _fmt_per_token(k.bytes_per_token),
                      format_bytes(k.bytes))
    out.print(table)
    out.print(f"KV cache: [bold]{format_bytes(est.bytes_per_sequence)}[/] per sequence, "
              f"[bold]{format_bytes(est.kv_cache_bytes)}[/] for the batch"
              + (f", [bold]{format_bytes(est.kv_cache_bytes_per_gpu)}[/] on the fullest of {est.tp * est.pp} GPUs"
                 if est.tp * est.pp > 1 else ""))
    out.print(f"Marginal cost: {_fmt_per_token(est.bytes_per_token)} per token per sequence"
              + (f" ({_fmt_per_token(est.bytes_per_token_per_gpu)} on the fullest GPU)" if est.tp * est.pp > 1 else ""))
    if est.weights_bytes is not None:
        out.print(f"Weights: {format_bytes(est.weights_bytes)} ({est.weights_source})")
    else:
        out.print("Weights: unknown (no safetensors metadata, and no exact parameter count for this architecture)")
    out.print(f"Naive formula 2×layers×seq×hidden×batch×bytes: {format_bytes(est.naive_bytes)} "
              f"= [bold]{est.naive_ratio:.2f}×[/] this estimate")
    notes(est.notes)


def sweep_table(ests: list[Estimate]) -> None:
    """Memory against length: a table with a bar per row."""
    out = stdout()
    first = ests[0]
    peak = max(e.kv_cache_bytes for e in ests) or 1
    table = Table(title=f"{first.model} · {first.engine} · {first.kv_dtype} KV · batch {first.batch}"
                  + (f" · TP {first.tp} · PP {first.pp}" if first.tp * first.pp > 1 else ""), title_justify="left")
    for name, justify in (("seq len", "right"), ("KV / sequence", "right"), ("KV / batch", "right"),
                          ("KV / GPU", "right"), ("bytes / token", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    for e in ests:
        bar = "█" * max(1, round(30 * e.kv_cache_bytes / peak)) if e.kv_cache_bytes else ""
        table.add_row(format_tokens(e.seq_len), format_bytes(e.bytes_per_sequence), format_bytes(e.kv_cache_bytes),
                      format_bytes(e.kv_cache_bytes_per_gpu), _fmt_per_token(e.bytes_per_token), f"[cyan]{bar}[/]")
    out.print(table)
    notes(tuple(dict.fromkeys(n for e in ests for n in e.notes)))


def profiles_table(profiles: list) -> None:
    table = Table(title=f"{len(profiles)} hardware profiles", title_justify="left")
    for name, justify in (("id", "left"), ("name", "left"), ("memory", "right"), ("bandwidth", "right"),
                          ("bf16 TFLOP/s", "right"), ("KV dtypes", "left")):
        table.add_column(name, justify=justify)
    for p in profiles:
        bw = f"{p.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s" if p.memory_bandwidth_bytes_per_s else "-"
        bf16 = (p.dense_tflops or {}).get("bf16")
        table.add_row(p.id, p.name, f"{p.memory_gib:.2f} GiB", bw, "-" if bf16 is None else f"{bf16:g}",
                      ", ".join(p.kv_cache_dtypes or ()))
    stdout().print(table)


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
    if p.aliases:
        out.print("aliases: " + "; ".join(p.aliases))
    for key, text in (p.sources or {}).items():
        out.print(f"[dim]source of {key}: {text}[/]")


def recommendation_table(rec) -> None:
    """A `kvplan recommend` result: the per-GPU budget, what it holds, and the serve command."""
    out = stdout()
    title = (f"{rec.model} on {rec.gpus} x {rec.gpu_profile} · {rec.engine} · TP {rec.tp} PP {rec.pp} · "
             f"KV {rec.kv_dtype}")
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
        rows.append(("with fp8 KV", f"{f8['kv_cache_tokens']:,} tokens, {f8['max_concurrency']:g}x, "
                                    f"fits: {'yes' if f8['fits'] else 'no'}"))
    for label, value in rows:
        table.add_row(label, value)
    out.print(table)
    out.print(rec.flags.get(rec.engine, rec.flags["vllm"]), highlight=False, markup=False, soft_wrap=True)
    notes(rec.notes)
