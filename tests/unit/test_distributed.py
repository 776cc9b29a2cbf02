"""The launcher's one line from torchrun's report, and which worker errors mean another worker stopped first."""

from __future__ import annotations

import pytest

from stages.distributed import LOST_PEER, failure_line, lost_peer

# What torchrun 2.13 printed on node 1 of two (one worker each) when its worker was SIGKILLed: the agent's
# log line names the local rank before the report names the global one.
NODE_ONE_REPORT = """\
E1127 23:58:01.000000 19700 torch/distributed/elastic/multiprocessing/api.py:836] failed (exitcode: -9) \
local_rank: 0 (pid: 19772) of fn: run_script_path (start_method: fork)
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
======================================================
run_script_path FAILED
------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-27_23:58:01
  host      : localhost
  rank      : 1 (local_rank: 0)
  exitcode  : -9 (pid: 19772)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 19772
======================================================
"""


def test_the_line_names_the_global_rank_and_the_signal_of_the_worker_that_stopped():
    assert failure_line("mlp", NODE_ONE_REPORT, 1) == (
        "train@mlp: worker rank 1 stopped (signal 9 (SIGKILL)); the others were stopped and no output was "
        "written: run dvc repro again"
    )


def test_an_exit_code_is_named_when_no_signal_stopped_the_worker():
    report = NODE_ONE_REPORT.replace("-9 (pid: 19772)  (SIGKILL)", "1 (pid: 19772)")
    assert "worker rank 1 stopped (exit code 1)" in failure_line("mlp", report, 1)


def test_a_worker_that_lost_another_one_says_so_instead_of_taking_the_blame():
    report = f"rank 0: {LOST_PEER} (Connection closed by peer)\n" + NODE_ONE_REPORT.replace(
        "rank      : 1", "rank      : 0"
    ).replace("-9 (pid: 19772)  (SIGKILL)", "1 (pid: 19772)")
    assert failure_line("mlp", report, 1) == (
        f"train@mlp: worker rank 0 {LOST_PEER}, which stopped or became unreachable (see that machine's log); "
        "no output was written: run dvc repro again"
    )


def test_without_a_report_the_line_says_what_torchrun_returned():
    assert failure_line("mlp", "", 7) == (
        "train@mlp: a worker stopped (torchrun's exit code 7); the others were stopped and no output was written: "
        "run dvc repro again"
    )


@pytest.mark.parametrize(
    ("message", "lost"),
    [
        ("[../gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:16015", True),
        ("[../gloo/transport/tcp/pair.cc:589] Read error [127.0.0.1]:41234: Connection reset by peer", True),
        ("[../gloo/transport/tcp/pair.cc:123] Broken pipe", True),
        ("CUDA error: an illegal memory access was encountered", False),
        ("mat1 and mat2 shapes cannot be multiplied (4x8 and 9x128)", False),
    ],
)
def test_only_a_closed_connection_counts_as_a_lost_worker(message, lost):
    assert lost_peer(RuntimeError(message)) is lost
