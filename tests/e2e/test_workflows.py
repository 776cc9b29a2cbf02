"""How DVC users work, end to end with the real dvc and git: experiments and queues, the CI checks
(check-repro with a tolerance, report.md), and data versioning through a local directory remote."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc_render.html import PAGE_HTML

from tests.helpers import clone_project, commit, repro, set_param, sh

pytestmark = pytest.mark.slow

MAKE = ["make", "--no-print-directory", "-o", f"{sys.prefix}/.installed", f"VENV={sys.prefix}"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = clone_project(tmp_path_factory.mktemp("clone"))
    repro(repo)
    return repo


def mlp_train_mse(repo: Path) -> float:
    return json.loads((repo / "metrics" / "mlp.json").read_text())["train"]["mse"]


def test_exp_run_with_a_changed_param_changes_the_metric(repo):
    before = mlp_train_mse(repo)
    out = sh(repo, "dvc", "exp", "run", "-S", "models.mlp.lr=0.02").stdout
    assert "Running stage 'train@mlp'" in out and "Running stage 'train@linear'" not in out
    assert mlp_train_mse(repo) != before
    assert "lr: 0.02" in (repo / "params.yaml").read_text()
    sh(repo, "git", "checkout", "--", ".")  # back to the commit: params, lock and git-tracked outputs
    sh(repo, "dvc", "checkout", "-q")  # and the cached outputs
    assert mlp_train_mse(repo) == before
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout


def test_exp_run_can_add_a_whole_model(repo):
    out = sh(
        repo,
        "dvc",
        "exp",
        "run",
        "-S",
        "+models.wide={kind: mlp, hidden: [16, 16], activation: relu, lr: 0.01, epochs: 200}",
    ).stdout
    assert "Running stage 'train@wide'" in out and "Running stage 'train@mlp'" not in out
    assert "Running stage 'evaluate@wide'" in out and "Running stage 'plot'" in out
    shown = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    assert "metrics/wide.json" in next(iter(shown.values()))["data"]
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "git", "clean", "-qfd", "metrics", "plots")  # the new model's git-tracked outputs
    sh(repo, "dvc", "checkout", "-q")
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout


def test_check_repro_tells_noise_from_a_real_change(repo):
    assert "check-repro: OK" in sh(repo, *MAKE, "check-repro").stdout
    set_param(repo, "models.linear.epochs", 1002)  # moves the MSE by less than 1e-6 relative, the epochs by 0.2%
    commit(repo, "two more Adam steps, not reproduced")
    loose = sh(repo, *MAKE, "check-repro", "TOL=0.01", check=False)
    assert loose.returncode != 0
    assert "check-repro: within tolerance: every metric agrees with the commit within TOL=0.01" in loose.stdout
    assert "dvc metrics diff HEAD:" in loose.stdout
    sh(repo, "git", "checkout", "-q", "dvc.lock", "metrics", "plots", "dvclive")
    # DVCLive's summary counts the epochs: two more are a real change, whatever the MSE did
    real = sh(repo, *MAKE, "check-repro", check=False)
    assert real.returncode != 0 and "check-repro: beyond tolerance: dvclive/linear/metrics.json: step" in real.stdout
    sh(repo, "git", "reset", "-q", "--hard", "HEAD~1")
    sh(repo, "dvc", "checkout", "-q")
    assert repro(repo) == set()


def test_an_edit_in_place_cannot_reach_the_cache_and_verify_cache_names_a_flipped_byte(repo):
    summary = repo / "models" / "mlp.summary.txt"
    outs = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train@mlp"]["outs"]
    md5 = next(out["md5"] for out in outs if out["path"] == "models/mlp.summary.txt")
    with summary.open("a") as handle:  # an editor that writes in place
        handle.write("my note\n")
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "--force")  # the README's restore
    assert hashlib.md5(summary.read_bytes()).hexdigest() == md5
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert re.search(r"verify-cache: HEAD: \d+ cache files rehashed, 0 wrong", sh(repo, *MAKE, "verify-cache").stdout)

    cached = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    original = cached.read_bytes()
    cached.chmod(0o644)
    cached.write_bytes(bytes([original[0] ^ 1]) + original[1:])  # one flipped bit on disk
    try:
        flipped = sh(repo, *MAKE, "verify-cache", check=False)
    finally:
        cached.write_bytes(original)
    assert flipped.returncode != 0
    assert f"verify-cache: .dvc/cache/files/md5/{md5[:2]}/{md5[2:]}: its content hashes to " in flipped.stderr
    assert f"not {md5} (models/mlp.summary.txt); delete it, then dvc pull" in flipped.stderr
    assert "1 wrong" in flipped.stdout


def test_make_report_writes_both_tables_and_the_figures_of_both_revisions(repo):
    set_param(repo, "models.mlp.lr", 0.02)
    repro(repo)
    commit(repo, "mlp lr 0.02")
    out = sh(repo, *MAKE, "report", "BASE=HEAD~1").stdout
    assert "report: wrote report.md" in out
    report = (repo / "report.md").read_text()
    assert "| params.yaml | models.mlp.lr | 0.01     | 0.02        |" in report
    assert re.search(r"\| metrics/mlp.json +\| train.mse", report) and "metrics/linear.json" not in report
    assert "![HEAD~1](report/static/HEAD~1_plots_fit.png)" in report
    assert (repo / "report" / "static" / "workspace_plots_fit.png").exists()
    assert (repo / "report" / "index.html").exists()
    assert sh(repo, "git", "status", "--porcelain").stdout == ""  # report files are ignored
    # CI's comment: the figures linked to the workflow run's artifact, no image for anything to upload
    run = "https://github.example/o/r/actions/runs/7"
    sh(repo, *MAKE, "report", "BASE=HEAD~1", f"FIGURES_URL={run}")
    linked = (repo / "report.md").read_text()
    assert "![" not in linked and f"[this workflow run]({run})" in linked and "`plots/fit.png`" in linked
    assert "| params.yaml | models.mlp.lr | 0.01     | 0.02        |" in linked


def test_remote_round_trip_and_a_new_data_version(repo, tmp_path):
    remote = tmp_path / "remote"
    sh(repo, "dvc", "remote", "add", "-d", "storage", str(remote))
    sh(repo, "git", "rm", "-q", "--cached", "data/seed.csv")
    sh(repo, "dvc", "add", "-q", "data/seed.csv")
    commit(repo, "seed data tracked by dvc, local remote")
    sh(repo, "dvc", "push", "-q")

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "models" / "mlp.pt").exists() and not (clone / "data" / "seed.csv").exists()
    sh(clone, "dvc", "pull", "-q")
    assert (clone / "models" / "mlp.pt").read_bytes() == (repo / "models" / "mlp.pt").read_bytes()
    assert "Data and pipelines are up to date." in sh(clone, "dvc", "status").stdout
    assert repro(clone) == set()  # nothing retrained

    csv = clone / "data" / "seed.csv"
    csv.write_text(csv.read_text() + "11,12\n12,12\n")
    sh(clone, "dvc", "add", "-q", "data/seed.csv")
    assert "prepare" in repro(clone)
    sh(clone, "git", "config", "user.email", "test@example.com")
    sh(clone, "git", "config", "user.name", "test")
    commit(clone, "data v2: two more rows")
    diff = json.loads(sh(clone, "dvc", "metrics", "diff", "HEAD~1", "--json").stdout)
    assert {"metrics/linear.json", "metrics/mlp.json"} <= set(diff)
    assert diff["metrics/linear.json"]["train.mse"]["old"] != diff["metrics/linear.json"]["train.mse"]["new"]
    sh(clone, "dvc", "push", "-q")
    assert "Data and pipelines are up to date." in sh(clone, "dvc", "status").stdout


def test_weight_decay_and_a_queued_grid_over_hidden_and_patience_show_in_exp_show(repo):
    sh(repo, "dvc", "exp", "run", "-S", "models.mlp.weight_decay=0.01")
    assert "weight_decay: 0.01" in (repo / "params.yaml").read_text()
    grid = ["-S", "models.mlp.hidden=choice([8],[16])", "-S", "+models.mlp.early_stopping.validation_fraction=0.2",
            "-S", "+models.mlp.early_stopping.patience=10,20", "-S", "models.mlp.epochs=100"]  # fmt: skip
    sh(repo, "dvc", "exp", "run", "--queue", *grid)
    sh(repo, "dvc", "exp", "run", "--run-all")
    shown = sh(repo, *MAKE, "exp-show").stdout
    header = next(line for line in shown.splitlines() if line.startswith("| Experiment"))
    for column in ("validation.mse", "models.mlp.hidden", "models.mlp.early_stopping.patience", "weight_decay"):
        assert column in header, header
    assert "models.mlp.lr" not in header and "models.mlp.activation" not in header  # the same in every row
    table = json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout)
    runs = [exp for entry in table for group in entry.get("experiments") or [] for exp in group["revs"]]
    validation = {}
    for run in runs:
        data = run["data"]
        mlp = data["params"]["params.yaml"]["data"]["models"]["mlp"]
        if "early_stopping" in mlp:
            key = (tuple(mlp["hidden"]), mlp["early_stopping"]["patience"])
            validation[key] = data["metrics"]["metrics/mlp.json"]["data"]["validation"]["mse"]
    # the queue ran all four, listed with their own results (this also covers a queue of experiments)
    assert set(validation) == {((8,), 10), ((8,), 20), ((16,), 10), ((16,), 20)}
    assert len(set(validation.values())) > 1
    sh(repo, "dvc", "exp", "remove", "--all-commits", "-A", check=False)
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "--force", "-q")


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def drawn_charts(page: Path, profile: Path) -> int:
    """How many charts headless Chromium draws (<canvas> elements, vega-embed's renderer) on the page, with
    every network request failing: no host resolves and every connection goes to a dead proxy."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    assert browser, "no headless browser for this test: `make browser` installs Debian's chromium"
    offline = [
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", *offline, f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return dom.count("<canvas")


def test_dvc_plots_show_and_diff_draw_every_chart_with_no_network(repo, tmp_path):
    default = tmp_path / "cdn.html"  # DVC's own page, which loads vega from a CDN: the control
    default.write_text(PAGE_HTML)
    pages = {}
    for name, command in (("show", ["show"]), ("diff", ["diff", "HEAD"]),
                          ("cdn", ["show", "--html-template", str(default)])):  # fmt: skip
        sh(repo, "dvc", "plots", *command, "-o", str(tmp_path / name))
        pages[name] = tmp_path / name / "index.html"
    for name in ("show", "diff"):
        html = pages[name].read_text()
        assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?https?:", html), name
        charts = html.count("vegaEmbed(")
        assert charts >= 5 and drawn_charts(pages[name], tmp_path / f"profile-{name}") == charts, name
    assert re.search(r"<script src=\"https://", pages["cdn"].read_text())
    assert drawn_charts(pages["cdn"], tmp_path / "profile-cdn") == 0  # what offline users saw before
