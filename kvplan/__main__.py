"""`python -m kvplan` and the `kvplan` console script: the command-line interface behind a guard.

`run` is the entry point: a Ctrl-C (or SIGTERM) that lands while the CLI is still being imported is one
`error: interrupted` line and exit code 130 (143), not a traceback. `import kvplan` imports nothing, so the guard
holds from the first line of kvplan's code.
"""

from __future__ import annotations

import signal
import sys


def _terminated(signum: int, frame: object) -> None:
    from kvplan.signals import Terminated

    raise Terminated(signum)


def run() -> None:
    """Console-script entry point (`kvplan = kvplan.__main__:run`)."""
    for name in ("SIGTERM", "SIGHUP"):  # like Ctrl-C: unwind, so temporary files are removed
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _terminated)
    try:
        from kvplan.cli import main
    except KeyboardInterrupt as exc:
        code = 128 + getattr(exc, "signum", signal.SIGINT)
        sys.stderr.write("error: interrupted\n")
        sys.exit(code)
    main()


if __name__ == "__main__":
    run()
