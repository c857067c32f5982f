"""Files from a Hugging Face Hub repo: the local HF cache first, then the network, failing fast.

This is the only kvplan module that talks to `huggingface_hub`, and it imports the library inside its
functions so that reading a local config never pays for the import. Hub exceptions become a one-line
`HubError` with a hint here and nowhere else. Nothing here downloads or runs code: only named files.
"""

from __future__ import annotations

import os
from pathlib import Path

from kvplan.errors import ConfigError, HubError

NETWORK_HINT = (
    "check your network, or pass a local config.json / model folder, or a catalog name (`kvplan models`); "
    "HF_HUB_OFFLINE=1 uses only the local cache"
)
LOGIN_HINT = "set HF_TOKEN or run `hf auth login`"
_TRUE = {"1", "on", "yes", "true"}  # the spellings huggingface_hub accepts for its boolean env variables


def is_offline(offline: bool | None) -> bool:
    """`offline` when given, else whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read now."""
    if offline is not None:
        return offline
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> str | None:
    """The HF cache folder named by HF_HUB_CACHE or HF_HOME, read now; None lets huggingface_hub decide.

    huggingface_hub reads these variables once, when it is imported; reading them per call keeps kvplan
    right when they change within a process (tests, notebooks).
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.path.expandvars(os.environ[var]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return None


def check_repo_id(model: str) -> None:
    """Raise ConfigError unless `model` is a valid Hub repo id (`org/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError as exc:
        reason = str(exc).replace(" Use `repo_type` argument if needed.", "")
        raise ConfigError(
            f"`{model}` is not an existing file or folder, and not a valid Hub repo id: {reason}",
            hint="pass a config.json, a model folder, a catalog name (`kvplan models`) or a Hub id like org/name",
        ) from None


def cached_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """The file from the local HF cache at `revision` (default `main`), or None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None


def fetch_file(repo_id: str, filename: str, *, revision: str | None, token: str | None) -> Path:
    """Download one file of a Hub repo into the HF cache and return its path there; HubError on failure.

    `hf_hub_download` alone retries a failed connection with backoff for about 23 s, so a single HEAD
    request without retries goes first: no network, a missing repo or a gated one then fails at once.
    `token=None` lets huggingface_hub find HF_TOKEN or the stored login.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), token=token)
        found = hf_hub_download(repo_id, filename, revision=revision, token=token, cache_dir=hub_cache_dir())
    except hub_errors() as exc:
        raise translate(exc, repo_id, filename, revision) from exc
    return Path(found)


def snapshot_commit(path: Path) -> str | None:
    """The commit id of a cached file `.../snapshots/<commit>/<file>`, or None for any other path."""
    return path.parent.name if path.parent.parent.name == "snapshots" else None


def hub_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that a Hub call raises for Hub, network or cache reasons (not for kvplan bugs)."""
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    return (HfHubHTTPError, EntryNotFoundError, OSError, *_transport_errors())


def translate(exc: BaseException, repo_id: str, filename: str, revision: str | None) -> HubError:
    """The one-line HubError, with a hint, for an exception raised by a Hub call."""
    from huggingface_hub import errors

    where = f"{repo_id}@{revision}" if revision else repo_id
    if isinstance(exc, errors.GatedRepoError):  # a subclass of RepositoryNotFoundError: test it first
        return HubError(
            f"{repo_id} is gated: accept the licence on its Hub page, then {LOGIN_HINT}",
            hint=f"https://huggingface.co/{repo_id}",
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError(
            f"Hub repository {repo_id} not found (or private): check the id, or {LOGIN_HINT}",
            hint="`kvplan models` lists the built-in catalog, which works offline",
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError(f"revision {revision!r} not found in {repo_id}", hint="check the branch, tag or commit id")
    if isinstance(exc, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)):
        return offline_miss(where)
    if isinstance(exc, errors.EntryNotFoundError):
        return HubError(f"{where} has no {filename}", hint="pass the model's config.json or its folder instead")
    if isinstance(exc, errors.HfHubHTTPError):
        return HubError(f"the Hugging Face Hub refused {where}: {_first_line(exc)}", hint=NETWORK_HINT)
    if isinstance(exc, OSError) and exc.filename and not isinstance(exc, ConnectionError):
        return HubError(
            f"cannot write to the Hugging Face cache: {exc.strerror}: {exc.filename}",
            hint="set HF_HUB_CACHE (or HF_HOME) to a writable folder",
        )
    return HubError(f"cannot reach the Hugging Face Hub to fetch {where}: {_first_line(exc)}", hint=NETWORK_HINT)


def offline_miss(where: str) -> HubError:
    """The error for a repo that is not in the local cache while offline mode is on."""
    return HubError(
        f"{where} is not in the local Hugging Face cache and offline mode is on",
        hint="run once with network access (without HF_HUB_OFFLINE / --offline) to cache it, "
        "or pass a local config.json or a catalog name (`kvplan models`)",
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's connection/timeout error base class: httpx2 (huggingface_hub >= 2) or httpx."""
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        return (module.TransportError,)
    return ()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
