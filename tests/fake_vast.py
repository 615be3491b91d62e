"""A local stand-in for the few Vast.ai API endpoints UPS uses, recording every request."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OFFER = {
    "id": 9001,
    "gpu_name": "RTX 4090",
    "num_gpus": 1,
    "dph_total": 0.41,
    "disk_space": 120.0,
    "reliability2": 0.995,
}


class FakeVast:
    def __init__(self):
        self.requests: list[dict] = []
        self.instances: dict[int, dict] = {}
        self.next_id = 4242
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    return raw.decode()

            def _reply(self, obj, status=200, text=False):
                data = obj.encode() if text else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                body = self._body()
                path = self.path.split("?", 1)[0]
                with fake.lock:
                    fake.requests.append(
                        {
                            "method": method,
                            "path": path,
                            "query": self.path.partition("?")[2],
                            "auth": self.headers.get("Authorization"),
                            "body": body,
                        }
                    )
                    if method == "POST" and path == "/api/v0/bundles/":
                        return self._reply({"offers": [OFFER]})
                    if method == "PUT" and (m := re.fullmatch(r"/api/v0/asks/(\d+)/", path)):
                        iid = fake.next_id
                        fake.next_id += 1
                        fake.instances[iid] = {
                            "id": iid,
                            "label": body.get("label"),
                            "start_date": time.time(),
                            "actual_status": "loading",
                            "extra_env": [[k, v] for k, v in (body.get("env") or {}).items()],
                            "num_gpus": 1,
                            "gpu_name": "RTX 4090",
                            "dph_total": 0.41,
                        }
                        return self._reply({"success": True, "new_contract": iid})
                    if method == "GET" and path == "/api/v1/instances/":
                        return self._reply(
                            {
                                "instances": list(fake.instances.values()),
                                "next_token": None,
                                "total_instances": len(fake.instances),
                            }
                        )
                    if method == "DELETE" and (m := re.fullmatch(r"/api/v0/instances/(\d+)/", path)):
                        fake.instances.pop(int(m.group(1)), None)
                        return self._reply({"success": True})
                    if method == "PUT" and (m := re.fullmatch(r"/api/v0/instances/request_logs/(\d+)/", path)):
                        return self._reply({"result_url": f"{fake.url}/logs/{m.group(1)}"})
                    if method == "GET" and (m := re.fullmatch(r"/logs/(\d+)", path)):
                        return self._reply(f"log of instance {m.group(1)}: training epoch 1/2\n", text=True)
                return self._reply({"error": f"no route {method} {path}"}, status=404)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()

    def calls(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]
