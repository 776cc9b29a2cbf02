"""train.distributed end to end: real torchrun workers (gloo) on a table of 6,000 rows, against one process
(Adam, exact, L-BFGS, early stopping); two "nodes" on this machine; Ctrl-C, a worker killed mid-training and
a mistake every worker finds; what is refused before any worker starts; the nodes' meeting (a node that never
joins, a port in use, a host that does not resolve, a node with other params); SIGTERM while 32 workers
start and SIGKILL of the stage, after which no process of the run is left."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import clone_project, run_module, stage_env, write_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    repo = clone_project(tmp_path_factory.mktemp("distributed"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=len(X))
    np.savetxt(repo / "data" / "table.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,y",
               comments="", fmt="%.9g")  # fmt: skip
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(path="data/table.csv", features=["a", "b", "c"], target="y", test_size=0.2)
    params["models"] = {
        "linear": {"kind": "linear", "solver": "exact"},
        "mlp": {"kind": "mlp", "hidden": [8], "activation": "tanh", "lr": 0.01, "epochs": 4, "batch_size": 128},
    }
    write_params(repo, params)
    assert run_module(repo, "prepare").returncode == 0
    return repo


def distributed(repo: Path, **settings) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["distributed"] = settings
    write_params(repo, params)


def trained(repo: Path, model: str, *args: str) -> tuple[bytes, dict, dict]:
    """Train `model` and evaluate it: the .pt file's bytes, its card, its metrics."""
    result = run_module(repo, "train", model, *args)
    assert result.returncode == 0, result.stderr
    assert run_module(repo, "evaluate", model).returncode == 0
    card = json.loads((repo / "models" / f"{model}.json").read_text())
    metrics = json.loads((repo / "metrics" / f"{model}.json").read_text())
    return (repo / "models" / f"{model}.pt").read_bytes(), card, metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_solve_exactly_as_one_process_and_train_a_close_mlp_the_same_way_twice(project):
    distributed(project, nproc_per_node=1)
    _, one_linear, _ = trained(project, "linear")
    _, _, one_mlp = trained(project, "mlp")
    distributed(project, nproc_per_node=2)
    _, two_linear, _ = trained(project, "linear")
    first, card, two_mlp = trained(project, "mlp")
    again, *_ = trained(project, "mlp")

    for key, value in one_linear["coefficients"].items():  # tall-skinny QR: one process's to rounding
        assert two_linear["coefficients"][key] == pytest.approx(value, rel=1e-9, abs=1e-12)
    # one process's minibatch order, each batch shared out: the same steps up to the order of the sums
    assert two_mlp["test"]["mse"] == pytest.approx(one_mlp["test"]["mse"], rel=0.02)
    assert card["distributed"] == {"workers": 2}
    assert first == again  # a fixed world size: byte-identical models


def test_two_nodes_of_one_worker_train_what_one_node_of_two_trains(project):
    distributed(project, nproc_per_node=2)
    two_workers, _, metrics = trained(project, "mlp")
    distributed(project, nproc_per_node=1, nnodes=2, rdzv_endpoint=f"127.0.0.1:{free_port()}")
    node_1 = subprocess.Popen([sys.executable, "-m", "stages.train", "mlp", "--node-rank", "1"], cwd=project,
                              env=stage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    two_nodes, _, node_metrics = trained(project, "mlp")  # node 0, as dvc repro runs it
    assert node_1.wait(timeout=120) == 0, node_1.stderr.read()
    assert node_metrics["test"]["mse"] == pytest.approx(metrics["test"]["mse"], rel=1e-6)
    assert two_nodes == two_workers  # the same ranks, shards and seeds: the same bytes


def test_a_node_rank_beyond_the_nodes_and_a_batch_the_workers_cannot_share_are_refused(project):
    distributed(project, nproc_per_node=1, nnodes=2)
    result = run_module(project, "train", "mlp", "--node-rank", "2")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --node-rank 2 is not below train.distributed.nnodes 2"
    distributed(project, nproc_per_node=3)
    result = run_module(project, "train", "mlp")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: params.yaml: models.mlp.batch_size 128 must be a multiple of the 3 workers of train.distributed "
        "(nproc_per_node x nnodes): each takes an equal part of every batch"
    )


def long_training(repo: Path) -> tuple[subprocess.Popen, list[str], dict]:
    """Start train@mlp on two workers with epochs enough to be stopped in, in a session of its own (as a
    terminal runs it); return it once both workers train, their pids, and the params to restore."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["mlp"]["epochs"] = 100_000
    write_params(repo, params)
    stage = subprocess.Popen([sys.executable, "-m", "stages.train", "mlp"], cwd=repo, env=stage_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    workers = []
    for _ in range(300):  # both workers started (torchrun forks them and runs stages/train.py in them)
        found = subprocess.run(["pgrep", "-f", "-P", str(child_of(stage.pid)), "stages.train"], capture_output=True,
                               text=True).stdout.split()  # fmt: skip
        if len(found) == 2:
            workers = found
            break
        time.sleep(0.1)
    assert len(workers) == 2
    time.sleep(6)  # past joining the group: training
    return stage, workers, params


def test_ctrl_c_stops_every_worker_with_one_line_and_writes_nothing(project):
    distributed(project, nproc_per_node=2)
    before = trained(project, "mlp")[0]
    stage, workers, params = long_training(project)
    started = time.monotonic()
    os.killpg(stage.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: every process of the group
    _, errors = stage.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert stage.returncode == 130
    assert errors.strip() == "error: interrupted; this stage did not finish, run `dvc repro` again"
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert (project / "models" / "mlp.pt").read_bytes() == before
    params["models"]["mlp"]["epochs"] = 4
    write_params(project, params)


def test_a_worker_killed_mid_training_fails_the_stage_with_one_line_and_writes_nothing(project):
    distributed(project, nproc_per_node=2)
    trained(project, "mlp")
    before = (project / "models" / "mlp.pt").read_bytes()
    stage, workers, params = long_training(project)
    started = time.monotonic()
    subprocess.run(["kill", f"-{signal.SIGKILL.value}", workers[-1]], check=True)
    _, errors = stage.communicate(timeout=60)
    assert time.monotonic() - started < 60
    assert stage.returncode == 1
    lines = errors.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train@mlp: worker rank ") and "SIGKILL" in lines[0]
    assert (project / "models" / "mlp.pt").read_bytes() == before  # the last good output is kept
    params["models"]["mlp"]["epochs"] = 4
    write_params(project, params)
    assert trained(project, "mlp")[0] == before  # and the next run succeeds, with the same bytes


def test_lbfgs_and_early_stopping_train_on_the_workers_as_in_one_process(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    saved = dict(params["models"])
    params["models"].update(
        lbfgs={"kind": "linear", "solver": "lbfgs", "lr": 1.0, "epochs": 20},
        early={
            "kind": "mlp",
            "hidden": [8],
            "activation": "tanh",
            "lr": 0.01,
            "epochs": 40,
            "batch_size": 128,
            "early_stopping": {"validation_fraction": 0.2, "patience": 3},
        },  # fmt: skip
    )
    write_params(project, params)
    results = {}
    for count in (1, 2):
        distributed(project, nproc_per_node=count)
        results[count] = {model: trained(project, model)[1:] for model in ("lbfgs", "early")}
    params["models"] = saved
    write_params(project, params)

    # L-BFGS sees the mean loss and gradient of all the rows on every worker: the least-squares line, to
    # float32's rounding (which the line search's path follows), and its test MSE
    one, two = (results[count]["lbfgs"][0]["coefficients"] for count in (1, 2))
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-3, abs=1e-4)
    mse_one, mse_two = (results[count]["lbfgs"][1]["test"]["mse"] for count in (1, 2))
    assert mse_two == pytest.approx(mse_one, rel=1e-5)
    # every worker watches the loss on all the validation rows and keeps the same best epoch's weights
    (card_one, metrics_one), (card_two, metrics_two) = results[1]["early"], results[2]["early"]
    stopping = card_two["early_stopping"]
    assert stopping["validation_rows"] == card_one["early_stopping"]["validation_rows"] == 960
    assert 1 <= stopping["best_epoch"] <= stopping["stopped_epoch"] <= 40
    assert card_two["distributed"] == {"workers": 2}
    assert metrics_two["validation"]["mse"] == pytest.approx(metrics_one["validation"]["mse"], rel=0.05)
    history = project / "dvclive" / "early" / "plots" / "metrics" / "validation" / "loss.tsv"
    loss = np.genfromtxt(history, delimiter="\t", names=True)
    assert loss["loss"].min() == pytest.approx(stopping["best_validation_loss"], rel=1e-7)


def test_a_mistake_found_by_the_workers_is_one_line_with_a_rank_and_exit_2(project):
    # Every worker finds it (the same gradients): one line, not one per worker, and not the "interrupted"
    # of a worker that torchrun stopped once another had failed.
    distributed(project, nproc_per_node=2)
    before = trained(project, "mlp")[0]
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["mlp"]["lr"] = 1e30
    write_params(project, params)
    result = run_module(project, "train", "mlp")
    params["models"]["mlp"]["lr"] = 0.01
    write_params(project, params)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"error: rank [01]: models\.mlp: training diverged .*", lines[0])
    assert (project / "models" / "mlp.pt").read_bytes() == before


def test_more_workers_than_training_rows_is_refused_before_any_starts(tmp_path):
    repo = clone_project(tmp_path)  # the seed data: 10 training rows
    assert run_module(repo, "prepare").returncode == 0
    distributed(repo, nproc_per_node=6)
    result = run_module(repo, "train", "linear")
    assert result.returncode == 2
    assert result.stderr == (
        "error: train.distributed has 6 workers for 10 training rows: each needs at least 2; use fewer workers "
        "(nproc_per_node x nnodes), or add rows\n"
    )


def child_of(pid: int) -> int:
    """The torchrun process the stage started."""
    for _ in range(100):
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("torchrun did not start")


def run_processes(launcher: int) -> list[int]:
    """Every process a stage started for torchrun (torchrun and its workers carry the stage's pid)."""
    marker = f"STAGES_LAUNCHER_PID={launcher}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def two_nodes(project: Path, port: int, timeout: int = 30) -> None:
    distributed(project, nproc_per_node=1, nnodes=2, rdzv_endpoint=f"127.0.0.1:{port}", join_timeout=timeout)


def test_a_node_that_never_joins_is_named_within_the_join_timeout(project):
    two_nodes(project, free_port(), timeout=3)
    before = (project / "models" / "mlp.pt").read_bytes() if (project / "models" / "mlp.pt").exists() else None
    started = time.monotonic()
    result = run_module(project, "train", "mlp")
    assert time.monotonic() - started < 3 + 10
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert re.fullmatch(r"train@mlp: waiting for node\(s\) 1 to join at 127\.0\.0\.1:\d+ \(1 s of "
                        r"train\.distributed\.join_timeout 3 s\)", lines[0])  # fmt: skip
    assert re.fullmatch(r"error: train@mlp: node\(s\) 1 never joined at 127\.0\.0\.1:\d+ within "
                        r"train\.distributed\.join_timeout \(3 s\); start `python -m stages\.train mlp --node-rank N` "
                        r"on each, or raise the timeout", lines[-1])  # fmt: skip
    assert not lines[-1].startswith("error: ") or sum(line.startswith("error: ") for line in lines) == 1
    after = (project / "models" / "mlp.pt").read_bytes() if (project / "models" / "mlp.pt").exists() else None
    assert after == before
    # and node 1 alone, with no node 0 to answer
    result = run_module(project, "train", "mlp", "--node-rank", "1")
    assert result.returncode == 2
    assert re.fullmatch(r"error: train@mlp: node 0 never answered at 127\.0\.0\.1:\d+ within "
                        r"train\.distributed\.join_timeout \(3 s; Connection refused\); start `python -m "
                        r"stages\.train mlp` there \(or dvc repro\), check the endpoint and the firewall, or raise "
                        r"the timeout", result.stderr.splitlines()[-1])  # fmt: skip


def test_a_port_in_use_and_a_host_that_does_not_resolve_are_named_before_any_wait(project):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        two_nodes(project, port)
        result = run_module(project, "train", "mlp")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: train.distributed.rdzv_endpoint 127.0.0.1:{port}: port {port} is in use by another program on "
        "this machine (node 0); stop it, or choose another port\n"
    )
    distributed(project, nproc_per_node=1, nnodes=2, rdzv_endpoint="no-such-host.invalid:29400", join_timeout=30)
    for node in ("0", "1"):
        started = time.monotonic()
        result = run_module(project, "train", "mlp", "--node-rank", node)
        assert result.returncode == 2 and time.monotonic() - started < 20
        assert result.stderr.startswith(
            "error: train.distributed.rdzv_endpoint no-such-host.invalid:29400: the host 'no-such-host.invalid' does "
            "not resolve ("
        )
        assert result.stderr.endswith("); write node 0's name or IP address, one every node can reach\n")


def test_nccl_without_cuda_and_more_workers_than_the_machine_can_start_are_refused(project):
    distributed(project, nproc_per_node=2, backend="nccl")
    result = run_module(project, "train", "linear")
    assert result.returncode == 2
    assert result.stderr == (
        "error: train.distributed.backend nccl talks between GPUs, and train.device is cpu; use backend: gloo (or "
        "auto), or device: cuda\n"
    )
    cores = len(os.sched_getaffinity(0))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["mlp"]["batch_size"] = 0  # full batch: any worker count shares it
    params["train"]["distributed"] = {"nproc_per_node": 16 * cores + 1}  # 33 on 2 cores
    write_params(project, params)
    result = run_module(project, "train", "linear")
    params["models"]["mlp"]["batch_size"] = 128
    write_params(project, params)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: train.distributed.nproc_per_node {16 * cores + 1} is more workers than this machine can start: "
        f"{cores} core(s) allow {16 * cores} (16 a core)"
    )
    assert re.search(r"; use at most \d+\n$", result.stderr)


def test_a_node_started_with_other_params_stops_every_node_with_one_line(project, tmp_path):
    port = free_port()
    two_nodes(project, port)
    other = tmp_path / "node1"
    shutil.copytree(project, other, ignore=shutil.ignore_patterns(".git"))
    params = yaml.safe_load((other / "params.yaml").read_text())
    params["models"]["mlp"]["lr"] = 0.02
    write_params(other, params)
    before = (project / "models" / "mlp.pt").read_bytes() if (project / "models" / "mlp.pt").exists() else None
    node_1 = subprocess.Popen([sys.executable, "-m", "stages.train", "mlp", "--node-rank", "1"], cwd=other,
                              env=stage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    node_0 = run_module(project, "train", "mlp")
    _, node_1_errors = node_1.communicate(timeout=60)
    expected = (
        "error: train@mlp: the nodes would not train the same model: models.mlp.lr is 0.01 on node 0, 0.02 on node "
        "1; give every node the same commit, params.yaml and data (dvc pull), then run again\n"
    )
    assert (node_0.returncode, node_0.stderr) == (2, expected)
    assert (node_1.returncode, node_1_errors) == (2, expected)
    after = (project / "models" / "mlp.pt").read_bytes() if (project / "models" / "mlp.pt").exists() else None
    other_after = (other / "models" / "mlp.pt").read_bytes() if (other / "models" / "mlp.pt").exists() else None
    assert after == before == other_after  # nothing written on either node


def started_run(project: Path, workers: int, wait_s: float) -> subprocess.Popen:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["mlp"]["epochs"] = 100_000
    params["train"]["distributed"] = {"nproc_per_node": workers}
    write_params(project, params)
    stage = subprocess.Popen([sys.executable, "-m", "stages.train", "mlp"], cwd=project, env=stage_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    time.sleep(wait_s)
    return stage


def test_sigterm_while_32_workers_start_ends_every_process_within_30_s(project):
    stage = started_run(project, 32, 2.5)  # torchrun is forking the workers
    assert run_processes(stage.pid)
    started = time.monotonic()
    stage.send_signal(signal.SIGTERM)
    _, errors = stage.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert stage.returncode == 130
    assert errors == "error: interrupted; this stage did not finish, run `dvc repro` again\n"
    time.sleep(0.5)
    assert run_processes(stage.pid) == []
    distributed(project, nproc_per_node=1)


def test_sigkill_of_the_stage_leaves_no_worker_alive(project):
    stage = started_run(project, 2, 6)  # training
    running = run_processes(stage.pid)
    assert len(running) == 3  # torchrun and two workers
    stage.kill()
    stage.wait(timeout=10)
    time.sleep(5)
    assert [pid for pid in running if Path(f"/proc/{pid}").exists()] == []
    assert run_processes(stage.pid) == []
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["mlp"]["epochs"] = 4
    params["train"]["distributed"] = {"nproc_per_node": 1}
    write_params(project, params)
