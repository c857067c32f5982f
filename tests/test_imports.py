"""Planning commands must start without torch or transformers (they cost seconds to import)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, config_path

HEAVY = ("torch", "transformers", "accelerate")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_estimate_command_imports_no_torch():
    code = (
        "from typer.testing import CliRunner\nfrom kvplan.cli import app\n"
        f"r = CliRunner().invoke(app, ['estimate', {str(config_path('meta-llama__Llama-3.1-8B'))!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(app, ['estimate', {str(config_path('deepseek-ai__DeepSeek-V3'))!r}, '-s', '1k..8k'])\n"
        "assert r.exit_code == 0, r.output"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_check_command_imports_no_torch(tmp_path):
    plan = tmp_path / "kvplan.yaml"
    plan.write_text(
        "deployments:\n  - {name: a, model: meta-llama/Llama-3.1-8B, gpu: h100-sxm-80gb, "
        "max_model_len: 32k, concurrency: 16}\n"
    )
    code = (
        "from typer.testing import CliRunner\nfrom kvplan.cli import app\n"
        f"r = CliRunner().invoke(app, ['check', {str(plan)!r}, '--json'])\n"
        "assert r.exit_code == 1, r.output"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_library_import_is_light():
    loaded = _modules_after("import kvplan, kvplan.cli")
    assert not loaded & set(HEAVY)
    assert "huggingface_hub" not in loaded  # imported only on the Hub path


def test_profile_help_imports_no_torch():
    code = (
        "from typer.testing import CliRunner\nfrom kvplan.cli import app\n"
        "r = CliRunner().invoke(app, ['profile', '--help'])\n"
        "assert r.exit_code == 0 and '--find-max-batch' in r.output, r.output"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_library_api_is_lazy_about_the_profiler_and_yaml():
    loaded = _modules_after("import kvplan\nkvplan.estimate('meta-llama/Llama-3.1-8B', offline=True)")
    assert not loaded & set(HEAVY)
    assert "kvplan.profiling.profiler" not in loaded and "yaml" not in loaded  # kvplan.check reads YAML: lazy
    loaded = _modules_after("import kvplan\nkvplan.check")
    assert "kvplan.checking.check" in loaded and not loaded & set(HEAVY)


def _modules_of_command(args: list[str]) -> set[str]:
    """The modules one run of the real entry point (`kvplan ARGS`) imports, read back from stderr."""
    code = (
        "import sys\nfrom kvplan.cli import main\n"
        f"sys.argv = ['kvplan', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stderr.rsplit("MODULES ", 1)[1].split())


# What the `--json` estimate path does not import (each costs 10-300 ms at every start): Rich's console and
# tables (the JSON document is written with the stdlib), pydantic (Typer's coercion, skipped for kvplan's text
# options and flags by kvplan.cli.Command), YAML (plans and profiles only), the planner and matplotlib (--plot).
JSON_PATH_AVOIDS = (
    "rich.console",
    "rich.table",
    "pydantic",
    "typer._adapters",
    "yaml",
    "kvplan.planning.recommend",
    "matplotlib",
)


@pytest.mark.parametrize(
    "args",
    [
        ["estimate", str(config_path("meta-llama__Llama-3.1-8B")), "--seq-len", "32k", "--json"],
        ["estimate", "meta-llama/Llama-3.1-8B", "--seq-len", "1k..128k", "--tp", "2", "--json"],
    ],
    ids=["config", "sweep"],
)
def test_json_estimate_path_imports_neither_rich_nor_pydantic(args):
    loaded = _modules_of_command(args)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert not [m for m in JSON_PATH_AVOIDS if m in loaded], [m for m in JSON_PATH_AVOIDS if m in loaded]


def test_text_options_keep_typers_values_without_pydantic():
    """kvplan.cli.Command's coercion gives what Typer's does: text as given, lists for repeated options."""
    from typer.testing import CliRunner

    from kvplan.cli import app

    configs = sorted((ROOT / "examples" / "engine-configs").iterdir())[:2]
    args = ["check", *(a for c in configs for a in ("--engine-config", str(c))), "--gpu", "h100-sxm-80gb", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    assert [d["source"] for d in json.loads(result.stdout)["deployments"]] == [str(c) for c in configs]
    result = CliRunner().invoke(app, ["estimate", "meta-llama/Llama-3.1-8B", "--batch", " 2 ", "--json"])
    assert result.exit_code == 0 and '"batch": 2' in result.stdout
