"""The one error type for user mistakes, and the wrapper that turns it into a one-line message."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

DEBUG_ENV = "STAGES_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake the user can fix: bad data, bad params, a missing file. The message names the culprit."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage's main(); print `error: <message>` and return 2 on a user mistake.

    Set STAGES_DEBUG=1 to see the full traceback instead.
    """
    try:
        main(argv)
    except UserError as err:
        if debug_enabled():
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        print("error: interrupted; this stage did not finish, run `dvc repro` again", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
