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
            root, limit_name, usage_name = Path("/sys/fs/cgroup"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # v1
            root, limit_name, usage_name = (
                Path("/sys/fs/cgroup/memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        else:
            continue
        for folder in (root / where.lstrip("/"), root):
            limit, usage = _read_number(folder / limit_name), _read_number(folder / usage_name)
            if limit is not None and usage is not None and limit < 1 << 60:  # v1 writes a huge number for none
                return max(0, limit - usage)
    return None


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
