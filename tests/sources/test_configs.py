"""Tests for loading config.json (file, folder, catalog, HF cache, Hub errors) and safetensors weight bytes.

No test touches the network: Hub calls are replaced by functions that raise the library's real exceptions,
built from real HTTP responses by `hf_raise_for_status`.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kvplan.errors import ConfigError, HubError, UsageError
from kvplan.sources import catalog
from kvplan.sources.configs import LoadedConfig, load_model_config, read_config_file
from kvplan.weights.safetensors import header_bytes, local_weight_bytes, safetensors_weight_bytes

SHA_A = "a" * 40
SHA_B = "b" * 40
TINY = {"model_type": "llama", "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2}


@pytest.fixture(autouse=True)
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache under tmp_path, online mode, no user cache or offline flag leaking in."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def write_json(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def cache_repo(cache: Path, repo_id: str, snapshots: dict[str, dict], refs: dict[str, str]) -> Path:
    """Lay out `repo_id` in an HF cache as huggingface_hub does: blobs, refs/<name>, snapshots/<sha>/ symlinks."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for sha, config in snapshots.items():
        blob = write_json(repo / "blobs" / f"etag{sha[:8]}", config)
        link = repo / "snapshots" / sha / "config.json"
        link.parent.mkdir(parents=True)
        link.symlink_to(Path("../../blobs") / blob.name)
    for ref, sha in refs.items():
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(sha)
    return repo


def hub_error(code: str | None, status: int = 404) -> Exception:
    """The exception huggingface_hub raises for a HEAD answered with `status` and X-Error-Code `code`."""
    from huggingface_hub.utils import hf_raise_for_status

    httpx = _http_client()
    url = "https://huggingface.co/acme/tiny/resolve/main/config.json"
    response = httpx.Response(status, request=httpx.Request("HEAD", url), headers={"X-Error-Code": code or ""})
    try:
        hf_raise_for_status(response)
    except Exception as exc:
        return exc
    raise AssertionError("hf_raise_for_status accepted an error response")


def _http_client():
    for name in ("httpx2", "httpx"):
        try:
            return __import__(name)
        except ImportError:
            continue
    pytest.skip("no httpx/httpx2 to build Hub responses")


def patch_hub(monkeypatch: pytest.MonkeyPatch, head_error: Exception | None, download=None) -> list[str]:
    """Replace the Hub's HEAD and download calls; returns the log of download calls."""
    import huggingface_hub

    calls: list[str] = []

    def fake_head(url, **kwargs):
        if head_error is not None:
            raise head_error

    def fake_download(repo_id, filename, **kwargs):
        calls.append(repo_id)
        if download is None:
            raise AssertionError("hf_hub_download must not run after a failed HEAD (it retries for ~23 s)")
        return download(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", fake_head)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    return calls


# --- read_config_file: one-line errors -----------------------------------------------------------------


def error_for(tmp_path: Path, content: bytes) -> ConfigError:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    assert "\n" not in info.value.message and info.value.hint
    return info.value


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_config_file(tmp_path / "nope.json")


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no config.json"):
        read_config_file(tmp_path)
    with pytest.raises(ConfigError, match="has no config.json"):
        load_model_config(str(tmp_path))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"  \n\t", "is empty"),
        (b"PK\x03\x04\x00\x00binary", "binary file"),
        (b'{"model_type": "caf\xe9"}', "not UTF-8 text (bad byte at offset 19)"),
        (b'{\n  "num_hidden_layers": 32,\n  "hidden_size"', "ends before the JSON is complete (truncated?) at line 3"),
        (b'{"a": 1,, "b": 2}', "is not valid JSON: Expecting property name enclosed in double quotes at line 1, col"),
        (b"[1, 2]", "holds an array, not a JSON object"),
        (b'"llama"', "holds a string, not a JSON object"),
        (b"null", "holds null, not a JSON object"),
    ],
)
def test_bad_file_contents(tmp_path: Path, content: bytes, expected: str) -> None:
    assert expected in error_for(tmp_path, content).message


def test_oversized_file_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    with path.open("wb") as stream:
        stream.truncate(40 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(ConfigError, match="41,943,040 bytes, too big for a config.json"):
        read_config_file(path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(TINY).encode())
    assert read_config_file(path) == TINY


# --- local paths -----------------------------------------------------------------------------------------


def test_file_and_folder(tmp_path: Path) -> None:
    config = write_json(tmp_path / "m" / "config.json", TINY)
    by_file = load_model_config(str(config))
    assert (by_file.config, by_file.source, by_file.path, by_file.folder) == (TINY, "file", config, config.parent)
    assert by_file.name == str(config) and by_file.revision is None
    by_folder = load_model_config(str(tmp_path / "m"))
    assert (by_folder.source, by_folder.path, by_folder.folder) == ("folder", config, tmp_path / "m")


def test_other_file_name_has_no_folder(tmp_path: Path) -> None:
    loaded = load_model_config(str(write_json(tmp_path / "llama.json", TINY)))
    assert loaded.folder is None and loaded.source == "file"


def test_auto_map_is_data(tmp_path: Path) -> None:
    raw = {**TINY, "auto_map": {"AutoConfig": "evil.Config"}}
    assert load_model_config(str(write_json(tmp_path / "config.json", raw))).config == raw


def test_revision_with_local_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="applies only to Hub repos"):
        load_model_config(str(write_json(tmp_path / "config.json", TINY)), revision="main")


def test_local_file_does_not_import_huggingface_hub(tmp_path: Path) -> None:
    config = write_json(tmp_path / "config.json", TINY)
    code = (
        "import sys; from kvplan.sources.configs import load_model_config; "
        f"load_model_config({str(config)!r}); load_model_config('Llama-3.1-8B'); "
        "print('huggingface_hub' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- catalog ---------------------------------------------------------------------------------------------


def test_catalog_contents() -> None:
    names = catalog.catalog_names()
    assert len(names) >= 40 and "meta-llama/Llama-3.1-8B" in names
    assert (catalog.catalog_dir() / "SOURCES.md").is_file()
    entries = catalog.catalog_entries()
    assert [entry.name for entry in entries] == names
    assert all(isinstance(read_config_file(entry.path), dict) for entry in entries)
    assert {entry.model_type for entry in entries} >= {"llama", "qwen2", "gemma3", "deepseek_v3", "gpt_oss"}


@pytest.mark.parametrize(
    "query", ["meta-llama/Llama-3.1-8B", "META-LLAMA/llama-3.1-8b", "Llama-3.1-8B", "llama-3.1-8b"]
)
def test_catalog_name_full_and_short(query: str) -> None:
    loaded = load_model_config(query)
    assert (loaded.name, loaded.source, loaded.folder) == ("meta-llama/Llama-3.1-8B", "catalog", None)
    assert loaded.path == catalog.catalog_path("meta-llama/Llama-3.1-8B")
    assert loaded.config["num_key_value_heads"] == 8 and loaded.config["num_hidden_layers"] == 32


def test_nested_config_stays_raw() -> None:
    loaded = load_model_config("google/gemma-3-4b-it")
    assert loaded.config["model_type"] == "gemma3" and isinstance(loaded.config["text_config"], dict)


def test_ambiguous_short_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(tmp_path / "acme__tiny.json", TINY)
    write_json(tmp_path / "other__Tiny.json", TINY)
    monkeypatch.setattr(catalog, "catalog_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="matches several catalog models: acme/tiny, other/Tiny"):
        load_model_config("tiny")
    assert load_model_config("acme/tiny").name == "acme/tiny"


def test_unknown_bare_name_suggests() -> None:
    with pytest.raises(ConfigError, match="not an existing file or folder, a catalog name, or a Hub repo id") as info:
        load_model_config("Llama-3.1-8")
    assert "did you mean meta-llama/Llama-3.1-8B?" in (info.value.hint or "")


@pytest.mark.parametrize("model", ["a/b/c", "org/na..me", "./x"])
def test_invalid_repo_id(model: str) -> None:
    with pytest.raises(ConfigError, match="not an existing file or folder, and not a valid Hub repo id"):
        load_model_config(model)


def test_missing_json_path_is_not_sent_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_hub(monkeypatch, head_error=AssertionError("no Hub call for a .json path"))
    with pytest.raises(ConfigError, match="no such file: models/config.json"):
        load_model_config("models/config.json")


def test_empty_model() -> None:
    with pytest.raises(UsageError, match="no model given"):
        load_model_config("  ")


# --- the Hugging Face cache and Hub ----------------------------------------------------------------------


def test_hub_cache(hf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_repo(hf_env, "acme/tiny", {SHA_A: TINY}, {"main": SHA_A})
    patch_hub(monkeypatch, head_error=AssertionError("a cached config needs no network"))
    for offline in (None, True):
        loaded = load_model_config("acme/tiny", offline=offline)
        assert (loaded.config, loaded.source, loaded.revision) == (TINY, "hf-cache", SHA_A)
        assert loaded.folder == hf_env / "models--acme--tiny" / "snapshots" / SHA_A
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model_config("acme/tiny").source == "hf-cache"


def test_hf_home_locates_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    cache_repo(tmp_path / "home" / "hub", "acme/tiny", {SHA_A: TINY}, {"main": SHA_A})
    assert load_model_config("acme/tiny", offline=True).source == "hf-cache"


def test_revision_selects_snapshot(hf_env: Path) -> None:
    other = {**TINY, "num_hidden_layers": 5}
    cache_repo(hf_env, "acme/tiny", {SHA_A: TINY, SHA_B: other}, {"main": SHA_A, "v2": SHA_B})
    assert load_model_config("acme/tiny", offline=True).config == TINY
    for revision in (SHA_B, "v2"):
        loaded = load_model_config("acme/tiny", revision=revision, offline=True)
        assert (loaded.config, loaded.revision) == (other, SHA_B)
    with pytest.raises(HubError, match="acme/tiny@v3 is not in the local Hugging Face cache"):
        load_model_config("acme/tiny", revision="v3", offline=True)


def test_revision_skips_the_catalog() -> None:
    with pytest.raises(HubError, match="meta-llama/Llama-3.1-8B@main is not in the local Hugging Face cache"):
        load_model_config("meta-llama/Llama-3.1-8B", revision="main", offline=True)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_uncached_offline(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    patch_hub(monkeypatch, head_error=AssertionError("offline mode must not touch the network"))
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="acme/tiny is not in the local Hugging Face cache and offline mode is on"):
        load_model_config("acme/tiny", offline=True if how == "argument" else None)


def test_no_network_fails_before_the_retrying_download(monkeypatch: pytest.MonkeyPatch) -> None:
    httpx = _http_client()
    calls = patch_hub(monkeypatch, head_error=httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(HubError) as info:
        load_model_config("acme/tiny")
    assert info.value.message == (
        "cannot reach the Hugging Face Hub to fetch acme/tiny: [Errno -2] Name or service not known"
    )
    assert "HF_HUB_OFFLINE=1" in (info.value.hint or "") and calls == []


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (
            "GatedRepo",
            403,
            "acme/tiny is gated: accept the licence on its Hub page, then set HF_TOKEN or run `hf auth login`",
        ),
        ("RepoNotFound", 401, "Hub repository acme/tiny not found (or private): check the id, or set HF_TOKEN"),
        ("RevisionNotFound", 404, "revision 'v9' not found in acme/tiny"),
        ("EntryNotFound", 404, "acme/tiny@v9 has no config.json"),
        (None, 500, "the Hugging Face Hub refused acme/tiny@v9: Server error '500 Internal Server Error'"),
    ],
)
def test_hub_errors(monkeypatch: pytest.MonkeyPatch, code: str | None, status: int, expected: str) -> None:
    calls = patch_hub(monkeypatch, head_error=hub_error(code, status))
    with pytest.raises(HubError) as info:
        load_model_config("acme/tiny", revision="v9")
    assert expected in info.value.message and "\n" not in info.value.message
    assert info.value.hint and calls == []


def test_download(hf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def download(repo_id, filename, *, revision, token, cache_dir):
        expected = ("acme/tiny", "config.json", None, "hf_x", str(hf_env))
        assert (repo_id, filename, revision, token, cache_dir) == expected
        return str(cache_repo(hf_env, repo_id, {SHA_A: TINY}, {"main": SHA_A}) / "snapshots" / SHA_A / filename)

    patch_hub(monkeypatch, head_error=None, download=download)
    loaded = load_model_config("acme/tiny", token="hf_x")
    assert (loaded.config, loaded.source, loaded.revision, loaded.name) == (TINY, "hub", SHA_A, "acme/tiny")


# --- safetensors weight bytes ----------------------------------------------------------------------------


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], int]]) -> None:
    """A .safetensors file written by hand: 8-byte little-endian length, JSON header, zeroed data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(offset))


def folder_loaded(folder: Path) -> LoadedConfig:
    write_json(folder / "config.json", TINY)
    return load_model_config(str(folder))


def test_header_bytes_by_hand(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model.safetensors", {"w": ("BF16", [3, 5], 30), "b": ("F32", [7], 28)})
    assert header_bytes(tmp_path / "model.safetensors") == 58
    assert safetensors_weight_bytes(folder_loaded(tmp_path), offline=True) == 58


def test_header_bytes_real_file(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    save_file = pytest.importorskip("safetensors.numpy").save_file
    save_file(
        {"w": np.zeros((3, 5), np.float16), "b": np.zeros(7, np.int8), "e": np.zeros((0, 4), np.float32)},
        str(tmp_path / "model.safetensors"),
    )
    assert header_bytes(tmp_path / "model.safetensors") == 3 * 5 * 2 + 7


def test_shards_summed_and_partial_download_unknown(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": ("F16", [100], 200)})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"b": ("I8", [11], 11)})
    assert local_weight_bytes(tmp_path) == 211
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    assert local_weight_bytes(tmp_path) is None


def test_index_total_size_wins(tmp_path: Path) -> None:
    index = {"metadata": {"total_size": 16_060_522_496}, "weight_map": {}}
    write_json(tmp_path / "model.safetensors.index.json", index)
    assert safetensors_weight_bytes(folder_loaded(tmp_path), offline=True) == 16_060_522_496


def test_index_without_total_reads_listed_files_only(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-00001-of-00001.safetensors", {"a": ("F16", [3], 6), "b": ("F16", [4], 8)})
    write_safetensors(tmp_path / "consolidated.safetensors", {"ab": ("F16", [7], 14)})  # not in the index
    weight_map = {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}
    write_json(tmp_path / "model.safetensors.index.json", {"weight_map": weight_map})
    assert local_weight_bytes(tmp_path) == 14


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x05\x00",
        struct.pack("<Q", 2**40) + b"{}",
        struct.pack("<Q", 5) + b"{nope",
        struct.pack("<Q", 38) + b'{"w": {"data_offsets": [10, 4]}}      ',
    ],
)
def test_malformed_safetensors_is_unknown(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "model.safetensors").write_bytes(content)
    assert header_bytes(tmp_path / "model.safetensors") is None
    assert local_weight_bytes(tmp_path) is None


def test_no_weights_known() -> None:
    assert safetensors_weight_bytes(load_model_config("Llama-3.1-8B"), offline=False) is None


def test_hub_weights_offline_or_unreachable(hf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    cache_repo(hf_env, "acme/tiny", {SHA_A: TINY}, {"main": SHA_A})
    loaded = load_model_config("acme/tiny", offline=True)
    assert safetensors_weight_bytes(loaded, offline=True) is None

    httpx = _http_client()

    class Unreachable:
        def __init__(self, token=None):
            pass

        def file_exists(self, *args, **kwargs):
            raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "HfApi", Unreachable)
    assert safetensors_weight_bytes(loaded, offline=False) is None  # a cached config: the Hub is not asked
    assert safetensors_weight_bytes(loaded, offline=False, hub_lookup=True) is None


def test_hub_weights_from_single_file_header(hf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.utils import SafetensorsFileMetadata, TensorInfo

    cache_repo(hf_env, "acme/tiny", {SHA_A: TINY}, {"main": SHA_A})
    tensors = {"w": TensorInfo("BF16", [3, 5], (0, 30)), "b": TensorInfo("F32", [7], (30, 58))}

    class Api:
        def __init__(self, token=None):
            pass

        def file_exists(self, repo_id, filename, *, revision):
            assert (repo_id, filename, revision) == ("acme/tiny", "model.safetensors.index.json", SHA_A)
            return False

        def parse_safetensors_file_metadata(self, repo_id, filename, *, revision):
            return SafetensorsFileMetadata(metadata={}, tensors=tensors)

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    assert safetensors_weight_bytes(load_model_config("acme/tiny", offline=True), offline=False, hub_lookup=True) == 58
