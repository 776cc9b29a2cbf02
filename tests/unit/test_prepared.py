"""The prepared-split format: written by prepare, mapped by every later stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.errors import UserError
from stages.prepared import Encoded, Scaling, SplitWriter, read_split, release, sample_rows, write_meta


def write_split(folder, X, y, features, target, train_rows, test_rows, scaling=None):
    """A prepared folder of these rows, written as prepare writes one (SplitWriter, write_meta)."""
    writer = SplitWriter(folder, X.shape[1])
    writer.append("train", X[train_rows], y[train_rows])
    writer.append("test", X[test_rows], y[test_rows])
    writer.close()
    write_meta(folder, features, target, len(train_rows), len(test_rows), scaling)


def test_split_files_round_trip(tmp_path):
    X = np.asfortranarray([[1.0, 2.0], [3.0, 4.0], [0.1, 1e-300]])  # column-major, as the CSV reader gives it
    y = np.array([5.0, 6.0, 7.0])
    scaling = Scaling((1.0, 2.0), (3.0, 4.0), 5.0, 6.0)
    folder = tmp_path / "prepared"
    folder.mkdir()
    write_split(folder, X, y, ("a", "b"), "t", np.array([0, 2]), np.array([1]), scaling)
    back = read_split(folder)
    assert back.features == ("a", "b") and back.target == "t" and back.scaling == scaling
    assert back.X_train.tolist() == [[1.0, 2.0], [0.1, 1e-300]] and back.y_train.tolist() == [5.0, 7.0]
    assert back.X_test.tolist() == [[3.0, 4.0]] and back.y_test.tolist() == [6.0]
    everything = tmp_path / "all"
    everything.mkdir()
    write_split(everything, X, y, ("a", "b"), "t", np.arange(3), np.array([], dtype=int))
    back = read_split(everything)
    assert back.X_train.flags.c_contiguous and back.X_train.tolist() == X.tolist()
    assert back.X_test.shape == (0, 2) and back.scaling is None


def test_a_missing_split_file_says_to_run_prepare(tmp_path):
    with pytest.raises(UserError, match=r"meta.json: missing; run `dvc repro prepare` first"):
        read_split(tmp_path)


def test_sample_rows_keeps_small_tables_whole_and_samples_large_ones_in_order():
    assert sample_rows(5, 10).tolist() == [0, 1, 2, 3, 4]
    rows = sample_rows(1000, 10, seed=1)
    assert len(rows) == 10 == len(set(rows.tolist())) and rows.tolist() == sorted(rows.tolist())
    assert rows.tolist() == sample_rows(1000, 10, seed=1).tolist() != sample_rows(1000, 10, seed=2).tolist()


def _resident_file_kib() -> int:
    """RssFile of this process: the resident pages of mapped files."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_pass_over_a_mapped_split_holds_one_block_not_the_file(tmp_path):
    """train converts and predicts the mapped rows block by block, releasing each block's pages: resident
    memory stays at a block where the whole pass would otherwise keep the whole file (64 MiB here)."""
    import torch

    from stages import models

    rows = 1 << 20
    X = np.random.default_rng(0).standard_normal((rows, 8))
    folder = tmp_path / "prepared"
    folder.mkdir()
    write_split(folder, X, X[:, 0].copy(), tuple("abcdefgh"), "t", np.arange(rows), np.arange(0))
    split = read_split(folder, mmap=True)
    before = _resident_file_kib()
    tensor = models.scaled_tensor(split.X_train, None, torch.float64)
    released = _resident_file_kib() - before
    assert torch.equal(tensor, torch.from_numpy(X))  # and the values are all there
    float(np.sum(split.X_train))  # the same pass without releasing: the control
    kept = _resident_file_kib() - before
    assert kept > 48 * 1024, "the control pass did not show the file resident: the measurement is broken"
    assert released < 8 * 1024
    # and on an array that is not mapped from a split file, release does nothing
    copy = X[:1000].copy()
    release(copy)
    assert np.array_equal(copy, X[:1000])


def test_metrics_by_block_equal_the_whole_array_ones(tmp_path):
    """Past METRIC_BLOCK rows evaluate scores block by block (memory independent of the rows): the same
    numbers to rounding as numpy over the whole arrays, from mapped files."""
    from stages import metrics

    rng = np.random.default_rng(4)
    n_rows = metrics.METRIC_BLOCK * 2 + 12345
    actual, predicted = rng.standard_normal(n_rows) * 3 + 1, rng.standard_normal(n_rows)
    np.save(tmp_path / "a.npy", actual)
    np.save(tmp_path / "p.npy", predicted)
    from stages.prepared import map_array

    by_block = metrics.regression_metrics(map_array(tmp_path / "a.npy"), map_array(tmp_path / "p.npy"))
    residual = actual - predicted
    whole = {
        "mse": np.mean(residual**2),
        "mae": np.mean(np.abs(residual)),
        "r2": 1 - np.sum(residual**2) / np.sum((actual - actual.mean()) ** 2),
    }
    for key, value in whole.items():
        assert by_block[key] == pytest.approx(value, rel=1e-12)
    assert by_block["rmse"] == pytest.approx(np.sqrt(whole["mse"]), rel=1e-12)


def test_encoded_rows_expand_to_the_one_hot_matrix_and_index_like_an_array(tmp_path):
    dense = np.array([[1.5, 0.0], [2.5, 1.0], [3.5, 0.0]])
    codes = np.array([[2, 0], [0, -1], [1, 1]], dtype=np.int32)  # -1: none of the block's features
    X = Encoded(dense, codes, (3, 2))
    expected = [[1.5, 0, 0, 0, 1, 1, 0], [2.5, 1, 1, 0, 0, 0, 0], [3.5, 0, 0, 1, 0, 0, 1]]
    assert X.shape == (3, 7) and len(X) == 3 and np.asarray(X).tolist() == expected
    assert isinstance(X[1:], Encoded) and np.asarray(X[[2, 0]]).tolist() == [expected[2], expected[0]]
    assert X[1].tolist() == expected[1] and X[:, 4].tolist() == [1, 0, 0] and X[[0, 2], 6].tolist() == [0, 1]
    folder = tmp_path / "prepared"
    folder.mkdir()
    writer = SplitWriter(folder, 2, n_codes=2)
    writer.append("train", dense[:2], np.array([1.0, 2.0]), codes[:2])
    writer.append("test", dense[2:], np.array([3.0]), codes[2:])
    writer.close()
    write_meta(folder, tuple("abcdefg"), "t", 2, 1, None, {"columns": []}, 0, [3, 2])
    back = read_split(folder, mmap=True)
    assert isinstance(back.X_train, Encoded) and back.X_train.widths == (3, 2)
    assert np.asarray(back.X_train).tolist() == expected[:2] and np.asarray(back.X_test).tolist() == expected[2:]
    assert np.load(folder / "C_train.npy").dtype == np.int32
