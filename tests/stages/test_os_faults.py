"""Every path a user names, every way the operating system can refuse it, through the real stages: one
`error:` line naming the path and what to do, exit code 2, no traceback, nothing half-written.

Permissions are tested with the capabilities dropped (`setpriv`), as root reads anything otherwise; a full
disk and a read-only folder with a tmpfs and a read-only bind mount in a private mount namespace
(`unshare`), which vanish with the stage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import default_params, run_module, stage_env, write_params

NAMESPACES = shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"]).returncode == 0
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="no user and mount namespaces (unshare -rm) here")


def stage(workdir: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m stages.<args>` in workdir, under `prefix` (setpriv, unshare), at most a minute."""
    command = [*prefix, sys.executable, "-m", f"stages.{args[0]}", *args[1:]]
    return subprocess.run(command, cwd=workdir, env=stage_env(), text=True, capture_output=True, timeout=60)


def without_capabilities() -> tuple[str, ...]:
    """What runs a command with no capabilities, so that file permissions bind even as root."""
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-all") if os.geteuid() == 0 else ()


def in_mount_namespace(setup: str) -> tuple[str, ...]:
    """What runs a command after the shell `setup` (mounts) in a mount namespace of its own."""
    return ("unshare", "-rm", "sh", "-c", f'{setup} && exec "$@"', "sh")


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == f"error: {message}\n"


def point_data_at(workdir: Path, path: str) -> None:
    write_params(workdir, default_params(path=path))


CSV_FIX = "point data.path in params.yaml at an existing CSV"


def test_a_fifo_is_refused_at_once_instead_of_read_forever(workdir):
    os.mkfifo(workdir / "data" / "pipe.csv")
    point_data_at(workdir, "data/pipe.csv")
    assert_refused(stage(workdir, "prepare"), f"data/pipe.csv: is a named pipe (FIFO), not a file; {CSV_FIX}")


def test_a_folder_a_symlink_loop_a_long_name_and_a_file_on_the_way_are_named(workdir):
    (workdir / "data" / "loop.csv").symlink_to("loop.csv")
    long_name = "data/" + "a" * 300 + ".csv"
    cases = {
        "data": f"data: is a folder, not a file; {CSV_FIX}",
        "data/loop.csv": "data/loop.csv: Too many levels of symbolic links; a symbolic link on the way leads back to "
        "itself; fix or remove the link",
        long_name: f"{long_name}: File name too long; use a shorter name",
        "data/seed.csv/x.csv": "data/seed.csv/x.csv: Not a directory; a part of the path is a file, not a folder; "
        "check the path",
    }
    for path, message in cases.items():
        point_data_at(workdir, path)
        assert_refused(stage(workdir, "prepare"), message)
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["loop.csv", "seed.csv"]


def test_a_csv_that_cannot_be_read_is_named_with_what_to_check(workdir):
    (workdir / "data" / "seed.csv").chmod(0o000)
    result = stage(workdir, "prepare", prefix=without_capabilities())
    assert_refused(result, "data/seed.csv: Permission denied; check the file's and its folders' permissions (ls -l)")
    assert not (workdir / "data" / "prepared").exists()


@pytest.mark.parametrize("module", ["prepare", "train mlp", "evaluate linear", "plot"])
def test_every_stage_names_a_params_file_it_cannot_read(workdir, module):
    (workdir / "folder.yaml").mkdir()
    os.mkfifo(workdir / "pipe.yaml")
    (workdir / "loop.yaml").symlink_to("loop.yaml")
    fix = "run the stage from the project root, or name the file with --params"
    cases = {
        "missing.yaml": f"missing.yaml: file not found; {fix}",
        "folder.yaml": f"folder.yaml: is a folder, not a file; {fix}",
        "pipe.yaml": f"pipe.yaml: is a named pipe (FIFO), not a file; {fix}",
        "loop.yaml": "loop.yaml: Too many levels of symbolic links; a symbolic link on the way leads back to itself; "
        "fix or remove the link",
    }
    for path, message in cases.items():
        assert_refused(stage(workdir, *module.split(), "--params", path), message)
    (workdir / "params.yaml").chmod(0o000)
    result = stage(workdir, *module.split(), prefix=without_capabilities())
    assert_refused(result, "params.yaml: Permission denied; check the file's and its folders' permissions (ls -l)")


def test_an_output_folder_without_write_permission_is_named(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "models").mkdir()
    (workdir / "models").chmod(0o555)
    result = stage(workdir, "train", "linear", prefix=without_capabilities())
    assert_refused(result, "models/linear.pt: Permission denied; check the file's and its folders' permissions (ls -l)")
    assert list((workdir / "models").iterdir()) == []


@needs_namespaces
def test_a_full_disk_under_train_is_one_line_and_leaves_no_temporary_file(workdir):
    rows = "".join(f"{x},{2 * x + 1}\n" for x in range(3000))
    (workdir / "data" / "seed.csv").write_text("x,y\n" + rows)
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    # 3000 predictions take 24 kB: a 16 kB file system fills up while they are written
    command = in_mount_namespace("mount -t tmpfs -o size=16k tmpfs predictions")
    result = subprocess.run(
        [*command, "sh", "-c", f'{sys.executable} -m stages.train linear; code=$?; ls -A predictions; exit $code'],
        cwd=workdir, env=stage_env(), text=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: predictions/linear.npy: No space left on device; free space on that file system, then run again\n"
    )
    assert result.stdout.splitlines()[-1].startswith("train@linear: final b")  # and `ls -A` listed nothing after it


@needs_namespaces
def test_a_full_disk_under_prepare_leaves_no_temporary_folder(workdir, tmp_path_factory):
    source = tmp_path_factory.mktemp("source") / "seed.csv"
    source.write_text("x,y\n" + "".join(f"{x},{2 * x + 1}\n" for x in range(2000)))  # 2000 rows: 64 kB as .npy
    command = in_mount_namespace(f"mount -t tmpfs -o size=48k tmpfs data && cp {source} data/seed.csv")
    result = subprocess.run(
        [*command, "sh", "-c", f"{sys.executable} -m stages.prepare; code=$?; ls -A data; exit $code"],
        cwd=workdir, env=stage_env(), text=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr
        == "error: data/prepared: No space left on device; free space on that file system, then run again\n"
    )
    assert result.stdout == "seed.csv\n"


@needs_namespaces
def test_a_read_only_output_folder_is_one_line(workdir):
    for module in ("prepare", "train linear"):
        assert run_module(workdir, *module.split()).returncode == 0
    (workdir / "metrics").mkdir()
    command = in_mount_namespace("mount --bind metrics metrics && mount -o remount,bind,ro metrics")
    result = stage(workdir, "evaluate", "linear", prefix=command)
    assert_refused(result, "metrics/linear.json: Read-only file system; run where you can write, or mount it writable")
    assert list((workdir / "metrics").iterdir()) == []
