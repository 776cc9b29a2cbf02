"""run_stage: user mistakes and running out of memory become one line and exit code 2; bugs stay tracebacks."""

from __future__ import annotations

import pytest

from stages.errors import EXIT_USER_ERROR, UserError, run_stage


def raising(err: BaseException):
    def main(argv):
        raise err

    return main


@pytest.mark.parametrize(
    "err, message",
    [
        (UserError("data/x.csv: file not found"), "error: data/x.csv: file not found\n"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                "you tried to allocate 400000000000 bytes. Error code 12 (Cannot allocate memory)"
            ),
            "error: out of memory (tried to allocate 400000000000 bytes); lower the models' hidden sizes or "
            "batch_size, or use fewer rows (STAGES_DEBUG=1 shows where)\n",
        ),
        (
            RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.15 GiB total capacity)"),
            "error: out of memory (tried to allocate 20.00 GiB); lower the models' hidden sizes or batch_size, or "
            "use fewer rows (STAGES_DEBUG=1 shows where)\n",
        ),
        (
            MemoryError(),
            "error: out of memory; lower the models' hidden sizes or batch_size, or use fewer rows "
            "(STAGES_DEBUG=1 shows where)\n",
        ),
    ],
)
def test_user_errors_and_out_of_memory_are_one_line_and_exit_2(capsys, monkeypatch, err, message):
    monkeypatch.delenv("STAGES_DEBUG", raising=False)
    assert run_stage(raising(err)) == EXIT_USER_ERROR
    assert capsys.readouterr().err == message


def test_other_errors_and_debug_mode_keep_the_traceback(monkeypatch):
    monkeypatch.delenv("STAGES_DEBUG", raising=False)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_stage(raising(RuntimeError("shape mismatch")))  # a bug, not the user's to fix
    monkeypatch.setenv("STAGES_DEBUG", "1")
    with pytest.raises(MemoryError):
        run_stage(raising(MemoryError()))
