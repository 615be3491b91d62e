"""Shared fixtures: the smoke configuration of experiments/smoke.yaml and data generated with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ups.config import apply_overrides, load_config, load_raw
from ups.experiments import load_experiment
from ups.pipeline_copy import copy_pipeline

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smoke_overrides() -> dict:
    return load_experiment(ROOT / "experiments" / "smoke.yaml", ROOT / "params.yaml").params


@pytest.fixture(scope="session")
def smoke_cfg(smoke_overrides):
    return load_config(ROOT / "params.yaml", smoke_overrides)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory, smoke_cfg) -> Path:
    from ups.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("smoke-data")
    generate_dataset(smoke_cfg.data, out)
    return out


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    bin_dir = str(Path(sys.executable).parent)
    full_env["PATH"] = bin_dir + os.pathsep + full_env.get("PATH", "")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}"
        )
    return proc


def set_params(repo: Path, **values) -> None:
    """Set dotted keys in a repository's params.yaml (as a user would edit it)."""
    path = repo / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for key, value in values.items():
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def write_params(path: Path, overrides: dict) -> None:
    path.write_text(yaml.safe_dump(apply_overrides(load_raw(ROOT / "params.yaml"), overrides), sort_keys=False))


def make_pipeline_repo(repo: Path, overrides: dict) -> Path:
    """A fresh git + DVC repository holding the pipeline with `overrides` applied, one commit."""
    copy_pipeline(ROOT, repo, overrides)
    run(["git", "config", "user.email", "test@ups.invalid"], repo)
    run(["git", "config", "user.name", "UPS test"], repo)
    return repo


@pytest.fixture
def pipeline_repo(tmp_path, smoke_overrides) -> Path:
    """A fresh git + DVC repository holding the pipeline, with the smoke params, one commit."""
    return make_pipeline_repo(tmp_path / "repo", smoke_overrides)


# --- a real S3-protocol server on loopback, standing in for B2 ------------------------------------

S3_REGION = "us-west-004"  # B2's region names look like this


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 (a free port); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch):
    """Test credentials in the environment (as a user would export a B2 application key)."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id="testing-key-id",
        aws_secret_access_key="testing-secret",
    )
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": S3_REGION})


def point_remote_at(repo: Path, endpoint: str, bucket: str) -> None:
    """The committed `b2` remote, redirected (in the git-ignored local config) to the loopback server."""
    run(["dvc", "remote", "modify", "--local", "b2", "endpointurl", endpoint], repo)
    run(["dvc", "remote", "modify", "--local", "b2", "url", f"s3://{bucket}/ups"], repo)
