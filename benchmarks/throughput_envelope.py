"""The throughput envelope against 3,596 measured TTFT/TPOT rows (tests/fixtures/measurements, README there).

Prints (1) how the rows map to kvplan: catalog model, GPU profile, weight formats, layout, and every row left
out with its reason; (2) the invariant: measured decode tokens/s (`batch_size x 1000 / silicon_tpot_ms`, per
attention-DP rank) never above kvplan's upper bound, on every usable row; (3) the calibrated estimate's error on
models it was not fitted on (leave one model out: the efficiencies per GPU x engine x precision are fitted on
every other model's rows), median and p90 of |estimate - measured| / measured for TPOT and TTFT.

    python benchmarks/throughput_envelope.py            # print the figures
    python benchmarks/throughput_envelope.py --write    # also refit on every row: kvplan/planning/throughput_efficiency.json

Row semantics (aiconfigurator's silicon_sample.csv): an instance is tp x pp x attention_dp GPUs; `batch_size`
(`decode_batch_size` for a disaggregated row's decode worker) is the batch of one attention-DP rank, as the
`silicon_concurrency` in `silicon_data_source` shows (concurrency = batch x attention_dp x decode workers).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import io
import json
import math
import re
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kvplan.planning import envelope as E

CSV = ROOT / "tests" / "fixtures" / "measurements" / "serving_latency_measured.csv.gz"
OUT = ROOT / "kvplan" / "planning" / E.EFFICIENCY_FILE
SYSTEMS = {"h100_sxm": "h100-sxm-80gb", "b200_sxm": "b200"}  # gb200: kvplan has no GB200 profile
# the CSV's precision "" (Qwen3-32B, Llama-3.1-8B-Instruct): not recorded, read as the checkpoint's bf16
UNRECORDED_PRECISION = "bf16"


@dataclass(frozen=True)
class Point:
    """One usable measured row: what kvplan needs for the envelope of its decode worker, and the measurement."""

    row_id: str
    model: str  # the catalog name it maps to
    csv_model: str
    gpu: str
    engine: str
    precision: str
    mode: str
    gemm: str
    moe: str
    layout: E.Layout
    prefill_layout: E.Layout
    batch: int  # per attention-DP rank
    isl: int
    osl: int
    tpot_ms: float
    ttft_ms: float

    @property
    def measured_tokens_per_s(self) -> float:
        return self.batch * 1000 / self.tpot_ms


def read_rows(path: Path = CSV) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(io.StringIO(f.read())))


def catalog_name(model_path: str) -> tuple[str | None, str]:
    """(catalog name, how) for a CSV model: an exact catalog name, a documented alias, a quantized build's name
    (kvplan.sources.catalog.QUANTIZED_SUFFIXES), else (None, why)."""
    from kvplan.sources import catalog

    if catalog.catalog_path(model_path) is not None:
        return model_path, "catalog"
    aliases = catalog.alias_matches(model_path)
    if len(aliases) == 1:
        return aliases[0].config, "alias"
    built = catalog.quantized_build(model_path)
    if built is not None:
        return built[0], f"quantized build ({built[1]})"
    return None, "not in the catalog (no exact name or documented alias)"


def _int(text: str, default: int = 1) -> int:
    """A layout column: empty or 0 (not set) reads as the default."""
    value = int(text) if text.strip() else 0
    return value if value > 0 else default


def _engine(backend: str) -> str:
    from kvplan.engines.registry import lookup

    entry = lookup(backend)
    return entry.name if entry is not None else backend


def _concurrency(row: dict[str, str]) -> int | None:
    found = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    return int(found.group(1)) if found else None


def to_point(row: dict[str, str]) -> tuple[Point | None, str]:
    """The row as a Point, or (None, the reason kvplan cannot express it)."""
    name, how = catalog_name(row["model_path"])
    if name is None:
        return None, f"model {row['model_path']}: {how}"
    gpu = SYSTEMS.get(row["system"])
    if gpu is None:
        return None, f"system {row['system']}: no kvplan GPU profile"
    precision = row["precision"] or UNRECORDED_PRECISION
    gemm = row["gemm_quant_mode"] or precision
    moe = row["moe_quant_mode"] or gemm
    if gemm not in E.WEIGHT_BITS or moe not in E.WEIGHT_BITS:
        return None, f"quant modes {gemm}/{moe}: no weight format"
    if row["mode"] == "agg":
        tp, pp, adp = _int(row["tp_size"]), _int(row["pp_size"]), _int(row["attention_dp_size"])
        batch_text, workers = row["batch_size"], 1
        ptp, ppp, padp = tp, pp, adp
    else:
        tp, pp, adp = _int(row["decode_tp_size"]), _int(row["decode_pp_size"]), _int(row["decode_attention_dp_size"])
        batch_text, workers = row["decode_batch_size"], _int(row["decode_num_workers"], 0)
        ptp, ppp = _int(row["prefill_tp_size"]), _int(row["prefill_pp_size"])
        padp = _int(row["prefill_attention_dp_size"])
        if not batch_text.strip() or not workers:
            return None, "disaggregated row without decode_batch_size / decode_num_workers: batch per worker unknown"
    batch = int(batch_text)
    conc = _concurrency(row)
    if conc is not None and conc != batch * adp * workers:
        return None, "silicon_concurrency is not batch x attention_dp x workers: the batch measured is ambiguous"
    if pp != 1:
        return None, "pipeline parallelism (no row has it)"
    point = Point(
        row_id=row["id"],
        model=name,
        csv_model=row["model_path"],
        gpu=gpu,
        engine=_engine(row["backend"]),
        precision=E.PRECISION[gemm],
        mode=row["mode"],
        gemm=gemm,
        moe=moe,
        layout=E.Layout(tp=tp, attention_dp=adp, pp=pp),
        prefill_layout=E.Layout(tp=ptp, attention_dp=padp, pp=ppp),
        batch=batch,
        isl=int(row["isl"]),
        osl=int(row["osl"]),
        tpot_ms=float(row["silicon_tpot_ms"]),
        ttft_ms=float(row["silicon_ttft_ms"]),
    )
    return point, ""


_MODELS: dict[str, Any] = {}


def model(name: str) -> tuple[Any, E.Weights]:
    if name not in _MODELS:
        from kvplan.planning.resolved import resolve

        resolved = resolve(name, offline=True)
        _MODELS[name] = (resolved.shape, E.weights_of(resolved.config))
    return _MODELS[name]


def smallest_kv_dtype(profile: Any) -> str:
    """The CSV does not record the KV dtype: the bound takes the smallest the GPU's profile lists."""
    from kvplan.core.units import canonical_dtype, dtype_bytes

    listed = [d for d in profile.kv_cache_dtypes if d != "auto"]
    return min((canonical_dtype(d) for d in listed), key=dtype_bytes)


def evaluate(p: Point, efficiency: dict[str, Any] | None = None) -> dict[str, Any]:
    from kvplan.sources.hardware import load_profile

    shape, weights = model(p.model)
    profile = load_profile(p.gpu)
    common = {"gemm": p.gemm, "moe": p.moe, "kv_dtype": smallest_kv_dtype(profile), "engine": p.engine}
    out = E.envelope(
        shape,
        weights,
        profile,
        p.layout,
        batch=p.batch,
        isl=p.isl,
        osl=p.osl,
        precision=p.precision,
        efficiency=efficiency,
        aggregated=p.mode == "agg",
        **common,
    )
    prefill = E.envelope(
        shape,
        weights,
        profile,
        p.prefill_layout,
        batch=1,
        isl=p.isl,
        osl=p.osl,
        precision=p.precision,
        efficiency=efficiency,
        **common,
    )
    out["ttft_ms_lower_bound"] = prefill["ttft_ms_lower_bound"]
    out["ttft_ms_estimate"] = prefill["ttft_ms_estimate"]
    # per attention-DP rank, as the CSV's batch_size is
    out["rank_tokens_per_s_upper_bound"] = out["decode_tokens_per_s_upper_bound"] / p.layout.attention_dp
    return out


def usable(rows: list[dict[str, str]]) -> tuple[list[Point], Counter[str], dict[str, str]]:
    points, reasons, unmapped = [], Counter(), {}
    for row in rows:
        point, why = to_point(row)
        if point is None:
            reasons[why] += 1
            if why.startswith("model "):
                unmapped[row["model_path"]] = why
        else:
            points.append(point)
    return points, reasons, unmapped


def key_of(p: Point) -> str:
    return f"{p.gpu}|{p.engine}|{p.precision}"


_BASE: dict[str, dict[str, Any]] = {}


def base(p: Point) -> dict[str, Any]:
    """The point's envelope without efficiencies (bounds and roofline model times), computed once."""
    if p.row_id not in _BASE:
        _BASE[p.row_id] = evaluate(p)
    return _BASE[p.row_id]


TAUS = (0.0, 10e-6, 20e-6, 30e-6, 40e-6, 60e-6, 80e-6, 120e-6)  # per-layer step latencies tried (s)


def model_seconds(p: Point, tau: float) -> float:
    """kvplan's roofline TPOT of the point (expected traffic, prefill share) plus `tau` per layer."""
    ev = base(p)
    return ev["model_tpot_ms"] / 1e3 + tau * model(p.model)[0].num_layers


def fit(points: list[Point], tau: float | None = None) -> dict[str, Any]:
    """Efficiencies (model time / measured time, geometric median) per GPU x engine x precision, with the
    GPU x engine and GPU levels as fallbacks, and the per-layer step latency (`tau`; None: the one of TAUS
    whose fit has the smallest median TPOT error on these points)."""
    if tau is None:
        scores = []
        for candidate in TAUS:
            factors = fit(points, candidate)
            errors = [E.log_error(estimate(p, factors)[0] or math.inf, p.tpot_ms) for p in points]
            scores.append((statistics.median(errors), candidate))
        tau = min(scores)[1]
    ratios: dict[str, dict[str, list[float]]] = {"decode": defaultdict(list), "prefill": defaultdict(list)}
    for p in points:
        ev = base(p)
        for key in (key_of(p), f"{p.gpu}|{p.engine}|*", f"{p.gpu}|*|*"):
            ratios["decode"][key].append(math.log(model_seconds(p, tau) * 1e3 / p.tpot_ms))
            ratios["prefill"][key].append(math.log(ev["ttft_ms_lower_bound"] / p.ttft_ms))
    factors: dict[str, Any] = {
        phase: {k: round(math.exp(statistics.median(v)), 4) for k, v in sorted(by_key.items())}
        for phase, by_key in ratios.items()
    }
    factors["layer_step_seconds"] = tau
    return factors


def estimate(p: Point, factors: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """(TPOT, TTFT estimates in ms, the decode factor's key) of a point with these factors."""
    ev = base(p)
    decode, key = E.factor_for(factors.get("decode", {}), p.gpu, p.engine, p.precision)
    prefill, _ = E.factor_for(factors.get("prefill", {}), p.gpu, p.engine, p.precision)
    tpot = model_seconds(p, factors.get("layer_step_seconds", 0.0)) * 1e3 / decode if decode else None
    ttft = ev["ttft_ms_lower_bound"] / prefill if prefill else None
    return tpot, ttft, key


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def held_out(points: list[Point]) -> dict[str, Any]:
    """Leave one model out: fit on the other models' rows, estimate this model's."""
    by_model: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_model[p.model].append(p)
    tpot, ttft, per_model, levels, taus = [], [], {}, Counter(), Counter()
    for name, mine in sorted(by_model.items()):
        factors = fit([p for p in points if p.model != name])
        taus[factors["layer_step_seconds"]] += 1
        errs = []
        for p in mine:
            tpot_est, ttft_est, key = estimate(p, factors)
            if tpot_est is None:
                levels["no factor"] += 1
                continue
            levels[key.count("*")] += 1
            errs.append(E.log_error(tpot_est, p.tpot_ms))
            if ttft_est is not None:
                ttft.append(E.log_error(ttft_est, p.ttft_ms))
        tpot += errs
        if errs:
            per_model[name] = (len(errs), statistics.median(errs))
    return {"tpot": tpot, "ttft": ttft, "per_model": per_model, "levels": levels, "taus": taus}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"refit on every usable row and write {OUT.name}")
    args = parser.parse_args(argv)
    rows = read_rows()
    points, reasons, unmapped = usable(rows)
    print(f"rows: {len(rows)}; usable: {len(points)}; left out: {len(rows) - len(points)}")
    for why, n in reasons.most_common():
        print(f"  left out {n:4d}: {why}")
    for name in sorted(unmapped):
        print(f"  unmapped model: {name}")
    violations = []
    for p in points:
        ev = base(p)
        if p.measured_tokens_per_s > ev["rank_tokens_per_s_upper_bound"]:
            violations.append((p, ev))
    print(f"invariant: {len(points)} rows checked, {len(violations)} above the decode bound")
    for p, ev in violations[:20]:
        print(
            f"  VIOLATION {p.row_id}: measured {p.measured_tokens_per_s:.1f} tok/s > bound "
            f"{ev['rank_tokens_per_s_upper_bound']:.1f}"
        )
    ratios = sorted(p.measured_tokens_per_s / base(p)["rank_tokens_per_s_upper_bound"] for p in points)
    print(f"measured / bound: median {statistics.median(ratios):.3f}, max {max(ratios):.3f}")
    result = held_out(points)
    tpot, ttft = result["tpot"], result["ttft"]
    print(
        f"held-out TPOT (leave one model out): {len(tpot)} rows, median |error| {statistics.median(tpot):.1%}, "
        f"p90 {quantile(tpot, 0.9):.1%}"
    )
    print(
        f"held-out TTFT (leave one model out): {len(ttft)} rows, median |error| {statistics.median(ttft):.1%}, "
        f"p90 {quantile(ttft, 0.9):.1%}"
    )
    print(
        "  per-layer step latency chosen per fold: "
        + ", ".join(f"{t * 1e6:g} us x {n}" for t, n in sorted(result["taus"].items()))
    )
    print("  factor level used: " + ", ".join(f"{k}: {v}" for k, v in sorted(result["levels"].items(), key=str)))
    for name, (n, med) in sorted(result["per_model"].items()):
        print(f"  {name}: {n} rows, median TPOT |error| {med:.1%}")
    if args.write:
        data = {
            "about": (
                "Efficiency (kvplan's roofline time / measured time, geometric median) per 'GPU profile|engine|"
                "precision', with 'GPU|engine|*' and 'GPU|*|*' fallbacks; decode from TPOT (the roofline at the "
                "mean context with expected experts, the prefill share of aggregated serving and "
                "layer_step_seconds per layer, over the efficiency), prefill from TTFT (its lower bound over it). "
                "Written by benchmarks/throughput_envelope.py --write; read by kvplan.planning.envelope."
            ),
            "source": "tests/fixtures/measurements/serving_latency_measured.csv.gz (aiconfigurator silicon_sample.csv"
            " @ 095f58a51c4ca8e61b66ec108d86f223f8d559ce, H100 SXM and B200 rows; see the README there)",
            "fitted": datetime.date.today().isoformat(),
            "rows": len(points),
            "held_out": {
                "method": "leave one model out",
                "tpot_rows": len(tpot),
                "tpot_median_relative_error": round(statistics.median(tpot), 4),
                "tpot_p90_relative_error": round(quantile(tpot, 0.9), 4),
                "ttft_rows": len(ttft),
                "ttft_median_relative_error": round(statistics.median(ttft), 4),
                "ttft_p90_relative_error": round(quantile(ttft, 0.9), 4),
            },
        }
        fitted = fit(points)
        data["layer_step_seconds"] = fitted.pop("layer_step_seconds")
        data["factors"] = fitted
        OUT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
