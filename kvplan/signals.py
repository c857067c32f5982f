"""The exception a SIGTERM or SIGHUP turns into (kvplan.__main__ installs the handlers): a KeyboardInterrupt, so
every `except BaseException` cleanup (temporary files, partial outputs) runs for it as for Ctrl-C, and the CLI
exits with 128 + the signal's number. Imports nothing."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by signal `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"
