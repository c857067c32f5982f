"""A Chart (kvplan.plotting.charts) drawn with matplotlib: SVG text or PNG bytes.

matplotlib is the `plot` extra (`pip install 'kvplan[plot]'`), imported here only, inside the functions, on
the Agg canvas of a Figure (pyplot and its global backend are never touched). SVG text is kept as <text>
(`svg.fonttype: none`), so titles and labels stay searchable and testable; each line carries an id
(`kvplan-series-N`, `kvplan-level-N`, `kvplan-marker-N`) so that a reader can find it.
"""

from __future__ import annotations

import io
import re
from typing import Any

from kvplan.core.units import format_tokens
from kvplan.errors import UsageError
from kvplan.plotting.charts import Chart

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.0, 100  # PNG: 800 x 500 pixels
INSTALL_HINT = "pip install 'kvplan[plot]' (from a checkout: pip install -e '.[plot]')"
EMPTY = "nothing to draw: no request fits at any of these lengths"
_LEVEL_STYLES = (("--", "0.35"), ("-.", "tab:purple"), ((0, (5, 1, 1, 1)), "tab:brown"))
_RC = {
    "svg.fonttype": "none",  # text as <text>, not outlines
    "svg.hashsalt": "kvplan",  # the same ids at every run
    "text.parse_math": False,  # a model name with `$` is text, not mathtext
    "text.usetex": False,
}


def require_matplotlib() -> None:
    """A UsageError (one line, exit 2) naming the extra when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"plots need matplotlib, which is not installed ({exc.name or exc} is missing)", hint=INSTALL_HINT
        ) from None


def svg(chart: Chart) -> str:
    """The chart as an SVG document (UTF-8 text)."""
    return _save(chart, "svg").decode("utf-8")


def png(chart: Chart) -> bytes:
    """The chart as a PNG image of WIDTH_IN x HEIGHT_IN inches at DPI."""
    return _save(chart, "png")


def _save(chart: Chart, fmt: str) -> bytes:
    require_matplotlib()
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        figure = _figure(chart)
        metadata: dict[str, Any] = {"Title": visible(chart.title)}
        if fmt == "svg":
            metadata["Date"] = None  # the same bytes at every run
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def _figure(chart: Chart) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for index, series in enumerate(chart.series):
        points = [(x, y * chart.y_scale) for x, y in series.points if y is not None]
        (line,) = axes.plot(
            [x for x, _ in points], [y for _, y in points], marker="o", markersize=3, label=visible(series.label)
        )
        line.set_gid(f"kvplan-series-{index}")
    for index, level in enumerate(chart.levels):
        style, colour = _LEVEL_STYLES[index % len(_LEVEL_STYLES)]
        line = axes.axhline(
            level.value * chart.y_scale, linestyle=style, linewidth=1, color=colour, label=visible(level.label)
        )
        line.set_gid(f"kvplan-level-{index}")
    for index, marker in enumerate(chart.markers):
        line = axes.axvline(marker.x, linestyle=":", linewidth=1.2, color="tab:red", label=visible(marker.label))
        line.set_gid(f"kvplan-marker-{index}")
    axes.set_xscale("log", base=2)
    if not any(y is not None for series in chart.series for _, y in series.points) and chart.xs:
        axes.set_xlim(chart.xs[0], chart.xs[-1])  # nothing drawn: the lengths tried, and why the lines are empty
        axes.text(0.5, 0.5, EMPTY, transform=axes.transAxes, ha="center", va="center", color="tab:red")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_tokens(int(x)) if x >= 1 else f"{x:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    if chart.y_log:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))  # not mathtext: it is off
        axes.yaxis.set_minor_formatter(NullFormatter())
    else:
        axes.set_ylim(bottom=0)
    figure.suptitle(visible(chart.title), fontsize=12)
    axes.set_title(visible(chart.subtitle), fontsize=9)
    axes.set_xlabel(visible(chart.x_label))
    axes.set_ylabel(visible(chart.y_label))
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return figure


# what XML 1.0 cannot hold (and line breaks a one-line label must not have): shown as visible escapes
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def visible(text: str) -> str:
    """`text` with control characters shown as `\\xNN` / `\\uNNNN` (a user's model name may hold any)."""
    return _INVISIBLE.sub(lambda m: ascii(m.group())[1:-1], text)


__all__ = ["DPI", "HEIGHT_IN", "INSTALL_HINT", "WIDTH_IN", "png", "require_matplotlib", "svg", "visible"]
