"""Plots and HTML reports (kvplan.plotting): `estimate --plot`, `recommend --plot`, `check --html`.

Each output is read back as a reader would: the SVG parsed (xml.etree) for its titles, its lines and their
points, which must be kvplan's own figures; the PNG by signature and size; the HTML parsed (html.parser) for its
structure and its escaping; an optional test renders the HTML in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

import kvplan
from kvplan.cli import app
from kvplan.planning.recommend import recommend
from kvplan.plotting.charts import estimate_chart, length_grid, recommend_chart, resolve_for_plan

from conftest import ROOT, TINY_LLAMA

pytest.importorskip("matplotlib")  # the `plot` extra, which the `test` extra holds

runner = CliRunner()
SVG = "{http://www.w3.org/2000/svg}"
LLAMA = "meta-llama/Llama-3.1-8B"
PLAN = str(ROOT / "examples" / "plans" / "kvplan.yaml")
HOSTILE = "<script>alert(1)</script>&"
HOSTILE_FILE_NAME = "<script>alert(1)&\"'"  # no slash: a folder name


def _run(args: list[str], code: int = 0):
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def _lines(root: ET.Element, kind: str) -> dict[str, list[tuple[float, float]]]:
    """The points of every line of one kind (`series`, `level`, `marker`), by id, in SVG coordinates."""
    found = {}
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id", "")
        if gid.startswith(f"kvplan-{kind}-"):
            path = group.find(f"{SVG}path")
            assert path is not None, gid
            numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
            found[gid] = list(zip(numbers[::2], numbers[1::2], strict=True))
    return found


def _texts(root: ET.Element) -> str:
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


class _Page(HTMLParser):
    """The tags, text and attributes of an HTML page."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.data: list[str] = []
        self.cells: list[str] = []
        self._cell = False
        self.feed(source)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        self._cell = tag == "td"

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = False

    def handle_data(self, data):
        self.data.append(data)
        if self._cell:
            self.cells.append(data)


def _self_contained(page: _Page) -> None:
    """No script, nothing loaded from anywhere: links stay on the page."""
    assert "script" not in page.tags and "iframe" not in page.tags and "img" not in page.tags
    assert not [a for a in page.attrs if a[1] == "src" or a[1].startswith("on")]
    assert all(v.startswith("#") for _, k, v in page.attrs if k == "href" and v is not None)
    assert any(k == "http-equiv" and v == "Content-Security-Policy" for _, k, v in page.attrs)


# ------------------------------------------------------------------------------------------ estimate --plot


def test_estimate_svg_has_titles_one_line_per_engine_and_dtype_and_kvplans_figures(tmp_path):
    out = tmp_path / "kv.svg"
    result = _run(["estimate", LLAMA, "--offline", "--plot", str(out), "--plot-engines", "vllm,naive"])
    assert f"wrote {out}" in result.output
    root = ET.parse(out).getroot()
    texts = _texts(root)
    assert f"KV cache of {LLAMA}" in texts and "context length (tokens per sequence)" in texts
    assert "memory (GiB)" in texts and "vllm · bf16 KV" in texts and "vllm · fp8_e4m3 KV" in texts
    series = _lines(root, "series")
    # vLLM at bf16 and at its 8-bit alternative; the naive formula has no serving model, so no alternative
    assert sorted(series) == [f"kvplan-series-{i}" for i in range(3)]
    assert len(_lines(root, "level")) == 1 and len(_lines(root, "marker")) == 1  # the weights; --seq-len 4k
    grid = length_grid(131072, 4096)  # Llama-3.1-8B's limit
    assert grid == [512 * 2**i for i in range(9)]
    chart = estimate_chart(LLAMA, lengths=[4096], engines=["vllm", "naive"], offline=True)
    (base,) = {max(y for _, y in line) for line in _lines(root, "marker").values()}  # the axis' 0
    for (gid, points), drawn in zip(sorted(series.items()), chart.series, strict=True):
        assert len(points) == len(grid), gid
        assert all(a[0] < b[0] for a, b in pairwise(points)), gid  # x in order
        assert all(a[1] > b[1] for a, b in pairwise(points)), gid  # memory grows with context
        values = [y for _, y in drawn.points]
        for (_, y), value in zip(points, values, strict=True):  # heights in proportion to kvplan's figures
            assert (base - y) / (base - points[-1][1]) == pytest.approx(value / values[-1], rel=2e-3, abs=2e-3)
    # the figures are estimate()'s own: the vLLM bf16 line at 32k is the estimate at 32k
    assert dict(chart.series[0].points)[32768] == kvplan.estimate(LLAMA, seq_len=32768, offline=True).kv_cache_bytes
    assert dict(chart.series[1].points)[32768] * 2 == dict(chart.series[0].points)[32768]
    weights = kvplan.estimate(LLAMA, offline=True).weights_bytes
    assert chart.levels[0].value == weights and chart.levels[0].label.startswith("weights ")


def test_estimate_sweep_is_the_grid_and_kv_dtypes_are_the_ones_named(tmp_path):
    out = tmp_path / "sweep.SVG"  # the extension in any case
    _run(["estimate", LLAMA, "--offline", "-s", "1k..16k", "--plot", str(out), "--plot-kv-dtypes", "fp16,fp8,int4"])
    first = out.read_bytes()
    _run(["estimate", LLAMA, "--offline", "-s", "1k..16k", "--plot", str(out), "--plot-kv-dtypes", "fp16,fp8,int4"])
    assert out.read_bytes() == first  # the same file at every run (no date, fixed ids)
    root = ET.parse(out).getroot()
    series = _lines(root, "series")
    assert len(series) == 3 and not _lines(root, "marker")  # a sweep marks no length
    assert {len(points) for points in series.values()} == {5}  # 1k, 2k, 4k, 8k, 16k
    # at each length: fp16 above fp8 above int4 (larger SVG y is lower)
    fp16, fp8, int4 = (series[f"kvplan-series-{i}"] for i in range(3))
    assert all(a[1] < b[1] < c[1] for a, b, c in zip(fp16, fp8, int4, strict=True))


def test_estimate_png_is_a_png_of_the_documented_size(tmp_path):
    out = tmp_path / "kv.png"
    _run(["estimate", LLAMA, "--offline", "--plot", str(out), "--tp", "2"])
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (800, 500)
    assert len(data) > 10_000  # lines, text and a legend, not a blank image


def test_estimate_html_escapes_a_hostile_model_name(tmp_path):
    folder = tmp_path / HOSTILE_FILE_NAME
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY_LLAMA, "max_position_embeddings": 2048}))
    out = tmp_path / "kv.html"
    _run(["estimate", str(folder), "-s", "1k", "--plot", str(out), "--plot-engines", "vllm"])
    source = out.read_text()
    page = _Page(source)
    _self_contained(page)
    assert "svg" in page.tags and "table" in page.tags
    assert HOSTILE_FILE_NAME in "".join(page.data)  # shown as text, never as markup
    assert "<script>" not in source
    grid = length_grid(2048, 1024)
    assert grid == [512, 1024, 2048]
    assert len([c for c in page.cells if re.fullmatch(r"[\d,]+ \(\w+\)", c)]) == len(grid)  # one row per length


def test_control_characters_and_dollars_in_a_name_keep_the_svg_well_formed(tmp_path):
    name = "bad\x1b[31m\x07$x^2$ name"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY_LLAMA, "max_position_embeddings": 2048}))
    out = tmp_path / "kv.svg"
    _run(["estimate", str(folder), "--plot", str(out)])
    texts = _texts(ET.parse(out).getroot())  # parses: nothing XML cannot hold
    assert "bad\\x1b[31m\\x07$x^2$ name" in texts  # control characters shown as escapes, `$` as itself


@pytest.mark.parametrize("args", [["estimate", LLAMA, "--plot"], ["check", PLAN, "--html"]], ids=["plot", "html"])
def test_an_empty_output_path_is_refused_before_any_work(args):
    result = _run([*args, "", "--offline"], code=2)
    assert result.output.startswith("error:") and "empty path" in result.output


# ------------------------------------------------------------------------------------------ recommend --plot


def test_recommend_html_plots_concurrency_against_max_model_len(tmp_path):
    out = tmp_path / "plan.html"
    result = _run(["recommend", LLAMA, "-g", "h100-sxm-80gb", "--max-model-len", "32k", "--plot", str(out), "--json"])
    rec = json.loads(result.stdout)
    source = out.read_text()
    page = _Page(source)
    _self_contained(page)
    svg = source[source.index("<svg") : source.index("</svg>") + 6]
    root = ET.fromstring(svg)
    texts = _texts(root)
    assert "max_model_len (tokens per request)" in texts and "max concurrency" in texts
    series = _lines(root, "series")
    assert len(series) == 2  # bf16 and the fp8 alternative the H100 profile offers
    for points in series.values():  # fewer requests of a longer max_model_len: the line falls (SVG y grows)
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in pairwise(points))
    fp16, fp8 = series["kvplan-series-0"], series["kvplan-series-1"]
    assert all(b[1] < a[1] for a, b in zip(fp16, fp8, strict=True))  # fp8 holds more
    (marker,) = _lines(root, "marker").values()
    assert marker[0][0] == marker[1][0]  # a vertical line at the plan's max_model_len ...
    assert any(abs(x - marker[0][0]) < 1e-6 for x, _ in fp16)  # ... on one of the plotted points
    assert len(_lines(root, "level")) == 1  # max_num_seqs
    assert f"{rec['max_concurrency']:g}x" in page.cells  # the plan's own figure is in the table


def test_a_plan_where_nothing_fits_says_so_on_the_plot(tmp_path):
    out = tmp_path / "none.svg"
    _run(["recommend", "meta-llama/Llama-3.1-70B", "-g", "l4", "--offline", "--plot", str(out)])
    assert "nothing to draw: no request fits at any of these lengths" in _texts(ET.parse(out).getroot())


def test_recommend_plot_keeps_hub_weights_and_the_plan_the_same(tmp_path, monkeypatch):
    """--plot reads the model once for the plan and its points: --hub-weights must still reach that read (the
    ResolvedModel carries it; recommend() reuses the model as given), and the plan must be the one without --plot."""
    import kvplan.plotting.charts as charts

    seen = []
    real = charts.recommend_chart
    monkeypatch.setattr(
        charts, "recommend_chart", lambda model, plan, **o: seen.append(model) or real(model, plan, **o)
    )
    args = ["recommend", LLAMA, "-g", "h100-sxm-80gb", "--max-model-len", "32k", "--offline", "--json"]
    plotted = _run([*args, "--hub-weights", "--plot", str(tmp_path / "p.svg")])
    assert [m.hub_weights for m in seen] == [True]
    assert json.loads(plotted.stdout) == json.loads(_run([*args, "--hub-weights"]).stdout)


def test_recommend_chart_points_are_recommends_own(tmp_path):
    options = dict(gpu_profile="l4", kv_dtype="auto", concurrency=4, offline=True)
    model = resolve_for_plan("Qwen/Qwen3-8B", offline=True, assume_llama=False)
    plan = recommend(model, max_model_len=8192, **options)
    chart = recommend_chart(model, plan, max_model_len=8192, **options)
    xs = chart.xs
    assert 8192 in xs and plan.max_model_len_fit in xs and xs[-1] == model.shape.max_position_embeddings
    for n in (xs[0], 8192, xs[-1]):
        again = recommend("Qwen/Qwen3-8B", max_model_len=n, **options)
        assert dict(chart.series[0].points)[n] == pytest.approx(again.max_concurrency) or again.max_concurrency == 0
    drawn = [c for _, c in chart.series[0].points if c is not None]
    assert drawn == sorted(drawn, reverse=True)
    assert [lv.value for lv in chart.levels] == [plan.max_num_seqs, 4]  # the cap and the concurrency asked


# ------------------------------------------------------------------------------------------ check --html


def test_check_html_reports_every_deployment_escaped(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n"
        f"  - name: '{HOSTILE}'\n    model: {LLAMA}\n    gpu: h100-sxm-80gb\n    max_model_len: 32k\n"
        f"  - name: too-long\n    model: {LLAMA}\n    gpu: l4\n    max_model_len: 2000k\n"
    )
    out = tmp_path / "report.html"
    junit = tmp_path / "report.xml"
    result = _run(["check", str(plan), "--offline", "--html", str(out), "--junit", str(junit)], code=1)
    source = out.read_text()
    page = _Page(source)
    _self_contained(page)
    assert "<script>" not in source and HOSTILE in "".join(page.data)
    assert page.tags.count("section") == 2  # one per deployment
    text = " ".join(page.data)
    assert "kvplan check: 1 of 2 deployments pass" in text
    assert "FAIL" in text and "max_model_len" in text and "lower max_model_len" in text  # the failure and a fix
    report = json.loads(runner.invoke(app, ["check", str(plan), "--offline", "--json"]).stdout)
    for d in report["deployments"]:  # each deployment's budget terms and figures, as the JSON report has them
        assert all(term["source"] in text for term in d["recommend"]["budget"])
        assert f"{d['max_concurrency']:g}x" in page.cells
    assert "kvplan check" in result.stdout  # the table still goes to stdout


def test_check_html_needs_no_matplotlib_and_refuses_other_extensions(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the plot extra not installed
    out = tmp_path / "r.html"
    _run(["check", PLAN, "--offline", "--html", str(out)])
    assert "kvplan check: 4 of 4 deployments pass" in out.read_text()
    result = _run(["check", PLAN, "--offline", "--html", str(tmp_path / "r.pdf")], code=2)
    assert "error: --html" in result.output and ".html" in result.output


# ------------------------------------------------------------------------------------------ bad input


def test_missing_extra_is_one_error_line_and_leaves_the_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "kv.svg"
    out.write_text("earlier")
    for args in (
        ["estimate", LLAMA, "--offline", "--plot", str(out)],
        ["recommend", LLAMA, "-g", "h100", "--offline", "--plot", str(out)],
    ):
        result = _run(args, code=2)
        assert result.output.startswith("error: plots need matplotlib"), result.output  # before any table
        assert "hint: pip install 'kvplan[plot]'" in result.output
    assert out.read_text() == "earlier"


def test_unknown_extension_and_stray_options_are_usage_errors(tmp_path):
    result = _run(["estimate", LLAMA, "--offline", "--plot", str(tmp_path / "kv.pdf")], code=2)
    assert "unknown extension '.pdf'" in result.output and ".png, .svg, .html" in result.output
    result = _run(["recommend", LLAMA, "-g", "h100", "--plot", str(tmp_path / "nowhere" / "x.svg")], code=2)
    assert "does not exist" in result.output
    result = _run(["estimate", LLAMA, "--offline", "--plot-engines", "vllm"], code=2)
    assert "apply to --plot only" in result.output
    result = _run(["estimate", LLAMA, "--offline", "--plot", str(tmp_path / "x.svg"), "--plot-engines", " , "], code=2)
    assert "--plot-engines needs at least one name" in result.output


def test_a_plot_that_fails_leaves_an_existing_file_as_it_was(tmp_path):
    out = tmp_path / "kv.png"
    out.write_bytes(b"earlier")
    result = _run(["estimate", LLAMA, "--offline", "--plot", str(out), "--plot-engines", "vllm,nonesuch"], code=2)
    assert result.output.startswith("error:") and "nonesuch" in result.output  # before any table
    assert out.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["kv.png"]  # no temporary file left behind


def test_plotting_imports_no_matplotlib_until_it_draws():
    code = (
        "import sys\nimport kvplan.plotting, kvplan.plotting.charts, kvplan.plotting.pages\n"
        "from typer.testing import CliRunner\nfrom kvplan.cli import app\n"
        f"r = CliRunner().invoke(app, ['check', {PLAN!r}, '--offline'])\nassert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ in a browser

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.optional
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_the_html_pages_render_in_headless_chromium(tmp_path):
    from matplotlib.image import imread

    check = tmp_path / "check.html"
    chart = tmp_path / "chart.html"
    _run(["check", PLAN, "--offline", "--html", str(check)])
    _run(["recommend", LLAMA, "-g", "h100-sxm-80gb", "--offline", "--plot", str(chart)])
    for page, heading in ((check, "kvplan check: 4 of 4 deployments pass"), (chart, f"Concurrency of {LLAMA}")):
        shot = tmp_path / f"{page.stem}.png"
        common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
        subprocess.run(
            [*common, "--hide-scrollbars", "--window-size=1024,900", f"--screenshot={shot}", page.as_uri()],
            capture_output=True,
            check=True,
        )
        pixels = imread(shot)
        assert pixels.shape[:2] == (900, 1024)
        assert pixels[..., :3].std() > 0.05  # text, tables and lines drawn, not an empty page
        dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, check=True)
        assert "<table>" in dom.stdout and "<script" not in dom.stdout and heading in dom.stdout
