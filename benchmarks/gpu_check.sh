#!/usr/bin/env bash
# kvplan profile on a lent GPU machine, in one go: a grid of real prefill/decode passes on four architectures with
# random weights (reduced where big), the dynamic and static caches, --find-max-batch against kvplan's prediction, and
# decode tokens/s against the roofline bound of the GPU's hardware profile.
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh          # on the GPU (GPU 0): within 8 minutes
#   OUT=/tmp/x bash benchmarks/gpu_check.sh --cpu          # tiny models and lengths on the CPU: a smoke test (< 1 min)
#   KVPLAN_GPU_CHECK_CPU=1 OUT=/tmp/x bash benchmarks/gpu_check.sh
#
# Installs nothing and reaches no network: it runs the checkout as it is (`PYTHONPATH=.`, `python3 -m kvplan`) with the
# machine's torch, transformers and accelerate, and model configs from kvplan's catalog (random weights). Writes to
# $OUT (default ./gpu-check-out):
#   gpu_check.json      every run's `kvplan profile` JSON report (or why it has none), with its command line
#   gpu_check.md        one Markdown table of the runs (KV measured vs estimated, peak, decode tok/s vs roofline)
#                       and one of the searches (largest batch measured vs predicted)
#   <name>.json / <name>.txt / <name>.err   each run's report, its table, its stderr (progress lines)
# Each run has a wall-clock budget (`timeout`), so the whole stays within 8 minutes however a model behaves; a run
# that runs out of time or fails is a row saying so, and the others go on (KVPLAN_GPU_CHECK_BUDGET_S sets the CPU
# mode's budget per model; PYTHON the interpreter, default python3). Exit code 0 when at least one run produced a
# report, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

CPU=${KVPLAN_GPU_CHECK_CPU:-0}
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $arg (use --cpu)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 COLUMNS=${COLUMNS:-160}
SYN=tests/fixtures/synthetic_configs

# name | model | --layers (- for all) | --seq-len | --batch | --cache | --find-max-batch (yes/no) | budget in s
# (the budgets add up to 400 s on the GPU: with 10 s each to stop and the summary, the run ends within 8 minutes)
if [ "$CPU" = 1 ]; then
  DEVICE=(--device cpu)
  COMMON=(--decode-tokens 2 --repeats 1)
  SEARCH=(--find-max-batch --memory-limit 32MiB)
  B=${KVPLAN_GPU_CHECK_BUDGET_S:-90}  # each takes a few seconds on an idle machine
  MODELS=(
    "llama|$SYN/llama_tiny.json|-|16|1|dynamic|yes|$B"
    "sliding-window|$SYN/mistral_sw.json|-|24|1|dynamic,static|no|$B"
    "mla|$SYN/deepseek_v3_tiny.json|-|16|1|dynamic,static|no|$B"
    "hybrid|$SYN/qwen3_next.json|-|16|1|dynamic,static|no|$B"
  )
else
  DEVICE=(--gpu 0)
  COMMON=(--decode-tokens 32 --repeats 2)
  SEARCH=(--find-max-batch --memory-limit 24GiB)  # bounded probes
  MODELS=(
    "llama-3.1-8b-L8|meta-llama/Llama-3.1-8B|8|1k,4k|1,16|dynamic,static|no|80"
    "llama-3.1-8b-L8-search|meta-llama/Llama-3.1-8B|8|4k|1|dynamic,static|yes|80"
    "gemma-3-1b-sliding|google/gemma-3-1b-it|-|1k,4k|1,16|dynamic,static|no|70"
    "deepseek-v2-lite-mla-L4|deepseek-ai/DeepSeek-V2-Lite|4|2k|1,8|dynamic,static|yes|90"
    "qwen3-next-hybrid-L4|Qwen/Qwen3-Next-80B-A3B|4|1k,2k|1,8|dynamic,static|no|80"
  )
fi

echo "gpu_check: $([ "$CPU" = 1 ] && echo cpu || echo gpu) mode, ${#MODELS[@]} runs, writing to $OUT"
"$PY" -m kvplan --version > "$OUT/kvplan-version.txt" 2>&1
SETTINGS="$OUT/settings.tsv"
: > "$SETTINGS"
for row in "${MODELS[@]}"; do
  IFS='|' read -r name model layers seqs batches caches search budget <<< "$row"
  args=(profile "$model" "${DEVICE[@]}" --random-weights --offline --seq-len "$seqs" --batch "$batches" --cache "$caches")
  args+=("${COMMON[@]}")
  [ "$layers" != "-" ] && args+=(--layers "$layers")
  [ "$search" = yes ] && args+=("${SEARCH[@]}")
  start=$SECONDS
  timeout -k 10 "$budget" "$PY" -m kvplan "${args[@]}" -o "$OUT/$name.json" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  code=$?
  took=$((SECONDS - start))
  echo "gpu_check: $name exit $code in ${took}s"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$model" "$code" "$took" "kvplan ${args[*]}" >> "$SETTINGS"
done

# the summary: one JSON document and one Markdown table from the reports (standard library only)
"$PY" - "$OUT" "$CPU" <<'EOF'
import json
import sys
from pathlib import Path

out, cpu = Path(sys.argv[1]), sys.argv[2] == "1"
models = []
for line in (out / "settings.tsv").read_text().splitlines():
    name, model, code, took, command = line.split("\t")
    entry = {"name": name, "model": model, "exit_code": int(code), "seconds": int(took), "command": command}
    report = out / f"{name}.json"
    if report.exists():
        entry["report"] = json.loads(report.read_text())
    else:
        err = (out / f"{name}.err").read_text(errors="replace").strip().splitlines()
        entry["why"] = "timed out" if int(code) in (124, 137) else (err[-1] if err else f"exit {code}")
    models.append(entry)


def size(n):
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n} B"


def num(x, fmt="{:,.1f}"):
    return "-" if x is None else fmt.format(x)


runs = [
    "| model | cache | batch | prompt | KV measured | KV estimated | ratio | peak | decode tok/s | roofline tok/s | of bound |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
searches = [
    "| model | cache | prompt | largest batch measured | predicted | measured / predicted | weights+KV bound | limit |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
]
for m in models:
    report = m.get("report")
    if report is None:
        runs.append(f"| {m['name']} | {m['why']} | | | | | | | | | |")
        continue
    for r in report["runs"]:
        if r["oom"] or r["error"]:
            runs.append(f"| {m['name']} | {r['cache']} | {r['batch']} | {r['seq_len']} | {'out of memory' if r['oom'] else r['error']} | | | | | | |")
            continue
        tps, bound = r["decode_tokens_per_s"], r["decode_tokens_per_s_upper_bound"]
        share = f"{tps / bound:.0%}" if tps and bound else "-"
        runs.append(
            f"| {m['name']} | {r['cache']} | {r['batch']} | {r['seq_len']} | {size(r['kv_cache_bytes_measured'])} "
            f"| {size(r['kv_cache_bytes_estimated'])} | {num(r['kv_cache_ratio'], '{:.3f}')} | {size(r['peak_memory_bytes'])} "
            f"| {num(tps)} | {num(bound)} | {share} |"
        )
    for cache, why in report["skipped_caches"].items():
        runs.append(f"| {m['name']} | {cache} | | | skipped: {why[:80]} | | | | | | |")
    for s in report["searches"]:
        searches.append(
            f"| {m['name']} | {s['cache']} | {s['fixed'].get('seq_len', '-')} | {s['measured_max']} | {num(s['predicted_max'], '{}')} "
            f"| {num(s['ratio'], '{:.3f}')} | {num(s['predicted_max_kv_only'], '{}')} | {size(s['limit_bytes'])} |"
        )
env = next((m["report"]["env"] for m in models if "report" in m), {})
head = f"kvplan gpu_check ({'cpu smoke test' if cpu else 'GPU'}): {env.get('device', '?')}, torch {env.get('torch', '?')}, transformers {env.get('transformers', '?')}"
table = "\n".join([f"## {head}", "", *runs, "", "### --find-max-batch", "", *searches, ""])
(out / "gpu_check.md").write_text(table)
summary = {"schema": "kvplan.gpu_check/1", "mode": "cpu" if cpu else "gpu", "env": env, "models": models}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
print(table)
sys.exit(0 if any("report" in m for m in models) else 1)
EOF
