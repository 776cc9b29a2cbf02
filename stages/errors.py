"""The one error type for user mistakes, and the wrapper that turns it into a one-line message."""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

DEBUG_ENV = "STAGES_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted; this stage did not finish, run `dvc repro` again"
WATCH_SECONDS = 0.5  # how often a stage started by a shell checks that dvc still runs
# Set by a stage for the torchrun it starts (stages/distributed.py): its pid, which each worker checks
LAUNCHER_VARIABLE = "STAGES_LAUNCHER_PID"


class UserError(Exception):
    """A mistake the user can fix: bad data, bad params, a missing file. The message names the culprit."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def is_out_of_memory(err: BaseException) -> bool:
    """numpy's MemoryError, or torch's allocator failing on the CPU ("can't allocate memory") or a GPU
    (torch.cuda.OutOfMemoryError, a RuntimeError saying "out of memory")."""
    text = str(err)
    return isinstance(err, MemoryError) or "can't allocate memory" in text or "out of memory" in text


# What to do about each way the operating system refuses a path, after its own words (strerror).
OS_ERROR_ADVICE = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "name a file",
    errno.EACCES: "check the file's and its folders' permissions (ls -l)",
    errno.EPERM: "check the file's and its folders' permissions (ls -l)",
    errno.EROFS: "run where you can write, or mount it writable",
    errno.ENOSPC: "free space on that file system, then run again",
    errno.EDQUOT: "free space within your disk quota, then run again",
    errno.EFBIG: "the file is too large for that file system",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ELOOP: "a symbolic link on the way leads back to itself; fix or remove the link",
    errno.EIO: "the storage reported an input/output error; check the disk",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.EXDEV: "the temporary file and its target are on different file systems",
}


def os_error_message(err: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OSError: the path (`path`, or the one the error names), the system's words, and
    what to do, e.g. `data/x.csv: Permission denied; check the file's and its folders' permissions (ls -l)`."""
    where = path if path is not None else err.filename
    code, words = err.errno, err.strerror or str(err) or type(err).__name__
    if code is None and re.search(r"\d+ requested and \d+ written", words):  # numpy's short write: a full disk
        code, words = errno.ENOSPC, os.strerror(errno.ENOSPC)
    advice = OS_ERROR_ADVICE.get(code)
    text = f"{where}: {words}" if where is not None else words
    return f"{text}; {advice}" if advice else text


def _allocation(err: BaseException) -> str:
    found = re.search(r"tried to allocate (\d+ bytes|\d+(?:\.\d+)? ?[KMGT]i?B)", str(err), re.IGNORECASE)
    return f" (tried to allocate {found.group(1)})" if found else ""


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


SHELLS = {"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "busybox"}


def _parent_of(pid: int) -> int | None:
    """The parent of process `pid` (Linux /proc), or None when it cannot be read (gone, or not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])  # the fields after "(comm)": state, ppid, ...


def _shell_running_us(pid: int) -> bool:
    """Whether process `pid` is a shell running one command line (`sh -c ...`), as DVC starts a stage."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(command[0])).name in SHELLS and b"-c" in command[1:]


def _watch_shell(shell: int, starter: int | None) -> None:
    """Send this process SIGTERM once `shell` no longer has `starter` as its parent: the starter died."""
    while _parent_of(shell) == starter:
        time.sleep(WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def stop_with_parent() -> None:
    """End this stage as Ctrl-C does (temporary files removed, exit 130) on SIGTERM, and send it SIGTERM
    when the process that started it dies: a `dvc repro` that is killed leaves no stage training on as an
    orphan. DVC runs a stage's command with $SHELL -c (or /bin/sh -c): bash execs the command, so the stage's
    parent is dvc and Linux's PR_SET_PDEATHSIG does it; dash (Debian's /bin/sh) does not exec, so the parent
    is the shell, which outlives dvc: then a thread watches the shell and stops the stage when its parent,
    dvc, is gone."""
    signal.signal(signal.SIGTERM, _interrupt)
    parent = os.getppid()
    launcher = os.environ.get(LAUNCHER_VARIABLE) if "TORCHELASTIC_RUN_ID" in os.environ else None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        # A torchrun worker is killed outright: inside a gloo call it would not run the SIGTERM handler
        libc.prctl(1, signal.SIGKILL if launcher else signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: no such call, the stage just runs on
        return
    if os.getppid() != parent:  # the parent died before the call took effect
        raise KeyboardInterrupt
    if launcher and str(_parent_of(parent)) != launcher:  # torchrun's stage process died before it forked us
        os._exit(EXIT_INTERRUPTED)
    if _shell_running_us(parent):
        starter = _parent_of(parent)
        if starter not in (None, 0, 1):  # a shell without a live starter: nothing to watch
            threading.Thread(target=_watch_shell, args=(parent, starter), name="watch-dvc", daemon=True).start()


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage's main(); print `error: <message>` and return 2 on a user mistake.

    Set STAGES_DEBUG=1 to see the full traceback instead.
    """
    try:
        stop_with_parent()
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
    except OSError as err:  # a path the OS refused where no closer handler named it: still one line
        if debug_enabled():
            raise
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        print(f"error: {INTERRUPTED}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
