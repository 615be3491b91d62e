#!/bin/bash
# UPS on Vast.ai: experiment @NAME@ at commit @COMMIT@. Secrets arrive as instance environment
# variables, never in this script. Whatever happens, the log is uploaded and the instance destroyed.
set -uo pipefail
W=${UPS_WORKDIR:-/workspace/ups}; LOG=${UPS_LOG:-/workspace/ups-@NAME@.log}
mkdir -p "$(dirname "$LOG")"; exec > >(tee -a "$LOG") 2>&1
finish() {
  rc=$?; echo "ups: finished with exit $rc at $(date -u +%FT%TZ)"; sync
  python3 - "$LOG" <<'PY' || echo "ups: log upload failed"
import os, sys, time, botocore.session as s
b, _, p = os.environ["UPS_DVC_URL"][5:].partition("/")
k = f"{p}/logs/@NAME@-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log".lstrip("/")
s.get_session().create_client("s3", endpoint_url=os.environ.get("UPS_DVC_ENDPOINT") or None, region_name=os.environ.get("UPS_DVC_REGION") or None).put_object(Bucket=b, Key=k, Body=open(sys.argv[1], "rb").read())
print(f"ups: log uploaded to s3://{b}/{k}")
PY
  python3 - <<'PY'
import os, urllib.request as u
url = os.environ.get("VAST_URL", "https://console.vast.ai").rstrip("/") + "/api/v0/instances/" + os.environ["CONTAINER_ID"] + "/"
r = u.Request(url, method="DELETE", data=b"{}", headers={"Authorization": "Bearer " + os.environ["CONTAINER_API_KEY"], "Content-Type": "application/json"})
for i in range(5):
    try:
        print("ups: destroy:", u.urlopen(r, timeout=30).read().decode()); break
    except Exception as e:
        print("ups: destroy failed, retrying:", e)
PY
}
trap finish EXIT
git config --global user.name "UPS on Vast.ai"; git config --global user.email ups@vast.invalid
if [ -n "${UPS_GIT_TOKEN:-}" ]; then
  git config --global credential.helper '!f() { echo username=x-access-token; echo "password=$UPS_GIT_TOKEN"; }; f'
fi
git clone @REPO@ "$W" && cd "$W" && git checkout -q --detach @COMMIT@ || exit 10
eval "${UPS_INSTALL:-pip install -q -e .}" || exit 11
dvc remote modify --local b2 url "$UPS_DVC_URL" && dvc remote modify --local b2 endpointurl "$UPS_DVC_ENDPOINT" || exit 12
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
timeout @SECONDS@ dvc exp run --pull --allow-missing -n @NAME@ @SET@ || exit 13
dvc exp push origin @NAME@ || exit 14
