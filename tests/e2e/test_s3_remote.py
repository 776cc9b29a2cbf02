"""Data versioning through an S3-compatible remote, end to end: a real S3 server (moto's server mode, on
127.0.0.1, started here), the real dvc with its S3 plugin (dvc-s3), a real git clone. Push, clone, pull:
data, models and DVC's cache come back byte for byte, and nothing needs to run again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import clone_project, commit, outputs, repro, sh

pytestmark = pytest.mark.slow

BUCKET = "pipeline-data"


@pytest.fixture
def s3_endpoint(monkeypatch, tmp_path) -> str:
    """An S3 server on a free port of 127.0.0.1 with one empty bucket; credentials only in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    environment = {
        "AWS_ACCESS_KEY_ID": "test-key-id",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),  # nothing from this machine's ~/.aws
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def cache_files(repo: Path) -> dict[str, bytes]:
    cache = repo / ".dvc" / "cache"
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


def test_push_clone_and_pull_through_an_s3_server_round_trip_byte_for_byte(s3_endpoint, tmp_path):
    import boto3

    repo = clone_project(tmp_path / "repo")
    sh(repo, "git", "rm", "-q", "--cached", "data/seed.csv")
    sh(repo, "dvc", "add", "-q", "data/seed.csv")  # the data goes through the remote too
    repro(repo)
    sh(repo, "dvc", "remote", "add", "-d", "storage", f"s3://{BUCKET}/dvc")
    sh(repo, "dvc", "remote", "modify", "storage", "endpointurl", s3_endpoint)
    assert "test-secret" not in (repo / ".dvc" / "config").read_text()  # credentials never in git
    commit(repo, "seed data tracked by dvc, an S3 remote")
    sh(repo, "dvc", "push", "-q", "--run-cache")
    stored = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=BUCKET)
    assert stored["KeyCount"] > 0

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "models" / "mlp.pt").exists() and not (clone / "data" / "seed.csv").exists()
    sh(clone, "dvc", "pull", "-q", "--run-cache")
    assert (clone / "data" / "seed.csv").read_bytes() == (repo / "data" / "seed.csv").read_bytes()
    assert outputs(clone) == outputs(repo)  # prepared splits, models, predictions, metrics, plots
    # the cache, run-cache entries included; the run-cache's copies of train's outputs kept in git (DVCLive's
    # log) stay on the remote: `dvc pull` fetches what dvc.lock caches, and the clone has them from git
    pulled, pushed = cache_files(clone), cache_files(repo)
    assert pulled.items() <= pushed.items()
    in_git = {p.read_bytes() for p in (clone / "dvclive").rglob("*") if p.is_file()}
    left = {name: data for name, data in pushed.items() if name not in pulled and not name.endswith(".dir")}
    assert left and set(left.values()) <= in_git
    assert "Data and pipelines are up to date." in sh(clone, "dvc", "status").stdout
    assert repro(clone) == set()  # nothing runs again
