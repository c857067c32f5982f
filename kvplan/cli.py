"""kvplan's command line: a thin Typer layer over the library.

Each command parses its options, calls one library function and hands the result to kvplan.render. The
error boundary (`handle_errors`) turns a KvplanError into one line on stderr and exit code 2 (1 for "does
not fit"); KVPLAN_DEBUG=1 shows the traceback instead. Must not import torch, transformers or the profiler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from kvplan import __version__, render
from kvplan.core.units import KV_DTYPE_CHOICES, MAX_INT, MODEL_DTYPE_CHOICES, parse_length, parse_lengths
from kvplan.engines import registry
from kvplan.errors import FLAGS, KvplanError, UsageError


class _Plain:
    """Typer's coercion of a text, text-list or flag parameter, without building a pydantic TypeAdapter for it.

    Typer 0.29 coerces every parameter's value through pydantic (`typer._adapters`), whose import costs
    0.1-0.3 s at every start. kvplan's options are text that kvplan parses itself (kvplan.core.units) and
    flags, whose values arrive as str, a tuple of str, a bool or None: for these the result is the one
    Typer's adapter gives (the text, a list of the texts, the bool, None or ()). Any other value goes to
    Typer's own coercion, built then. Duck-types Typer's `RuntimeParam.coerce`."""

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        many = param.multiple or param.nargs == -1
        if value is None:
            return () if many else None
        if self.annotation is bool and isinstance(value, bool) and not many:
            return value
        if self.annotation is str and isinstance(value, str) and not many:
            return value
        if (
            self.annotation == list[str]
            and many
            and isinstance(value, (tuple, list))
            and all(isinstance(item, str) for item in value)
        ):
            return list(value)
        param._runtime_param = None  # anything else: Typer's own coercion
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


class Command(typer.core.TyperCommand):
    """A Typer command whose text and flag parameters skip Typer's pydantic coercion (`_Plain`). With a Typer
    that has no per-parameter coercion (before 0.29) it is a plain TyperCommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_coercion(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # made on first use: `--help` is a flag too
        _plain_coercion([option] if option is not None else [])
        return option


class Group(typer.core.TyperGroup):
    """The command group, its own options (`--version`, and the completion options Typer adds after building the
    group) coerced as `Command`'s are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_coercion(self.params)

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        _plain_coercion(params)
        return params

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # made on first use: `--help` is a flag too
        _plain_coercion([option] if option is not None else [])
        return option


def _plain_coercion(params: list[Any]) -> None:
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not Typer's lazily built coercion: leave the parameter alone
        if descriptor.annotation in (str, bool, list[str]):
            param._runtime_param = _Plain(descriptor.annotation)


app = typer.Typer(
    name="kvplan",
    cls=Group,
    help="KV-cache memory planning and profiling for LLM serving.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEBUG_ENV = "KVPLAN_DEBUG"
PROGRESS_FROM = 50  # `check` shows progress from this many deployments on
# errno values of a write to stdout that cannot succeed (handled by `main`, not reported as internal errors)
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EBADF, errno.EPIPE})


def one_line(text: str) -> str:
    """`text` on one line: line breaks and other control characters (a user's value may hold any: `\\x85`,
    U+2028) shown as visible escapes, so an error stays one `error:` line."""
    return "".join(
        ch if ch == "\t" or (ch.isprintable() and ch not in "\x85\u2028\u2029") else ascii(ch)[1:-1] for ch in text
    )


def fail(message: str, hint: str | None, code: int) -> None:
    """Print one `error:` line (and a `hint:` line) to stderr and exit with `code`."""
    from rich.markup import escape

    err = render.stderr()
    err.print(f"[bold red]error:[/] {escape(one_line(message))}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {escape(one_line(hint))}", markup=True, highlight=False)
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
            message, hint = exc.spelled(FLAGS)  # the library's fields named as this command's flags
            fail(message, hint, exc.exit_code)
        except typer.Exit:
            raise
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) or exc.errno in _OUTPUT_ERRNOS:
                raise  # stdout itself failed (a reader gone, a full disk): `main` says so, in one line
            if os.environ.get(DEBUG_ENV):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc}", f"set {DEBUG_ENV}=1 for the traceback and report it", 2
            )
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (kvplan.signals.Terminated)
            signum = getattr(exc, "signum", 2)
            fail("interrupted" if signum == 2 else f"stopped by {getattr(exc, 'name', signum)}", None, 128 + signum)
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc}", f"set {DEBUG_ENV}=1 for the traceback and report it", 2
            )

    return wrapper


def whole(label: str, text: str | None, minimum: int = 1) -> int | None:
    """Parse an integer option >= `minimum` given as text (so bad values get kvplan's one-line error)."""
    if text is None:
        return None
    what = "a positive integer" if minimum == 1 else f"a whole number >= {minimum}"
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{label} must be {what}, got {text!r}", hint=f"pass e.g. {label} 2") from None
    if value < minimum:
        raise UsageError(f"{label} must be {what}, got {text!r}", hint=f"pass e.g. {label} 2")
    if value > MAX_INT:  # a count no deployment has: refused before arithmetic runs on it
        shown = str(value) if len(str(value)) <= 20 else str(value)[:17] + "..."
        raise UsageError(f"{label} must be at most {MAX_INT:,}, got {shown}", hint=f"pass e.g. {label} 2")
    return value


def positive(label: str, text: str | None) -> int | None:
    return whole(label, text, 1)


def count(label: str, text: str) -> int:
    """A positive integer option that has a default (never None)."""
    value = whole(label, text, 1)
    if value is None:  # pragma: no cover - Typer passes the default
        raise UsageError(f"{label} needs a value", hint=f"pass e.g. {label} 1")
    return value


def int_list(label: str, text: str, minimum: int = 1) -> list[int]:
    """Parse "1,4,8" into integers >= `minimum` (kvplan's one-line error otherwise)."""
    values = [whole(label, part, minimum) for part in str(text).split(",") if part.strip()]
    if not values:
        raise UsageError(f"{label} needs at least one value", hint=f"pass e.g. {label} 1,4")
    return [v for v in values if v is not None]


def labelled(label: str, parse: Callable[[str], Any], text: str) -> Any:
    """Run a parser, naming the option in its error."""
    try:
        return parse(text)
    except UsageError as exc:
        raise UsageError(f"{label}: {exc.message}", exc.hint) from None


def on_off(label: str, value: str | None) -> bool | None:
    """`on` / `off` as True / False (None when not given)."""
    if value is None:
        return None
    return choice(label, value, ("on", "off")) == "on"


def model_dtype(label: str, value: str) -> str:
    """--dtype: auto, or a model dtype in any spelling of core/units (bf16, bfloat16, torch.float16, half), as
    the short name kvplan's library takes."""
    from kvplan.core.units import dtype_name, short_dtype

    canonical = dtype_name(value)
    short = short_dtype(canonical) if canonical is not None else value.lower()
    return choice(label, short if short in MODEL_DTYPE_CHOICES else value, MODEL_DTYPE_CHOICES)


def choice(label: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.lower() not in allowed:
        raise UsageError(f"unknown {label} {value!r}", hint="use one of: " + ", ".join(allowed))
    return value.lower()


# ---------------------------------------------------------------- engine choices (kvplan.engines.registry)


def estimate_engine_help() -> str:
    """`kvplan estimate --engine`: every engine with a storage model."""
    return registry.listed([e.estimate_help or e.name for e in registry.entries(lambda e: e.storage is not None)]) + "."


def recommend_engine_help() -> str:
    """`kvplan recommend --engine`: the engines with a serving model, then those with a command only."""
    sized = [e for e in registry.entries() if e.name in registry.sized_engines()]
    flags_only = [e.display for e in registry.entries(lambda e: e.serving is not None and e not in sized)]
    tail = f" {registry.listed(flags_only, 'and')}: ready-to-paste flags only, no budget model." if flags_only else ""
    return registry.listed([e.serving.summary or e.name for e in sized]) + "." + tail  # type: ignore[union-attr]


def utilization_help() -> str:
    """`kvplan recommend --gpu-memory-utilization`: what each engine with a serving model takes it for."""
    models = [(e, registry.serving_model(e.name)) for e in registry.entries()]
    used = [s.utilization_help or e.display for e, s in models if s is not None and s.uses_utilization]
    unused = [e.display for e, s in models if s is not None and not s.uses_utilization]
    return "; ".join(used) + (f"; unused by {registry.listed(unused)}." if unused else ".")


def config_kind_help() -> str:
    """`kvplan check --engine`: the engines whose config files kvplan reads."""
    return (
        f"What --engine-config files hold: {registry.listed(registry.config_kinds())} (default: guessed from the keys)."
    )


def engine_config_help() -> str:
    """`kvplan check --engine-config`: the config files kvplan reads."""
    files = [e.config.describes or e.name for e in registry.entries(lambda e: e.config is not None)]  # type: ignore[union-attr]
    return f"An engine config to check instead: {registry.listed(files)} (YAML/JSON). Repeatable."


def check_help() -> str:
    """`kvplan check --help`: which plan engines it sizes and which it refuses."""
    sized = registry.sized_engines()
    unsized = [name for name in registry.plan_engines() if name not in sized]
    refused = f"; {registry.listed(unsized, 'and')} are reported as unsupported (exit 2)" if unsized else ""
    return (
        "Check deployment plans (or engine configs) in CI: fits or not, headroom, binding constraint, fixes.\n\n"
        f"Sizes each deployment with `kvplan recommend`: engines {registry.listed(sized)}{refused}. Exit code 0 "
        "when all pass, 1 when any does not fit (or lacks --min-headroom, or has lint under --strict), 2 for bad "
        "input.\n\n"
        "Examples:\n\n"
        "  kvplan check kvplan.yaml --min-headroom 5% --junit kvplan-report.xml --html kvplan-report.html\n\n"
        '  kvplan check kvplan.yaml --summary-md "$GITHUB_STEP_SUMMARY"\n\n'
        "  kvplan check --engine-config vllm-serve.yaml --engine vllm --gpu h100-sxm-80gb --json"
    )


# ---------------------------------------------------------------- shared option types

ModelArg = Annotated[
    str,
    typer.Argument(
        help="A config.json, a model folder, a built-in catalog name (see `kvplan models`) or a Hugging Face repo id.",
        show_default=False,
    ),
]
SeqLenOpt = Annotated[
    str,
    typer.Option(
        "--seq-len",
        "-s",
        "--max-model-len",
        help="Tokens per sequence: 32768, 32k, 128K; several (1k,4k,32k) or a doubling range (1k..128k) for a sweep "
        "(alias --max-model-len, vLLM's spelling).",
    ),
]
BatchOpt = Annotated[str, typer.Option("--batch", "-b", help="Sequences held at once.")]
EngineOpt = Annotated[
    str,
    typer.Option("--engine", "-e", help=estimate_engine_help()),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype", help="Model dtype: auto (from the config), fp32, bf16, fp16 (or float32, bfloat16, float16, half)."
    ),
]
KvDtypeOpt = Annotated[
    str,
    typer.Option(
        "--kv-dtype",
        "--kv-cache-dtype",
        help="KV-cache dtype: " + ", ".join(KV_DTYPE_CHOICES) + " (auto = the model dtype; long names such as "
        "bfloat16 and fp8_e4m3fn too; alias --kv-cache-dtype).",
    ),
]
TpOpt = Annotated[
    str,
    typer.Option(
        "--tp",
        "--tensor-parallel-size",
        help="Tensor-parallel GPUs (KV heads split; replicated when fewer than TP; MLA replicated on every rank).",
    ),
]
PpOpt = Annotated[
    str,
    typer.Option(
        "--pp",
        "--pipeline-parallel-size",
        help="Pipeline-parallel stages (layers split as vLLM splits them).",
    ),
]
BlockOpt = Annotated[
    Optional[str], typer.Option("--block-size", help="vLLM page size in tokens (default 16).", show_default=False)
]
MnbtOpt = Annotated[
    str,
    typer.Option(
        "--max-num-batched-tokens", help="vLLM prefill token budget; its sliding-window reservation includes it."
    ),
]
RevisionOpt = Annotated[
    Optional[str], typer.Option("--revision", help="Hub branch, tag or commit.", show_default=False)
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Use only local files and the Hugging Face cache (also HF_HUB_OFFLINE=1).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
PLOT_FORMATS_HELP = ".png, .svg or .html (the SVG inline with the figures as a table); needs the plot extra: "
PLOT_FORMATS_HELP += "pip install 'kvplan[plot]'"
HubWeightsOpt = Annotated[
    bool,
    typer.Option(
        "--hub-weights",
        help="Ask the Hugging Face Hub for the safetensors sizes of a model whose config is in the HF cache (by "
        "default kvplan asks only for a config it downloads now, or when nothing local sizes the weights); said "
        "on stderr, waiting at most KVPLAN_HUB_TIMEOUT seconds (default 10).",
    ),
]
AssumeLlamaOpt = Annotated[
    bool,
    typer.Option(
        "--assume-llama",
        help="Read an unknown model_type as a llama-like decoder even when its config signals another cache "
        "(refused otherwise); every output says so.",
    ),
]
VllmVersionOpt = Annotated[
    Optional[str],
    typer.Option(
        "--vllm-version",
        help="vLLM release whose rules to model (0.10-0.33: 0.19.0, 0.26.1rc1, v0.21): its default memory "
        "fraction, CUDA-graph term, window reservation, Mamba pages and block sizes. Default: the installed "
        "vllm's version, else the newest kvplan models.",
        show_default=False,
    ),
]
PrefixCachingOpt = Annotated[
    Optional[str],
    typer.Option(
        "--prefix-caching",
        help="vLLM prefix caching on|off (default: the release's; on for hybrids from 0.28, which keeps "
        "extra Mamba state pages).",
        show_default=False,
    ),
]
AsyncSchedulingOpt = Annotated[
    Optional[str],
    typer.Option(
        "--async-scheduling",
        help="vLLM async scheduling on|off (default on; from 0.26 it doubles the sliding-window reservation).",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kvplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """KV-cache memory planning and profiling for LLM serving."""


@app.command(cls=Command)
@handle_errors
def estimate(
    model: ModelArg,
    seq_len: SeqLenOpt = "4096",
    batch: BatchOpt = "1",
    engine: EngineOpt = registry.DEFAULT_ENGINE,
    dtype: DtypeOpt = "auto",
    kv_dtype: KvDtypeOpt = "auto",
    tp: TpOpt = "1",
    pp: PpOpt = "1",
    dcp: Annotated[
        str,
        typer.Option(
            "--decode-context-parallel-size",
            "-dcp",
            help="Decode-context-parallel ranks inside each TP group (vLLM, a divisor of TP): attention and MLA "
            "caches split their tokens over them instead of replicating what TP cannot split.",
        ),
    ] = "1",
    block_size: BlockOpt = None,
    max_num_batched_tokens: MnbtOpt = "8192",
    vllm_version: VllmVersionOpt = None,
    prefix_caching: PrefixCachingOpt = None,
    async_scheduling: AsyncSchedulingOpt = None,
    flash_attn: Annotated[
        Optional[str],
        typer.Option(
            "--flash-attn",
            help="llama.cpp -fa auto|on|off (default auto): off stores V transposed, every layer's V as wide as "
            "the widest (Gemma 4's 512-wide global layers).",
            show_default=False,
        ),
    ] = None,
    kv_unified: Annotated[
        Optional[str],
        typer.Option(
            "--kv-unified",
            help="llama.cpp -kvu on|off (default off, as with -np given): one cache stream shared by the --batch "
            "slots; llama-server without -np runs 4 such slots (--kv-unified on --batch 4).",
            show_default=False,
        ),
    ] = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    hub_weights: HubWeightsOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    speculative_config: Annotated[
        Optional[str],
        typer.Option(
            "--speculative-config",
            help="Speculative decoding, as vLLM's --speculative-config JSON (as for recommend): "
            '\'{"method": "mtp", "num_speculative_tokens": 3}\', or draft_model / eagle / eagle3 / dflash with '
            '"model" (a catalog name or config path). Adds rows for the drafter\'s KV (the MTP layers or the draft '
            "model's layers) where kvplan models the engine's drafter (vLLM, SGLang, transformers' assisted generation); "
            "other engines note that it is left out.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot",
            help="Also write a plot of KV memory against context length (a doubling grid up to the model's limit, "
            "or the --seq-len sweep), one line per engine x KV dtype, the weights as a level: " + PLOT_FORMATS_HELP,
            show_default=False,
        ),
    ] = None,
    plot_engines: Annotated[
        Optional[str],
        typer.Option(
            "--plot-engines",
            help="Engines to compare in --plot, e.g. vllm,sglang,naive (default: --engine).",
            show_default=False,
        ),
    ] = None,
    plot_kv_dtypes: Annotated[
        Optional[str],
        typer.Option(
            "--plot-kv-dtypes",
            help="KV dtypes to compare in --plot, e.g. auto,fp8 (default: --kv-dtype and the engine's 8-bit one).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """KV-cache memory per layer kind, per sequence, per batch and per GPU.

    Examples:

      kvplan estimate meta-llama/Llama-3.1-8B --seq-len 128k --batch 4

      kvplan estimate deepseek-ai/DeepSeek-V3 --tp 8 --kv-dtype fp8 --json

      kvplan estimate deepseek-ai/DeepSeek-V3 --tp 8 -dcp 8 --seq-len 128k

      kvplan estimate ./config.json --seq-len 1k..128k --engine transformers

      kvplan estimate meta-llama/Llama-3.1-8B --plot kv.svg --plot-engines vllm,sglang,naive

      kvplan estimate Qwen/Qwen3.6-27B --speculative-config '{"method": "mtp", "num_speculative_tokens": 3}'
    """
    from kvplan.planning.estimate import estimate as estimate_model
    from kvplan.planning.resolved import resolve

    if plot is None and (plot_engines is not None or plot_kv_dtypes is not None):
        raise UsageError("--plot-engines and --plot-kv-dtypes apply to --plot only", hint="add --plot FILE.svg")
    if plot is not None and speculative_config is not None:
        raise UsageError(
            "--plot does not draw the drafter's KV yet", hint="drop --plot, or --speculative-config for the plot"
        )
    if plot is not None:  # a bad path, extension or a missing matplotlib is refused before any work
        from kvplan.plotting import prepare

        prepare(plot)
    lengths = labelled("--seq-len", parse_lengths, seq_len)
    options: dict[str, Any] = dict(
        batch=positive("--batch", batch),
        engine=engine,
        dtype=model_dtype("--dtype", dtype),
        kv_dtype=kv_dtype,
        tp=positive("--tp", tp),
        pp=positive("--pp", pp),
        dcp=count("--decode-context-parallel-size", dcp),
        block_size=positive("--block-size", block_size),
        max_num_batched_tokens=positive("--max-num-batched-tokens", max_num_batched_tokens),
        vllm_version=vllm_version,
        prefix_caching=on_off("--prefix-caching", prefix_caching),
        async_scheduling=on_off("--async-scheduling", async_scheduling),
        flash_attn=None if flash_attn is None else choice("--flash-attn", flash_attn, ("auto", "on", "off")),
        kv_unified=on_off("--kv-unified", kv_unified),
    )
    # read once for every length
    resolved = resolve(
        model,
        revision=revision,
        offline=True if offline else None,
        assume_llama=assume_llama,
        hub_weights=True if hub_weights else None,
    )
    results = [estimate_model(resolved, seq_len=n, speculative_config=speculative_config, **options) for n in lengths]
    chart = None
    if plot is not None:  # computed before anything is printed: a bad --plot-engines is one error, no table
        from kvplan.plotting.charts import estimate_chart

        chart = estimate_chart(
            resolved,
            lengths=lengths,
            engines=_names("--plot-engines", plot_engines) if plot_engines is not None else [engine],
            kv_dtypes=None if plot_kv_dtypes is None else _names("--plot-kv-dtypes", plot_kv_dtypes),
            **options,
        )
    if json_out:
        render.print_json(results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results])
        render.notes(results[0].notes)
    elif len(results) == 1:
        render.estimate_table(results[0])
    else:
        render.sweep_table(results)
    if plot is not None and chart is not None:
        from kvplan.plotting import write_chart

        write_chart(plot, chart)
        render.notes([f"wrote {plot}"])


def _names(label: str, text: str) -> list[str]:
    """A comma-separated list option ("vllm,sglang"), at least one name."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError(f"{label} needs at least one name", hint=f"pass e.g. {label} a,b")
    return names


@app.command(cls=Command)
@handle_errors
def models(
    family: Annotated[
        Optional[str],
        typer.Option(
            "--family",
            help="Only the models of this family (its canonical name or any model_type spelling, e.g. qwen3_5_moe).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the built-in offline catalog of model configs (usable as MODEL anywhere, no network needed).

    Aliases (other names for a catalog layout, e.g. Qwen/Qwen3.6-27B) are listed under the model they read.
    """
    from kvplan.core.config import text_config
    from kvplan.core.families import FAMILIES, family_of
    from kvplan.core.shapes import model_shape
    from kvplan.sources.catalog import aliases, catalog_entries
    from kvplan.sources.configs import read_config_file

    wanted = None
    if family is not None:
        found = family_of(family.strip())
        if found is None:
            raise UsageError(
                f"unknown --family {family!r}",
                hint="kvplan knows: " + ", ".join(sorted(FAMILIES)),
            )
        wanted = found.name
    by_config: dict[str, list[str]] = {}
    for alias in aliases():
        by_config.setdefault(alias.config.lower(), []).append(alias.name)
    rows: list[dict[str, Any]] = []
    for entry in catalog_entries():
        config = read_config_file(entry.path)
        known = family_of(text_config(config))
        if wanted is not None and (known is None or known.name != wanted):
            continue
        row: dict[str, Any] = {
            "name": entry.name,
            "model_type": entry.model_type,
            "family": known.name if known is not None else None,
            "aliases": by_config.get(entry.name.lower(), []),
        }
        try:
            shape = model_shape(config)
        except KvplanError as exc:  # one model kvplan cannot read yet must not hide the others
            row.update(layers=None, kinds=[], error=str(exc))
        else:
            row.update(layers=shape.num_layers, kinds=sorted({c.kind for c in shape.caches()}))
        rows.append(row)
    if json_out:
        render.print_json(rows)
        return
    from rich.table import Table

    out = render.stdout()
    table = Table(title=f"{len(rows)} built-in models", title_justify="left")
    names = [n for r in rows for n in (r["name"], *(f"  = {a}" for a in r["aliases"]))]
    render.whole_column(table, "name", names)
    # model_type gets its own column where the line has room for it, else it heads the cache kinds
    longest_type = max((len(str(r["model_type"])) for r in rows), default=0)
    apart = out.width >= max((len(n) for n in names), default=0) + longest_type + 6 + 13 + 24
    if apart:
        render.whole_column(table, "model_type", [str(r["model_type"]) for r in rows])
    render.whole_column(table, "layers", [str(r["layers"]) for r in rows])
    kinds_words = [w for r in rows for w in (*r["kinds"], str(r["model_type"]) + ":")]
    render.wrap_column(table, "cache kinds" if apart else "model_type: cache kinds", kinds_words)
    for r in rows:
        kinds = (
            ", ".join(render.KIND_LABELS.get(k, k) for k in r["kinds"])
            if "error" not in r
            else "not read: " + r["error"]
        )
        layers = "?" if r["layers"] is None else str(r["layers"])
        name = "\n".join([r["name"], *(f"  = {a}" for a in r["aliases"])])  # its aliases under the name
        if apart:
            table.add_row(name, r["model_type"], layers, kinds)
        else:
            table.add_row(name, layers, f"{r['model_type']}: {kinds}")
    render.print_whole(table, out)


profiles_app = typer.Typer(
    cls=Group,
    help="Hardware profiles (GPU memory, bandwidth, throughput) used for planning.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(profiles_app, name="profiles")
ProfilesDirOpt = Annotated[
    Optional[str],
    typer.Option(
        "--profiles-dir", help="A folder of extra profile YAML files (also $KVPLAN_PROFILES_DIR).", show_default=False
    ),
]


@profiles_app.command("list", cls=Command)
@handle_errors
def profiles_list(profiles_dir: ProfilesDirOpt = None, json_out: JsonOpt = False) -> None:
    """List the known hardware profiles: built-in, user and --profiles-dir ones."""
    from kvplan.sources.hardware import list_profiles

    problems: list[str] = []
    found = list_profiles(profiles_dir, problems=problems)
    if json_out:
        render.print_json([p.to_dict() for p in found])
    else:
        render.profiles_table(found)
    render.notes([f"skipped a profile file: {problem}" for problem in problems])


@profiles_app.command("show", cls=Command)
@handle_errors
def profiles_show(
    profile: Annotated[str, typer.Argument(help="A profile id, alias or YAML path.")],
    profiles_dir: ProfilesDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one hardware profile with the source of each figure."""
    from kvplan.sources.hardware import load_profile

    found = load_profile(profile, profiles_dir=profiles_dir)
    if json_out:
        render.print_json(found.to_dict())
        return
    render.profile_card(found)


@profiles_app.command("new", cls=Command)
@handle_errors
def profiles_new(
    profile: Annotated[str, typer.Argument(help="The new profile's id (its file name stem).")] = "my-gpu",
) -> None:
    """Print a commented profile template to fill in (save it as ID.yaml in a profiles directory)."""
    from kvplan.sources.hardware import profile_template

    sys.stdout.write(profile_template(profile))


@app.command(cls=Command)
@handle_errors
def profile(
    model: ModelArg,
    gpu: Annotated[
        Optional[str],
        typer.Option(
            "--gpu",
            help="CUDA device index, or several (0,1) to shard the model "
            "with accelerate. Default: GPU 0 when CUDA is available, else the "
            "CPU.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        Optional[str],
        typer.Option("--device", help="cpu to run on the CPU even when a GPU exists.", show_default=False),
    ] = None,
    seq_len: Annotated[
        str,
        typer.Option(
            "--seq-len", "-s", help="Prompt lengths: 512, 2k, several (512,2048) or a doubling range (512..4k)."
        ),
    ] = "512",
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes, e.g. 1,4.")] = "1",
    decode_tokens: Annotated[
        str, typer.Option("--decode-tokens", help="Decode steps after the prefill (0 = prefill only).")
    ] = "128",
    dtype: DtypeOpt = "auto",
    cache: Annotated[
        str,
        typer.Option(
            "--cache",
            help="Cache implementations: dynamic, static, quantized (fp8), "
            "offloaded, offloaded-static (the last two need --gpu).",
        ),
    ] = "dynamic",
    no_cache_baseline: Annotated[
        bool,
        typer.Option(
            "--no-cache-baseline", help="Also decode with use_cache=False and report the speed-up the cache buys."
        ),
    ] = False,
    no_cache_steps: Annotated[
        str, typer.Option("--no-cache-steps", help="Steps of the no-cache baseline (each re-reads the whole sequence).")
    ] = "8",
    find_max_batch: Annotated[
        bool,
        typer.Option(
            "--find-max-batch",
            help="Binary-search the largest batch that "
            "fits at each --seq-len, beside kvplan's prediction: KV estimate + "
            "activations fitted on the grid's points.",
        ),
    ] = False,
    find_max_len: Annotated[
        bool,
        typer.Option(
            "--find-max-len",
            help="Binary-search the longest prompt that fits "
            "at each --batch, beside kvplan's prediction (give two or more "
            "--seq-len values so the fit sees how activations grow).",
        ),
    ] = False,
    repeats: Annotated[str, typer.Option("--repeats", help="Timed passes per point (the median is reported).")] = "3",
    layers: Annotated[
        Optional[str],
        typer.Option(
            "--layers",
            help="Keep only the first N decoder layers (for a model too big for the device); KV is also scaled back.",
            show_default=False,
        ),
    ] = None,
    memory_limit: Annotated[
        Optional[str],
        typer.Option(
            "--memory-limit",
            help="Cap the memory the run may use "
            "(8GiB, 500MB): beyond it is out of memory. CPU searches "
            "default to 80% of available RAM.",
            show_default=False,
        ),
    ] = None,
    random_weights: Annotated[
        bool, typer.Option("--random-weights", help="Build from the config even when weight files are available.")
    ] = False,
    trust_remote_code: Annotated[
        bool,
        typer.Option(
            "--trust-remote-code", help="Allow the model folder's own Python code (never run without this flag)."
        ),
    ] = False,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    speculative_config: Annotated[
        Optional[str],
        typer.Option(
            "--speculative-config",
            help="A draft model, as for estimate and recommend: "
            '\'{"method": "draft_model", "num_speculative_tokens": 4, "model": DRAFT}\' (a catalog name, config '
            "path or Hub id; draft_model only). After the grid, one assisted generation (batch 1, the longest "
            "--seq-len, --decode-tokens new tokens) with the draft loaded as the target is, its cache measured "
            "beside kvplan's estimate of the drafter.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[str],
        typer.Option("--output", "-o", help="Also write the JSON report to FILE (atomically).", show_default=False),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run real prefill/decode passes (torch + transformers) and compare memory and tokens/s with the estimate.

    Uses the model's weights when they are on disk (a model folder or the Hugging Face cache), otherwise
    random weights built from the config (memory and speed do not depend on weight values).

    Examples:

      kvplan profile meta-llama/Llama-3.1-8B --gpu 0 --seq-len 2k,8k --batch 1,8 --cache dynamic,static

      kvplan profile ./tiny/config.json --device cpu --no-cache-baseline --json

      kvplan profile Qwen/Qwen2.5-7B --gpu 0 --find-max-batch --seq-len 32k

      kvplan profile ./target --device cpu --speculative-config '{"method": "draft_model", "num_speculative_tokens": 4, "model": "./draft"}'
    """
    from kvplan.core.units import parse_size

    if device is not None and device.strip().lower() not in ("cpu", "cuda"):
        raise UsageError(f"unknown --device {device!r}", hint="use --device cpu, or --gpu N for a CUDA device")
    if gpu is not None and device is not None and device.strip().lower() == "cpu":
        raise UsageError("--gpu and --device cpu contradict each other", hint="pass one of them")
    decode = whole("--decode-tokens", decode_tokens, minimum=0)
    request_kwargs: dict[str, Any] = dict(
        seq_lens=tuple(labelled("--seq-len", parse_lengths, seq_len)),
        batches=tuple(int_list("--batch", batch)),
        decode_tokens=decode,
        dtype=model_dtype("--dtype", dtype),
        caches=tuple(c.strip().lower() for c in cache.split(",") if c.strip()),
        no_cache_baseline=no_cache_baseline,
        no_cache_steps=positive("--no-cache-steps", no_cache_steps),
        find_max_batch=find_max_batch,
        find_max_len=find_max_len,
        repeats=positive("--repeats", repeats),
        layers=positive("--layers", layers),
        memory_limit=None if memory_limit is None else labelled("--memory-limit", parse_size, memory_limit),
        random_weights=random_weights,
        trust_remote_code=trust_remote_code,
        revision=revision,
        offline=True if offline else None,
        assume_llama=assume_llama,
        speculative_config=speculative_config,
    )
    if output is not None:  # checked before a run that may take minutes
        from kvplan.atomic_file import check_output_path

        check_output_path(output, "--output")
        folder = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise UsageError(f"--output {output} is a folder", hint="pass a file path, e.g. --output profile.json")
        if not os.path.isdir(folder):
            raise UsageError(f"--output: folder {folder} does not exist", hint="create it or choose another path")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"--output: folder {folder} is not writable", hint="choose another path")
    if not random_weights:  # an LFS pointer or a truncated file is named now, not after torch's import and a load
        from kvplan.sources.configs import load_model_config
        from kvplan.weights.safetensors import refuse_unusable_weights

        weights_folder = load_model_config(model, revision=revision, offline=True if offline else None).folder
        if weights_folder is not None:
            refuse_unusable_weights(weights_folder)
    try:
        from kvplan.profiling import profiler  # torch, transformers and accelerate are imported only here
    except ImportError as exc:
        raise UsageError(
            f"kvplan profile needs torch, transformers and accelerate ({exc.name or exc} is missing)",
            hint="install the profile extra with the torch build for your platform, e.g. from a "
            "checkout: pip install torch==2.13.0 && pip install -e '.[profile]'",
        ) from None

    gpus: tuple[int, ...] = ()
    if gpu is not None:
        gpus = tuple(int_list("--gpu", gpu, minimum=0))
    elif device is None or device.strip().lower() == "cuda":
        gpus = profiler.default_gpus(device)
    req = profiler.ProfileRequest(model=model, gpus=gpus, **request_kwargs)
    with render.ProgressBar(enabled=not json_out or output is not None) as bar:
        report = profiler.profile(req, progress=bar.step)
    if output is not None:
        profiler.write_json_atomically(output, report.to_dict())
    if json_out:
        render.print_json(report.to_dict())
    else:
        render.profile_report(report)
    render.notes(report.notes)


def _length_or_auto(text: str | None) -> int | str | None:
    """--max-model-len: a length (8192, 32k), or auto (vLLM's auto-fit)."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    return labelled("--max-model-len", parse_length, text)


def _optional_number(label: str, text: str | None) -> float | None:
    """A positive number option (--kv-offloading-size 100, --hicache-ratio 2.5), None when not given."""
    return None if text is None else _number(label, text)


def _offload(
    size: str | None,
    backend: str,
    ratio: str | None,
    hicache_size: str | None,
    lmcache_cpu: str | None,
    lmcache_disk: str | None,
    lmcache_version: str | None,
    kvbm_cpu: str | None = None,
    kvbm_disk: str | None = None,
) -> Any:
    """The offload options as one kvplan.engines.offload.Offload (None: none given)."""
    from kvplan.engines.offload import BACKENDS, Offload

    offload = Offload(
        kv_offloading_size=_optional_number("--kv-offloading-size", size),
        kv_offloading_backend=choice("--kv-offloading-backend", backend, BACKENDS),
        hicache_ratio=_optional_number("--hicache-ratio", ratio),
        hicache_size=_optional_number("--hicache-size", hicache_size),
        lmcache_cpu_size=_optional_number("--lmcache-cpu-size", lmcache_cpu),
        lmcache_disk_size=_optional_number("--lmcache-disk-size", lmcache_disk),
        lmcache_version=lmcache_version,
        kvbm_cpu_cache_gb=_optional_number("--kvbm-cpu-cache-gb", kvbm_cpu),
        kvbm_disk_cache_gb=_optional_number("--kvbm-disk-cache-gb", kvbm_disk),
    )
    given = offload.given or lmcache_version is not None or offload.kv_offloading_backend != "native"
    return offload if given else None


def _host_memory(text: str | None) -> int | str | None:
    """--host-memory: a size (512GiB), or auto."""
    from kvplan.core.units import parse_size

    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    return labelled("--host-memory", parse_size, text)


@app.command(cls=Command)
@handle_errors
def recommend(
    model: ModelArg,
    gpu_profile: Annotated[
        str,
        typer.Option(
            "--gpu-profile",
            "-g",
            help="Hardware profile id, alias or YAML path (see `kvplan profiles list`), or auto: the local GPU "
            "(nvidia-smi, rocm-smi or torch).",
            show_default=False,
        ),
    ],
    gpus: Annotated[
        Optional[str],
        typer.Option(
            "--gpus",
            help="GPUs available (default: TP x PP x DP; TP defaults to GPUs / (PP x DP)).",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option("--engine", "-e", help=recommend_engine_help()),
    ] = registry.DEFAULT_ENGINE,
    gpu_memory_utilization: Annotated[
        Optional[float],
        typer.Option("--gpu-memory-utilization", help=utilization_help(), show_default=False),
    ] = None,
    max_model_len: Annotated[
        Optional[str],
        typer.Option(
            "--max-model-len",
            help="Tokens per request (default: the model's limit, capped at 128k); auto: vLLM's auto-fit, the "
            "longest that fits, up to the model's limit.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        Optional[str],
        typer.Option("--concurrency", help="Requests of max_model_len that must fit at once.", show_default=False),
    ] = None,
    max_num_seqs: Annotated[
        Optional[str],
        typer.Option(
            "--max-num-seqs",
            help="The engine's cap on running sequences, printed as given and never lowered to the KV-limited "
            "concurrency (max_concurrency); vLLM's sampler warm-up, and so its activation peak, scales with it. "
            "Default: the engine's.",
            show_default=False,
        ),
    ] = None,
    dtype: DtypeOpt = "auto",
    kv_dtype: KvDtypeOpt = "auto",
    tp: Annotated[
        Optional[str],
        typer.Option(
            "--tp", "--tensor-parallel-size", help="Tensor-parallel size (default: GPUs / PP).", show_default=False
        ),
    ] = None,
    pp: PpOpt = "1",
    block_size: BlockOpt = None,
    kv_memory: Annotated[
        Optional[str],
        typer.Option(
            "--kv-memory", help="KV memory per GPU (58.11GiB, 40GB), replacing the modelled budget.", show_default=False
        ),
    ] = None,
    weights_bytes: Annotated[
        Optional[str],
        typer.Option(
            "--weights-bytes",
            help="Weights of the whole model (e.g. a GGUF's file size: 4.6GiB), replacing kvplan's count.",
            show_default=False,
        ),
    ] = None,
    ubatch: Annotated[str, typer.Option("--ubatch", help="llama.cpp micro-batch (-ub).")] = "512",
    vllm_version: VllmVersionOpt = None,
    prefix_caching: PrefixCachingOpt = None,
    async_scheduling: AsyncSchedulingOpt = None,
    quantization: Annotated[
        Optional[str],
        typer.Option(
            "--quantization",
            help="vLLM online quantization of an unquantized checkpoint: fp8_per_tensor, fp8_per_block, "
            "fp8_per_channel, or fp8 (older releases' per-tensor spelling).",
            show_default=False,
        ),
    ] = None,
    speculative_config: Annotated[
        Optional[str],
        typer.Option(
            "--speculative-config",
            help="Speculative decoding, as vLLM's --speculative-config JSON: "
            '\'{"method": "mtp", "num_speculative_tokens": 3}\', or eagle / eagle3 / draft_model / dflash with '
            '"model" (a catalog name or config path) and ngram. The same JSON for every engine (SGLang\'s EAGLE/NEXTN '
            "options: write them this way); vLLM's rules add the drafter's KV layers, Mamba speculative slots and "
            "weights; other engines note that the drafter is left out.",
            show_default=False,
        ),
    ] = None,
    kv_offloading_size: Annotated[
        Optional[str],
        typer.Option(
            "--kv-offloading-size",
            help="vLLM's KV offload to CPU, GiB in total across the TP x PP workers (a /dev/shm region).",
            show_default=False,
        ),
    ] = None,
    kv_offloading_backend: Annotated[
        str,
        typer.Option(
            "--kv-offloading-backend",
            help="vLLM's offload backend: native, or lmcache (then the LMCache server sizes its own pool). vLLM "
            "offloads only with --kv-offloading-size, whichever the backend.",
        ),
    ] = "native",
    hicache_ratio: Annotated[
        Optional[str],
        typer.Option(
            "--hicache-ratio", help="SGLang HiCache: host pool / GPU pool, per rank (e.g. 2).", show_default=False
        ),
    ] = None,
    hicache_size: Annotated[
        Optional[str],
        typer.Option(
            "--hicache-size",
            help="SGLang HiCache: host pool GB (1e9) per rank; overrides --hicache-ratio.",
            show_default=False,
        ),
    ] = None,
    lmcache_cpu_size: Annotated[
        Optional[str],
        typer.Option(
            "--lmcache-cpu-size",
            help="LMCache's max_local_cpu_size (LMCACHE_MAX_LOCAL_CPU_SIZE): GiB of pinned RAM per TP rank.",
            show_default=False,
        ),
    ] = None,
    lmcache_disk_size: Annotated[
        Optional[str],
        typer.Option(
            "--lmcache-disk-size",
            help="LMCache's max_local_disk_size (LMCACHE_MAX_LOCAL_DISK_SIZE): GiB of local disk per TP rank.",
            show_default=False,
        ),
    ] = None,
    lmcache_version: Annotated[
        Optional[str],
        typer.Option(
            "--lmcache-version",
            help="The LMCache release (before 0.3.3 its pinned RAM is rounded up to a power of two; default: exact).",
            show_default=False,
        ),
    ] = None,
    kvbm_cpu_cache_gb: Annotated[
        Optional[str],
        typer.Option(
            "--kvbm-cpu-cache-gb",
            help="Dynamo KVBM's DYN_KVBM_CPU_CACHE_GB: GB (1e9) of pinned RAM in total across the workers.",
            show_default=False,
        ),
    ] = None,
    kvbm_disk_cache_gb: Annotated[
        Optional[str],
        typer.Option(
            "--kvbm-disk-cache-gb",
            help="Dynamo KVBM's DYN_KVBM_DISK_CACHE_GB: GB of disk in total across the workers.",
            show_default=False,
        ),
    ] = None,
    host_memory: Annotated[
        Optional[str],
        typer.Option(
            "--host-memory",
            help="Host RAM per node the offload tiers must fit in (512GiB), or auto: MemTotal, lowered to the "
            "cgroup's memory.max (default: the GPU profile's host_memory_bytes, else unchecked).",
            show_default=False,
        ),
    ] = None,
    dp: Annotated[
        str,
        typer.Option(
            "--data-parallel-size",
            "-dp",
            "--dp-size",
            help="Data-parallel ranks (vLLM; SGLang's replicas, without DP attention): engine instances of TP x PP "
            "GPUs each, every one with its own KV pool; requests split over them, so capacity is ranks x per rank. "
            "vLLM's MoE layers split their experts over TP x DP GPUs.",
        ),
    ] = "1",
    dcp: Annotated[
        str,
        typer.Option(
            "--decode-context-parallel-size",
            "-dcp",
            help="Decode-context-parallel ranks (vLLM, inside the TP group: a divisor of TP): attention and MLA "
            "caches split their tokens over them instead of replicating what TP cannot split (MLA's single "
            "latent head).",
        ),
    ] = "1",
    expert_parallel: Annotated[
        bool,
        typer.Option(
            "--enable-expert-parallel",
            help="Expert parallelism (vLLM): the routed experts placed whole on TP x DP ranks (EP size = TP x DP).",
        ),
    ] = False,
    redundant_experts: Annotated[
        str,
        typer.Option(
            "--num-redundant-experts",
            help="EPLB's redundant expert replicas (vLLM --enable-eplb --eplb-config num_redundant_experts; needs "
            "--enable-expert-parallel).",
        ),
    ] = "0",
    nodes: Annotated[
        Optional[str],
        typer.Option(
            "--nodes",
            help="Nodes available (with --gpus-per-node): GPUs = nodes x GPUs per node, instead of --gpus.",
            show_default=False,
        ),
    ] = None,
    gpus_per_node: Annotated[
        Optional[str],
        typer.Option(
            "--gpus-per-node",
            help="GPUs in each node (default: the GPU profile's node). With --nodes: GPUs = nodes x this. Alone: "
            "the node the plan is placed on: a note when the TP group spans nodes, and the DP ranks on one node "
            "whose offload tiers share its host memory.",
            show_default=False,
        ),
    ] = None,
    smallest_layout: Annotated[
        bool,
        typer.Option(
            "--smallest-layout",
            help="Search the layouts (TP x PP, and the engine's DP, DCP and expert parallelism) for the fewest GPUs "
            "that fit, up to --gpus (or --nodes x --gpus-per-node; default 64), and plan the one holding the most "
            "there. Exit 1 when none fits.",
        ),
    ] = False,
    enable_lora: Annotated[
        bool,
        typer.Option(
            "--enable-lora",
            help="Plan LoRA serving with the engine's defaults (vLLM: 1 slot of rank 16; SGLang: 8 slots, "
            "--max-lora-rank needed; TensorRT-LLM: rank 64, a 2% PEFT cache). Any --max-lora* option implies it.",
        ),
    ] = False,
    max_loras: Annotated[
        Optional[str],
        typer.Option(
            "--max-loras",
            help="LoRA adapter slots on each GPU (vLLM --max-loras, SGLang --max-loras-per-batch, TensorRT-LLM "
            "lora_config max_loras): a `lora` budget row.",
            show_default=False,
        ),
    ] = None,
    max_lora_rank: Annotated[
        Optional[str],
        typer.Option(
            "--max-lora-rank", help="The largest LoRA rank served (vLLM: 1, 8, 16, ... 512).", show_default=False
        ),
    ] = None,
    max_cpu_loras: Annotated[
        Optional[str],
        typer.Option(
            "--max-cpu-loras",
            help="Adapters kept in host memory (vLLM --max-cpu-loras, SGLang --max-loaded-loras, TensorRT-LLM "
            "max_cpu_loras): the plan's LoRA host bytes.",
            show_default=False,
        ),
    ] = None,
    lora_dtype: Annotated[
        Optional[str],
        typer.Option(
            "--lora-dtype", help="vLLM's LoRA dtype: auto (the model's), float16 or bfloat16.", show_default=False
        ),
    ] = None,
    lora_target_modules: Annotated[
        Optional[str],
        typer.Option(
            "--lora-target-modules",
            help="Modules the adapters target, comma-separated PEFT names (q_proj,v_proj) or all (the engine's "
            "default).",
            show_default=False,
        ),
    ] = None,
    limit_mm_per_prompt: Annotated[
        Optional[str],
        typer.Option(
            "--limit-mm-per-prompt",
            help="vLLM items per prompt by modality, its JSON: '{\"image\": 0}' serves a multimodal checkpoint as "
            "text only (no vision tower, no encoder cache in the budget).",
            show_default=False,
        ),
    ] = None,
    mamba_full_memory_ratio: Annotated[
        Optional[float],
        typer.Option(
            "--mamba-full-memory-ratio",
            help="SGLang: a Mamba / linear-attention hybrid's state memory over its full-attention KV memory "
            "(default 0.9): the budget's split between state slots and KV tokens.",
            show_default=False,
        ),
    ] = None,
    max_mamba_cache_size: Annotated[
        Optional[int],
        typer.Option(
            "--max-mamba-cache-size",
            help="SGLang: a hybrid's Mamba state slots, instead of sizing them by --mamba-full-memory-ratio.",
            show_default=False,
        ),
    ] = None,
    mamba_ssm_dtype: Annotated[
        Optional[str],
        typer.Option(
            "--mamba-ssm-dtype",
            help="SGLang: a hybrid's SSM state dtype, float32, bfloat16 or float16 (default: the config's "
            "mamba_ssm_dtype, else float32).",
            show_default=False,
        ),
    ] = None,
    share_gpu_with: Annotated[
        Optional[list[str]],
        typer.Option(
            "--share-gpu-with",
            help="A plan file (or manifest) whose deployments already run on the same GPUs: their memory is in "
            "use when this one starts (vLLM: its free-memory check, start order in the notes). Repeatable.",
            show_default=False,
        ),
    ] = None,
    emit: Annotated[
        Optional[str],
        typer.Option(
            "--emit",
            help="Also write a deployment file for the plan: vllm-config, kserve, llm-d, dynamo or ray (vLLM plans).",
            show_default=False,
        ),
    ] = None,
    emit_file: Annotated[
        Optional[str],
        typer.Option("--emit-file", help="Where --emit writes (default: kvplan-FORMAT.yaml).", show_default=False),
    ] = None,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot",
            help="Also write a plot of max concurrency against max_model_len (each point planned as this plan, "
            "the 8-bit KV alternative beside it, the plan's max_model_len marked): " + PLOT_FORMATS_HELP,
            show_default=False,
        ),
    ] = None,
    profiles_dir: ProfilesDirOpt = None,
    offline: OfflineOpt = False,
    hub_weights: HubWeightsOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Plan serving: the KV budget a GPU leaves, its capacity, whether the model fits, and engine flags.

    Examples:

      kvplan recommend meta-llama/Llama-3.1-8B --gpu-profile h100-sxm-80gb

      kvplan recommend google/gemma-2-9b-it -g h100 --kv-memory 54.12GiB --max-model-len 8k --json

      kvplan recommend meta-llama/Llama-3.1-8B -g rtx-4090 --engine llama.cpp --weights-bytes 4.6GiB --kv-dtype q8_0

      kvplan recommend Qwen/Qwen3-8B -g h100 --max-model-len 32k --plot concurrency.html
    """
    from kvplan.core.units import parse_size
    from kvplan.planning.recommend import recommend as plan

    if emit is not None:  # a bad format or output path is refused before planning (kvplan.checking.emit)
        from kvplan.atomic_file import check_output_path
        from kvplan.checking.emit import EMIT_FORMATS

        emit = choice("--emit", emit, EMIT_FORMATS)
        emit_file = f"kvplan-{emit}.yaml" if emit_file is None else emit_file  # "" is refused, not the default
        check_output_path(emit_file, "--emit-file")
    if plot is not None and smallest_layout:
        raise UsageError(
            "--plot draws one layout, and --smallest-layout searches for it",
            hint="run --smallest-layout first, then --plot with the layout it prints (--tp, --pp, ...)",
        )
    shared = None
    if share_gpu_with:  # the deployments already on the GPUs (kvplan.checking.colocation)
        from kvplan.checking.colocation import shared_footprint

        shared = shared_footprint(
            share_gpu_with, gpu_profile=gpu_profile, offline=True if offline else None, profiles_dir=profiles_dir
        )
    target: Any = model
    if plot is not None:  # refused before planning; the model is then read once for the plan and its plot
        from kvplan.plotting import prepare
        from kvplan.plotting.charts import resolve_for_plan

        prepare(plot)
        target = resolve_for_plan(
            model,
            offline=True if offline else None,
            assume_llama=assume_llama,
            hub_weights=True if hub_weights else None,
        )
    common: dict[str, Any] = dict(
        gpu_profile=gpu_profile,
        engine=engine,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=_length_or_auto(max_model_len),
        concurrency=positive("--concurrency", concurrency),
        dtype=model_dtype("--dtype", dtype),
        max_num_seqs=positive("--max-num-seqs", max_num_seqs),
        kv_dtype=kv_dtype,
        block_size=positive("--block-size", block_size),
        kv_memory=None if kv_memory is None else labelled("--kv-memory", parse_size, kv_memory),
        profiles_dir=profiles_dir,
        offline=True if offline else None,
        weights_bytes=None if weights_bytes is None else labelled("--weights-bytes", parse_size, weights_bytes),
        n_ubatch=count("--ubatch", ubatch),
        vllm_version=vllm_version,
        prefix_caching=on_off("--prefix-caching", prefix_caching),
        async_scheduling=on_off("--async-scheduling", async_scheduling),
        assume_llama=assume_llama,
        quantization=quantization,
        hub_weights=True if hub_weights else None,
        speculative_config=speculative_config,
        offload=_offload(
            kv_offloading_size,
            kv_offloading_backend,
            hicache_ratio,
            hicache_size,
            lmcache_cpu_size,
            lmcache_disk_size,
            lmcache_version,
            kvbm_cpu_cache_gb,
            kvbm_disk_cache_gb,
        ),
        host_memory=_host_memory(host_memory),
        enable_lora=enable_lora,
        max_loras=positive("--max-loras", max_loras),
        max_lora_rank=positive("--max-lora-rank", max_lora_rank),
        max_cpu_loras=positive("--max-cpu-loras", max_cpu_loras),
        lora_dtype=lora_dtype,
        lora_target_modules=lora_target_modules,
        limit_mm_per_prompt=limit_mm_per_prompt,
        gpu_used_by_others=shared.bytes if shared is not None else None,
        mamba_full_memory_ratio=mamba_full_memory_ratio,
        max_mamba_cache_size=max_mamba_cache_size,
        mamba_ssm_dtype=mamba_ssm_dtype,
    )
    layout: dict[str, Any] = dict(
        gpus=positive("--gpus", gpus),
        tp=positive("--tp", tp),
        pp=count("--pp", pp),
        dp=count("--data-parallel-size", dp),
        dcp=count("--decode-context-parallel-size", dcp),
        expert_parallel=expert_parallel,
        redundant_experts=whole("--num-redundant-experts", redundant_experts, 0) or 0,
        nodes=positive("--nodes", nodes),
        gpus_per_node=positive("--gpus-per-node", gpus_per_node),
    )
    if smallest_layout:
        from kvplan.planning.layouts import DEFAULT_MAX_GPUS
        from kvplan.planning.layouts import smallest_layout as search

        if layout["nodes"] is None and layout["gpus_per_node"] is not None:  # the search would drop it silently
            raise UsageError(
                "--smallest-layout takes --gpus-per-node only with --nodes (the most GPUs to search: nodes x GPUs "
                "per node)",
                hint="add --nodes N, or drop --gpus-per-node (each layout is placed on the GPU profile's node)",
            )
        if layout["nodes"] is not None and layout["gpus_per_node"] is None:  # the profile's node, if it gives one
            from kvplan.sources.hardware import load_profile

            layout["gpus_per_node"] = load_profile(gpu_profile, profiles_dir=profiles_dir).gpus_per_node
            if layout["gpus_per_node"] is None:
                raise UsageError(
                    "--nodes needs --gpus-per-node N: this GPU profile gives no GPUs per node",
                    hint="pass e.g. --gpus-per-node 8",
                )
        untouched = {"tp": None, "pp": 1, "dp": 1, "dcp": 1, "expert_parallel": False, "redundant_experts": 0}
        # the search chooses the layout: a layout option given with it is refused (smallest_layout names it)
        fixed = {k: v for k, v in layout.items() if k in untouched and v != untouched[k]}
        nodes_gpus = layout["nodes"] * layout["gpus_per_node"] if layout["nodes"] else None
        rec = search(target, max_gpus=layout["gpus"] or nodes_gpus or DEFAULT_MAX_GPUS, **common, **fixed)
    else:
        rec = plan(target, **common, **layout)
    if shared is not None:
        rec = dataclasses.replace(rec, notes=(*shared.lines, *rec.notes))
    chart = None
    if plot is not None:  # every point planned before anything is printed
        from kvplan.plotting.charts import recommend_chart

        chart = recommend_chart(target, rec, **common, **layout)
    if json_out:
        render.print_json(rec.to_dict())
        render.notes(rec.notes)
    else:
        render.recommendation_table(rec)
    if plot is not None and chart is not None:
        from kvplan.plotting import write_chart

        write_chart(plot, chart)
        render.notes([f"wrote {plot}"])
    if emit is not None and emit_file is not None:
        from kvplan.atomic_file import write_text_atomically
        from kvplan.checking.emit import emit_manifest

        text, emit_notes = emit_manifest(rec, emit, profiles_dir=profiles_dir)
        write_text_atomically(emit_file, text)
        render.notes([f"wrote {emit_file} ({emit})", *emit_notes])
    if smallest_layout and not rec.fits:  # the search ran, and no layout of up to --gpus fits
        raise typer.Exit(1)


@app.command(cls=Command, help=check_help())
@handle_errors
def check(
    files: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Plan files (YAML with `deployments:`) or deployment manifests: KServe, llm-d, Dynamo, Ray Serve LLM, vLLM production-stack.",
            show_default=False,
        ),
    ] = None,
    engine_config: Annotated[
        Optional[list[str]],
        typer.Option(
            "--engine-config",
            help=engine_config_help(),
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        Optional[str],
        typer.Option("--engine", "-e", help=config_kind_help(), show_default=False),
    ] = None,
    gpu: Annotated[
        Optional[str],
        typer.Option(
            "--gpu-profile",
            "-g",
            "--gpu",
            help="Hardware profile for --engine-config files and for manifests that name no GPU type: an id, "
            "alias, YAML path or auto (the local GPU).",
            show_default=False,
        ),
    ] = None,
    gpus: Annotated[
        Optional[str],
        typer.Option("--gpus", help="GPUs for --engine-config files (default: TP x PP).", show_default=False),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model", help="Model for --engine-config files and manifests, replacing the file's.", show_default=False
        ),
    ] = None,
    min_headroom: Annotated[
        str, typer.Option("--min-headroom", help="Spare KV memory each deployment must keep: 5% or 0.05.")
    ] = "0",
    host_memory: Annotated[
        Optional[str],
        typer.Option(
            "--host-memory",
            help="Host RAM per node for deployments whose plan sets no host_memory (512GiB, or auto: MemTotal, "
            "lowered to the cgroup's memory.max); their KV offload tiers must fit in it.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat model-config lint warnings as errors.")] = False,
    junit: Annotated[
        Optional[str], typer.Option("--junit", help="Also write a JUnit XML report to this file.", show_default=False)
    ] = None,
    summary_md: Annotated[
        Optional[str],
        typer.Option(
            "--summary-md",
            help='Also append a Markdown summary to this file (GitHub Actions: --summary-md "$GITHUB_STEP_SUMMARY"); '
            "- prints it on stdout instead of the table.",
            show_default=False,
        ),
    ] = None,
    html_out: Annotated[
        Optional[str],
        typer.Option(
            "--html",
            help="Also write the report as one self-contained HTML page (.html): verdicts, headroom, budget "
            "terms, fixes.",
            show_default=False,
        ),
    ] = None,
    profiles_dir: ProfilesDirOpt = None,
    offline: OfflineOpt = False,
    hub_weights: Annotated[
        bool,
        typer.Option(
            "--hub-weights",
            help="As on estimate, for every deployment whose plan sets no hub_weights (a plan's hub_weights: true "
            "always asks the Hub for a cached config's safetensors sizes, false never does).",
        ),
    ] = False,
    assume_llama: AssumeLlamaOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Check deployment plans (or engine configs) in CI; the help text is `check_help()`."""
    from kvplan.atomic_file import check_output_path, write_text_atomically
    from kvplan.checking.check import check_deployments, parse_headroom
    from kvplan.checking.engine_configs import load_engine_config
    from kvplan.checking.junit import junit_xml
    from kvplan.checking.manifests import load_check_file
    from kvplan.checking.plans import Deployment

    if not files and not engine_config:
        raise UsageError("nothing to check", hint="pass plan files (kvplan check kvplan.yaml) or --engine-config FILE")
    if not engine_config and (engine or gpus):
        raise UsageError(
            "--engine and --gpus apply to --engine-config files only",
            hint="set them per deployment in the plan file",
        )
    if junit is not None:  # an unset CI variable (`--junit $REPORT`) is refused before anything is checked
        check_output_path(junit, "--junit")
    if summary_md is not None and summary_md != "-":
        check_output_path(summary_md, "--summary-md")
    if html_out is not None:
        check_output_path(html_out, "--html")
        if not html_out.lower().endswith((".html", ".htm")):
            raise UsageError(f"--html {html_out}: the report is HTML", hint="name the file with .html or .htm")
    if summary_md == "-" and json_out:
        raise UsageError("--summary-md - and --json both print on stdout", hint="write the summary to a file")
    headroom = parse_headroom(min_headroom)
    deployments: list[Deployment] = []
    manifests = 0
    for path in files or []:  # plan files and deployment manifests (kvplan.checking.manifests), by content
        found, is_manifest = load_check_file(path, gpu=gpu, model=model, profiles_dir=profiles_dir)
        deployments.extend(found)
        manifests += is_manifest
    if not engine_config and not manifests and (gpu or model):
        raise UsageError(
            "--gpu and --model apply to manifests and --engine-config files only",
            hint="set them per deployment in the plan file",
        )
    for path in engine_config or []:
        deployments.append(
            load_engine_config(
                path, kind=engine, gpu=gpu, gpus=positive("--gpus", gpus), model=model, profiles_dir=profiles_dir
            )
        )
    if assume_llama:  # for every deployment (a plan sets `assume_llama: true` per deployment)
        deployments = [dataclasses.replace(d, assume_llama=True) for d in deployments]
    if hub_weights:  # for every deployment whose plan does not set hub_weights (true or false)
        deployments = [
            d if d.hub_weights is not None else dataclasses.replace(d, hub_weights=True) for d in deployments
        ]
    if host_memory is not None:  # for every deployment whose plan does not set host_memory
        memory = _host_memory(host_memory)
        deployments = [
            d
            if d.host_memory is not None
            else dataclasses.replace(d, host_memory=memory, spelling={**d.spelling, "host_memory": "--host-memory"})
            for d in deployments
        ]
    with render.ProgressBar(enabled=len(deployments) >= PROGRESS_FROM) as bar:  # a long plan is never silent
        report = check_deployments(
            deployments,
            min_headroom=headroom,
            strict=strict,
            offline=True if offline else None,
            profiles_dir=profiles_dir,
            progress=lambda name, total: bar.step(f"checking {name}", total),
        )
    if junit is not None:
        write_text_atomically(junit, junit_xml(report))
    if html_out is not None:
        from kvplan.plotting import write_check_page

        write_check_page(html_out, report)
    if summary_md is not None and summary_md != "-":
        _append_summary(summary_md, render.check_markdown(report))
    if json_out:
        render.print_json(report.to_dict())
        render.check_messages(report)
    elif summary_md == "-":
        sys.stdout.write(render.check_markdown(report))
        render.check_messages(report)
    else:
        render.check_table(report)
    raise typer.Exit(report.exit_code)


def _append_summary(path: str, text: str) -> None:
    """Append to a step-summary file (GitHub Actions collects what every step appends), as one write."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise UsageError(
            f"--summary-md: cannot write {path}: {exc.strerror or exc}", hint="choose a writable file"
        ) from None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on `argv` (default: sys.argv[1:]) and exit; the process-level boundary around every command.

    What a command's own boundary (`handle_errors`) cannot see is handled here, each as one `error:` line and an
    exit code: Click's usage errors (unknown option or command, missing argument: exit 2, with a hint naming
    `--help`), a stdout that is closed or cannot be written (a full disk: exit 2), a reader that went away
    (broken pipe: exit 2, quietly), an encoding that cannot show the output (characters replaced), Ctrl-C or
    SIGTERM (exit 128 + the signal). `COLUMNS=0` or junk is ignored (Rich's own width detection).
    """
    _sane_environment()
    if sys.stdout is None or _closed(sys.stdout):
        _fail_early("stdout is closed, so kvplan has nowhere to print", "run it with stdout open (e.g. > out.txt)", 2)
    args = sys.argv[1:] if argv is None else list(argv)
    code: int | str | None = 0
    try:
        try:
            result = app(args=args, prog_name="kvplan", standalone_mode=False)
            code = result if isinstance(result, int) else 0  # Click returns a command's `raise typer.Exit(n)`
        except typer.Exit as exc:
            code = exc.exit_code
        except SystemExit as exc:
            if type(sys.stdout).__name__ == "PacifyFlushWrapper":  # Click's answer to a broken pipe: exit(1)
                raise BrokenPipeError from None  # ... which would read as "does not fit"
            code = exc.code
        except typer.Abort:
            raise KeyboardInterrupt from None
        except typer.TyperException as exc:  # Click's own errors (Typer vendors Click): usage, no such option
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                sys.stdout.write(ctx.get_help() + "\n")  # `kvplan` alone: the help, as before
                code = 2
            else:
                _usage_error(exc)
        sys.stdout.flush()
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", 2)
        _fail_early("interrupted" if signum == 2 else f"stopped by {getattr(exc, 'name', signum)}", None, 128 + signum)
    except BrokenPipeError:
        _quiet_exit(2)  # the reader went away (`| head`): nothing left to say to it
    except OSError as exc:  # stdout cannot be written: a full disk (/dev/full), a closed descriptor
        _quiet_stdout()
        _fail_early(f"cannot write to stdout: {exc.strerror or exc}", "free disk space, or redirect the output", 2)
    sys.exit(code)


def _sane_environment() -> None:
    """Outputs that an encoding cannot show get replacement characters instead of failing; a COLUMNS that is not
    a positive width is dropped (Rich would print nothing at width 0)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):
                reconfigure(errors="replace")
    for name in ("COLUMNS", "LINES"):
        value = os.environ.get(name)
        if value is not None and not (value.strip().isdigit() and 0 < int(value) <= 10_000):
            del os.environ[name]


def _closed(stream: Any) -> bool:
    try:
        os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return not hasattr(stream, "getvalue")  # an in-memory stream (tests) has no descriptor and is open
    return False


def _usage_error(exc: Any) -> None:
    """Click's usage error as kvplan's one line: the message, and a hint naming the command's --help."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "kvplan"
    _fail_early(exc.format_message().replace("\n", " "), f"see `{command} --help`", getattr(exc, "exit_code", 2))


def _fail_early(message: str, hint: str | None, code: int) -> None:
    """One `error:` line (and `hint:`) on stderr, written plainly (this may run before Rich is usable)."""
    with contextlib.suppress(Exception):
        sys.stderr.write(f"error: {one_line(message)}\n" + (f"hint: {one_line(hint)}\n" if hint else ""))
        sys.stderr.flush()
    _quiet_exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit cannot fail again."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _quiet_exit(code: int) -> None:
    _quiet_stdout()
    sys.exit(code)


__all__ = ["app", "main"]


@app.command()
@handle_errors
def explain(
    log: Annotated[str, typer.Argument(help="An engine start-up log file, or - to read it from stdin.")],
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            help="The model, when the log names none or kvplan cannot read the one it names: a config.json, a "
            "model folder, a catalog name or a Hub id (a same-architecture config will do).",
            show_default=False,
        ),
    ] = None,
    vllm_version: Annotated[
        Optional[str],
        typer.Option("--vllm-version", help="The vLLM version, when the log does not print it.", show_default=False),
    ] = None,
    gpu_profile: Annotated[
        Optional[str],
        typer.Option(
            "--gpu-profile",
            "-g",
            help="Hardware profile id, alias, YAML path or auto (the local GPU), when the log does not name the GPU.",
            show_default=False,
        ),
    ] = None,
    tp: Annotated[
        Optional[str], typer.Option("--tp", "--tensor-parallel-size", help="Tensor-parallel size.", show_default=False)
    ] = None,
    pp: Annotated[
        Optional[str],
        typer.Option("--pp", "--pipeline-parallel-size", help="Pipeline-parallel size.", show_default=False),
    ] = None,
    max_model_len: Annotated[
        Optional[str], typer.Option("--max-model-len", help="The engine's max_model_len.", show_default=False)
    ] = None,
    gpu_memory_utilization: Annotated[
        Optional[float],
        typer.Option("--gpu-memory-utilization", help="vLLM's memory fraction.", show_default=False),
    ] = None,
    kv_dtype: Annotated[
        Optional[str],
        typer.Option(
            "--kv-dtype",
            "--kv-cache-dtype",
            help="KV-cache dtype: " + ", ".join(KV_DTYPE_CHOICES) + ".",
            show_default=False,
        ),
    ] = None,
    max_num_seqs: Annotated[
        Optional[str], typer.Option("--max-num-seqs", help="The engine's sequence cap.", show_default=False)
    ] = None,
    max_num_batched_tokens: Annotated[
        Optional[str],
        typer.Option("--max-num-batched-tokens", help="vLLM's prefill token budget.", show_default=False),
    ] = None,
    block_size: BlockOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    offline: OfflineOpt = False,
    hub_weights: HubWeightsOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Recompute every KV-cache figure an engine start-up log prints, and name the term behind each difference.

    Capacity figures (blocks, tokens, concurrency, Mamba blocks, the longest max_model_len) are recomputed from
    the memory the log prints and must match within print rounding; budget figures (available memory, weights,
    activation, non-torch, CUDA graphs) are kvplan's model against the log. Flags fill in (and win over) what the
    log says. Exit code 0 when every figure reproduces, 1 when one does not, 2 for bad input.

    Examples:

      kvplan explain vllm-startup.log

      docker logs vllm 2>&1 | kvplan explain - --model ./config.json -g h100 --json
    """
    from kvplan.checking.explain import ExplainOptions, explain_source

    options = ExplainOptions(
        model=model,
        vllm_version=vllm_version,
        gpu_profile=gpu_profile,
        tp=positive("--tp", tp),
        pp=positive("--pp", pp),
        max_model_len=None if max_model_len is None else labelled("--max-model-len", parse_length, max_model_len),
        gpu_memory_utilization=gpu_memory_utilization,
        kv_dtype=kv_dtype,
        max_num_seqs=positive("--max-num-seqs", max_num_seqs),
        max_num_batched_tokens=positive("--max-num-batched-tokens", max_num_batched_tokens),
        block_size=positive("--block-size", block_size),
        profiles_dir=profiles_dir,
        offline=True if offline else None,
        assume_llama=assume_llama,
        hub_weights=True if hub_weights else None,
    )
    result = explain_source(log, options)
    if json_out:
        render.print_json(result.to_dict())
        render.notes(result.notes)
    else:
        render.explain_table(result)
    raise typer.Exit(result.exit_code)


# ---------------------------------------------------------------- throughput (the envelope of one serving point)


@app.command(cls=Command)
@handle_errors
def throughput(
    model: ModelArg,
    gpu_profile: Annotated[
        str,
        typer.Option(
            "--gpu-profile",
            "-g",
            help="Hardware profile id, alias or YAML path (see `kvplan profiles list`).",
            show_default=False,
        ),
    ],
    tp: Annotated[str, typer.Option("--tp", help="Tensor-parallel GPUs of one attention group.")] = "1",
    batch: Annotated[
        str, typer.Option("--batch", "-b", help="Sequences decoded at once (per attention-DP group).")
    ] = "1",
    isl: Annotated[str, typer.Option("--isl", help="Prompt tokens per request (1024, 8k).")] = "1024",
    osl: Annotated[str, typer.Option("--osl", help="Output tokens per request.")] = "1024",
    engine: Annotated[
        Optional[str],
        typer.Option(
            "--engine", "-e", help="Engine whose fitted efficiency the estimate uses (vllm, sglang, tensorrt-llm)."
        ),
    ] = None,
    weights: Annotated[
        str, typer.Option("--weights", help="Matmul weight format: bf16, fp8, fp8_block, nvfp4, mxfp4, int4_wo, ...")
    ] = "bf16",
    experts: Annotated[
        Optional[str],
        typer.Option("--experts", help="Routed-expert weight format (default: as --weights).", show_default=False),
    ] = None,
    kv_dtype: KvDtypeOpt = "auto",
    attention_dp: Annotated[
        str, typer.Option("--attention-dp", help="Attention data-parallel groups of --tp GPUs each.")
    ] = "1",
    disaggregated: Annotated[
        bool,
        typer.Option("--disaggregated", help="A decode worker of disaggregated serving: no prefill on these GPUs."),
    ] = False,
    profiles_dir: ProfilesDirOpt = None,
    offline: OfflineOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Decode throughput envelope of one point: the upper bound measurements must respect, and an estimate.

    The bound (decode tokens/s, TPOT lower bound) holds against every measured row kvplan can map
    (benchmarks/throughput_envelope.py); the estimates divide a roofline by an efficiency fitted per GPU x engine
    x precision on measured rows, reported with its held-out error.

    Examples:

      kvplan throughput meta-llama/Llama-3.1-70B -g h100-sxm-80gb --tp 4 --batch 64 --isl 1024 --osl 1024 --weights fp8 -e vllm

      kvplan throughput deepseek-ai/DeepSeek-R1 -g b200 --tp 8 --batch 32 --isl 8k --osl 1k --weights nvfp4 --json
    """
    from kvplan.planning.envelope import throughput as envelope

    result = envelope(
        model,
        gpu_profile=gpu_profile,
        tp=count("--tp", tp),
        batch=count("--batch", batch),
        isl=labelled("--isl", parse_length, isl),
        osl=labelled("--osl", parse_length, osl),
        engine=engine,
        weights=weights.lower(),
        experts=None if experts is None else experts.lower(),
        kv_dtype=kv_dtype,
        attention_dp=count("--attention-dp", attention_dp),
        profiles_dir=profiles_dir,
        offline=True if offline else None,
        assume_llama=assume_llama,
        aggregated=not disaggregated,
    )
    if json_out:
        render.print_json(result)
    else:
        render.throughput_table(result)


# ---------------------------------------------------------------- fleet (replicas for a workload and SLOs)


def _number(label: str, text: str) -> float:
    """A positive number option given as text (kvplan's one-line error otherwise)."""
    import math

    try:
        value = float(str(text).strip())
    except ValueError:
        raise UsageError(f"{label} must be a positive number, got {text!r}", hint=f"pass e.g. {label} 2") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{label} must be a positive number, got {text!r}", hint=f"pass e.g. {label} 2")
    return value


@app.command(cls=Command)
@handle_errors
def fleet(
    model: ModelArg,
    gpu_profile: Annotated[
        str,
        typer.Option(
            "--gpu-profile",
            "-g",
            help="Hardware profile id, alias or YAML path (an efficiency must be fitted for it: h100-sxm-80gb, b200).",
            show_default=False,
        ),
    ],
    workload: Annotated[
        str,
        typer.Option(
            "--workload",
            "-w",
            help='A JSONL file, one request a line ({"input_tokens": 812, "output_tokens": 240}), or a named shape: '
            "chat (1k in / 1k out), rag (8k / 1k), reasoning (1k / 8k).",
            show_default=False,
        ),
    ],
    rate: Annotated[str, typer.Option("--rate", help="Arrival rate at peak, requests per second.", show_default=False)],
    ttft_slo: Annotated[
        str, typer.Option("--ttft-slo", help="Time-to-first-token SLO, milliseconds.", show_default=False)
    ],
    tpot_slo: Annotated[
        str, typer.Option("--tpot-slo", help="Time-per-output-token SLO, milliseconds.", show_default=False)
    ],
    engine: Annotated[
        str, typer.Option("--engine", "-e", help="Engine planned (its KV accounting and fitted efficiency).")
    ] = registry.DEFAULT_ENGINE,
    tp: Annotated[str, typer.Option("--tp", "--tensor-parallel-size", help="Tensor-parallel GPUs per worker.")] = "1",
    weights: Annotated[
        str, typer.Option("--weights", help="Matmul weight format for the TPOT estimate: bf16, fp8, nvfp4, ...")
    ] = "bf16",
    kv_dtype: KvDtypeOpt = "auto",
    max_model_len: Annotated[
        Optional[str],
        typer.Option(
            "--max-model-len",
            help="Tokens per request served (default: the model's limit, capped at 128k).",
            show_default=False,
        ),
    ] = None,
    max_num_seqs: Annotated[
        Optional[str],
        typer.Option(
            "--max-num-seqs", help="The engine's running-sequence cap (default: the engine's).", show_default=False
        ),
    ] = None,
    gpu_memory_utilization: Annotated[
        Optional[float],
        typer.Option("--gpu-memory-utilization", help=utilization_help(), show_default=False),
    ] = None,
    disaggregated: Annotated[
        bool,
        typer.Option("--disaggregated", help="Size prefill and decode workers separately (their ratio too)."),
    ] = False,
    min_replicas: Annotated[str, typer.Option("--min-replicas", help="Fewest replicas the autoscaler keeps.")] = "1",
    max_replicas: Annotated[
        Optional[str],
        typer.Option(
            "--max-replicas",
            help="Most replicas (workers per pool) allowed; needing more does not fit (exit 1). Default: no cap; "
            "the autoscaler's maximum is then the count needed at --rate.",
            show_default=False,
        ),
    ] = None,
    price_file: Annotated[
        Optional[str],
        typer.Option(
            "--price-file",
            help="GPU price table (YAML: prices: [{gpu_profile, usd_per_gpu_hour, source, date}]) replacing the "
            "shipped one (kvplan/profiles/prices/gpu_prices.yaml).",
            show_default=False,
        ),
    ] = None,
    emit: Annotated[
        Optional[str],
        typer.Option("--emit", help="Also write autoscaling for the plan: keda (a ScaledObject).", show_default=False),
    ] = None,
    emit_file: Annotated[
        Optional[str],
        typer.Option("--emit-file", help="Where --emit writes (default: kvplan-keda.yaml).", show_default=False),
    ] = None,
    deployment: Annotated[
        Optional[str],
        typer.Option(
            "--deployment",
            help="The Deployment KEDA scales, a Kubernetes name (default: from the model name).",
            show_default=False,
        ),
    ] = None,
    prometheus: Annotated[
        str, typer.Option("--prometheus", help="Prometheus address of the KEDA triggers.")
    ] = "http://prometheus-operated.monitoring.svc:9090",
    profiles_dir: ProfilesDirOpt = None,
    offline: OfflineOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Size a fleet: replicas, concurrency per replica, autoscaling thresholds and cost for a workload and SLOs.

    Concurrency per replica is the largest batch the KV cache holds (requests of the workload's mean input +
    output) whose TPOT estimate meets the SLO; replicas follow from Little's law. Exit 0 when the SLOs are met,
    1 when no replica count can meet them (or more than --max-replicas are needed), 2 for bad input.

    Examples:

      kvplan fleet meta-llama/Llama-3.1-8B -g h100-sxm-80gb --workload chat --rate 10 --ttft-slo 2000 --tpot-slo 30

      kvplan fleet meta-llama/Llama-3.1-70B -g b200 --tp 4 -w requests.jsonl --rate 5 --ttft-slo 3000 --tpot-slo 25 --disaggregated --json

      kvplan fleet Qwen/Qwen3-8B -g h100 -w rag --rate 4 --ttft-slo 3000 --tpot-slo 40 --emit keda --emit-file keda.yaml
    """
    from kvplan.planning.fleet import fleet as plan_fleet
    from kvplan.planning.workload import load_workload

    if emit is not None:
        from kvplan.atomic_file import check_output_path
        from kvplan.planning.fleet import engine_metrics

        emit = choice("--emit", emit, ("keda",))
        entry = registry.lookup(engine)
        if entry is not None and engine_metrics(entry.name) is None:
            raise UsageError(
                f"--emit keda writes triggers on the metrics of "
                f"{registry.listed(registry.names(lambda e: e.metrics is not None), 'and')}, not {entry.name}'s",
                hint=f"drop --emit, or plan with --engine {registry.DEFAULT_ENGINE}",
            )
        emit_file = "kvplan-keda.yaml" if emit_file is None else emit_file  # "" is refused, not the default
        check_output_path(emit_file, "--emit-file")
        from kvplan.checking.autoscale import check_deployment

        check_deployment(deployment)  # refused before any planning
    result = plan_fleet(
        model,
        gpu_profile=gpu_profile,
        workload=load_workload(workload),
        rate=_number("--rate", rate),
        ttft_slo_ms=_number("--ttft-slo", ttft_slo),
        tpot_slo_ms=_number("--tpot-slo", tpot_slo),
        engine=engine,
        tp=count("--tp", tp),
        weights=weights.lower(),
        kv_dtype=kv_dtype,
        max_model_len=None if max_model_len is None else labelled("--max-model-len", parse_length, max_model_len),
        max_num_seqs=positive("--max-num-seqs", max_num_seqs),
        gpu_memory_utilization=gpu_memory_utilization,
        disaggregated=disaggregated,
        min_replicas=count("--min-replicas", min_replicas),
        max_replicas=positive("--max-replicas", max_replicas),
        price_file=price_file,
        profiles_dir=profiles_dir,
        offline=True if offline else None,
        assume_llama=assume_llama,
    )
    document = result.to_dict()
    if json_out:
        render.print_json(document)
    else:
        render.fleet_table(document)
    if emit is not None and emit_file is not None and result.fits:
        from kvplan.atomic_file import write_text_atomically
        from kvplan.checking.autoscale import keda_scaled_object

        text, _ = keda_scaled_object(result, deployment=deployment, prometheus=prometheus)
        write_text_atomically(emit_file, text)
        render.notes([f"wrote {emit_file} (keda)"])
    if not result.fits:
        raise typer.Exit(1)


# ---------------------------------------------------------------- kvplan schema (the JSON Schemas of --json)


@app.command(cls=Command)
@handle_errors
def schema(
    command: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="The command whose --json document to describe: estimate, recommend, check, explain, models, "
            "profiles list, profiles show, profile, throughput, fleet. Without it: the list of these.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a command's --json document.

    `estimate`'s covers both shapes: one object for one --seq-len, a list of them for a sweep.

    Examples:

      kvplan schema estimate > estimate.schema.json

      kvplan schema profiles list
    """
    from kvplan import schemas

    if not command:
        sys.stdout.write("".join(f"{name}\n" for name in schemas.COMMANDS))
        return
    render.print_json(schemas.schema(schemas.command_name(command)))
