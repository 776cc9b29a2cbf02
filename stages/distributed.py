"""train.distributed: one model trained by several worker processes, on one machine or several, started
through torchrun (torch.distributed.run) and talking through torch.distributed (gloo on the CPU, NCCL on
CUDA). Nothing here schedules or transports anything itself.

The stage process (`dvc repro`, or `python -m stages.train <model> --node-rank K` on another machine) runs
torchrun, which forks train.distributed.nproc_per_node workers on this machine and runs stages/train.py in
each; they find the other machines' workers at train.distributed.rdzv_endpoint. Each worker trains on
its shard of the training rows; gradients (and the exact solver's small R factors) are combined with
collectives, so every worker holds the same model, and rank 0 alone writes the outputs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stages.errors import INTERRUPTED, LAUNCHER_VARIABLE, UserError, debug_enabled
from stages.params import Distributed

# torchrun sets these in every worker it starts
WORKER_VARIABLES = ("TORCHELASTIC_RUN_ID", "RANK", "WORLD_SIZE", "LOCAL_RANK")
# What torchrun runs in each worker: this file (--run-path), in a process forked from torchrun's own, which
# has imported torch already: the workers start training about a second sooner than new interpreters.
TRAIN_SCRIPT = Path(__file__).resolve().with_name("train.py")
# A worker whose collective fails because another worker vanished waits this long before it stops, so that
# torchrun sees the worker that stopped first and the stage's error line names it.
LOST_PEER_GRACE_S = 2.0
LOST_PEER = "lost contact with another worker"


@dataclass(frozen=True)
class Shard:
    """This worker's part of the training rows: `rank` of `world` equal, consecutive slices."""

    rank: int
    world: int
    local_rank: int = 0  # among this machine's workers

    def bounds(self, n_rows: int) -> tuple[int, int]:
        """Every worker gets n_rows // world rows (the last n_rows % world rows are not trained on), so every
        worker takes the same number of steps: collectives must pair up."""
        size = n_rows // self.world
        return self.rank * size, (self.rank + 1) * size


def worker_shard() -> Shard | None:
    """This process's shard when torchrun started it, else None."""
    if not all(name in os.environ for name in WORKER_VARIABLES):
        return None
    return Shard(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))


class Collective:
    """The all-reduces training needs, over every worker (torch.distributed's default group)."""

    def __init__(self, rank: int, world: int) -> None:
        import torch.distributed

        self.dist, self.rank, self.world = torch.distributed, rank, world

    def sum_(self, tensor):
        self._all_reduce(tensor)
        return tensor

    def mean_(self, tensor):
        self._all_reduce(tensor)
        return tensor.div_(self.world)

    def _all_reduce(self, tensor) -> None:
        """Sum in place over the workers. On the CPU (gloo) this worker polls for the result, giving its core
        to any other thread each time, instead of sleeping until gloo's threads wake it: a sleeping core
        takes long to wake (a virtual machine's above all; benchmarks/README.md, "Measurements behind the
        code"). On CUDA (NCCL) the all-reduce is queued on the GPU's stream, and waiting here would only stall."""
        if tensor.device.type != "cpu":
            self.dist.all_reduce(tensor)
            return
        work = self.dist.all_reduce(tensor, async_op=True)
        while not work.is_completed():
            os.sched_yield()
        work.wait()  # raises what failed

    def gather(self, tensor) -> list:
        """Every worker's `tensor` (same shape everywhere), in rank order."""
        parts = [tensor.new_empty(tensor.shape) for _ in range(self.world)]
        self.dist.all_gather(parts, tensor.contiguous())
        return parts


def lost_peer(err: BaseException) -> bool:
    """Whether a collective failed because another worker's connection closed: it stopped first."""
    return re.search(r"closed by peer|reset by peer|Broken pipe", str(err)) is not None


def stop_after_lost_peer(shard: Shard, err: BaseException) -> None:
    """Stop this worker (exit code 1) a moment after the worker it lost: torchrun reports the first worker
    it sees stopped, and that should be the one that caused it."""
    time.sleep(LOST_PEER_GRACE_S)
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    print(f"rank {shard.rank}: {LOST_PEER} ({first})", file=sys.stderr, flush=True)
    raise SystemExit(1)


def check_rows(n_train: int, workers: int) -> None:
    """Refused before any worker starts: a shard of fewer than 2 rows."""
    if n_train // workers < 2:
        raise UserError(
            f"train.distributed has {workers} workers for {n_train} training rows: each needs at least 2; use "
            "fewer workers (nproc_per_node x nnodes), or add rows"
        )


def init(shard: Shard, backend: str, device_type: str) -> Collective:
    import torch.distributed

    chosen = backend if backend != "auto" else ("nccl" if device_type == "cuda" else "gloo")
    torch.distributed.init_process_group(chosen)
    return Collective(shard.rank, shard.world)


def finish() -> None:
    import torch.distributed

    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# Workers one machine may start: a worker forked from torchrun holds about this much memory of its own, and
# more than this many workers a core only wait for each other (the start of 32 on 2 cores takes seconds).
WORKER_BYTES = 100 << 20
WORKERS_PER_CORE = 16
# After Ctrl-C or SIGTERM, torchrun and the workers get this long to stop before they are killed: torchrun can
# hang in its rendezvous shutdown, and a worker inside a gloo call does not run Python's signal handler.
STOP_GRACE_S = 5.0


def check_machine(d: Distributed, device: str) -> None:
    """Refuse, before anything starts, what this machine cannot run: more workers than its cores and memory
    can start, NCCL without CUDA, more CUDA workers than GPUs."""
    from stages.memory import available_bytes, gib

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    room = available_bytes()
    limits = [
        (cores * WORKERS_PER_CORE, f"{cores} core(s) allow {cores * WORKERS_PER_CORE} ({WORKERS_PER_CORE} a core)")
    ]
    if room is not None:
        limits.append((room // WORKER_BYTES, f"{gib(room)} of available memory allows {room // WORKER_BYTES} "
                                              f"({WORKER_BYTES >> 20} MiB each)"))  # fmt: skip
    most = min(limit for limit, _ in limits)
    if d.nproc_per_node > most:
        raise UserError(
            f"train.distributed.nproc_per_node {d.nproc_per_node} is more workers than this machine can start: "
            f"{' and '.join(why for _, why in limits)}; use at most {max(most, 1)}"
        )
    nccl = d.backend == "nccl" or (d.backend == "auto" and device in ("cuda", "auto"))
    if not nccl:
        return
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if d.backend == "nccl" and device == "cpu":
        raise UserError("train.distributed.backend nccl talks between GPUs, and train.device is cpu; use backend: "
                        "gloo (or auto), or device: cuda")  # fmt: skip
    if d.backend == "nccl" and gpus == 0:
        raise UserError("train.distributed.backend nccl needs CUDA GPUs, and torch sees none on this machine; use "
                        "backend: gloo (or auto) and device: cpu")  # fmt: skip
    if gpus and d.nproc_per_node > gpus:
        raise UserError(f"train.distributed.nproc_per_node {d.nproc_per_node} is more CUDA workers than this "
                        f"machine's {gpus} GPU(s): one worker a GPU; use at most {gpus}")  # fmt: skip


def _die_with_parent() -> None:
    """In torchrun's process, before it runs: Linux kills it when the stage process dies, even by SIGKILL."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to torchrun and every worker (its process group); SIGKILL to the group once torchrun is gone or
    STOP_GRACE_S have passed, for workers that outlive it or ignore SIGTERM."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(process.pid, sent)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)


def launch(model: str, params_path: str, prepared: str, node_rank: int, d: Distributed,
           fingerprint: Callable[[], dict]) -> None:  # fmt: skip
    """Run this machine's workers through torchrun and wait for them. A failure in any worker (here or on
    another machine) is one line: the worker's own `error:` line when it has one (exit 2), else which rank
    stopped and how (exit 1). With several nodes they first meet (stages/lobby.py): a node that does not
    come, or comes with other params, data or code, is one line on every node. Ctrl-C or SIGTERM stops
    torchrun and every worker (killed after STOP_GRACE_S); so does this process's death, however it dies."""
    if node_rank >= d.nnodes:
        raise UserError(f"--node-rank {node_rank} is not below train.distributed.nnodes {d.nnodes}")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={d.nnodes}",
               f"--nproc-per-node={d.nproc_per_node}", "--max-restarts=0"]  # fmt: skip
    if d.nnodes == 1:
        command.append("--standalone")  # a free port on this machine: runs side by side never collide
    else:
        from stages import lobby

        lobby.meet(model, d.rdzv_endpoint, node_rank, d.nnodes, d.join_timeout, fingerprint())
        host, port = d.rdzv_endpoint.rsplit(":", 1)
        command += [f"--node-rank={node_rank}", f"--master-addr={host.strip('[]')}", f"--master-port={port}",
                    f"--rdzv-conf=timeout={d.join_timeout}"]  # fmt: skip
    command += ["--start-method=fork", "--run-path", str(TRAIN_SCRIPT), model, "--params", params_path,
                "--prepared", prepared]  # fmt: skip
    path = os.pathsep.join(filter(None, [str(TRAIN_SCRIPT.parents[1]), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path,  # `import stages` in the workers
                   LAUNCHER_VARIABLE: str(os.getpid())}  # fmt: skip
    # A process group of its own, so that torchrun and its workers are stopped as one (and a terminal's Ctrl-C
    # reaches this process alone, which stops them in order)
    torchrun = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment,
                                start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
    try:
        _, errors = torchrun.communicate()
    except BaseException:
        stop_group(torchrun)
        raise
    if torchrun.returncode == 0:
        return
    if debug_enabled():  # the workers' tracebacks and torchrun's report, as they were
        sys.stderr.write(errors)
    # A worker's own error line, not the one of a worker that torchrun stopped because another one failed
    own = [line[len("error: ") :] for line in errors.splitlines() if line.startswith("error: ")]
    own = [line for line in own if line != INTERRUPTED]
    if own:
        raise UserError(own[0])
    print(f"error: {failure_line(model, errors, torchrun.returncode)}", file=sys.stderr)
    raise SystemExit(1)


def failure_line(model: str, errors: str, returncode: int) -> str:
    """One line from torchrun's report of a worker that stopped without an `error:` line of its own."""
    # torchrun's report: "  rank      : 1 (local_rank: 0)", "  exitcode  : -9 (pid: 123)"; its log lines
    # before it say "local_rank: 0" too, which is no global rank
    rank = re.search(r"^\s*rank\s*:\s*(\d+)", errors, re.MULTILINE)
    code = re.search(r"^\s*exitcode\s*:\s*(-?\d+)", errors, re.MULTILINE)
    who = f"worker rank {rank.group(1)}" if rank else "a worker"
    if rank and f"rank {rank.group(1)}: {LOST_PEER}" in errors:  # another machine's worker stopped first
        return (
            f"train@{model}: {who} {LOST_PEER}, which stopped or became unreachable (see that machine's "
            "log); no output was written: run dvc repro again"
        )
    how = f"exit code {code.group(1)}" if code else f"torchrun's exit code {returncode}"
    if code and int(code.group(1)) < 0:
        number = -int(code.group(1))
        name = signal.Signals(number).name if number in signal.valid_signals() else "unknown"
        how = f"signal {number} ({name})"
    return (
        f"train@{model}: {who} stopped ({how}); the others were stopped and no output was written: run dvc repro again"
    )
