"""Issue 25's reliability cases for single stages: a CSV that changes while prepare reads it, tables and files
whose size would make a stage allocate far more than they hold, and what must be refused before that."""

import resource
import subprocess
import sys

import numpy as np

from tests.helpers import default_params, run_module, stage_env, write_params

APPEND_WHILE_READING = """
import sys
import stages.prepare as prepare

real = prepare.stream_columns

def appending(path, names):
    for block in real(path, names):
        with open(path, "a") as f:
            f.write("11,11\\n")
        yield block

prepare.stream_columns = appending
from stages.errors import run_stage
sys.exit(run_stage(prepare.main))
"""


def test_rows_appended_while_prepare_reads_the_csv_are_refused(workdir):
    result = subprocess.run([sys.executable, "-c", APPEND_WHILE_READING], cwd=workdir, env=stage_env(), text=True,
                            capture_output=True)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: data/seed.csv changed while it was read; run dvc repro again\n"
    assert not (workdir / "data" / "prepared").exists()
    assert run_module(workdir, "prepare").returncode == 0  # the next run reads the longer file
    assert len(np.load(workdir / "data" / "prepared" / "y_train.npy")) == 11


def _limit_memory(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def test_a_short_wide_table_is_prepared_in_little_memory(workdir):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4000)).round(3)
    names = [f"f{j}" for j in range(4000)]
    lines = [",".join([*names, "y"])] + [",".join(map(str, [*row, row[:3].sum().round(3)])) for row in X]
    (workdir / "data" / "wide.csv").write_text("\n".join(lines) + "\n")
    write_params(workdir, default_params(path="data/wide.csv", features="all"))
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=workdir, env=stage_env(), text=True,
                            capture_output=True, preexec_fn=_limit_memory(2 << 30))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "50 rows, 4000 feature(s)" in result.stdout
    assert np.load(workdir / "data" / "prepared" / "X_train.npy").shape == (50, 4000)


def _trained_mlp(workdir) -> dict:
    import torch

    for stage in (["prepare"], ["train", "mlp"]):
        assert run_module(workdir, *stage).returncode == 0
    return torch.load(workdir / "models" / "mlp.pt", weights_only=True)


def test_a_model_card_declaring_huge_layers_is_refused_before_anything_is_built(workdir):
    import torch

    saved = _trained_mlp(workdir)
    saved["architecture"] = {**saved["architecture"], "hidden": [50000, 50000]}  # 10 GB of weights if built
    torch.save(saved, workdir / "bomb.pt")
    (workdir / "new.csv").write_text("x\n3\n")
    result = subprocess.run([sys.executable, "-m", "stages.predict", "bomb.pt", "new.csv", "-o", "out.csv"],
                            cwd=workdir, env=stage_env(), text=True, capture_output=True,
                            preexec_fn=_limit_memory(3 << 30))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: bomb.pt: not a model file written by this pipeline (its parts do not "
                                    "fit together: its weights are layers.0.bias, ")  # fmt: skip
    assert result.stderr.count("\n") == 1 and not (workdir / "out.csv").exists()


def test_a_deflated_model_file_is_refused_before_it_is_inflated(workdir):
    import zipfile

    _trained_mlp(workdir)
    with zipfile.ZipFile(workdir / "models" / "mlp.pt") as source, \
            zipfile.ZipFile(workdir / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as target:  # fmt: skip
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry.filename))
    (workdir / "new.csv").write_text("x\n3\n")
    for module, args in (("predict", ["deflated.pt", "new.csv", "-o", "out.csv"]),):
        result = run_module(workdir, module, *args)
        assert result.returncode == 2
        assert result.stderr == (
            "error: deflated.pt: not a model file written by this pipeline (its parts do not fit together: its "
            "entries are compressed or too many; torch.save stores them as they are)\n"
        )


def test_a_tensor_of_another_shape_than_its_card_says_is_named(workdir):
    import torch

    saved = _trained_mlp(workdir)
    saved["state_dict"]["layers.0.weight"] = torch.zeros(10, 3)
    torch.save(saved, workdir / "odd.pt")
    (workdir / "new.csv").write_text("x\n3\n")
    result = run_module(workdir, "predict", "odd.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 2
    assert "(its parts do not fit together: layers.0.weight is 10 x 3, the architecture says 10 x 1)" in result.stderr


def test_a_model_too_large_for_the_memory_left_is_refused_with_both_sizes():
    import pytest

    from stages.errors import UserError
    from stages.memory import available_bytes
    from stages.predict import check_room

    room = available_bytes()
    assert room is not None and room > 0
    check_room("small.pt", 1 << 20)
    with pytest.raises(UserError, match=r"^big\.pt: its weights take \d+\.\d GiB, and loading them needs about "
                                        r"\d+\.\d GiB; \d+\.\d GiB is available here"):  # fmt: skip
        check_room("big.pt", room)


def test_a_header_name_longer_than_the_csv_modules_field_limit_is_read(workdir):
    long_name = "z" * 200_000  # Python's csv refuses fields over 131,072 characters unless told otherwise
    rows = "".join(f"{x},{x % 3},{y}\n" for x, y in zip(range(1, 11), [3, 5, 5, 6, 7, 7, 8, 9, 9, 10], strict=True))
    (workdir / "data" / "seed.csv").write_text(f"x,{long_name},y\n{rows}")
    result = run_module(workdir, "prepare")
    assert result.returncode == 0, result.stderr[:300]
    assert np.load(workdir / "data" / "prepared" / "X_train.npy").shape == (10, 1)


def test_the_exact_solvers_bytes_do_not_depend_on_the_cpus_blas_kernel(workdir):
    """numpy's OpenBLAS picks its kernels by CPU (AVX-512, AVX2, AVX): whatever the exact solver writes must not
    go through them. Sandybridge's kernel differs from both others, so this can fail on any x86 machine."""
    rng = np.random.default_rng(1)
    n, k = 3000, 60
    X = rng.normal(size=(n, k)) * rng.uniform(0.1, 100, size=k) + rng.uniform(-50, 50, size=k)
    category = rng.integers(0, 7, size=n)
    y = X @ rng.normal(size=k) + category * 0.3 + rng.normal(size=n)
    lines = [",".join([*(f"f{j}" for j in range(k)), "c", "y"])]
    lines += [",".join([*(f"{v:.6g}" for v in X[i]), f"k{category[i]}", f"{y[i]:.6g}"]) for i in range(n)]
    (workdir / "data" / "mixed.csv").write_text("\n".join(lines) + "\n")
    params = default_params(path="data/mixed.csv", features="all", test_size=0.2, standardize=True)
    params["models"]["linear"]["solver"] = "exact"
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    written = []
    for core in ("", "Haswell", "Sandybridge"):
        result = run_module(workdir, "train", "linear", env={**stage_env(), "OPENBLAS_CORETYPE": core})
        assert result.returncode == 0, result.stderr
        written.append({name: (workdir / name).read_bytes() for name in
                        ("models/linear.pt", "models/linear.json", "predictions/linear.npy")})  # fmt: skip
    assert written[0] == written[1] == written[2]


def test_a_model_too_large_to_train_in_the_memory_left_is_refused_before_it_is_built(workdir):
    import math

    from stages.memory import available_bytes

    room = available_bytes()
    side = math.ceil(math.sqrt(room / 8))  # hidden [side, side]: 4 copies of side^2 float32 weights = 2x the room
    params = default_params()
    params["models"]["mlp"]["hidden"] = [side, side]
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = subprocess.run([sys.executable, "-m", "stages.train", "mlp"], cwd=workdir, env=stage_env(), text=True,
                            capture_output=True, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr[-500:]
    assert result.stderr.startswith("error: train@mlp: training needs about ")
    assert f"({side * side + 4 * side + 1:,} weights, with their gradients" in result.stderr
    assert result.stderr.endswith("is available here: use smaller models.mlp.hidden layers or batch_size\n")
    assert not (workdir / "models").exists()


def test_predict_says_when_a_column_differs_from_the_models_only_in_unicode_normalization(workdir):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "température"), unicodedata.normalize("NFD", "température")
    rows = "".join(f"{x},{y}\n" for x, y in zip(range(1, 11), [3, 5, 5, 6, 7, 7, 8, 9, 9, 10], strict=True))
    (workdir / "data" / "seed.csv").write_text(f"{nfc},y\n{rows}", encoding="utf-8")
    write_params(workdir, default_params(features=[nfc]))
    for stage in (["prepare"], ["train", "linear"]):
        assert run_module(workdir, *stage).returncode == 0
    (workdir / "new.csv").write_text(f"{nfd}\n3\n", encoding="utf-8")  # as a Mac's tools may write it
    result = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: new.csv: missing the model's feature column(s) {nfc!r} (models/linear.pt was trained on {nfc!r}); "
        f"the file's column {nfd!r} looks the same but is other Unicode code points (Unicode NFD in the file, NFC "
        "here); copy the name from the file's header, or save the file with its header in NFC\n"
    )
