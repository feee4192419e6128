"""A local stand-in for the Hugging Face hub on 127.0.0.1: the two routes huggingface_hub downloads
through (reference.md), serving checkpoint folders as repositories, with faults on request.

    GET  /api/models/{org}/{name}[/revision/{rev}]   -> {"id", "sha", "siblings": [{"rfilename"}]}
    HEAD /{org}/{name}/resolve/{rev}/{file}          -> ETag, X-Repo-Commit, Content-Length
    GET  /{org}/{name}/resolve/{rev}/{file}          -> the bytes (Range honoured: 206)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HubServer:
    def __init__(self, repos: dict[str, Path]):
        self.repos = repos  # repo id -> folder
        self.cut = {}  # file name -> [bytes to send before dropping the connection], one per GET
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def commit(self, repo: str) -> str:
        digest = hashlib.sha1(repo.encode())
        for f in sorted(self.repos[repo].iterdir()):
            digest.update(f.name.encode() + f.read_bytes())
        return digest.hexdigest()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _not_found(self, code: str) -> None:
                body = json.dumps({"error": f"{code}"}).encode()
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self, head: bool) -> None:
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/?]+)?(?:\?.*)?", self.path)
                if api:
                    repo = api.group(1)
                    if repo not in server.repos:
                        return self._not_found("RepoNotFound")
                    files = sorted(f.name for f in server.repos[repo].iterdir() if f.is_file())
                    info = {"id": repo, "modelId": repo, "sha": server.commit(repo), "private": False,
                            "siblings": [{"rfilename": f} for f in files]}
                    return self._send(json.dumps(info).encode(), head, "application/json")
                resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/([^?]+)(?:\?.*)?", self.path)
                if not resolve or resolve.group(1) not in server.repos:
                    return self._not_found("RepoNotFound")
                path = server.repos[resolve.group(1)] / resolve.group(2)
                if not path.is_file():
                    return self._not_found("EntryNotFound")
                data = path.read_bytes()
                headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                           "X-Repo-Commit": server.commit(resolve.group(1))}
                return self._send(data, head, "application/octet-stream", headers, path.name)

            def _send(self, data: bytes, head: bool, kind: str, headers=None, name=None) -> None:
                start = 0
                rng = self.headers.get("Range")
                if rng and not head:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                self.send_response(206 if start else 200)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head:
                    return
                body = data[start:]
                if server.cut.get(name):  # a connection that drops mid-file
                    self.wfile.write(body[: server.cut[name].pop(0)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_GET(self):
                self._route(head=False)

            def do_HEAD(self):
                self._route(head=True)

        return Handler
