"""Plots of kvplan's figures: `estimate --plot` (memory against context length), `recommend --plot` (concurrency
against max_model_len) and `check --html` (the report as one page).

  charts   the figures of a chart, computed through kvplan.planning (estimate, recommend), never re-derived
  draw     a chart drawn with matplotlib (the `plot` extra, imported lazily): SVG or PNG
  pages    self-contained HTML: a chart's SVG inline with its figures as a table, and the check report

`import kvplan.plotting` imports neither matplotlib nor torch; only drawing a chart needs matplotlib, and its
absence is one `error:` line with the install hint (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kvplan.errors import UsageError

if TYPE_CHECKING:
    from kvplan.plotting.charts import Chart

FORMATS = (".png", ".svg", ".html")


def plot_format(path: str, label: str = "--plot") -> str:
    """The format of an output path by its extension (`.png`, `.svg`, `.html`, any case), checked before any
    work: an unwritable path (kvplan.atomic_file.check_output_path) or another extension is a UsageError."""
    from kvplan.atomic_file import check_output_path

    check_output_path(path, label)
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{label} {path}: unknown extension {suffix or '(none)'!r}",
            hint="name the file with one of: " + ", ".join(FORMATS),
        )
    return suffix


def prepare(path: str, label: str = "--plot") -> str:
    """What a plot needs before any work: a writable path with a known extension, and matplotlib."""
    from kvplan.plotting.draw import require_matplotlib

    suffix = plot_format(path, label)
    require_matplotlib()
    return suffix


def write_chart(path: str, chart: Chart) -> None:
    """Draw `chart` (kvplan.plotting.charts.Chart) in the format of `path`'s extension and write it whole
    (kvplan.atomic_file): a failure leaves an existing file as it was."""
    from kvplan.atomic_file import write_bytes_atomically, write_text_atomically
    from kvplan.plotting import draw, pages

    suffix = plot_format(path)
    if suffix == ".png":
        write_bytes_atomically(path, draw.png(chart))
    elif suffix == ".svg":
        write_text_atomically(path, draw.svg(chart))
    else:
        write_text_atomically(path, pages.chart_page(chart, draw.svg(chart)))


def write_check_page(path: str, report: object) -> None:
    """The `kvplan check` report as one HTML page (kvplan.plotting.pages.check_page), written whole."""
    from kvplan.atomic_file import write_text_atomically
    from kvplan.plotting.pages import check_page

    write_text_atomically(path, check_page(report))


__all__ = ["FORMATS", "plot_format", "prepare", "write_chart", "write_check_page"]
