"""The one error type for user mistakes, and the wrapper that turns it into a one-line message."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

DEBUG_ENV = "STAGES_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake the user can fix: bad data, bad params, a missing file. The message names the culprit."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def is_out_of_memory(err: BaseException) -> bool:
    """numpy's MemoryError, or torch's allocator failing on the CPU ("can't allocate memory") or a GPU
    (torch.cuda.OutOfMemoryError, a RuntimeError saying "out of memory")."""
    text = str(err)
    return isinstance(err, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _allocation(err: BaseException) -> str:
    found = re.search(r"tried to allocate (\d+ bytes|\d+(?:\.\d+)? ?[KMGT]i?B)", str(err), re.IGNORECASE)
    return f" (tried to allocate {found.group(1)})" if found else ""


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
    except (MemoryError, RuntimeError) as err:
        if debug_enabled() or not is_out_of_memory(err):
            raise
        print(
            f"error: out of memory{_allocation(err)}; lower the models' hidden sizes or batch_size, or use "
            f"fewer rows ({DEBUG_ENV}=1 shows where)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        print("error: interrupted; this stage did not finish, run `dvc repro` again", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
