"""kvplan's command line: a thin Typer layer over the library.

Each command parses its options, calls one library function and hands the result to kvplan.render. The
error boundary (`handle_errors`) turns a KvplanError into one line on stderr and exit code 2 (1 for "does
not fit"); KVPLAN_DEBUG=1 shows the traceback instead. Must not import torch, transformers or the profiler.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated, Any, Callable, Optional

import typer

from kvplan import __version__, render
from kvplan.errors import KvplanError, UsageError
from kvplan.units import KV_DTYPE_CHOICES, MODEL_DTYPE_CHOICES, parse_length, parse_lengths

app = typer.Typer(
    name="kvplan",
    help="KV-cache memory planning and profiling for LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DEBUG_ENV = "KVPLAN_DEBUG"


def fail(message: str, hint: str | None, code: int) -> None:
    """Print one `error:` line (and a `hint:` line) to stderr and exit with `code`."""
    err = render.stderr()
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {hint}", markup=True, highlight=False)
    raise typer.Exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """The error boundary of every command (inside the command, so CliRunner sees it too)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KvplanError as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            fail(exc.message, exc.hint, exc.exit_code)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            fail("interrupted", None, 130)
        except Exception as exc:  # noqa: BLE001 - the boundary: never show a traceback unless asked
            if os.environ.get(DEBUG_ENV):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc}", f"set {DEBUG_ENV}=1 for the traceback and report it", 2)

    return wrapper


def positive(label: str, text: str | None) -> int | None:
    """Parse a positive integer option given as text (so bad values get kvplan's one-line error)."""
    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{label} must be a positive integer, got {text!r}", hint=f"pass e.g. {label} 2") from None
    if value <= 0:
        raise UsageError(f"{label} must be a positive integer, got {text!r}", hint=f"pass e.g. {label} 2")
    return value


def labelled(label: str, parse: Callable[[str], Any], text: str) -> Any:
    """Run a parser, naming the option in its error."""
    try:
        return parse(text)
    except UsageError as exc:
        raise UsageError(f"{label}: {exc.message}", exc.hint) from None


def choice(label: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.lower() not in allowed:
        raise UsageError(f"unknown {label} {value!r}", hint="use one of: " + ", ".join(allowed))
    return value.lower()


# ---------------------------------------------------------------- shared option types

ModelArg = Annotated[str, typer.Argument(
    help="A config.json, a model folder, a built-in catalog name (see `kvplan models`) or a Hugging Face repo id.",
    show_default=False)]
SeqLenOpt = Annotated[str, typer.Option("--seq-len", "-s", help="Tokens per sequence: 32768, 32k, 128K; several "
                                        "(1k,4k,32k) or a doubling range (1k..128k) for a sweep.")]
BatchOpt = Annotated[str, typer.Option("--batch", "-b", help="Sequences held at once.")]
EngineOpt = Annotated[str, typer.Option("--engine", "-e", help="vllm (paged), sglang, transformers, or naive "
                                        "(the textbook formula).")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="Model dtype: auto (from the config), fp32, bf16, fp16.")]
KvDtypeOpt = Annotated[str, typer.Option("--kv-dtype", help="KV-cache dtype: " + ", ".join(KV_DTYPE_CHOICES) +
                                         " (auto = the model dtype).")]
TpOpt = Annotated[str, typer.Option("--tp", help="Tensor-parallel GPUs (KV heads split; replicated when fewer "
                                    "than TP; MLA replicated on every rank).")]
PpOpt = Annotated[str, typer.Option("--pp", help="Pipeline-parallel stages (layers split as vLLM splits them).")]
BlockOpt = Annotated[Optional[str], typer.Option("--block-size", help="vLLM page size in tokens (default 16).",
                                                 show_default=False)]
MnbtOpt = Annotated[str, typer.Option("--max-num-batched-tokens", help="vLLM prefill token budget; its "
                                      "sliding-window reservation includes it.")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub branch, tag or commit.", show_default=False)]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Use only local files and the Hugging Face cache "
                                          "(also HF_HUB_OFFLINE=1).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kvplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """KV-cache memory planning and profiling for LLM serving."""


@app.command()
@handle_errors
def estimate(
    model: ModelArg,
    seq_len: SeqLenOpt = "4096",
    batch: BatchOpt = "1",
    engine: EngineOpt = "vllm",
    dtype: DtypeOpt = "auto",
    kv_dtype: KvDtypeOpt = "auto",
    tp: TpOpt = "1",
    pp: PpOpt = "1",
    block_size: BlockOpt = None,
    max_num_batched_tokens: MnbtOpt = "8192",
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """KV-cache memory per layer kind, per sequence, per batch and per GPU.

    Examples:

      kvplan estimate meta-llama/Llama-3.1-8B --seq-len 128k --batch 4

      kvplan estimate deepseek-ai/DeepSeek-V3 --tp 8 --kv-dtype fp8 --json

      kvplan estimate ./config.json --seq-len 1k..128k --engine transformers
    """
    from kvplan import api

    lengths = labelled("--seq-len", parse_lengths, seq_len)
    options = dict(
        batch=positive("--batch", batch), engine=engine, dtype=choice("--dtype", dtype, MODEL_DTYPE_CHOICES),
        kv_dtype=kv_dtype, tp=positive("--tp", tp), pp=positive("--pp", pp),
        block_size=positive("--block-size", block_size),
        max_num_batched_tokens=positive("--max-num-batched-tokens", max_num_batched_tokens),
        offline=True if offline else None,
    )
    loaded = api.load(model, revision=revision, offline=options["offline"])
    results = [api.estimate_loaded(loaded, seq_len=n, **options) for n in lengths]
    if json_out:
        render.print_json(results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results])
        render.notes(results[0].notes)
    elif len(results) == 1:
        render.estimate_table(results[0])
    else:
        render.sweep_table(results)


@app.command()
@handle_errors
def models(json_out: JsonOpt = False) -> None:
    """List the built-in offline catalog of model configs (usable as MODEL anywhere, no network needed)."""
    from kvplan.architectures import model_shape
    from kvplan.catalog import catalog_entries
    from kvplan.model_config import read_config_file

    rows = []
    for entry in catalog_entries():
        shape = model_shape(read_config_file(entry.path))
        kinds = sorted({c.kind for c in shape.caches()})
        rows.append({"name": entry.name, "model_type": entry.model_type, "layers": shape.num_layers, "kinds": kinds})
    if json_out:
        render.print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} built-in models", title_justify="left")
    for col in ("name", "model_type", "layers", "cache kinds"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["model_type"], str(r["layers"]), ", ".join(render.KIND_LABELS.get(k, k) for k in r["kinds"]))
    render.stdout().print(table)


profiles_app = typer.Typer(help="Hardware profiles (GPU memory, bandwidth, throughput) used for planning.",
                            no_args_is_help=True, rich_markup_mode=None)
app.add_typer(profiles_app, name="profiles")
ProfilesDirOpt = Annotated[Optional[str], typer.Option("--profiles-dir", help="A folder of extra profile YAML files "
                                                       "(also $KVPLAN_PROFILES_DIR).", show_default=False)]


@profiles_app.command("list")
@handle_errors
def profiles_list(profiles_dir: ProfilesDirOpt = None, json_out: JsonOpt = False) -> None:
    """List the known hardware profiles: built-in, user and --profiles-dir ones."""
    from kvplan.hardware import list_profiles

    found = list_profiles(profiles_dir)
    if json_out:
        render.print_json([p.to_dict() for p in found])
        return
    render.profiles_table(found)


@profiles_app.command("show")
@handle_errors
def profiles_show(profile: Annotated[str, typer.Argument(help="A profile id, alias or YAML path.")],
                  profiles_dir: ProfilesDirOpt = None, json_out: JsonOpt = False) -> None:
    """Show one hardware profile with the source of each figure."""
    from kvplan.hardware import load_profile

    found = load_profile(profile, profiles_dir=profiles_dir)
    if json_out:
        render.print_json(found.to_dict())
        return
    render.profile_card(found)


@app.command()
@handle_errors
def recommend(
    model: ModelArg,
    gpu_profile: Annotated[str, typer.Option("--gpu-profile", "-g", help="Hardware profile id, alias or YAML path "
                                             "(see `kvplan profiles list`).", show_default=False)],
    gpus: Annotated[str, typer.Option("--gpus", help="GPUs available (TP defaults to GPUs / PP).")] = "1",
    engine: Annotated[str, typer.Option("--engine", "-e", help="vllm or sglang.")] = "vllm",
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(
        "--gpu-memory-utilization", help="vLLM fraction of total memory (default 0.9); SGLang mem_fraction_static "
        "(default: its heuristic).", show_default=False)] = None,
    max_model_len: Annotated[Optional[str], typer.Option("--max-model-len", help="Tokens per request (default: the "
                                                          "model's limit, capped at 128k).", show_default=False)] = None,
    concurrency: Annotated[Optional[str], typer.Option("--concurrency", help="Requests of max_model_len that must fit "
                                                        "at once.", show_default=False)] = None,
    dtype: DtypeOpt = "auto",
    kv_dtype: KvDtypeOpt = "auto",
    tp: Annotated[Optional[str], typer.Option("--tp", help="Tensor-parallel size (default: GPUs / PP).",
                                              show_default=False)] = None,
    pp: PpOpt = "1",
    block_size: BlockOpt = None,
    kv_memory: Annotated[Optional[str], typer.Option("--kv-memory", help="KV memory per GPU (58.11GiB, 40GB), "
                                                      "replacing the modelled budget.", show_default=False)] = None,
    profiles_dir: ProfilesDirOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Plan serving: the KV budget a GPU leaves, its capacity, whether the model fits, and engine flags.

    Examples:

      kvplan recommend meta-llama/Llama-3.1-8B --gpu-profile h100-sxm-80gb

      kvplan recommend google/gemma-2-9b-it -g h100 --kv-memory 54.12GiB --max-model-len 8k --json
    """
    from kvplan.recommend import recommend as plan
    from kvplan.units import parse_size

    rec = plan(
        model, gpu_profile=gpu_profile, gpus=positive("--gpus", gpus), engine=engine,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=None if max_model_len is None else labelled("--max-model-len", parse_length, max_model_len),
        concurrency=positive("--concurrency", concurrency), dtype=choice("--dtype", dtype, MODEL_DTYPE_CHOICES),
        kv_dtype=kv_dtype, tp=positive("--tp", tp), pp=positive("--pp", pp),
        block_size=positive("--block-size", block_size),
        kv_memory=None if kv_memory is None else labelled("--kv-memory", parse_size, kv_memory),
        profiles_dir=profiles_dir, offline=True if offline else None,
    )
    if json_out:
        render.print_json(rec.to_dict())
        render.notes(rec.notes)
    else:
        render.recommendation_table(rec)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        render.stderr().print("[bold red]error:[/] interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
