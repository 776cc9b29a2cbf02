from stages.memory import available_bytes, folder_room


def test_a_cgroups_room_is_its_limit_less_its_usage_with_the_inactive_page_cache_given_back(tmp_path):
    (tmp_path / "memory.max").write_text("12884901888\n")  # 12 GiB
    (tmp_path / "memory.current").write_text("10737418240\n")  # 10 GiB, 6 of them a CSV's inactive pages
    (tmp_path / "memory.stat").write_text("anon 4294967296\ninactive_file 6442450944\nactive_file 0\n")
    assert folder_room(tmp_path, "memory.max", "memory.current", "inactive_file") == 8 << 30


def test_no_limit_is_no_room_figure(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("1000\n")
    assert folder_room(tmp_path, "memory.max", "memory.current", "inactive_file") is None
    assert folder_room(tmp_path / "absent", "memory.max", "memory.current", "inactive_file") is None


def test_this_machine_has_some_memory_available():
    assert 0 < available_bytes() < 1 << 50
