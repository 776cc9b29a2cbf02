"""Failures through the real dvc: nothing is lost. `git checkout -- . && dvc checkout` restores the commit,
and undoing the edit then `dvc repro` restores the last good run from DVC's run-cache; Ctrl-C is clean."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import clone_project, outputs, repro, set_param, sh, stage_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def good_repo(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A clone after a good `dvc repro`, with the bytes of every output."""
    repo = clone_project(tmp_path_factory.mktemp("clone"))
    repro(repo)
    return repo, outputs(repo)


def temporary_files(repo: Path) -> list[str]:
    return [str(p) for p in repo.rglob("*.tmp")]


def assert_restored(repo: Path, good: dict[str, bytes]) -> None:
    assert outputs(repo) == good
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout
    assert sh(repo, "git", "status", "--porcelain").stdout == ""
    assert temporary_files(repo) == []


def test_bad_csv_fails_in_dvc_repro_and_checkout_restores_everything(good_repo):
    repo, good = good_repo
    csv = repo / "data" / "seed.csv"
    csv.write_text(csv.read_text().replace("3,5\n", "3,five\n"))
    failed = sh(repo, "dvc", "repro", check=False)
    assert failed.returncode != 0
    assert "error: data/seed.csv: row 3 (line 4), column 'y': 'five' is not a number" in failed.stderr
    assert "failed to reproduce 'prepare'" in failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    sh(repo, "git", "checkout", "--", ".")  # the README's restore: the commit's files, then its cached outputs
    sh(repo, "dvc", "checkout", "-q")
    assert_restored(repo, good)


def test_bad_params_fail_in_dvc_repro_and_undoing_the_edit_restores_from_the_run_cache(good_repo):
    repo, good = good_repo
    original = (repo / "params.yaml").read_text()
    set_param(repo, "models.mlp.lr", 1e12)
    failed = sh(repo, "dvc", "repro", check=False)
    assert failed.returncode != 0
    assert "error: models.mlp: training diverged" in failed.stderr
    assert not (repo / "models" / "mlp.pt").exists()  # dvc removed it before the run; nothing half-written
    (repo / "params.yaml").write_text(original)
    restored = sh(repo, "dvc", "repro").stdout
    assert "Running stage" not in restored
    assert "Stage 'train@mlp' is cached - skipping run, checking out outputs" in restored
    assert_restored(repo, good)


def wait_for(path: Path, text: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        assert process.poll() is None, f"exited early:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{path.read_text()}"
        time.sleep(0.05)


def test_sigint_ends_a_training_stage_promptly_without_output(good_repo, tmp_path):
    repo, good = good_repo
    set_param(repo, "models.mlp.epochs", 10_000_000)
    log = tmp_path / "train.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "stages.train", "mlp"],
            cwd=repo,
            env=stage_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    wait_for(log, "train@mlp: epoch 1/10000000", process)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert process.wait(timeout=10) == 130
    assert time.monotonic() - started < 5
    text = log.read_text()
    assert "error: interrupted" in text and "Traceback" not in text
    assert outputs(repo) == good and temporary_files(repo) == []
    sh(repo, "git", "checkout", "params.yaml")


def test_ctrl_c_during_dvc_repro_leaves_no_partial_output_and_the_next_repro_succeeds(good_repo, tmp_path):
    repo, good = good_repo
    set_param(repo, "models.mlp.epochs", 10_000_000)
    log = tmp_path / "repro.log"
    with log.open("w") as handle:
        # A new session, so the signal can go to the whole process group, as Ctrl-C in a terminal does.
        process = subprocess.Popen(
            ["dvc", "repro"], cwd=repo, env=stage_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_for(log, "train@mlp: epoch 1/10000000", process)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)
    assert process.returncode != 0
    assert temporary_files(repo) == []
    assert not (repo / "models" / "mlp.pt").exists()
    sh(repo, "git", "checkout", "params.yaml")
    repro(repo)
    assert outputs(repo) == good
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout


KILL_AT_RENAME = """
import os, signal
_replace = os.replace


def replace(src, dst, *args, **kwargs):
    # Killed like a power cut: the output's temporary file is written, the rename never happens.
    if str(dst) == os.environ.get("KILL_AT_RENAME"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)


os.replace = replace
"""


@pytest.mark.parametrize(
    "output, params",
    [
        ("predictions/mlp.npy", ("models.mlp.lr", 0.02)),  # in the folder `plot` depends on
        ("metrics/mlp.json", ("models.mlp.lr", 0.02)),  # in a folder git tracks
        ("data/prepared", ("data.split_seed", 1)),  # a folder output, its temporary a folder
    ],
)
def test_a_stage_killed_at_the_rename_still_restores_clean(good_repo, tmp_path, output, params):
    repo, good = good_repo
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AT_RENAME)
    set_param(repo, *params)
    env = {**stage_env(), "KILL_AT_RENAME": output, "PYTHONPATH": f"{hook}{os.pathsep}{stage_env()['PYTHONPATH']}"}
    killed = subprocess.run(["dvc", "repro"], cwd=repo, env=env, text=True, capture_output=True)
    assert killed.returncode != 0 and "failed to reproduce" in killed.stderr
    assert temporary_files(repo), "the kill left no temporary file: the hook did not fire"
    left = temporary_files(repo)
    # The README's restore command; --force, since outputs the stage renamed before it was killed are new
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "--force", "-q")
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout
    assert sh(repo, "git", "status", "--porcelain").stdout == ""  # the leftover is ignored by git and by DVC
    assert {name: data for name, data in outputs(repo).items() if not Path(name).name.endswith(".tmp")} == good
    assert temporary_files(repo) == left
    assert repro(repo) == set()  # and the next repro finds nothing to do
    for path in left:  # (removed by hand here, so the next test starts without them)
        shutil.rmtree(path) if Path(path).is_dir() else Path(path).unlink()


def stage_processes(repo: Path) -> list[int]:
    """Processes running a stage module in `repo`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if b"stages.train" in command and cwd == str(repo):
                found.append(int(entry.name))
    return found


# DVC runs a stage as `$SHELL -c cmd`, or `/bin/sh -c cmd` where SHELL is unset (as in many CI jobs). bash
# execs the command, so the stage's parent is dvc; dash (Debian's /bin/sh) does not, so it is the shell.
SHELLS = [shell for shell in ("/bin/bash", "/bin/dash") if Path(shell).exists()]


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stage_does_not_train_on_when_dvc_itself_is_killed(good_repo, tmp_path, shell):
    repo, good = good_repo
    set_param(repo, "models.mlp.epochs", 10_000_000)
    log = tmp_path / "repro.log"
    env = {**stage_env(), "SHELL": shell}
    with log.open("w") as handle:
        process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=handle, stderr=subprocess.STDOUT)
    wait_for(log, "train@mlp: epoch 1/10000000", process)
    assert stage_processes(repo), "no training stage found running"
    parents = {parent_pid(pid) for pid in stage_processes(repo)}
    assert (parents == {process.pid}) == (Path(shell).name == "bash")  # with dash, the parent is the shell
    process.kill()  # dvc alone, not its process group: as when its terminal or CI job dies
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while stage_processes(repo) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stage_processes(repo) == []
    assert temporary_files(repo) == []
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "-q")
    assert outputs(repo) == good
