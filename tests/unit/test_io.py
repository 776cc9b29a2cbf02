import json
import os

import pytest

from stages.io import atomic_dir, atomic_open, write_json, written_in_place


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


def test_a_folder_written_in_place_comes_back_as_it_was_when_the_writer_fails(tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), written_in_place(folder) as path:
        path.mkdir()
        (path / "new.txt").write_text("half")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["log"] and [p.name for p in folder.iterdir()] == ["old.txt"]
    with written_in_place(folder) as path:
        assert not path.exists()  # the block starts from nothing, as under dvc repro
        path.mkdir()
        (path / "new.txt").write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["log"] and [p.name for p in folder.iterdir()] == ["new.txt"]
