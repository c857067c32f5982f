"""Planning commands must start without torch or transformers (they cost seconds to import)."""

from __future__ import annotations

import subprocess
import sys

from conftest import config_path

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
        "max_model_len: 32k, max_num_seqs: 16}\n"
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
