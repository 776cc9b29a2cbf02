"""Rehash the DVC cache files a commit needs and name any whose content does not match its hash.

    python .ci/verify_cache.py [REV]        (make verify-cache; REV defaults to HEAD)

DVC trusts its cache: a cached file changed in place (an editor writing through a hard link, a flipped bit on
disk) is "restored" by `dvc checkout` as it now is, and `dvc status` stays clean. This reads every output of
REV's dvc.lock and every `.dvc` file it tracks, finds each in .dvc/cache (a folder through its `.dir` listing),
and compares the md5 of its bytes with the name it is stored under. Exit 1 when one differs; files not in the
cache (never pulled) are counted, not failures.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml


def cache_root() -> Path:
    """Where this project's DVC cache keeps md5-named files: `dvc cache dir` (cache.dir may move it)."""
    found = subprocess.run(["dvc", "cache", "dir"], text=True, capture_output=True)
    folder = Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else Path(".dvc/cache")
    if folder.is_absolute() and folder.is_relative_to(Path.cwd()):
        folder = folder.relative_to(Path.cwd())  # names in messages as the user sees them: .dvc/cache/...
    return folder / "files" / "md5"


def git_show(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], check=True, text=True, capture_output=True).stdout


def tracked_outputs(rev: str) -> list[tuple[str, str]]:
    """(workspace path, md5) of every cached output in REV: dvc.lock's stages and the `.dvc` files. Outputs
    kept in git (`cache: false`: metrics, plots, DVCLive's log) are git's to check, not the cache's."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], check=True, text=True, capture_output=True)
    in_git = listed.stdout.splitlines()
    found = []
    lock = yaml.safe_load(git_show(rev, "dvc.lock")) or {}
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            path = out["path"].rstrip("/")
            if "md5" in out and not any(name == path or name.startswith(path + "/") for name in in_git):
                found.append((out["path"], out["md5"]))
    for name in in_git:
        if name.endswith(".dvc") and not name.startswith(".dvc/"):
            for out in (yaml.safe_load(git_show(rev, name)) or {}).get("outs", []):
                if "md5" in out:
                    found.append((str(Path(name).parent / out["path"]), out["md5"]))
    return found


def cache_file(root: Path, md5: str) -> Path:
    return root / md5[:2] / md5[2:]


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check(root: Path, path: str, md5: str, bad: list[str], counts: dict[str, int]) -> None:
    """Check one cache entry (and, for a folder, each file its listing names)."""
    stored = cache_file(root, md5)
    if not stored.is_file():
        counts["absent"] += 1
        return
    actual = md5_of(stored)
    counts["checked"] += 1
    if actual + (".dir" if md5.endswith(".dir") else "") != md5:
        bad.append(f"{stored}: its content hashes to {actual}, not {md5.removesuffix('.dir')} ({path})")
        return
    if md5.endswith(".dir"):
        for entry in json.loads(stored.read_text()):
            check(root, f"{path}/{entry['relpath']}", entry["md5"], bad, counts)


def main(argv: list[str]) -> int:
    rev = argv[0] if argv else "HEAD"
    bad: list[str] = []
    counts = {"checked": 0, "absent": 0}
    root = cache_root()
    for path, md5 in tracked_outputs(rev):
        check(root, path, md5, bad, counts)
    for line in bad:
        print(f"verify-cache: {line}; delete it, then dvc pull (or dvc repro) to get it back", file=sys.stderr)
    absent = f", {counts['absent']} not in this cache (dvc pull gets them)" if counts["absent"] else ""
    print(f"verify-cache: {rev}: {counts['checked']} cache files rehashed, {len(bad)} wrong{absent}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
