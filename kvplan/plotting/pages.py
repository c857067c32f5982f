"""Self-contained HTML pages: a chart (its SVG inline, then its figures as a table) and the `kvplan check` report.

One file each, nothing fetched: the style is inline, there is no script, and a Content-Security-Policy forbids
any load (`default-src 'none'`). Every text from a user's files (model names, deployment names, notes) is
escaped (`html.escape`) and control characters shown as escapes. Pure Python: no matplotlib here (the check
report needs none; a chart page is given its SVG).
"""

from __future__ import annotations

import html
import re
from typing import Any

from kvplan import __version__
from kvplan.core.units import format_bytes, format_tokens
from kvplan.plotting.charts import Chart
from kvplan.plotting.draw import visible

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1b1f24; max-width: 70rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pass { color: #116329; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; }
.bar { background: #eaeef2; width: 16rem; height: 0.8rem; display: inline-block; vertical-align: middle; }
.bar span { background: #0969da; height: 100%; display: block; } .bar span.over { background: #b3261e; }
code { font-size: 0.85rem; } .muted { color: #57606a; font-size: 0.85rem; }
svg { max-width: 100%; height: auto; }
"""


def text(value: Any) -> str:
    """A value as HTML text: escaped, control characters visible."""
    return html.escape(visible(str(value)), quote=True)


def _page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="kvplan {text(__version__)}">',
            f"<title>{text(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            *body,
            f'<p class="muted">Written by kvplan {text(__version__)}.</p>',
            "</body>",
            "</html>",
            "",
        ]
    )


def _table(headers: list[tuple[str, bool]], rows: list[list[str]]) -> list[str]:
    """A table; `headers` (text, numeric) and `rows` of cells already escaped."""
    out = ["<table>", "<thead><tr>" + "".join(_cell("th", h, num) for h, num in headers) + "</tr></thead>", "<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(_cell("td", c, num) for c, (_, num) in zip(row, headers, strict=True)) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _cell(tag: str, content: str, numeric: bool) -> str:
    return f'<{tag} class="num">{content}</{tag}>' if numeric else f"<{tag}>{content}</{tag}>"


def _notes(notes: Any) -> list[str]:
    notes = list(notes)
    return ["<ul>", *(f"<li>{text(n)}</li>" for n in notes), "</ul>"] if notes else []


# ------------------------------------------------------------------------------------------------- a chart

_BEFORE_SVG = re.compile(r"\A.*?(?=<svg\b)", re.S)


def chart_page(chart: Chart, svg: str) -> str:
    """The chart's SVG inline (without its XML prologue), then one table row per x with every series' figure."""
    xs = chart.xs
    by_x = [dict(zip((x for x, _ in s.points), s.shown, strict=True)) for s in chart.series]
    rows = [[text(f"{x:,} ({format_tokens(x)})")] + [text(shown.get(x, "—")) for shown in by_x] for x in xs]
    headers = [(text(chart.x_label), True)] + [(text(s.label), True) for s in chart.series]
    body = [
        f"<h1>{text(chart.title)}</h1>",
        f'<p class="muted">{text(chart.subtitle)}</p>',
        '<figure id="kvplan-chart">',
        _BEFORE_SVG.sub("", svg, count=1).strip(),
        "</figure>",
        f"<h2>The figures: {text(chart.y_label)}</h2>",
        *_table(headers, rows),
    ]
    if chart.levels or chart.markers:
        body += ["<h3>Reference lines</h3>", "<ul>"]
        body += [f"<li>{text(level.label)}: {text(level.shown)}</li>" for level in chart.levels]
        body += [f"<li>{text(marker.label)}</li>" for marker in chart.markers]
        body += ["</ul>"]
    if chart.notes:
        body += ["<h3>Notes</h3>", *_notes(chart.notes)]
    return _page(chart.title, body)


# ---------------------------------------------------------------------------------------- kvplan check --html


def check_page(report: Any) -> str:
    """A `kvplan check` report (kvplan.checking.check.CheckReport) as one HTML page: the verdict, one row per
    deployment (as `--summary-md` has it), then each deployment's budget terms, fit, failure, fixes, lint, notes."""
    results = report.results
    passed = sum(r.ok for r in results)
    plural = "s" if len(results) != 1 else ""
    verdict = "pass" if passed == len(results) else "fail"
    title = f"kvplan check: {passed} of {len(results)} deployment{plural} pass"
    body = [f'<h1 class="{verdict}" id="kvplan-verdict">{text(title)}</h1>']
    if report.min_headroom:
        body.append(f"<p>Minimum headroom: {report.min_headroom:.1%}</p>")
    if report.strict:
        body.append("<p>Strict: model-config lint fails a deployment.</p>")
    headers = [
        ("deployment", False),
        ("model", False),
        ("GPUs", False),
        ("engine", False),
        ("max_model_len × requests", True),
        ("KV available", True),
        ("KV needed", True),
        ("headroom", True),
        ("max concurrency", True),
        ("result", False),
    ]
    rows = []
    for index, r in enumerate(results):
        dep, rec = r.deployment, r.recommendation
        rows.append(
            [
                f'<a href="#deployment-{index}">{text(dep.name)}</a>',
                f"<code>{text(rec.model)}</code>",
                f"{rec.gpus} × <code>{text(rec.gpu_profile)}</code>",
                text(_engine(dep, rec)),
                text(f"{format_tokens(rec.max_model_len)} × {r.required_concurrency}"),
                text(format_bytes(rec.available_kv_memory_bytes)),
                text(format_bytes(r.needed_kv_bytes)),
                text(_headroom(r)),
                text(f"{rec.max_concurrency:g}x"),
                _result(r),
            ]
        )
    body += _table(headers, rows)
    for index, r in enumerate(results):
        body += _deployment(index, r)
    return _page(title, body)


def _engine(dep: Any, rec: Any) -> str:
    return f"{dep.engine} TP {rec.tp}" + (f" PP {rec.pp}" if rec.pp > 1 else "") + f", KV {rec.kv_dtype}"


def _headroom(r: Any) -> str:
    if r.headroom_bytes is None:
        return "-"
    shown = format_bytes(r.headroom_bytes)
    if r.headroom_fraction is not None and r.headroom_fraction >= -1:
        shown += f" ({r.headroom_fraction:.1%})"
    return shown


def _result(r: Any) -> str:
    return '<span class="pass">pass</span>' if r.ok else f'<span class="fail">FAIL</span> {text(r.binding_constraint)}'


def _deployment(index: int, r: Any) -> list[str]:
    dep, rec = r.deployment, r.recommendation
    out = [
        f'<section id="deployment-{index}" class="deployment">',
        f"<h2>{text(dep.name)} {_result(r)}</h2>",
        f'<p class="muted">{text(dep.at())} · <code>{text(rec.model)}</code> on {rec.gpus} × '
        f"<code>{text(rec.gpu_profile)}</code> · {text(_engine(dep, rec))}</p>",
    ]
    available, needed = rec.available_kv_memory_bytes, r.needed_kv_bytes
    if needed is not None and available > 0:
        share = needed / available
        over = ' class="over"' if share > 1 else ""
        out.append(
            f"<p>KV needed / available: {text(format_bytes(needed))} of {text(format_bytes(available))} "
            f'({share:.1%}) <span class="bar" role="img" aria-label="{share:.1%} of the KV memory">'
            f'<span{over} style="width: {min(share, 1) * 100:.1f}%"></span></span></p>'
        )
    if r.binding_constraint is not None:
        out.append(f"<p><strong>{text(r.binding_constraint)}</strong>: {text(r.binding_detail or '')}</p>")
    if r.fixes:
        out += ["<h3>Fixes (each re-checked)</h3>", "<ul>", *(f"<li>{text(f.text)}</li>" for f in r.fixes), "</ul>"]
    elif not r.ok and r.binding_constraint != "lint":
        out.append("<p>No single change found (a larger GPU, more GPUs or a smaller model).</p>")
    terms = [[text(t.name), text(format_bytes(t.bytes)), text(t.source)] for t in rec.budget]
    terms.append(["<strong>KV cache</strong>", f"<strong>{text(format_bytes(available))}</strong>", ""])
    out += ["<h3>Budget per GPU</h3>", *_table([("term", False), ("bytes", True), ("source", False)], terms)]
    figures = [
        ("KV cache tokens", f"{rec.kv_cache_tokens:,}"),
        ("blocks × block size", f"{rec.num_blocks:,} × {rec.block_size}"),
        ("max_model_len", f"{rec.max_model_len:,}"),
        ("largest max_model_len for one request", f"{rec.max_model_len_fit:,}"),
        ("max concurrency at max_model_len", f"{rec.max_concurrency:g}x"),
        ("required concurrency", f"{r.required_concurrency:,}"),
    ]
    if rec.fp8_kv:
        f8 = rec.fp8_kv
        figures.append(
            (f"with {f8['kv_dtype']} KV", f"{f8['max_concurrency']:g}x, fits: {'yes' if f8['fits'] else 'no'}")
        )
    if rec.min_tp_to_fit is not None and not rec.fits:
        figures.append(("smallest TP that fits", str(rec.min_tp_to_fit)))
    out += _table([("figure", False), ("value", True)], [[text(a), text(b)] for a, b in figures])
    if r.lint:
        out += ["<h3>Lint</h3>", "<ul>", *(f"<li>{text(w.message)} <code>{text(w.code)}</code></li>" for w in r.lint)]
        out.append("</ul>")
    if r.notes:
        out += ["<h3>Notes</h3>", *_notes(r.notes)]
    out.append("</section>")
    return out


__all__ = ["CSP", "chart_page", "check_page", "text"]
