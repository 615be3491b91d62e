"""Experiments, the B2 remote and promotion with the real programs: dvc, git (a bare remote in a temp
dir) and an S3-protocol server on loopback (moto) standing in for B2. Smoke sizes."""

import hashlib
import json
import shutil
import time
import uuid

import pytest
import yaml
from conftest import ROOT, make_bucket, make_pipeline_repo, point_remote_at, run

from ups.experiments import load_experiment

pytestmark = pytest.mark.slow

LENIENT = {"gate.max_nrmse": 10.0, "gate.max_ratio_to_persistence": 10.0}  # smoke models are untrained


def _digests(repo, *folders) -> dict:
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for f in folders
        for p in sorted((repo / f).rglob("*"))
        if p.is_file()
    }


def _run_queue(repo, timeout: float = 600) -> str:
    """Start DVC's queue with one worker and wait until nothing is queued or running; its final status."""
    run(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    return status


def _experiments(repo) -> dict:
    """name → (params, metrics) of every experiment in `dvc exp show --json -A`."""
    out = {}
    for commit in json.loads(run(["dvc", "exp", "show", "--json", "-A"], repo).stdout):
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                out[rev.get("name")] = (
                    data.get("params", {}).get("params.yaml", {}).get("data", {}),
                    data.get("metrics") or {},
                )
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smoke_overrides, s3_server):
    """A repository whose champion (smoke params, lenient gate) is committed and on a bare git remote."""
    root = tmp_path_factory.mktemp("trained")
    repo = make_pipeline_repo(root / "repo", {**smoke_overrides, **LENIENT})
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "champion"], repo)
    run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], root)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], repo)
    run(["git", "push", "-q", "origin", "main"], repo)
    return repo


@pytest.fixture
def repo(trained, tmp_path, s3_server, s3_credentials):
    """A copy of the trained repository, its `b2` remote on a fresh bucket of the loopback server."""
    copy = tmp_path / "work"
    shutil.copytree(trained, copy, symlinks=True)
    bucket = f"ups-{uuid.uuid4().hex[:12]}"
    make_bucket(s3_server, bucket)
    point_remote_at(copy, s3_server, bucket)
    return copy


def test_push_wipe_pull_restores_identical_outputs(repo):
    before = _digests(repo, "checkpoints", "predictions", "data")
    assert any(k.startswith("checkpoints/") for k in before)
    run(["dvc", "push"], repo)
    for folder in ("checkpoints", "predictions", "data", ".dvc/cache"):
        shutil.rmtree(repo / folder)
    run(["dvc", "pull"], repo)
    assert _digests(repo, "checkpoints", "predictions", "data") == before
    assert "up to date" in run(["dvc", "status"], repo).stdout.lower()


def test_exp_run_and_queued_experiments_appear_and_record(repo):
    for name, key, value in (("fewer-examples", "eval.examples", 1), ("short-proxy", "eval.small.horizon", 3)):
        (repo / "experiments" / f"{name}.yaml").write_text(
            yaml.safe_dump(
                {"name": name, "hypothesis": f"{key}={value} changes only evaluation", "params": {key: value}}
            )
        )
        out = run(["ups", "exp", "queue", f"experiments/{name}.yaml"], repo).stdout
        assert f"dvc exp run --queue -n {name} -S {key}={value}" in out

    run(["dvc", "exp", "run", "-n", "dim12", "-S", "latent.dim=12"], repo)
    params, metrics = _experiments(repo)["dim12"]
    assert params["latent"]["dim"] == 12
    gate = metrics["metrics/gate.json"]["data"]
    assert isinstance(gate["passed"], bool) and gate["nrmse"] > 0 and "training_seconds" in gate

    status = _run_queue(repo)
    assert status.count("Success") == 2, status
    exps = _experiments(repo)
    assert {"dim12", "fewer-examples", "short-proxy"} <= set(exps)
    assert exps["short-proxy"][0]["eval"]["small"]["horizon"] == 3

    run(["ups", "exp", "record", "short-proxy"], repo)
    exp = load_experiment(repo / "experiments" / "short-proxy.yaml", repo / "params.yaml")
    measured = exps["short-proxy"][1]["metrics/gate.json"]["data"]
    assert exp.params == {"eval.small.horizon": 3} and exp.name == "short-proxy"
    assert exp.result["nrmse"] == pytest.approx(measured["nrmse"]) and exp.result["passed"] == measured["passed"]

    board = run(["ups", "leaderboard", "--format", "csv"], repo).stdout.splitlines()
    assert board[0].startswith("experiment,baseline,passed,method,nrmse")
    nrmses = [float(line.split(",")[4]) for line in board[1:]]
    assert nrmses == sorted(nrmses) and len(nrmses) == 4  # the champion commit and three experiments


def test_exp_push_then_pull_apply_in_a_fresh_clone(repo, tmp_path, s3_server):
    run(["dvc", "exp", "run", "-n", "shared", "-S", "train.operator.seed=7"], repo)
    made = _digests(repo, "checkpoints")
    metrics = json.loads((repo / "metrics" / "gate.json").read_text())
    run(["dvc", "exp", "push", "origin", "shared"], repo)

    origin = run(["git", "remote", "get-url", "origin"], repo).stdout.strip()
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", origin, str(clone)], tmp_path)
    bucket = run(["dvc", "config", "--local", "remote.b2.url"], repo).stdout.strip().split("/")[2]
    point_remote_at(clone, s3_server, bucket)
    run(["dvc", "exp", "pull", "origin", "shared"], clone)
    run(["dvc", "exp", "apply", "shared"], clone)
    assert yaml.safe_load((clone / "params.yaml").read_text())["train"]["operator"]["seed"] == 7
    assert json.loads((clone / "metrics" / "gate.json").read_text()) == metrics
    run(["dvc", "pull"], clone)
    assert _digests(clone, "checkpoints") == made


def test_promote_refuses_a_failed_gate_and_promotes_a_passing_one(repo):
    hypothesis = "the committed model again: promotion records its decision"
    run(["ups", "exp", "new", "good", "-S", "eval.examples=1", "--hypothesis", hypothesis], repo)
    run(["git", "add", "experiments/good.yaml"], repo)
    run(["git", "commit", "-qm", "experiment good"], repo)
    run(["dvc", "exp", "run", "-n", "strict", "-S", "gate.max_nrmse=0.001"], repo)
    run(
        ["git", "checkout", "--", "."], repo
    )  # each run applies its results to the workspace: start the next from the commit
    run(
        ["dvc", "exp", "run", "-n", "good", "-S", "eval.examples=1", "-S", "gate.min_improvement=0.0"], repo
    )  # the same model as the committed run: no improvement asked
    run(["git", "checkout", "--", "."], repo)
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()

    refused = run(["ups", "promote", "strict"], repo, check=False)
    assert (
        refused.returncode == 1
        and "did not pass the gate" in refused.stderr
        and "max_nrmse" in refused.stderr
        and "Traceback" not in refused.stderr
    )
    assert run(["git", "rev-parse", "HEAD"], repo).stdout.strip() == head

    (repo / "b2-keys.txt").write_text("a stray credentials file\n")  # untracked: must not be committed
    done = run(["ups", "promote", "good"], repo)
    assert "promoted 'good'" in done.stdout
    message = run(["git", "log", "-1", "--format=%B"], repo).stdout
    method = yaml.safe_load((repo / "params.yaml").read_text())["gate"]["method"]
    assert message.startswith(f"Promote experiment good: {method} nRMSE") and "gate passed" in message
    committed = run(["git", "show", "--name-only", "--format=", "HEAD"], repo).stdout.split()
    assert "b2-keys.txt" not in committed and "params.yaml" in committed, committed
    assert "experiments/good.yaml" in committed, committed  # the decision, in the promotion commit
    decided = load_experiment(repo / "experiments" / "good.yaml", repo / "params.yaml")
    assert decided.decision == "promoted" and decided.decided["rev"] and decided.hypothesis == hypothesis
    assert "| good | promoted |" in run(["ups", "exp", "list"], repo).stdout
    # the promoted models are the artifacts' newest versions in DVC's model registry
    assert {"operator@v0.1.0", "autoencoder@v0.1.0"} <= set(run(["git", "tag"], repo).stdout.split())
    run(["dvc", "artifacts", "get", str(repo), "operator", "-o", str(repo.parent / "op.pt")], repo.parent)
    champion = run(["git", "show", "HEAD:dvc.lock"], repo).stdout
    assert hashlib.md5((repo.parent / "op.pt").read_bytes()).hexdigest() in champion
    assert "operator.pt" in run(["dvc", "ls", str(repo), "checkpoints"], repo.parent).stdout
    assert "?? b2-keys.txt" in run(["git", "status", "--porcelain"], repo).stdout
    assert yaml.safe_load((repo / "params.yaml").read_text())["eval"]["examples"] == 1
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
    cloud = run(["dvc", "status", "--cloud"], repo).stdout
    assert "in sync" in cloud.lower(), cloud

    # HEAD has moved on since 'good' ran: applying it again would undo the promotion commit's successors
    again = run(["ups", "promote", "good"], repo, check=False)
    assert again.returncode == 1 and "ran on baseline" in again.stderr and "undo the commits since" in again.stderr, (
        again.stderr
    )


def _states(repo) -> dict:
    """experiment → (state, nRMSE, gate, note) from `ups exp list`."""
    rows = {}
    for line in run(["ups", "exp", "list"], repo).stdout.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = (cells[1], cells[3], cells[4], cells[6])
    return rows


def test_experiment_lifecycle_new_list_archive_and_restore(repo, tmp_path, s3_server):
    ok = "fewer pictures: only evaluation changes, the headline stays"
    run(["ups", "exp", "new", "fewer-examples", "-S", "eval.examples=1", "--hypothesis", ok], repo)
    run(["ups", "exp", "new", "broken", "-S", "eval.small.horizon=3", "--hypothesis", "a run that will fail"], repo)
    run(["ups", "exp", "new", "later", "-S", "eval.batch_size=4", "--hypothesis", "not run yet"], repo)
    again = run(["ups", "exp", "new", "later", "-S", "eval.batch_size=2", "--hypothesis", "x"], repo, check=False)
    assert again.returncode == 1 and "experiments/later.yaml exists" in again.stderr
    bad = run(["ups", "exp", "new", "typo", "-S", "eval.batchsize=2", "--hypothesis", "x"], repo, check=False)
    assert bad.returncode == 1 and "batch_size" in bad.stderr and not (repo / "experiments" / "typo.yaml").exists()
    run(["git", "add", "experiments"], repo)
    run(["git", "commit", "-qm", "three experiments"], repo)

    run(["ups", "exp", "queue", "fewer-examples"], repo)
    # the failing one: an override that `ups exp queue` would refuse, queued behind its back
    run(["dvc", "exp", "run", "--queue", "-n", "broken", "-S", "train.operator.lr=-1"], repo)
    _run_queue(repo)
    states = _states(repo)
    assert states["fewer-examples"][0] == "done" and float(states["fewer-examples"][1]) > 0, states
    assert states["fewer-examples"][2] in ("passed", "failed"), states
    assert states["broken"][0] == "failed" and "dvc queue logs broken" in states["broken"][3], states
    assert states["later"][0] == "planned", states
    run(["ups", "exp", "decide", "later", "waiting for the accuracy work"], repo)
    assert load_experiment(repo / "experiments" / "later.yaml", repo / "params.yaml").decision.startswith("waiting")
    run(["git", "commit", "-qam", "decision on later"], repo)

    # --dry-run lists and changes nothing
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    listed = run(["dvc", "exp", "list", "-A", "--name-only"], repo).stdout
    dry = run(["ups", "exp", "archive", "--stale", "0", "--dry-run"], repo).stdout
    assert "would archive fewer-examples (done): dvc exp push origin fewer-examples" in dry, dry
    assert "would archive later (planned)" in dry and "would archive broken (failed)" in dry, dry
    assert run(["git", "rev-parse", "HEAD"], repo).stdout.strip() == head
    assert run(["dvc", "exp", "list", "-A", "--name-only"], repo).stdout == listed
    assert (repo / "experiments" / "fewer-examples.yaml").exists()

    # the DVC remote unreachable: nothing changes, and the reason is said
    bucket = run(["dvc", "config", "--local", "remote.b2.url"], repo).stdout.strip().split("/")[2]
    run(["dvc", "remote", "modify", "--local", "b2", "endpointurl", "http://127.0.0.1:9"], repo)
    down = run(["ups", "exp", "archive", "--status", "done"], repo, check=False)
    assert down.returncode == 1 and "Traceback" not in down.stderr and "127.0.0.1:9" in down.stderr, down.stderr
    assert run(["git", "rev-parse", "HEAD"], repo).stdout.strip() == head
    assert "fewer-examples" in run(["dvc", "exp", "list", "-A", "--name-only"], repo).stdout
    assert (repo / "experiments" / "fewer-examples.yaml").exists()

    # reachable: pushed, removed here, its file moved with the decision, one commit
    point_remote_at(repo, s3_server, bucket)
    out = run(["ups", "exp", "archive", "--status", "done"], repo).stdout
    assert "archived 1 experiment(s) in one commit" in out, out
    assert "fewer-examples" not in run(["dvc", "exp", "list", "-A", "--name-only"], repo).stdout
    moved = repo / "experiments" / "archive" / "fewer-examples.yaml"
    record = yaml.safe_load(moved.read_text())
    assert not (repo / "experiments" / "fewer-examples.yaml").exists() and record["decision"] == "archived"
    assert record["decided"]["ref"].startswith("refs/exps/") and record["decided"]["ref"].endswith("/fewer-examples")
    assert run(["git", "rev-list", "--count", f"{head}..HEAD"], repo).stdout.strip() == "1"
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
    assert _states(repo)["fewer-examples"][0] == "archived"

    # a fresh clone of the git remote brings it back
    run(["git", "push", "-q", "origin", "main"], repo)
    origin = run(["git", "remote", "get-url", "origin"], repo).stdout.strip()
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", origin, str(clone)], tmp_path)
    point_remote_at(clone, s3_server, bucket)
    run(["dvc", "exp", "pull", "origin", "fewer-examples"], clone)
    run(["dvc", "exp", "apply", "fewer-examples"], clone)
    assert yaml.safe_load((clone / "params.yaml").read_text())["eval"]["examples"] == 1


def test_unreachable_remote_and_missing_credentials_are_one_clear_sentence(pipeline_repo, monkeypatch, s3_server):
    env_without_keys = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    make_bucket(s3_server, "creds-check")
    point_remote_at(pipeline_repo, s3_server, "creds-check")
    env = {k: v for k, v in env_without_keys.items() if v}
    no_keys = run(["ups", "remote", "check"], pipeline_repo, check=False, env=env)
    assert (
        no_keys.returncode == 1
        and "no credentials for remote 'b2'" in no_keys.stderr
        and "AWS_ACCESS_KEY_ID" in no_keys.stderr
    )
    assert "Traceback" not in no_keys.stderr

    keys = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    assert "reachable" in run(["ups", "remote", "check"], pipeline_repo, env=keys).stdout
    run(
        ["dvc", "remote", "modify", "--local", "b2", "endpointurl", "http://127.0.0.1:9"], pipeline_repo
    )  # nothing listens there
    down = run(["ups", "remote", "check"], pipeline_repo, check=False, env=keys)
    assert down.returncode == 1 and "cannot reach remote 'b2'" in down.stderr and "Traceback" not in down.stderr
    missing = run(["ups", "promote", "nope"], pipeline_repo, check=False, env=keys)
    assert (
        missing.returncode == 1 and "no experiment named 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    )


def test_record_refuses_an_experiment_that_is_still_running(tmp_path, monkeypatch):
    """While an experiment runs, `dvc exp show` gives its row the metrics files of its baseline (the
    committed champion's): recording then would write another run's numbers into the file."""
    import subprocess as sp

    import ups.remote
    from ups.errors import StageError
    from ups.experiments import record

    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "x1.yaml").write_text("name: x1\nhypothesis: h\nparams: {}\n")
    status = "Task     Name  Created    Status\n193f987  x1    04:25 PM   Running\n"
    monkeypatch.setattr(ups.remote, "dvc", lambda args, cwd=".", check=True: sp.CompletedProcess(args, 0, status, ""))
    with pytest.raises(StageError, match="'x1' is running"):
        record(tmp_path / "experiments" / "x1.yaml", tmp_path, ROOT / "params.yaml")
