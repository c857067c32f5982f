"""GPU price tables: USD per GPU-hour per GPU profile, each price with its source and date.

The shipped table is `profiles/prices/gpu_prices.yaml` (installed as `kvplan/profiles/prices/`); `--price-file`
replaces it. A file is read with the line-numbered safe YAML loader, and every problem in it is reported at once
(one line, `; `-separated, each with its line), so a file is fixed in one pass. Pure Python, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvplan.errors import ConfigError

PRICE_FILE = "gpu_prices.yaml"
REQUIRED = ("gpu_profile", "usd_per_gpu_hour", "source", "date")
OPTIONAL = ("provider",)
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$")  # 2026-05-07, or 2026-06


@dataclass(frozen=True)
class Price:
    gpu_profile: str
    usd_per_gpu_hour: float
    source: str
    date: str
    provider: str | None
    file: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu_profile": self.gpu_profile,
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "provider": self.provider,
            "source": self.source,
            "date": self.date,
            "file": self.file,
        }


def builtin_price_file() -> Any:
    from kvplan.sources.hardware import builtin_profiles_dir

    return builtin_profiles_dir() / "prices" / PRICE_FILE


def load_prices(path: str | Path | None = None) -> dict[str, Price]:
    """gpu_profile -> Price of the file at `path` (None: the shipped table)."""
    from kvplan.sources.yaml_files import child, did_you_mean, load_yaml, node_line, read_text

    if path is None:
        shipped = builtin_price_file()
        text, label = shipped.read_text(encoding="utf-8"), f"kvplan/profiles/prices/{PRICE_FILE}"
    else:
        text, label = read_text(path, what="price file"), str(path)
    hint = "each entry: gpu_profile, usd_per_gpu_hour, source, date (YYYY-MM-DD); see the shipped gpu_prices.yaml"
    data, root = load_yaml(label, text, hint=hint)
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise ConfigError(f"{label}: a price file is a mapping with a 'prices' list", hint=hint)
    problems: list[str] = []
    extra = sorted(set(map(str, data)) - {"currency", "prices"})
    if extra:
        problems.append(
            f"line {node_line(root)}: unknown key {extra[0]!r}{did_you_mean(extra[0], ['currency', 'prices'])}"
        )
    if data.get("currency", "USD") != "USD":
        problems.append(f"line {node_line(child(root, 'currency'))}: currency must be USD, got {data['currency']!r}")
    entries = child(root, "prices")
    nodes = entries.value if entries is not None and hasattr(entries, "value") else []
    prices: dict[str, Price] = {}
    for index, entry in enumerate(data["prices"]):
        node = nodes[index] if index < len(nodes) else None
        where = f"line {node_line(node)}: prices[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping")
            continue
        for key in sorted(set(map(str, entry)) - set(REQUIRED) - set(OPTIONAL)):
            problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, REQUIRED + OPTIONAL)}")
        missing = [key for key in REQUIRED if key not in entry]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        gpu, usd, source, date = (entry[k] for k in REQUIRED)
        ok = True
        if not isinstance(gpu, str) or not gpu.strip():
            problems.append(f"{where}: gpu_profile must be a profile id, got {gpu!r}")
            ok = False
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not 0 < usd < 1e6:
            problems.append(f"{where}: usd_per_gpu_hour must be a positive number, got {usd!r}")
            ok = False
        if not isinstance(source, str) or not source.strip():
            problems.append(f"{where}: source must say where the price was published")
            ok = False
        if not isinstance(date, str) or not _DATE.match(date):
            problems.append(f"{where}: date must be YYYY-MM-DD (or YYYY-MM), quoted, got {date!r}")
            ok = False
        provider = entry.get("provider")
        if provider is not None and not isinstance(provider, str):
            problems.append(f"{where}: provider must be text, got {provider!r}")
            ok = False
        if ok and gpu in prices:
            problems.append(f"{where}: a second price for {gpu!r}")
            ok = False
        if ok:
            prices[gpu] = Price(gpu, float(usd), source, date, provider, label)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"{label}: {count}: " + "; ".join(problems), hint=hint)
    return prices
