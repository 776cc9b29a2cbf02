"""File access at the edges: what a path names before it is read, and atomic writes (every output goes to a
temporary file beside it and is renamed into place on success)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stages.errors import UserError, os_error_message

TEMPORARY_SUFFIX = ".tmp"  # .dvcignore and .gitignore leave out `.*.tmp`: a killed writer's leftover is never hashed
NAME_IN_TEMPORARY = 100  # characters of the target's name kept in its temporary's (a file name has at most 255)


def file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):  # fmt: skip
        if test(mode):
            return kind
    return "not a regular file"


def check_regular_file(path: str | Path, fix: str) -> None:
    """Refuse, before anything opens it, a path that is not a readable regular file (following links):
    missing or not a file (`fix` says what to do), a FIFO or device (reading one can block forever), a link
    loop, a name too long, a folder on the way that cannot be searched, or a file that cannot be read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; {fix}") from None
    except OSError as err:
        raise UserError(os_error_message(err, path)) from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: is {file_kind(mode)}, not a file; {fix}")
    try:
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except OSError as err:
        raise UserError(os_error_message(err, path)) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_prefix(path: Path) -> str:
    return f".{path.name[:NAME_IN_TEMPORARY]}."


def remove_stale_temporaries(path: Path) -> None:
    """Delete what a killed writer of `path` left beside it (`.<name>.<random>.tmp`, files or folders)."""
    with contextlib.suppress(OSError):
        for stale in path.parent.glob(f"{_temporary_prefix(path)}*{TEMPORARY_SUFFIX}"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _target_mode(path: Path, default: int) -> int:
    """The permission bits an output gets: those of the file it replaces, or the default less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return default & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a temporary binary file next to `path`; rename it over `path` only if the block succeeds.

    The replaced file's permission bits are kept. An OSError in writing (no space, permission, a read-only
    file system) becomes a UserError naming `path`; one the block raises about another file it reads
    propagates. The temporary file is removed whatever happened.
    """
    path = Path(path)
    tmp, in_block = None, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX)
        with os.fdopen(fd, "wb") as handle:
            in_block = True
            yield handle
            in_block = False
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _target_mode(path, 0o666))
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        if in_block and err.filename is not None:
            raise
        raise UserError(os_error_message(err, path)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (NaN and infinity are refused), sorted keys, newline at the end."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def written_in_place(path: str | Path) -> Iterator[Path]:
    """A folder that the block writes where it belongs as it goes (a log others follow while it grows):
    what was there before waits beside it (`.<name>.<random>.tmp`) and comes back if the block fails or is
    interrupted, so a run that did not finish changes nothing; on success it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    before = None
    if path.exists():
        before = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX))
        os.replace(path, before / path.name)
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        if before is not None:
            os.replace(before / path.name, path)
        raise
    finally:
        if before is not None:
            shutil.rmtree(before, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder next to `path`; swap it into place only if the block succeeds. OSErrors
    about the folder's files become a UserError naming `path`, as in atomic_open."""
    path = Path(path)
    tmp, in_block = None, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX))
        in_block = True
        yield tmp
        in_block = False
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        if in_block and err.filename is not None and not Path(err.filename).is_relative_to(tmp):
            raise
        raise UserError(os_error_message(err, path)) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
