"""Tests for kvplan.sources.hardware and the shipped profiles/*.yaml: schema, lookups, overrides, and strict errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kvplan.errors import ProfileError
from kvplan.sources.hardware import (
    HardwareProfile,
    builtin_profiles_dir,
    list_profiles,
    load_profile,
    profile_template,
    search_dirs,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "profiles").glob("*.yaml"))
REQUIRED_IDS = {
    "t4",
    "l4",
    "a10",
    "a10g",
    "l40s",
    "a100-pcie-40gb",
    "a100-sxm-40gb",
    "a100-pcie-80gb",
    "a100-sxm-80gb",
    "h100-pcie-80gb",
    "h100-sxm-80gb",
    "h100-nvl-94gb",
    "h200",
    "h20",
    "b200",
    "mi250x",
    "mi300x",
    "mi325x",
    "rtx-3090",
    "rtx-4090",
    "rtx-5090",
    "rtx-a6000",
    "rtx-a4000",
    "8gb",
    "16gb",
    "24gb",
    # the GPUs of the 2026 logs (issue 13 point 4)
    "gb10",
    "gh200",
    "gb200",
    "b300",
    "gb300",
    "mi355x",
    "r9700",
    "rtx-pro-6000",
    "rtx-5090-laptop",
    "l20",
    "h800",
}

GOOD = """\
id: {id}
name: "Test GPU"
vendor: nvidia
aliases: ["Test GPU Alias"]
memory_bytes: {memory}
memory_bandwidth_bytes_per_s: 1000000000000
dense_tflops: {{fp32: 10, bf16: 100, fp16: 100, fp8: null, int8: 200}}
kv_cache_dtypes: [auto, fp16, bf16]
interconnect: {{type: pcie4, bandwidth_bytes_per_s: 64000000000}}
sources:
  memory_bytes: "test"
  memory_bandwidth_bytes_per_s: "test"
  dense_tflops: "test"
"""


@pytest.fixture(autouse=True)
def _isolated_user_dir(monkeypatch, tmp_path):
    """Keep the developer's ~/.config/kvplan/profiles out of the tests."""
    monkeypatch.delenv("KVPLAN_PROFILES_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(directory: Path, stem: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path, **kwargs) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile(str(path), **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    assert path.name in message, message
    return message


# ------------------------------------------------------------------------------------------- shipped profiles


def test_required_profiles_are_shipped():
    assert {p.stem for p in SHIPPED} >= REQUIRED_IDS


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_profile_loads_and_validates(path):
    profile = load_profile(path)
    assert isinstance(profile, HardwareProfile)
    assert profile.id == path.stem
    assert profile.memory_bytes > 0
    assert "memory_bytes" in profile.sources
    if profile.generic:
        assert profile.vendor == "generic"
        assert profile.memory_bandwidth_bytes_per_s is None and profile.dense_tflops is None
        assert profile.kv_cache_dtypes is None and profile.interconnect is None
    else:
        assert profile.vendor in ("nvidia", "amd")
        assert {"memory_bandwidth_bytes_per_s", "dense_tflops"} <= set(profile.sources)
        assert profile.memory_bandwidth_bytes_per_s > 10**11
        assert profile.dense_tflops["bf16"] or profile.dense_tflops["fp16"]
        assert "auto" in profile.kv_cache_dtypes
        # A runtime total is always below the marketing size and well above half of it.
        assert 10 * 2**30 < profile.memory_bytes < 300 * 2**30


def test_list_profiles_returns_all_shipped_sorted():
    profiles = list_profiles()
    assert [p.id for p in profiles] == sorted(p.stem for p in SHIPPED)


def test_ids_and_aliases_are_unique():
    profiles = list_profiles()
    ids = [p.id.lower() for p in profiles]
    assert len(ids) == len(set(ids))
    seen: dict[str, str] = {}
    for profile in profiles:
        for alias in profile.aliases:
            key = " ".join(alias.split()).lower()
            assert key not in seen, f"alias {alias!r} of {profile.id} also belongs to {seen[key]}"
            assert key not in ids or key == profile.id, f"alias {alias!r} of {profile.id} is another profile's id"
            seen[key] = profile.id


def test_runtime_device_name_resolves_to_profile():
    assert load_profile("NVIDIA H100 80GB HBM3").id == "h100-sxm-80gb"
    assert load_profile("nvidia   h100 80gb hbm3").id == "h100-sxm-80gb"
    assert load_profile("H100-SXM-80GB").id == "h100-sxm-80gb"
    assert load_profile("NVIDIA GeForce RTX 3090").id == "rtx-3090"
    assert load_profile("AMD Instinct MI300X").id == "mi300x"
    assert load_profile("Tesla T4").id == "t4"


def test_h100_sxm_memory_is_the_vllm_reported_total():
    profile = load_profile("h100-sxm-80gb")
    assert abs(profile.memory_bytes / 2**30 - 79.19) <= 0.005


def test_rtx_3090_memory_is_the_vllm_reported_total():
    profile = load_profile("rtx-3090")
    assert abs(profile.memory_bytes / 2**30 - 23.58) <= 0.005


def test_the_2026_gpus_resolve_by_the_names_their_logs_print():
    for name, expected in (
        ("NVIDIA GB10", "gb10"),
        ("DGX Spark", "gb10"),
        ("NVIDIA H800", "h800"),
        ("NVIDIA H800 80GB HBM3", "h800"),
        ("NVIDIA L20", "l20"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA GB200", "gb200"),
        ("NVIDIA B300 SXM6 AC", "b300"),
        ("NVIDIA GB300", "gb300"),
        ("AMD Instinct MI355X", "mi355x"),
        ("AMD Radeon AI PRO R9700", "r9700"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"),
        ("NVIDIA GeForce RTX 5090 Laptop GPU", "rtx-5090-laptop"),
    ):
        assert load_profile(name).id == expected, name


def test_gb10_memory_is_what_vllm_sees_of_the_unified_pool():
    """Calibration case home-ops-13226-qwen36-35b-a3b-fp8-gb10-131072: "vLLM sees 121.63 GiB total" on a DGX Spark
    (tests/fixtures/calibration/engine_cases_2026.yaml), not the 128 GB of LPDDR5X the machine has."""
    import yaml

    cases = yaml.safe_load((REPO / "tests/fixtures/calibration/engine_cases_2026.yaml").read_text())
    case = next(c for c in cases if c["id"] == "home-ops-13226-qwen36-35b-a3b-fp8-gb10-131072")
    profile = load_profile("gb10")
    assert round(profile.memory_gib, 2) == case["reported"]["total_gpu_memory_gib"] == 121.63
    assert profile.compute_capability == "12.1" and "unified" in (profile.notes or "").lower()


def test_builtin_dir_is_the_repo_profiles_dir_in_a_checkout():
    builtin = builtin_profiles_dir()
    assert (builtin / "h100-sxm-80gb.yaml").is_file()
    assert search_dirs()[-1] == builtin


def test_unknown_name_lists_close_matches():
    with pytest.raises(ProfileError) as info:
        load_profile("h100-sxm")
    assert "unknown hardware profile 'h100-sxm'" in str(info.value)
    assert "h100-sxm-80gb" in str(info.value)
    assert info.value.hint


def test_module_imports_no_torch_and_uses_safe_load_only():
    code = "import sys, kvplan.sources.hardware; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    source = (REPO / "kvplan" / "sources" / "hardware.py").read_text()
    loader = (REPO / "kvplan" / "sources" / "yaml_files.py").read_text()  # the shared loader profiles go through
    assert "load_yaml(" in source and 'getattr(yaml, "CSafeLoader", yaml.SafeLoader)' in loader
    import yaml

    from kvplan.sources.yaml_files import _LOADER

    assert _LOADER in (yaml.SafeLoader, getattr(yaml, "CSafeLoader", None))  # libyaml's parser, the safe constructor
    assert issubclass(_LOADER, yaml.constructor.SafeConstructor)
    for unsafe in ("yaml.load(", "unsafe_load", "FullLoader", "UnsafeLoader", "yaml.Loader"):
        assert unsafe not in source and unsafe not in loader


# ------------------------------------------------------------------------------------- search order, overrides


def test_profiles_dir_overrides_builtin_of_same_id(tmp_path):
    custom = tmp_path / "mine"
    text = GOOD.format(id="h100-sxm-80gb", memory=12345 * 2**20).replace("Test GPU Alias", "NVIDIA H100 80GB HBM3")
    write(custom, "h100-sxm-80gb", text)
    assert load_profile("h100-sxm-80gb", profiles_dir=custom).memory_bytes == 12345 * 2**20
    assert load_profile("NVIDIA H100 80GB HBM3", profiles_dir=custom).memory_bytes == 12345 * 2**20
    listed = [p for p in list_profiles(profiles_dir=custom) if p.id == "h100-sxm-80gb"]
    assert len(listed) == 1 and listed[0].memory_bytes == 12345 * 2**20
    # Without the override the built-in is back.
    assert load_profile("h100-sxm-80gb").memory_bytes != 12345 * 2**20


def test_profiles_dir_adds_new_profiles(tmp_path):
    write(tmp_path, "my-gpu", GOOD.format(id="my-gpu", memory=2**34))
    assert load_profile("my-gpu", profiles_dir=tmp_path).memory_bytes == 2**34
    assert load_profile("test gpu alias", profiles_dir=tmp_path).id == "my-gpu"
    assert "my-gpu" in {p.id for p in list_profiles(tmp_path)}


def test_user_config_dir_from_env_and_xdg(tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    write(env_dir, "env-gpu", GOOD.format(id="env-gpu", memory=2**33))
    monkeypatch.setenv("KVPLAN_PROFILES_DIR", str(env_dir))
    assert load_profile("env-gpu").memory_bytes == 2**33
    monkeypatch.delenv("KVPLAN_PROFILES_DIR")
    xdg_dir = tmp_path / "xdg" / "kvplan" / "profiles"
    write(xdg_dir, "xdg-gpu", GOOD.format(id="xdg-gpu", memory=2**32))
    assert load_profile("xdg-gpu").memory_bytes == 2**32


def test_profiles_dir_beats_user_dir(tmp_path, monkeypatch):
    write(tmp_path / "user", "same", GOOD.format(id="same", memory=1 * 2**30))
    write(tmp_path / "cli", "same", GOOD.format(id="same", memory=2 * 2**30))
    monkeypatch.setenv("KVPLAN_PROFILES_DIR", str(tmp_path / "user"))
    assert load_profile("same").memory_bytes == 1 * 2**30
    assert load_profile("same", profiles_dir=tmp_path / "cli").memory_bytes == 2 * 2**30


def test_missing_profiles_dir_is_an_error(tmp_path):
    with pytest.raises(ProfileError, match="profiles directory not found"):
        load_profile("h100", profiles_dir=tmp_path / "nope")


def test_missing_profile_file_is_an_error(tmp_path):
    with pytest.raises(ProfileError, match="profile file not found"):
        load_profile(str(tmp_path / "nope.yaml"))


# --------------------------------------------------------------------------------------------- broken profiles


def test_wrong_type_message_names_file_line_key_and_value(tmp_path):
    path = write(tmp_path, "foo", GOOD.format(id="foo", memory='"eighty GB"'))
    message = error_for(path)
    assert message == (
        f"{path}:5: key 'memory_bytes': expected a positive integer (bytes) or a size such as 79.19GiB, got 'eighty GB'"
    )


@pytest.mark.parametrize("value", ["-5", "0", "true", "8.5e10", "85899345920.0", "null"])
def test_memory_bytes_must_be_a_positive_int(tmp_path, value):
    path = write(tmp_path, "foo", GOOD.format(id="foo", memory=value))
    assert "key 'memory_bytes'" in error_for(path)


def test_unknown_key_suggests_the_right_one(tmp_path):
    text = GOOD.format(id="foo", memory=2**30).replace("memory_bytes: ", "memory_byte: ", 1)
    path = write(tmp_path, "foo", text)
    message = error_for(path)
    assert "unknown key 'memory_byte'" in message
    assert "did you mean 'memory_bytes'" in message


def test_unknown_nested_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path, "foo", GOOD.format(id="foo", memory=2**30).replace("bf16: 100", "bf61: 100"))
    message = error_for(path)
    assert "'dense_tflops.bf61'" in message and "did you mean 'bf16'" in message


def test_bad_yaml_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "foo", GOOD.format(id="foo", memory=2**30).replace('"Test GPU"', "[unclosed"))
    message = error_for(path)
    assert "invalid YAML" in message and "line" in message and "'name'" in message


def test_python_object_tag_is_rejected_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    path = write(tmp_path, "foo", GOOD.format(id="foo", memory=payload))
    message = error_for(path)
    assert "'memory_bytes'" in message and "tag" in message
    assert not marker.exists()
    # The same when the bad file is found by name through a profiles directory.
    with pytest.raises(ProfileError):
        load_profile("foo", profiles_dir=tmp_path)
    assert not marker.exists()


def test_id_must_match_file_stem(tmp_path):
    path = write(tmp_path, "foo", GOOD.format(id="bar", memory=2**30))
    message = error_for(path)
    assert "key 'id'" in message and "'foo'" in message and "'bar'" in message


def test_missing_required_key(tmp_path):
    text = "\n".join(line for line in GOOD.format(id="foo", memory=2**30).splitlines() if not line.startswith("vendor"))
    assert "key 'vendor': missing" in error_for(write(tmp_path, "foo", text))


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("vendor: nvidia", "vendor: intel", "vendor"),
        ('aliases: ["Test GPU Alias"]', 'aliases: "Test GPU Alias"', "aliases"),
        ("fp32: 10", 'fp32: "10"', "dense_tflops.fp32"),
        ("[auto, fp16, bf16]", "[auto, fp17]", "kv_cache_dtypes"),
        ("type: pcie4", "type: pcie9", "interconnect.type"),
        (
            "memory_bandwidth_bytes_per_s: 1000000000000",
            "memory_bandwidth_bytes_per_s: 1.0e+12",
            "memory_bandwidth_bytes_per_s",
        ),
        ('  dense_tflops: "test"\n', "", "sources.dense_tflops"),
        ('  dense_tflops: "test"\n', '  dense_flops: "test"\n', "sources.dense_flops"),
    ],
)
def test_wrong_values_name_the_key(tmp_path, old, new, key):
    text = GOOD.format(id="foo", memory=2**30)
    assert old in text
    message = error_for(write(tmp_path, "foo", text.replace(old, new)))
    assert f"'{key}'" in message


def test_gpus_per_node_of_the_shipped_systems():
    """Where ai-dynamo/aiconfigurator (095f58a, aic-core/src/aiconfigurator_core/systems/) gives a system's node:
    8 on HGX/DGX boards, 4 per GB200/GB300 compute tray in a 72-GPU NVLink rack; PCIe cards and the rest: unknown."""
    nodes = {p.id: (p.gpus_per_node, p.nvlink_domain_gpus) for p in list_profiles()}
    assert {k: v for k, v in nodes.items() if v != (None, None)} == {
        "a100-sxm-80gb": (8, None),
        "h100-sxm-80gb": (8, None),
        "h200": (8, None),
        "b200": (8, None),
        "b300": (8, None),
        "gb200": (4, 72),
        "gb300": (4, 72),
    }
    for pid in ("h200", "gb200"):
        sources = load_profile(pid).sources
        assert "aiconfigurator" in sources["gpus_per_node"] and "num_gpus_per_node" in sources["gpus_per_node"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("gpus_per_node: 0\n", "'gpus_per_node'"),
        ("gpus_per_node: 8.0\n", "'gpus_per_node'"),
        ("gpus_per_node: 4\nnvlink_domain_gpus: 6\n", "a multiple of gpus_per_node"),
        ("nvlink_domain_gpus: 72\n", "a multiple of gpus_per_node"),
        ("gpus_per_node: 8\n", "sources.gpus_per_node"),  # a figure without its source
    ],
)
def test_gpus_per_node_is_checked(tmp_path, extra, needle):
    text = GOOD.format(id="foo", memory=2**30).replace("sources:\n", extra + "sources:\n")
    assert needle in error_for(write(tmp_path, "foo", text))


def test_gpus_per_node_loads_with_its_source(tmp_path):
    text = GOOD.format(id="foo", memory=2**30).replace(
        "sources:\n",
        'gpus_per_node: 4\nnvlink_domain_gpus: 8\nsources:\n  gpus_per_node: "x"\n  nvlink_domain_gpus: "y"\n',
    )
    profile = load_profile(str(write(tmp_path, "foo", text)))
    assert (profile.gpus_per_node, profile.nvlink_domain_gpus) == (4, 8)
    assert profile.to_dict()["gpus_per_node"] == 4


def test_generic_profiles_must_not_carry_figures(tmp_path):
    text = GOOD.format(id="foo", memory=2**30).replace("vendor: nvidia", "vendor: generic\ngeneric: true")
    assert "null for a generic profile" in error_for(write(tmp_path, "foo", text))


def test_empty_and_non_mapping_files(tmp_path):
    assert "file is empty" in error_for(write(tmp_path, "foo", ""))
    assert "mapping" in error_for(write(tmp_path, "bar", "- a\n- b\n"))


def test_a_broken_user_file_does_not_break_alias_lookup_and_is_named_when_nothing_matches(tmp_path):
    """One half-edited file must not hide every other profile (issue 14): the alias still resolves; a name that
    matches nothing says which file could not be read, and looking the broken file up by its id fails loudly."""
    write(tmp_path, "zzz", "id: zzz\nmemory_byte: 1\n")
    assert load_profile("NVIDIA H100 80GB HBM3", profiles_dir=tmp_path).id == "h100-sxm-80gb"
    with pytest.raises(ProfileError, match=r"could not be read: .*zzz.yaml"):
        load_profile("no such gpu", profiles_dir=tmp_path)
    with pytest.raises(ProfileError, match="zzz.yaml"):
        load_profile("zzz", profiles_dir=tmp_path)
    # A lookup by id does not read unrelated files.
    assert load_profile("h100-sxm-80gb", profiles_dir=tmp_path).id == "h100-sxm-80gb"


def test_a_key_given_twice_in_a_profile_is_refused(tmp_path):
    """Profiles share the plan files' loader, which refuses duplicate keys (PyYAML alone keeps the last)."""
    path = write(tmp_path, "foo", GOOD.format(id="foo", memory=2**30) + "memory_bytes: 1\n")
    message = error_for(path)
    assert "duplicate key 'memory_bytes'" in message


# ------------------------------------------------------------------------- easier to write (issue 13 point 4)

MINIMAL = """\
vendor: nvidia
memory: 47.37GiB
sources:
  memory: "a quoted log line"
"""


def test_sizes_with_units_and_the_short_spellings(tmp_path):
    text = (
        "vendor: nvidia\nmemory: 79.19GiB\nbandwidth: 3.35TB/s\n"
        "dense_tflops: {bf16: 989}\ninterconnect: {type: nvlink4, bandwidth: 900GB/s}\n"
        'sources: {memory: "log", bandwidth: "datasheet", dense_tflops: "datasheet"}\n'
    )
    profile = load_profile(write(tmp_path, "units", text))
    assert profile.memory_bytes == int(79.19 * 2**30)
    assert profile.memory_bandwidth_bytes_per_s == 3_350_000_000_000
    assert profile.interconnect.bandwidth_bytes_per_s == 900 * 10**9
    assert set(profile.sources) == {"memory_bytes", "memory_bandwidth_bytes_per_s", "dense_tflops"}  # one naming
    # the long keys take units too, and plain integers as before
    long = GOOD.format(id="long", memory="48GiB").replace("1000000000000", "1TB/s")
    assert load_profile(write(tmp_path, "long", long)).memory_bytes == 48 * 2**30
    assert load_profile(write(tmp_path, "long", long)).memory_bandwidth_bytes_per_s == 10**12


def test_optional_keys_take_their_stated_defaults(tmp_path):
    profile = load_profile(write(tmp_path, "minimal-gpu", MINIMAL))
    assert (profile.id, profile.name, profile.aliases, profile.generic) == ("minimal-gpu", "minimal-gpu", (), False)
    assert profile.memory_bandwidth_bytes_per_s is None and profile.dense_tflops is None
    assert profile.kv_cache_dtypes == ("auto",) and profile.interconnect is None
    assert profile.compute_capability is None and profile.notes is None
    # a dtype left out of dense_tflops is unknown; an interconnect without a bandwidth has none
    text = MINIMAL + "dense_tflops: {bf16: 100}\ninterconnect: {type: pcie4}\n"
    text = text.replace('  memory: "a quoted log line"\n', '  memory: "log"\n  dense_tflops: "sheet"\n')
    profile = load_profile(write(tmp_path, "partial", text))
    assert profile.dense_tflops == {"fp32": None, "bf16": 100.0, "fp16": None, "fp8": None, "int8": None}
    assert profile.interconnect.type == "pcie4" and profile.interconnect.bandwidth_bytes_per_s is None


def test_every_error_of_a_file_in_one_run_each_with_its_line(tmp_path):
    text = (
        "id: broken\n"  # 1
        "vendor: intel\n"  # 2
        "memory: lots\n"  # 3
        "bandwidth: 3.35TB/s\n"  # 4
        "dense_tflops: {bf16: -1, fp9: 3}\n"  # 5
        "kv_cache_dtypes: [auto, fp17]\n"  # 6
        "colour: green\n"  # 7
        "sources:\n"  # 8
        '  memory: "log"\n'  # 9
        '  bandwith: "typo"\n'  # 10
    )
    message = error_for(write(tmp_path, "broken", text))
    assert message.startswith(f"{tmp_path / 'broken.yaml'}: 9 problems: line 2: key 'vendor'"), message
    for part in (
        "line 2: key 'vendor': expected one of nvidia, amd, generic, got 'intel'",
        "line 3: key 'memory': expected a positive integer (bytes) or a size such as 79.19GiB, got 'lots'",
        "line 5: key 'dense_tflops.bf16': expected a positive number (TFLOPS) or null, got -1",
        "line 5: unknown key 'dense_tflops.fp9'",
        "line 6: key 'kv_cache_dtypes': expected dtypes from",
        "line 7: unknown key 'colour'",
        "line 10: unknown key 'sources.bandwith' (did you mean 'bandwidth'?)",
        "line 8: key 'sources.bandwidth': missing",
        "line 8: key 'sources.dense_tflops': missing",
    ):
        assert part in message, (part, message)


def test_a_key_and_its_short_spelling_together_are_refused(tmp_path):
    text = MINIMAL + "memory_bytes: 1000\n"
    assert "give either 'memory' or 'memory_bytes', not both" in error_for(write(tmp_path, "both", text))


def _filled(template: str) -> str:
    values = {
        "<the card's full name, e.g. NVIDIA H100 SXM5 80GB>": "NVIDIA Test GPU 48GB",
        "<nvidia or amd or generic>": "nvidia",
        "<e.g. NVIDIA H100 80GB HBM3>": "NVIDIA Test GPU",
        "<e.g. 79.19GiB>": "44.52GiB",
        "<e.g. 3.35TB/s>": "864GB/s",
        "<e.g. 67>": "91.6",
        "<e.g. 989>": "362",
        "<number or null>": "null",
    }
    for placeholder, value in values.items():
        template = template.replace(placeholder, value)
    return re.sub(r"<[^>\n]*>", "a datasheet, https://example.com", template)  # the sources


def test_the_template_loads_once_filled_and_names_every_placeholder_until_then(tmp_path):
    template = profile_template("test-gpu-48gb")
    assert "<" in template and "# default:" in template
    unfilled = error_for(write(tmp_path, "test-gpu-48gb", template))
    assert "13 problems" in unfilled and "placeholder" in unfilled, unfilled
    profile = load_profile(write(tmp_path, "test-gpu-48gb", _filled(template)))
    assert profile.id == "test-gpu-48gb" and profile.vendor == "nvidia"
    assert profile.memory_bytes == int(44.52 * 2**30) and profile.memory_bandwidth_bytes_per_s == 864 * 10**9
    assert profile.dense_tflops["bf16"] == 362 and profile.dense_tflops["fp8"] is None
    assert load_profile("NVIDIA Test GPU", profiles_dir=tmp_path).id == "test-gpu-48gb"  # found by its alias
    with pytest.raises(ProfileError, match="profile id"):
        profile_template("Not An Id")


def test_profiles_new_prints_the_template():
    from typer.testing import CliRunner

    from kvplan.cli import app

    result = CliRunner().invoke(app, ["profiles", "new", "rtx-pro-4500"])
    assert result.exit_code == 0, result.output
    assert result.stdout == profile_template("rtx-pro-4500")
    assert CliRunner().invoke(app, ["profiles", "new"]).stdout == profile_template()
    bad = CliRunner().invoke(app, ["profiles", "new", "Bad Id"])
    assert bad.exit_code == 2 and "profile id" in bad.output
