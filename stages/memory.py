"""How much memory this process may still take: the machine's available memory (/proc/meminfo), or less where a
cgroup (a container, a systemd slice, CI's runner) sets a lower limit. Stages compare what a model or a set of
workers needs against it before allocating, so that a need too large is one line rather than the kernel's OOM
killer ending the stage with only DVC's "exited with -9"."""

from __future__ import annotations

from pathlib import Path

GIB = 1 << 30


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_room() -> int | None:
    """What this process's cgroup (v2, else v1) still allows, or None without a limit. Inside a container the
    path /proc/self/cgroup names may be the host's: the mount's root is the container's own cgroup then."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, where = line.split(":", 2)
        if controllers == "":  # v2
            root, names = Path("/sys/fs/cgroup"), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            root = Path("/sys/fs/cgroup/memory")
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for folder in (root / where.lstrip("/"), root):
            room = folder_room(folder, *names)
            if room is not None:
                return room
    return None


def folder_room(folder: Path, limit_name: str, usage_name: str, inactive_name: str) -> int | None:
    """A cgroup folder's limit less its usage, or None without a limit. The usage counts the page cache, whose
    inactive part is given back on demand: it is room (the "working set" container runtimes report)."""
    limit, usage = _read_number(folder / limit_name), _read_number(folder / usage_name)
    if limit is None or usage is None or limit >= 1 << 60:  # v1 writes a huge number for none
        return None
    return max(0, limit - usage + _stat(folder / "memory.stat", inactive_name))


def _stat(path: Path, key: str) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{key} ")), 0)


def available_bytes() -> int | None:
    """The memory this process can still take, or None where it cannot be told (not Linux)."""
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        machine = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    room = _cgroup_room()
    return machine if room is None else min(machine, room)


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB"
