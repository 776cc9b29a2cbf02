"""What the tests share: the seed CSV and params, running a stage for real, driving dvc and git in a clone."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)

SEED_CSV = "x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(range(1, 11), [3, 5, 5, 6, 7, 7, 8, 9, 9, 10], strict=True))


def default_params(**data_overrides) -> dict:
    """The project's params.yaml as a dict, with `data` keys overridden."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(data_overrides)
    return params


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("STAGES_DEBUG", None)
    return env


def run_module(workdir: Path, module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m stages.<module>` in workdir as DVC would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{module}", *args],
        cwd=workdir,
        env=env or stage_env(),
        text=True,
        capture_output=True,
    )


def write_params(folder: Path, params: dict) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def sh(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=repo, env=stage_env(), text=True, capture_output=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message)


def clone_project(dest: Path) -> Path:
    """A new git repository holding the project's files as git sees them (committed or edited), no outputs
    beyond what git tracks: what a user has after `git clone`."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, text=True, capture_output=True, check=True
    ).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    sh(dest, "git", "init", "-q")
    sh(dest, "git", "config", "user.email", "test@example.com")
    sh(dest, "git", "config", "user.name", "test")
    commit(dest, "project as cloned")
    return dest


OUTPUT_FOLDERS = ("data/prepared", "models", "predictions", "metrics", "plots")


def repro(repo: Path, *args: str) -> set[str]:
    """Run dvc repro; return the names of the stages it ran."""
    out = sh(repo, "dvc", "repro", *args).stdout
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def outputs(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for folder in OUTPUT_FOLDERS
        for p in sorted((repo / folder).rglob("*"))
        if p.is_file() and p.name != ".gitignore"
    }


def set_param(folder: Path, dotted: str, value) -> None:
    """Change one key of folder/params.yaml."""
    params = yaml.safe_load((folder / "params.yaml").read_text())
    *parents, leaf = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[leaf] = value
    write_params(folder, params)


def module_file(module: str) -> Path:
    """stages.x -> stages/x.py; the package itself -> stages/__init__.py."""
    parts = module.split(".")
    path = ROOT.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(module: str) -> set[str]:
    """The project modules `module` imports anywhere in its file (inside functions too): `import stages.x`,
    `from stages.x import y`, `from stages import x` (x a module) and the package of each."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module_file(module).read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}").is_file()
            ]
        else:
            continue
        for name in names:
            if name == "stages" or name.startswith("stages."):
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def import_closure(module: str) -> set[str]:
    """Every project file that running `python -m <module>` executes, as paths relative to the root."""
    seen, todo = set(), {module, "stages"}
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= imported_modules(name) - seen
    return {module_file(name).relative_to(ROOT).as_posix() for name in seen}
