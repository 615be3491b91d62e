"""The Vast.ai launcher against a local stand-in of the Vast API, a bare git remote and the loopback S3
server; the start-up script itself runs here as an instance would."""

import json
import os
import subprocess
import time
import uuid

import pytest
from conftest import make_bucket, point_remote_at, run
from fake_vast import OFFER, FakeVast

SENTINELS = {
    "AWS_ACCESS_KEY_ID": "SENTINEL-KEYID-1f2e",
    "AWS_SECRET_ACCESS_KEY": "SENTINEL-SECRET-9a8b",
    "VAST_API_KEY": "SENTINEL-VASTKEY-7c6d",
    "WANDB_API_KEY": "SENTINEL-WANDB-5e4f",
}


@pytest.fixture
def fake_vast(monkeypatch):
    with FakeVast() as fake:
        monkeypatch.setenv("VAST_URL", fake.url)
        yield fake


@pytest.fixture
def launch_repo(pipeline_repo, tmp_path, s3_server, monkeypatch):
    """The pipeline repository, pushed to a bare git remote, its DVC remote on a loopback bucket,
    sentinel secrets in the environment."""
    for key, value in SENTINELS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = f"vast-{uuid.uuid4().hex[:10]}"
    make_bucket(s3_server, bucket)
    point_remote_at(pipeline_repo, s3_server, bucket)
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    run(["git", "remote", "add", "origin", str(origin)], pipeline_repo)
    run(["git", "push", "-q", "origin", "main"], pipeline_repo)
    return pipeline_repo


def _launch(repo, *args, env=None):
    return run(["ups", "vast", "launch", "-n", "vast-dim12", "-S", "latent.dim=12", *args], repo, check=False, env=env)


def test_dry_run_shows_query_request_and_script_without_secrets(launch_repo, fake_vast):
    out = _launch(launch_repo, "--dry-run")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for value in SENTINELS.values():
        assert value not in text
    commit = run(["git", "rev-parse", "HEAD"], launch_repo).stdout.strip()
    script = text.split("start-up script (", 1)[1].split("\n", 1)[1]
    assert len(script.encode()) < 4096 and commit in script
    assert "dvc exp run --pull --allow-missing -n vast-dim12 -S latent.dim=12" in script
    assert "dvc exp push origin vast-dim12" in script and "trap finish EXIT" in script
    request = json.loads(text.split("instance request (secret values masked):", 1)[1].split("start-up script", 1)[0])
    assert request["env"]["AWS_SECRET_ACCESS_KEY"] == "********" and request["env"]["WANDB_API_KEY"] == "********"
    assert request["label"] == "ups:vast-dim12:6h" and request["onstart"].rstrip("\n") == script.rstrip("\n")
    query = json.loads(text.split("offer query:", 1)[1].split("instance request", 1)[0])
    assert query["query"]["gpu_name"] == {"eq": "RTX 4090"} and query["query"]["dph_total"] == {"lte": 0.6}
    assert fake_vast.requests == []  # a dry run rents nothing


def test_a_token_in_the_git_remote_url_never_reaches_the_script_or_the_dry_run(launch_repo, fake_vast, monkeypatch):
    """`origin` may be `https://x-access-token:TOKEN@host/…`: the instance clones from the URL without
    its user-info (the token travels as UPS_GIT_TOKEN, an instance environment variable)."""
    import ups.vast as vast
    from ups.vast import Machine, plan, public_url

    token = "SENTINEL-GITTOKEN-3b2a"
    assert public_url(f"https://x-access-token:{token}@github.com/o/r.git") == "https://github.com/o/r.git"
    assert public_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert public_url("/srv/git/r.git") == "/srv/git/r.git"
    real_git = vast.git

    def git_with_token_url(args, cwd=".", **kw):  # the remote answers as if its URL held a token
        if args[:2] == ["remote", "get-url"]:
            return subprocess.CompletedProcess(
                args, 0, f"https://x-access-token:{token}@git.example.invalid/ups.git\n", ""
            )
        return real_git(args, cwd, **kw)

    monkeypatch.setattr(vast, "git", git_with_token_url)
    monkeypatch.chdir(launch_repo)
    p = plan(launch_repo, "vast-dim12", ["latent.dim=12"], Machine("RTX_4090", 1, 0.6, 50, "img", 2.0))
    assert p.repo_url == "https://git.example.invalid/ups.git"
    assert token not in p.script and token not in json.dumps(p.request(9001, masked=True)) and token not in repr(p)


def test_preflight_refusals(launch_repo, fake_vast, s3_server):
    bad_name = run(["ups", "vast", "launch", "-n", "bad name!", "--dry-run"], launch_repo, check=False)
    assert bad_name.returncode == 1 and "experiment name 'bad name!' is not allowed" in bad_name.stderr

    no_vast_key = _launch(launch_repo, "--dry-run", env={"VAST_API_KEY": ""})
    assert no_vast_key.returncode == 1 and "VAST_API_KEY is not set" in no_vast_key.stderr

    no_b2 = _launch(launch_repo, "--dry-run", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert no_b2.returncode == 1 and "no B2 credentials" in no_b2.stderr

    (launch_repo / "params.yaml").write_text((launch_repo / "params.yaml").read_text() + "\n")
    dirty = _launch(launch_repo, "--dry-run")
    assert dirty.returncode == 1 and "uncommitted changes" in dirty.stderr
    run(["git", "commit", "-qam", "a local change"], launch_repo)
    unpushed = _launch(launch_repo, "--dry-run")
    assert (
        unpushed.returncode == 1
        and "is not on git remote 'origin'" in unpushed.stderr
        and "git push origin HEAD" in unpushed.stderr
    )
    run(["git", "push", "-q", "origin", "main"], launch_repo)

    run(["dvc", "repro", "generate"], launch_repo)
    run(["git", "add", "-A"], launch_repo)
    run(["git", "commit", "-qm", "data"], launch_repo)
    run(["git", "push", "-q", "origin", "main"], launch_repo)
    no_data = _launch(launch_repo, "--dry-run")
    assert (
        no_data.returncode == 1 and "DVC outputs not on remote 'b2'" in no_data.stderr and "dvc push" in no_data.stderr
    )
    run(["dvc", "push"], launch_repo)
    assert _launch(launch_repo, "--dry-run").returncode == 0
    for result in (bad_name, no_vast_key, no_b2, dirty, unpushed, no_data):
        assert "Traceback" not in result.stderr
    assert fake_vast.requests == []


def test_launch_status_logs_destroy_and_reap_send_the_documented_requests(launch_repo, fake_vast):
    out = _launch(launch_repo, "--gpu", "RTX_4090", "--disk", "50", "--max-hours", "2")
    assert out.returncode == 0, out.stderr
    assert "launched 'vast-dim12': instance 4242 on offer 9001" in out.stdout
    search = fake_vast.calls("POST", "/api/v0/bundles/")[0]
    assert (
        search["body"]["gpu_name"] == {"eq": "RTX 4090"}
        and search["body"]["disk_space"] == {"gte": 50}
        and search["auth"] == f"Bearer {SENTINELS['VAST_API_KEY']}"
    )
    create = fake_vast.calls("PUT", rf"/api/v0/asks/{OFFER['id']}/")[0]["body"]
    assert (
        create["label"] == "ups:vast-dim12:2h"
        and create["disk"] == 50
        and create["image"].startswith("pytorch/pytorch")
    )
    assert (
        create["env"]["AWS_SECRET_ACCESS_KEY"] == SENTINELS["AWS_SECRET_ACCESS_KEY"]
    )  # secrets travel as instance env …
    for value in SENTINELS.values():
        assert value not in create["onstart"]  # … never inside the script
    assert "dvc exp run --pull --allow-missing -n vast-dim12" in create["onstart"]

    status = run(["ups", "vast", "status"], launch_repo).stdout
    assert "| 4242 | vast-dim12 | loading |" in status
    assert "log of instance 4242" in run(["ups", "vast", "logs", "vast-dim12"], launch_repo).stdout

    fake_vast.instances[77] = {
        "id": 77,
        "label": "ups:old-run:1h",
        "start_date": time.time() - 3 * 3600,
        "actual_status": "running",
        "extra_env": [],
    }
    fake_vast.instances[78] = {
        "id": 78,
        "label": "someone-else",
        "start_date": time.time() - 30 * 3600,
        "actual_status": "running",
        "extra_env": [],
    }
    reaped = run(["ups", "vast", "reap"], launch_repo).stdout
    assert "destroyed instance 77 (old-run)" in reaped
    deleted = [r["path"] for r in fake_vast.calls("DELETE", r"/api/v0/instances/\d+/")]
    assert deleted == ["/api/v0/instances/77/"]  # not ours, not expired: left alone

    assert "destroyed instance(s) 4242" in run(["ups", "vast", "destroy", "vast-dim12"], launch_repo).stdout
    assert fake_vast.calls("DELETE", r"/api/v0/instances/4242/")
    assert set(fake_vast.instances) == {78}


def _run_script(plan, workdir, fake_vast, env_extra):
    env = {
        **os.environ,
        **plan.env,
        "CONTAINER_ID": "4242",
        "CONTAINER_API_KEY": "instance-key",
        "VAST_URL": fake_vast.url,
        "UPS_WORKDIR": str(workdir / "ups"),
        "UPS_LOG": str(workdir / "run.log"),
        "HOME": str(workdir / "home"),
        "PYTHONPATH": str(workdir / "ups"),
        "DVC_NO_ANALYTICS": "1",
        **env_extra,
    }
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    return subprocess.run(["bash", "-c", plan.script], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_startup_script_runs_the_experiment_pushes_it_and_destroys_the_instance(
    launch_repo, fake_vast, tmp_path, monkeypatch
):
    from ups import vast

    monkeypatch.chdir(launch_repo)
    plan = vast.plan(launch_repo, "on-vast", ["latent.dim=12"], vast.Machine("RTX_4090", 1, 0.6, 40, "img", 1.0))
    done = _run_script(plan, tmp_path / "instance", fake_vast, {"UPS_INSTALL": "true"})  # the venv is installed already
    log = (tmp_path / "instance" / "run.log").read_text()
    assert done.returncode == 0, log[-3000:]
    assert "Ran experiment(s): on-vast" in log and "ups: log uploaded to s3://" in log
    assert fake_vast.calls("DELETE", "/api/v0/instances/4242/")[0]["auth"] == "Bearer instance-key"

    run(["dvc", "exp", "pull", "origin", "on-vast"], launch_repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], launch_repo).stdout)
    names = {r.get("name") for c in shown for e in (c.get("experiments") or []) for r in (e.get("revs") or [])}
    assert "on-vast" in names
    assert (
        "Ran experiment(s): on-vast" in run(["ups", "vast", "logs", "on-vast"], launch_repo).stdout
    )  # the uploaded log

    fake_vast.requests.clear()
    failed = _run_script(plan, tmp_path / "instance2", fake_vast, {"UPS_INSTALL": "false"})  # the install step fails
    assert failed.returncode == 11
    assert fake_vast.calls("DELETE", "/api/v0/instances/4242/"), (
        "the instance must be destroyed even when the run fails"
    )
