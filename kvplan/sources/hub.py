"""Files from a Hugging Face Hub repo: the local HF cache first, then the network, failing fast.

This is the only kvplan module that talks to `huggingface_hub`, and it imports the library inside its
functions so that reading a local config never pays for the import. Hub exceptions become a one-line
`HubError` with a hint here and nowhere else. Nothing here downloads or runs code: only named files.

Every network call goes through `bounded`: one `kvplan:` line on stderr says what is asked of which endpoint
and how long kvplan waits (`KVPLAN_HUB_TIMEOUT` seconds, default 10), and the call is abandoned after that
however the Hub behaves (a server that accepts and never answers, a blocked port, huggingface_hub's retries).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kvplan.errors import ConfigError, HubError, UsageError

T = TypeVar("T")
TIMEOUT_ENV = "KVPLAN_HUB_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0

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
    request without retries goes first: no network, a missing repo or a gated one then fails at once. The
    whole exchange is `bounded` (said on stderr, abandoned after `timeout_s()`). `token=None` lets
    huggingface_hub find HF_TOKEN or the stored login.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    where = f"{repo_id}@{revision}" if revision else repo_id

    def fetch() -> str:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), token=token)
        found: str = hf_hub_download(repo_id, filename, revision=revision, token=token, cache_dir=hub_cache_dir())
        return found

    try:
        found = bounded(f"{filename} of {where}", fetch)
    except hub_errors() as exc:
        raise translate(exc, repo_id, filename, revision) from exc
    return Path(found)


def timeout_s() -> float:
    """How long kvplan waits for the Hub, in seconds: KVPLAN_HUB_TIMEOUT (read now), default 10."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:  # also refuses nan and inf
        raise UsageError(
            f"{TIMEOUT_ENV}={text!r} is not a number of seconds between 0 and 3600",
            hint=f"set {TIMEOUT_ENV} to e.g. 10, or unset it",
        )
    return value


def endpoint() -> str:
    """The Hub endpoint huggingface_hub talks to (HF_ENDPOINT, read when it was imported)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def announce(text: str) -> None:
    """One `kvplan:` line on stderr (what kvplan asks the network for): never on stdout, which --json owns."""
    try:
        sys.stderr.write(f"kvplan: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stderr does not stop the plan
        pass


def bounded(what: str, call: Callable[[], T]) -> T:
    """`call()` (a Hub request for `what`), said on stderr first and abandoned after `timeout_s()` seconds.

    The call runs in a daemon thread: a server that accepts and never answers, or huggingface_hub's own
    retries, cannot keep kvplan waiting past the timeout (a HubError then); its exceptions are re-raised here.
    """
    seconds = timeout_s()
    announce(
        f"asking the Hugging Face Hub ({endpoint()}) for {what}, waiting at most {seconds:g} s "
        f"({TIMEOUT_ENV} sets it; --offline or HF_HUB_OFFLINE=1 never asks)"
    )
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="kvplan-hub", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise HubError(
            f"the Hugging Face Hub ({endpoint()}) did not answer within {seconds:g} s for {what}",
            hint=f"check your network, or raise {TIMEOUT_ENV}; --offline (HF_HUB_OFFLINE=1) uses only local files "
            "and the cache",
        )
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


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
