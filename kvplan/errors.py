"""Typed errors raised by kvplan's library code.

Only the CLI layer turns these into a one-line message and an exit code; library code never exits the
process. Every error carries a `hint` that tells the user what to do about it, and the `field` it is about
when it is about one (the library's parameter name: `tp`, `seq_len`, `kv_dtype`, ... see kvplan.fields).
Messages and hints that name fields are `kvplan.fields.Text`: a str in the CLI's spelling, which each boundary
renders in its own with `spelled` (the CLI: flags; `kvplan check`: plan keys). This module imports only
kvplan.fields.
"""

from __future__ import annotations

from kvplan.fields import Spelling, spell


class KvplanError(Exception):
    """Base class: a problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        return self.message

    def spelled(self, spelling: Spelling) -> tuple[str, str | None]:
        """The message and the hint with every field named as `spelling` names it."""
        return spell(self.message, spelling) or "", spell(self.hint, spelling)


class ConfigError(KvplanError):
    """A model config is unreadable, malformed, or lacks a field kvplan needs."""


class UnsupportedArchitecture(KvplanError):
    """A model config describes an architecture kvplan cannot size."""


class HubError(KvplanError):
    """The Hugging Face Hub could not provide a file (not found, gated, offline, no network)."""


class UsageError(KvplanError):
    """A command-line value is out of range or cannot be parsed."""


class ProfileError(KvplanError):
    """A hardware profile file is missing, malformed or fails validation."""


class ProfilingError(KvplanError):
    """A profiling run could not be carried out (missing extras, no device, ...)."""


class DoesNotFit(KvplanError):
    """The plan was evaluated and does not fit (exit code 1)."""

    exit_code = 1
