"""End to end: the real dvc and git on a copy of the project in a temporary repository."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import clone_project, commit, outputs, repro, set_param, sh, write_params

pytestmark = pytest.mark.slow

ALL_STAGES = {"prepare", "train@linear", "train@mlp", "evaluate@linear", "evaluate@mlp", "plot"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return clone_project(tmp_path_factory.mktemp("clone"))


def test_fresh_clone_reproduces_the_committed_lock_and_reference_numbers(repo):
    assert not (repo / "models" / "linear.pt").exists()  # only what git holds is there
    repro(repo)
    assert sh(repo, "git", "status", "--porcelain").stdout == ""
    linear = json.loads((repo / "metrics" / "linear.json").read_text())
    mlp = json.loads((repo / "metrics" / "mlp.json").read_text())
    assert f"{linear['train']['mse']:.6g}" == "0.141818"
    assert linear["coefficients"]["x"] == pytest.approx(0.709, abs=5e-4)
    assert linear["coefficients"]["intercept"] == pytest.approx(3.0, abs=5e-4)
    assert mlp["train"]["mse"] < 0.1
    assert "test" not in linear


def test_second_repro_runs_no_stage(repo):
    assert repro(repo) == set()


def test_forced_rerun_gives_byte_identical_outputs(repo):
    before = outputs(repo)
    assert len(before) >= 15
    assert repro(repo, "--force") == ALL_STAGES
    assert outputs(repo) == before
    assert sh(repo, "git", "status", "--porcelain").stdout == ""


def test_mlp_lr_change_reruns_only_the_mlp_stages_and_shows_in_diffs(repo):
    set_param(repo, "models.mlp.lr", 0.02)
    assert repro(repo) == {"train@mlp", "evaluate@mlp", "plot"}
    commit(repo, "mlp lr 0.02")
    metrics = json.loads(sh(repo, "dvc", "metrics", "diff", "HEAD~1", "--json").stdout)
    assert set(metrics) == {"metrics/mlp.json", "dvclive/mlp/metrics.json"}  # evaluate's and DVCLive's summary
    assert "train.mse" in metrics["metrics/mlp.json"] and "train.loss" in metrics["dvclive/mlp/metrics.json"]
    params = json.loads(sh(repo, "dvc", "params", "diff", "HEAD~1", "--json").stdout)
    assert list(params) == ["params.yaml"] and list(params["params.yaml"]) == ["models.mlp.lr"]
    assert params["params.yaml"]["models.mlp.lr"]["old"] == 0.01
    assert params["params.yaml"]["models.mlp.lr"]["new"] == 0.02


def test_check_repro_passes_when_clean_and_fails_on_unreproduced_params(repo):
    make = ["make", "--no-print-directory", "-o", f"{sys.prefix}/.installed", f"VENV={sys.prefix}", "check-repro"]
    ok = sh(repo, *make)
    assert "check-repro: OK" in ok.stdout
    set_param(repo, "models.mlp.epochs", 500)
    commit(repo, "epochs changed, pipeline not reproduced")
    failed = sh(repo, *make, check=False)
    assert failed.returncode != 0
    assert "check-repro: FAILED" in failed.stdout
    assert "output metrics/mlp.json" in failed.stdout and "output models/linear.pt" not in failed.stdout
    assert "metrics/mlp.json" in failed.stdout.split("dvc metrics diff HEAD:")[1]
    sh(repo, "git", "reset", "-q", "--hard", "HEAD~1")
    sh(repo, "dvc", "checkout", "-q")
    assert repro(repo) == set()


def test_editing_the_csv_or_pointing_at_another_reruns_everything(repo):
    csv = repo / "data" / "seed.csv"
    csv.write_text(csv.read_text().replace("10,10", "10,11"))
    assert repro(repo) == ALL_STAGES
    shutil.copy(csv, repo / "data" / "other.csv")
    (repo / "data" / "other.csv").write_text(csv.read_text() + "11,11\n")
    set_param(repo, "data.path", "data/other.csv")
    assert repro(repo) == ALL_STAGES
    assert json.loads((repo / "data" / "prepared" / "meta.json").read_text())["n_train"] == 11


def overlay_models(repo: Path, *args: str) -> dict[str, set[str]]:
    """The models in the loss overlay `dvc plots show` or `dvc plots diff` renders, per revision, after
    checking that the chart colours its lines by model."""
    rendered = json.loads(sh(repo, "dvc", "plots", *args, "--json").stdout)["data"]["plots/losses.csv"]
    assert len(rendered) == 1 and rendered[0]["type"] == "vega"
    content = rendered[0]["content"]
    assert content["encoding"]["color"]["field"] == "curve"  # the model, and "(validation)" for its held-out loss
    assert content["title"]["text"] == "Training loss per epoch, every model"
    revisions: dict[str, set[str]] = {}
    for point in content["data"]["values"]:
        revisions.setdefault(point["rev"], set()).add(point["model"])
    return revisions


def test_models_added_only_in_params_are_trained_evaluated_and_plotted(repo):
    repro(repo)  # up to date first, whatever ran before
    figure_before = (repo / "plots" / "fit.png").read_bytes()
    assert overlay_models(repo, "show") == {"workspace": {"linear", "mlp"}}
    set_param(repo, "models.linear_exact", {"kind": "linear", "solver": "exact"})
    ran = repro(repo)
    assert ran == {"train@linear_exact", "evaluate@linear_exact", "plot"}
    assert overlay_models(repo, "show") == {"workspace": {"linear", "mlp", "linear_exact"}}  # three curves
    set_param(
        repo,
        "models.mlp_wide",
        {"kind": "mlp", "hidden": [64, 64], "activation": "relu", "lr": 0.003, "epochs": 300, "batch_size": 4},
    )
    assert repro(repo) == {"train@mlp_wide", "evaluate@mlp_wide", "plot"}
    shown = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/mlp_wide.json", "metrics/linear_exact.json"} <= set(files)
    exact = files["metrics/linear_exact.json"]["data"]
    assert abs(exact["train"]["optimality_gap"]) < 1e-12
    plots = json.loads(sh(repo, "dvc", "plots", "show", "--json").stdout)["data"]
    assert {"plots/losses.csv", "plots/predicted/linear_exact.csv", "plots/predicted/mlp_wide.csv"} <= set(plots)
    assert overlay_models(repo, "diff", "HEAD") == {
        "HEAD": {"linear", "mlp"},
        "workspace": {"linear", "mlp", "linear_exact", "mlp_wide"},
    }
    assert (repo / "plots" / "fit.png").read_bytes() != figure_before
    assert (repo / "models" / "mlp_wide.pt").exists()


def test_models_can_be_replaced_renamed_and_removed_with_no_file_deleted_by_hand(repo, tmp_path):
    # DVC never deletes the outputs of a stage that is gone. plot reads only what the model stages keep in
    # git, so a removed model's files stay there, committed, and a fresh clone hashes plot's inputs the same.
    start = sh(repo, "git", "rev-parse", "HEAD").stdout.strip()
    mlp = {"kind": "mlp", "hidden": [4], "activation": "tanh", "lr": 0.01, "epochs": 20}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"] = {"linear": {"kind": "linear", "solver": "exact"}} | {f"mlp{i}": mlp for i in range(5)}
    write_params(repo, params)
    assert {f"train@mlp{i}" for i in range(5)} | {"plot"} <= repro(repo)
    params["models"]["renamed"] = params["models"].pop("mlp2")
    write_params(repo, params)
    assert repro(repo) == {"train@renamed", "evaluate@renamed", "plot"}
    for name in ("mlp3", "mlp4"):
        del params["models"][name]
    write_params(repo, params)
    assert repro(repo) == {"plot"}
    assert (repo / "metrics" / "mlp2.json").exists() and (repo / "models" / "mlp3.pt").exists()  # left alone
    commit(repo, "five MLPs, one renamed, two removed")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    make = ["make", "--no-print-directory", "-o", f"{sys.prefix}/.installed", f"VENV={sys.prefix}", "check-repro"]
    assert "check-repro: OK" in sh(clone, *make).stdout
    sh(repo, "git", "reset", "-q", "--hard", start)
    sh(repo, "dvc", "checkout", "-q")
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout
