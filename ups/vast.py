"""Run a DVC experiment on a rented Vast.ai GPU with one command.

    ups vast launch -n NAME -S latent.dim=64 [--gpu RTX_4090 --num-gpus 1 --max-price 0.6 --dry-run]

Pre-flight (each a refusal with the fix): a valid experiment name and overrides, a clean working
tree, the commit on the git remote, the DVC outputs on the DVC remote, `VAST_API_KEY`, B2
credentials. Then: the cheapest offer that fits, and an instance labelled `ups:NAME:<hours>h`
whose secrets travel as instance environment variables and whose start-up script
(`vast_script.sh`, under Vast's 4 KB limit) clones the exact commit, installs, runs
`dvc exp run --pull --allow-missing -n NAME -S …`, pushes the experiment with `dvc exp push origin
NAME`, uploads its log to the DVC remote under `logs/`, and destroys the instance whatever happened.

Every Vast call goes through the `vastai` package's API functions with one `VastClient`, whose
server is `VAST_URL` when set (tests point it at a local server).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from ups.config import load_config, parse_override
from ups.errors import StageError
from ups.experiments import validate_name
from ups.git_repo import git
from ups.remote import CHECKSUM_VARIABLES, dvc, remote_config

LABEL_PREFIX = "ups:"
SCRIPT_LIMIT = 4096  # bytes: Vast's limit on the on-start script
MASK = "********"


class LaunchError(StageError):
    """A pre-flight check refused the launch; the message says what to fix."""


@dataclass
class Machine:
    gpu: str
    num_gpus: int
    max_price: float
    disk: int
    image: str
    max_hours: float


@dataclass
class Plan:
    name: str
    commit: str
    repo_url: str
    overrides: list[str]
    machine: Machine
    query: dict
    order: list
    env: dict  # instance environment: secrets included (masked when shown)
    script: str
    label: str

    def request(self, offer_id: int | str, masked: bool = True) -> dict:
        """The create-instance request, as sent to Vast (secret values masked unless asked)."""
        env = {k: (MASK if masked and k in SECRET_ENV else v) for k, v in self.env.items()}
        return {
            "offer": offer_id,
            "image": self.machine.image,
            "disk": self.machine.disk,
            "label": self.label,
            "env": env,
            "runtype": "ssh_proxy",
            "onstart": self.script,
        }


# Instance environment variables that hold secrets: never printed, never in the script.
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "WANDB_API_KEY", "UPS_GIT_TOKEN")


def label(name: str, max_hours: float) -> str:
    return f"{LABEL_PREFIX}{name}:{max_hours:g}h"


def parse_label(text: str | None) -> tuple[str, float] | None:
    """(experiment name, wall-time limit in hours) of a UPS label, else None."""
    if not text or not text.startswith(LABEL_PREFIX):
        return None
    name, _, hours = text[len(LABEL_PREFIX) :].rpartition(":")
    try:
        return name, float(hours.rstrip("h"))
    except ValueError:
        return None


def preflight(cwd: Path | str, name: str, overrides: list[str], git_remote: str = "origin") -> dict:
    """Every check before money is spent; returns the facts the launch needs, or raises LaunchError."""
    try:
        validate_name(name)
    except Exception as exc:  # ConfigError: re-raised as a launch refusal with the same message
        raise LaunchError(str(exc)) from None
    load_config(Path(cwd) / "params.yaml", dict(parse_override(o) for o in overrides))
    dirty = git(["status", "--porcelain", "--untracked-files=no"], cwd).stdout.strip()
    if dirty:
        raise LaunchError(
            f"uncommitted changes: the instance runs the committed code only. Commit (and push) them first:\n{dirty}"
        )
    commit = git(["rev-parse", "HEAD"], cwd).stdout.strip()
    url = git(["remote", "get-url", git_remote], cwd)
    if url.returncode != 0:
        raise LaunchError(
            f"no git remote {git_remote!r}: the instance clones from it and pushes the experiment back (`git remote add {git_remote} URL`)"
        )
    fetched = git(["fetch", "-q", git_remote], cwd)
    if fetched.returncode != 0:
        raise LaunchError(f"cannot fetch from git remote {git_remote!r}: {fetched.stderr.strip()}")
    if not git(["branch", "-r", "--contains", commit], cwd).stdout.strip():
        raise LaunchError(
            f"commit {commit[:7]} is not on git remote {git_remote!r}: `git push {git_remote} HEAD` first, so the instance can clone it"
        )
    if not os.environ.get("VAST_API_KEY"):
        raise LaunchError(
            "VAST_API_KEY is not set: create a key at https://console.vast.ai/manage-keys/ and `export VAST_API_KEY=…`"
        )
    remote_name, remote = remote_config(cwd)
    key_id = os.environ.get("AWS_ACCESS_KEY_ID") or remote.get("access_key_id")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or remote.get("secret_access_key")
    if not (key_id and secret):
        raise LaunchError(
            f"no B2 credentials for DVC remote {remote_name!r}: the instance pulls data and pushes results with them. "
            f"Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or set them with `dvc remote modify --local {remote_name} access_key_id …`"
        )
    status = dvc(["status", "--cloud", "--json"], cwd, check=False)
    if status.returncode != 0:
        raise LaunchError(
            f"cannot compare the DVC cache with remote {remote_name!r}: {(status.stderr or status.stdout).strip()}"
        )
    unpushed = sorted(path for path, state in json.loads(status.stdout or "{}").items() if state == "new")
    if unpushed:
        raise LaunchError(
            f"DVC outputs not on remote {remote_name!r}: {', '.join(unpushed[:5])}{' …' if len(unpushed) > 5 else ''}. Run `dvc push` first"
        )
    return {
        "commit": commit,
        "repo_url": public_url(url.stdout.strip()),
        "remote": remote,
        "access_key_id": key_id,
        "secret_access_key": secret,
    }


def public_url(url: str) -> str:
    """The git remote's URL without user-info (`https://user:TOKEN@host/…` → `https://host/…`): the
    URL goes into the start-up script and the dry run's output; a token travels as `UPS_GIT_TOKEN`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None and parts.scheme not in ("http", "https"):
        return url  # a path, scp-style `git@host:…`, or `ssh://git@host/…`: a user name, no secret
    if parts.username is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def offer_query(m: Machine) -> tuple[dict, list]:
    """Vast's offer filter (as the `vastai search offers` query parser builds it) and the order."""
    query = {
        "gpu_name": {"eq": m.gpu.replace("_", " ")},
        "num_gpus": {"eq": m.num_gpus},
        "dph_total": {"lte": m.max_price},
        "disk_space": {"gte": m.disk},
        "reliability2": {"gte": 0.98},
        "cuda_max_good": {"gte": 12.1},
    }
    return query, [["dph_total", "asc"]]


def render_script(name: str, commit: str, repo_url: str, overrides: list[str], max_hours: float) -> str:
    template = Path(__file__).with_name("vast_script.sh").read_text()
    sets = " ".join(f"-S {shlex.quote(o)}" for o in overrides)
    script = (
        template.replace("@NAME@", name)
        .replace("@COMMIT@", commit)
        .replace("@REPO@", shlex.quote(repo_url))
        .replace("@SET@", sets)
        .replace("@SECONDS@", str(int(max_hours * 3600)))
    )
    size = len(script.encode())
    if size > SCRIPT_LIMIT:
        raise LaunchError(
            f"the start-up script is {size} bytes, over Vast's {SCRIPT_LIMIT}-byte limit: use fewer or shorter -S overrides"
        )
    return script


def plan(cwd: Path | str, name: str, overrides: list[str], machine: Machine, git_remote: str = "origin") -> Plan:
    facts = preflight(cwd, name, overrides, git_remote)
    if machine.num_gpus > 1 and not any(o.startswith("runtime.nproc=") for o in overrides):
        overrides = [*overrides, f"runtime.nproc={machine.num_gpus}"]  # one DDP process per GPU
    remote = facts["remote"]
    env = {
        "AWS_ACCESS_KEY_ID": facts["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": facts["secret_access_key"],
        **CHECKSUM_VARIABLES,
        "UPS_DVC_URL": remote.get("url", ""),
        "UPS_DVC_ENDPOINT": remote.get("endpointurl", ""),
        "UPS_DVC_REGION": remote.get("region", ""),
    }
    for optional in ("AWS_SESSION_TOKEN", "WANDB_API_KEY", "UPS_GIT_TOKEN"):
        if os.environ.get(optional):
            env[optional] = os.environ[optional]
    query, order = offer_query(machine)
    script = render_script(name, facts["commit"], facts["repo_url"], overrides, machine.max_hours)
    return Plan(
        name,
        facts["commit"],
        facts["repo_url"],
        overrides,
        machine,
        query,
        order,
        env,
        script,
        label(name, machine.max_hours),
    )


# --- the Vast API ----------------------------------------------------------------------------------


def client():
    from vastai.api.client import VastClient

    key = os.environ.get("VAST_API_KEY")
    if not key:
        raise LaunchError("VAST_API_KEY is not set: `export VAST_API_KEY=…` (https://console.vast.ai/manage-keys/)")
    return VastClient(api_key=key, server_url=os.environ.get("VAST_URL") or None, retry=3)


def _call(what: str, fn, *args, **kwargs):
    import requests

    try:
        return fn(*args, **kwargs)
    except requests.HTTPError as exc:
        raise StageError(
            f"Vast.ai refused to {what}: HTTP {exc.response.status_code} {exc.response.text[:300]}"
        ) from None
    except requests.RequestException as exc:
        raise StageError(f"cannot reach Vast.ai to {what}: {exc}") from None


def launch(p: Plan) -> dict:
    """Find the cheapest fitting offer and create the instance; returns {offer, instance}."""
    from vastai.api import instances, offers

    c = client()
    found = _call(
        "search offers", offers.search_offers, c, query=dict(p.query), order=p.order, limit=5, storage=p.machine.disk
    )
    if not found:
        raise StageError(
            f"no Vast.ai offer for {p.machine.num_gpus}× {p.machine.gpu} at ≤ ${p.machine.max_price}/h with {p.machine.disk} GB disk: raise --max-price or choose another --gpu"
        )
    offer = found[0]
    created = _call(
        "create the instance",
        instances.create_instance,
        c,
        offer["id"],
        image=p.machine.image,
        disk=p.machine.disk,
        env=dict(p.env),
        label=p.label,
        onstart_cmd=p.script,
        runtype="ssh_proxy",
    )
    return {"offer": offer, "instance": created.get("new_contract"), "response": created}


def ups_instances() -> list[dict]:
    """Our instances (label `ups:…`), each with its experiment name and wall-time limit."""
    from vastai.api import instances

    rows = []
    for row in _call("list instances", instances.show_instances, client()):
        parsed = parse_label(row.get("label"))
        if parsed:
            rows.append({**row, "experiment": parsed[0], "max_hours": parsed[1]})
    return rows


def by_name(name: str) -> list[dict]:
    found = [r for r in ups_instances() if r["experiment"] == name]
    if not found:
        raise StageError(
            f"no UPS instance for experiment {name!r} (`ups vast status` lists them); a finished run has destroyed itself: `dvc exp pull origin {name}`"
        )
    return found


def destroy(name: str) -> list[int]:
    from vastai.api import instances

    ids = [r["id"] for r in by_name(name)]
    for i in ids:
        _call(f"destroy instance {i}", instances.destroy_instance, client(), i)
    return ids


def reap(now: float | None = None) -> list[dict]:
    """Destroy every UPS instance that has run longer than its label's wall-time limit."""
    from vastai.api import instances

    now = time.time() if now is None else now
    reaped = []
    for r in ups_instances():
        hours = (now - float(r.get("start_date") or now)) / 3600
        if hours > r["max_hours"]:
            _call(f"destroy instance {r['id']}", instances.destroy_instance, client(), r["id"])
            reaped.append({"id": r["id"], "experiment": r["experiment"], "hours": hours, "max_hours": r["max_hours"]})
    return reaped


def logs(name: str, tail: int = 200, cwd: Path | str = ".") -> str:
    """The running instance's log from Vast; once it destroyed itself, the log it uploaded to the DVC remote."""
    from vastai.api import instances

    running = [r for r in ups_instances() if r["experiment"] == name]
    if running:
        out = _call("fetch logs", instances.logs, client(), running[0]["id"], tail=str(tail))
        return out if isinstance(out, str) else json.dumps(out)
    return uploaded_log(name, cwd)


def uploaded_log(name: str, cwd: Path | str = ".") -> str:
    from ups.remote import s3_client

    _, remote = remote_config(cwd)
    bucket, _, prefix = remote.get("url", "")[len("s3://") :].partition("/")
    s3 = s3_client(remote)
    key_prefix = f"{prefix}/logs/{name}-".lstrip("/")
    found = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix).get("Contents", []))
    if not found:
        raise StageError(
            f"no running instance and no uploaded log for experiment {name!r} (looked for s3://{bucket}/{key_prefix}*)"
        )
    return s3.get_object(Bucket=bucket, Key=found[-1])["Body"].read().decode()


def status_table() -> str:
    rows = ups_instances()
    if not rows:
        return "no UPS instances on Vast.ai"
    lines = ["| id | experiment | status | GPUs | $/h | hours | limit |", "|---|---|---|---|---|---|---|"]
    now = time.time()
    for r in rows:
        hours = (now - float(r.get("start_date") or now)) / 3600
        lines.append(
            f"| {r['id']} | {r['experiment']} | {r.get('actual_status') or r.get('cur_state') or '?'} | {r.get('num_gpus', '?')}× {r.get('gpu_name', '?')} | {float(r.get('dph_total') or 0):.3f} | {hours:.2f} | {r['max_hours']:g} |"
        )
    return "\n".join(lines)
