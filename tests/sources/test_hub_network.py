"""When kvplan goes to the Hugging Face Hub, against a real loopback server that accepts and never answers.

Each test runs `python -m kvplan` in a child process with HF_ENDPOINT pointed at the server (huggingface_hub
reads it once, at import) and HF_HUB_CACHE at a temporary cache holding a fake snapshot. The server counts
the connections it accepts, so "no socket opened" is measured, not inferred from a mock.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvplan.planning.resolved import resolve
from kvplan.sources.configs import load_model_config

from conftest import TINY_LLAMA

SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = "acme/tiny"
HANG_GUARD_S = 120  # only so that a regression fails instead of hanging CI; the tests assert behaviour, not time


class SilentHub:
    """A TCP server on 127.0.0.1 that accepts every connection, reads nothing and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            self._held.append(conn)  # kept open, never answered

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_hub() -> Iterator[SilentHub]:
    server = SilentHub()
    yield server
    server.close()


def cache_snapshot(cache: Path, repo_id: str, config: dict, sha: str = SHA) -> Path:
    """`models--org--name/snapshots/<sha>/config.json` and `refs/main`, as huggingface_hub lays them out."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return snapshot


def run_kvplan(args: list[str], hub: SilentHub, cache: Path, timeout: str = "1") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")}
    env |= {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "KVPLAN_HUB_TIMEOUT": timeout, "HF_TOKEN": ""}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "kvplan", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=HANG_GUARD_S,
        check=False,
    )


def test_cached_config_opens_no_socket(tmp_path: Path, silent_hub: SilentHub) -> None:
    cache_snapshot(tmp_path, REPO, TINY_LLAMA)
    done = run_kvplan(["estimate", REPO, "--json"], silent_hub, tmp_path)
    assert done.returncode == 0, done.stderr
    assert silent_hub.connections == 0
    assert "Hugging Face Hub" not in done.stderr
    data = json.loads(done.stdout)
    assert (data["config_source"], data["revision"]) == ("hf-cache", SHA)
    assert data["weights_source"] == "analytic" and data["weights_bytes"] > 0


def test_recommend_and_check_of_a_cached_config_open_no_socket(tmp_path: Path, silent_hub: SilentHub) -> None:
    cache_snapshot(tmp_path / "hub", REPO, TINY_LLAMA)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"deployments:\n  - name: tiny\n    model: {REPO}\n    gpu: h100-sxm-80gb\n    max_model_len: 4096\n"
    )
    rec = run_kvplan(["recommend", REPO, "-g", "h100-sxm-80gb", "--json"], silent_hub, tmp_path / "hub")
    checked = run_kvplan(["check", str(plan), "--json"], silent_hub, tmp_path / "hub")
    assert rec.returncode == 0, rec.stderr
    assert checked.returncode == 0, checked.stderr
    assert silent_hub.connections == 0
    assert (json.loads(rec.stdout)["config_source"], json.loads(rec.stdout)["revision"]) == ("hf-cache", SHA)
    row = json.loads(checked.stdout)["deployments"][0]
    assert (row["config_source"], row["revision"]) == ("hf-cache", SHA)


def test_hub_weights_asks_says_so_and_gives_up_after_the_timeout(tmp_path: Path, silent_hub: SilentHub) -> None:
    cache_snapshot(tmp_path, REPO, TINY_LLAMA)
    done = run_kvplan(["estimate", REPO, "--hub-weights", "--json"], silent_hub, tmp_path)
    assert done.returncode == 0, done.stderr
    assert silent_hub.connections >= 1
    said = [line for line in done.stderr.splitlines() if "Hugging Face Hub" in line]
    assert said == [
        f"kvplan: asking the Hugging Face Hub ({silent_hub.url}) for the safetensors sizes of {REPO}@{SHA}, "
        "waiting at most 1 s (KVPLAN_HUB_TIMEOUT sets it; --offline or HF_HUB_OFFLINE=1 never asks)"
    ]
    data = json.loads(done.stdout)  # the Hub gave nothing: the analytic count stands
    assert data["weights_source"] == "analytic" and data["config_source"] == "hf-cache"


def test_uncached_config_against_a_hanging_hub_is_one_error(tmp_path: Path, silent_hub: SilentHub) -> None:
    done = run_kvplan(["estimate", REPO, "--json"], silent_hub, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"kvplan: asking the Hugging Face Hub ({silent_hub.url}) for config.json of {REPO}")
    assert (
        lines[1]
        == f"error: the Hugging Face Hub ({silent_hub.url}) did not answer within 1 s for config.json of {REPO}"
    )
    assert lines[2].startswith("hint: ") and len(lines) == 3
    assert silent_hub.connections >= 1


def test_bad_timeout_is_a_usage_error(tmp_path: Path, silent_hub: SilentHub) -> None:
    done = run_kvplan(["estimate", REPO], silent_hub, tmp_path, timeout="soon")
    assert done.returncode == 2 and silent_hub.connections == 0
    assert (
        done.stderr.splitlines()[0] == "error: KVPLAN_HUB_TIMEOUT='soon' is not a number of seconds between 0 and 3600"
    )


# --- the policy in-process (no sockets: the Hub lookup is replaced and recorded) --------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    return tmp_path


def record_hub_lookups(monkeypatch: pytest.MonkeyPatch, answer: int | None) -> list[str]:
    from kvplan.weights import safetensors

    asked: list[str] = []

    def lookup(repo_id: str, *, revision: str | None, token: str | None) -> int | None:
        asked.append(f"{repo_id}@{revision}")
        return answer

    monkeypatch.setattr(safetensors, "hub_weight_bytes", lookup)
    return asked


def test_policy_cached_countable_model_never_asks(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_snapshot(cache, REPO, TINY_LLAMA)
    asked = record_hub_lookups(monkeypatch, 123)
    resolved = resolve(REPO)
    assert resolved.weights("bfloat16")[1] == "analytic" and asked == []
    assert resolve(REPO, hub_weights=True).weights("bfloat16") == (123, "safetensors")
    assert asked == [f"{REPO}@{SHA}"]


def test_policy_cached_uncountable_model_asks_unless_offline_or_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mystery = {**TINY_LLAMA, "model_type": "mystery-decoder"}  # read llama-like, so its weights are not counted
    cache_snapshot(cache, REPO, mystery)
    asked = record_hub_lookups(monkeypatch, 4567)
    assert resolve(REPO, offline=True).weights("bfloat16") == (None, None) and asked == []
    assert resolve(REPO, hub_weights=False).weights("bfloat16") == (None, None) and asked == []
    assert resolve(REPO).weights("bfloat16") == (4567, "safetensors")
    assert asked == [f"{REPO}@{SHA}"]


def test_policy_downloaded_config_asks(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kvplan.sources import configs

    snapshot = cache_snapshot(cache / "elsewhere", REPO, TINY_LLAMA)
    monkeypatch.setattr(configs.hub, "cached_file", lambda *args: None)
    monkeypatch.setattr(configs.hub, "fetch_file", lambda *args, **kwargs: snapshot / "config.json")
    asked = record_hub_lookups(monkeypatch, 999)
    loaded = load_model_config(REPO)
    assert (loaded.source, loaded.revision) == ("hub", SHA)
    assert resolve(loaded).weights("bfloat16") == (999, "safetensors") and asked == [f"{REPO}@{SHA}"]


def test_every_planning_document_names_its_config_source(tmp_path: Path) -> None:
    from kvplan.planning.envelope import throughput
    from kvplan.planning.estimate import estimate
    from kvplan.planning.recommend import recommend

    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_LLAMA))
    for model, source in (("meta-llama/Llama-3.1-8B", "catalog"), (str(config), "file"), (str(tmp_path), "folder")):
        docs = [
            estimate(model).to_dict(),
            recommend(model, gpu_profile="h100-sxm-80gb", max_model_len=4096).to_dict(),
            throughput(model, gpu_profile="h100-sxm-80gb"),
        ]
        assert [(d["config_source"], d["revision"]) for d in docs] == [(source, None)] * 3, model
    assert estimate(TINY_LLAMA).to_dict()["config_source"] == "dict"


def test_the_estimate_table_says_where_the_config_came_from(cache: Path) -> None:
    from typer.testing import CliRunner

    from kvplan.cli import app

    cache_snapshot(cache, REPO, TINY_LLAMA)
    result = CliRunner().invoke(app, ["estimate", REPO, "--offline"])
    assert result.exit_code == 0, result.output
    assert f"Config: the Hugging Face cache, snapshot {SHA[:12]}\n" in result.stdout
    result = CliRunner().invoke(app, ["estimate", "meta-llama/Llama-3.1-8B"])
    assert "Config: kvplan's built-in catalog\n" in result.stdout


# --- hub_weights in plan files (check) and on explain: the same rule as estimate's --hub-weights ----------------


def check_rows(plan: Path, *args: str) -> list[dict]:
    from typer.testing import CliRunner

    from kvplan.cli import app

    result = CliRunner().invoke(app, ["check", str(plan), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["deployments"]


def write_plan(path: Path, *extra: str) -> Path:
    """One deployment of REPO per line of `extra` (a plan key for it, or "" for none)."""
    lines = ["deployments:"]
    for i, key in enumerate(extra):
        lines += [f"  - name: d{i}", f"    model: {REPO}", "    gpu: h100-sxm-80gb", "    max_model_len: 4096"]
        lines += [f"    {key}"] if key else []
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plan_hub_weights_key_follows_the_rule(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_snapshot(cache, REPO, TINY_LLAMA)  # a cached, countable config: the Hub only when asked
    asked = record_hub_lookups(monkeypatch, 123)
    plan = write_plan(tmp_path / "plan.yaml", "", "hub_weights: true", "hub_weights: false")
    rows = check_rows(plan)
    assert [(r["weights_source"], r["weights_bytes"] == 123) for r in rows] == [
        ("analytic", False),
        ("safetensors", True),
        ("analytic", False),
    ]
    assert asked == [f"{REPO}@{SHA}"]  # the one deployment that asked, once
    asked.clear()
    rows = check_rows(plan, "--hub-weights")  # for the deployments that set no hub_weights; false stays false
    assert [r["weights_source"] for r in rows] == ["safetensors", "safetensors", "analytic"]
    assert asked == [f"{REPO}@{SHA}"]  # the first two share one read of the model


def test_plan_hub_weights_false_never_asks(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_snapshot(cache, REPO, {**TINY_LLAMA, "model_type": "mystery-decoder"})  # uncountable: asked by default
    from typer.testing import CliRunner

    from kvplan.cli import app

    asked = record_hub_lookups(monkeypatch, 4567)
    refused = CliRunner().invoke(app, ["check", str(write_plan(tmp_path / "no.yaml", "hub_weights: false"))])
    assert refused.exit_code == 2 and "cannot count this model's weights" in refused.stderr, refused.output
    assert asked == []
    rows = check_rows(write_plan(tmp_path / "plan.yaml", ""))
    assert [(r["weights_source"], r["weights_bytes"]) for r in rows] == [("safetensors", 4567)]
    assert asked == [f"{REPO}@{SHA}"]


def test_plan_hub_weights_must_be_a_boolean(cache: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kvplan.cli import app

    cache_snapshot(cache, REPO, TINY_LLAMA)
    result = CliRunner().invoke(app, ["check", str(write_plan(tmp_path / "plan.yaml", "hub_weights: 1"))])
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and lines[0].startswith("error: ") and "hub_weights" in lines[0], lines
    assert "true or false" in result.stderr


VLLM_LOG = "\n".join(  # a vLLM 0.19 start-up log's budget lines (the figures are not the point here)
    [
        "non-default args: {'model': 'acme/tiny', 'max_model_len': 4096}",
        "Model loading took 0.50 GiB memory and 2.0 seconds",
        "Available KV cache memory: 60.00 GiB",
    ]
)


def test_explain_hub_weights(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kvplan.cli import app

    cache_snapshot(cache, REPO, TINY_LLAMA)
    asked = record_hub_lookups(monkeypatch, 123)
    log = tmp_path / "vllm.log"
    log.write_text(VLLM_LOG + "\n")
    args = ["explain", str(log), "--model", REPO, "-g", "h100-sxm-80gb", "--vllm-version", "0.19.0", "--json"]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code in (0, 1), plain.output
    assert asked == []
    hub = CliRunner().invoke(app, [*args, "--hub-weights"])
    assert hub.exit_code in (0, 1), hub.output
    assert asked == [f"{REPO}@{SHA}"]
    weights = {n["name"]: n for n in json.loads(hub.stdout)["numbers"]}["weights_memory"]
    assert weights["kvplan"] != {n["name"]: n for n in json.loads(plain.stdout)["numbers"]}["weights_memory"]["kvplan"]
