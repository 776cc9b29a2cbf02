import json
import os

import pytest

from stages.io import atomic_dir, atomic_open, write_json


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_write_json_is_strict_and_sorted(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 0.5})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 0.5,\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"mse": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.5, "b": 1}


def test_atomic_dir_replaces_the_folder_only_on_success(tmp_path):
    target = tmp_path / "prepared"
    with atomic_dir(target) as folder:
        (folder / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as folder:
            (folder / "a.txt").write_text("second")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["prepared"]
