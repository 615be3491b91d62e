"""The B2 remote: DVC's S3 remote `b2` pointed at Backblaze B2's S3-compatible endpoint.

Secrets never live in git: credentials come from `dvc remote modify --local b2 access_key_id …`
(`.dvc/config.local`, git-ignored) or the AWS environment variables. B2 rejects the CRC checksums
that recent boto3 releases send by default, so every command here runs DVC with
`AWS_REQUEST_CHECKSUM_CALCULATION=when_required` and `AWS_RESPONSE_CHECKSUM_VALIDATION=when_required`
unless they are set already.

`check_remote` asks the bucket once (HeadBucket) and turns every failure into one sentence naming
the remote, the endpoint and the fix: no credentials, credentials refused, no such bucket, endpoint
unreachable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ups.errors import StageError

CHECKSUM_VARIABLES = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
SECRET_KEYS = ("access_key_id", "secret_access_key", "session_token")


class RemoteError(StageError):
    """The DVC remote cannot be used; the message says why and what to do."""


def b2_environment(base: dict | None = None) -> dict:
    """The environment for DVC commands that talk to B2: the checksum variables added where unset."""
    env = dict(os.environ if base is None else base)
    for key, value in CHECKSUM_VARIABLES.items():
        env.setdefault(key, value)
    return env


def dvc(args: list[str], cwd: Path | str = ".", check: bool = True) -> subprocess.CompletedProcess:
    """Run `dvc ARGS` (this interpreter's DVC) with the B2 environment; output captured."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, env=b2_environment()
    )
    if check and proc.returncode != 0:
        raise StageError(
            f"`dvc {' '.join(args)}` failed (exit {proc.returncode}):\n{(proc.stderr or proc.stdout).strip()}"
        )
    return proc


def remote_config(cwd: Path | str = ".", name: str | None = None) -> tuple[str, dict]:
    """(name, settings) of the DVC remote `name` (default: core.remote), with --local settings merged."""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        conf = repo.config
        name = name or conf["core"].get("remote")
        if not name:
            raise RemoteError(
                "no default DVC remote: add one with `dvc remote add -d b2 s3://BUCKET/PREFIX` (see README, 'The B2 remote')"
            )
        if name not in conf["remote"]:
            raise RemoteError(f"no DVC remote named {name!r}; configured: {', '.join(conf['remote']) or 'none'}")
        return name, dict(conf["remote"][name])


def s3_client(conf: dict, config=None):
    """A botocore S3 client for a DVC remote's settings (botocore comes with dvc-s3; boto3 may not)."""
    import botocore.session

    session = botocore.session.Session(profile=conf.get("profile"))
    return session.create_client(
        "s3",
        endpoint_url=conf.get("endpointurl"),
        region_name=conf.get("region"),
        config=config,
        aws_access_key_id=conf.get("access_key_id"),
        aws_secret_access_key=conf.get("secret_access_key"),
        aws_session_token=conf.get("session_token"),
    )


def check_remote(cwd: Path | str = ".", name: str | None = None, timeout: float = 10.0) -> str:
    """Reach the remote's bucket once; return a one-line description, or raise RemoteError."""
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    name, conf = remote_config(cwd, name)
    url = conf.get("url", "")
    if not url.startswith("s3://"):
        return f"remote {name!r} is {url} (not S3): nothing to check"
    bucket = url[len("s3://") :].split("/", 1)[0]
    endpoint = conf.get("endpointurl")
    for key, value in CHECKSUM_VARIABLES.items():
        os.environ.setdefault(key, value)
    client = s3_client(conf, BotoConfig(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}))
    where = f"remote {name!r} ({url} at {endpoint or 'AWS'})"
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise RemoteError(
            f"no credentials for {where}: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a B2 application key) "
            f"or run `dvc remote modify --local {name} access_key_id …` and `… secret_access_key …`"
        ) from None
    except EndpointConnectionError as exc:
        raise RemoteError(
            f"cannot reach {where}: {exc}. Check the network, or the endpoint with `dvc remote modify {name} endpointurl …`"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in ("404", "NoSuchBucket"):
            raise RemoteError(
                f"bucket {bucket!r} does not exist for {where}: create it in B2, or point the remote elsewhere with `dvc remote modify {name} url s3://BUCKET/PREFIX`"
            ) from None
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden"):
            raise RemoteError(
                f"{where} refused the credentials ({code}): check the key id and secret; a B2 application key must be allowed on bucket {bucket!r} "
                "(B2's master key does not work through the S3 API)"
            ) from None
        raise RemoteError(f"{where} answered {code}: {exc}") from None
    except BotoCoreError as exc:
        raise RemoteError(f"cannot use {where}: {exc}") from None
    return f"{where}: reachable, bucket {bucket!r} accessible"
