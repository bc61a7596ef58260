"""A misbehaving network between boto3 and the S3 server, for the archive fault tests.

A small threaded HTTP/1.1 forwarding proxy on 127.0.0.1. Each request it receives is, with a seeded
(deterministic) random draw, either

* ``reset``: the connection is reset (TCP RST) right after the request head arrived — never forwarded;
* ``reset_after``: forwarded to the server, then the connection is reset before the answer reaches
  the client (the client cannot know the request took effect — e.g. a completed multipart upload);
* ``slowdown``: answered ``503 SlowDown`` with S3's XML error body, never forwarded;
* forwarded unchanged (request head and body byte for byte, so SigV4 signatures stay valid).

An optional per-request delay (``delay_s``, for requests matching ``delay_match``) throttles uploads
so a test can kill an archive midway. Every forwarded request is logged (method, path+query), so a
test can see exactly which parts reached the server.
"""

from __future__ import annotations

import http.client
import random
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "SLOWDOWN_BODY"]

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                 b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
                 b"<Resource>/</Resource><RequestId>FAULTPROXY</RequestId></Error>")
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class FaultProxy:
    """Forward ``127.0.0.1:<port>`` → ``upstream`` (``http://host:port``) with injected faults.

    Args:
        upstream: the S3 endpoint URL.
        reset_rate, reset_after_rate, slowdown_rate: share of requests (0..1) given each fault.
        seed: seed of the fault draws (deterministic sequence of decisions).
        delay_s: seconds to wait before forwarding requests for which ``delay_match(method, path)`` is true.
    """

    upstream: str
    reset_rate: float = 0.0
    reset_after_rate: float = 0.0
    slowdown_rate: float = 0.0
    seed: int = 5
    delay_s: float = 0.0
    delay_match: Callable[[str, str], bool] = lambda method, path: method == "PUT" and "partNumber=" in path
    faults: dict[str, int] = field(default_factory=lambda: {"reset": 0, "reset_after": 0, "slowdown": 0})
    forwarded: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    active: int = 0

    def __post_init__(self) -> None:
        u = urlsplit(self.upstream)
        self._up = (u.hostname or "127.0.0.1", u.port or 80)
        self._rnd = random.Random(self.seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:  # one client connection, several requests (keep-alive)
                proxy._serve_connection(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, *, reset_rate: float = 0.0, reset_after_rate: float = 0.0, slowdown_rate: float = 0.0,
                   delay_s: float = 0.0) -> None:
        with self._lock:
            self.reset_rate, self.reset_after_rate, self.slowdown_rate = reset_rate, reset_after_rate, slowdown_rate
            self.delay_s = delay_s

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until no request is being handled (e.g. after killing a client)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self.active == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError("fault proxy still busy")

    def part_uploads(self) -> list[int]:
        """Part numbers of the UploadPart requests that were forwarded to the server, in order."""
        out = []
        for method, path in list(self.forwarded):
            if method == "PUT" and "partNumber=" in path:
                out.append(int(path.split("partNumber=")[1].split("&")[0]))
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _decide(self) -> str:
        with self._lock:
            self.requests += 1
            x = self._rnd.random()
            for name, rate in (("reset", self.reset_rate), ("reset_after", self.reset_after_rate),
                               ("slowdown", self.slowdown_rate)):
                if x < rate:
                    self.faults[name] += 1
                    return name
                x -= rate
            return "forward"

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _serve_connection(self, sock: socket.socket) -> None:
        rfile = sock.makefile("rb")
        try:
            while True:
                line = rfile.readline(65537)
                if not line or not line.strip():
                    return
                method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                headers: list[tuple[str, str]] = []
                while True:
                    h = rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers.append((k.strip(), v.strip()))
                hmap = {k.lower(): v for k, v in headers}
                with self._lock:
                    self.active += 1
                try:
                    decision = self._decide()
                    if decision == "reset":
                        self._reset(sock)
                        return
                    if hmap.get("expect", "").lower() == "100-continue":  # botocore asks for PUTs > 1 MB
                        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = self._read_body(rfile, hmap)
                    if decision == "slowdown":
                        sock.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                                     + f"Content-Length: {len(SLOWDOWN_BODY)}\r\n\r\n".encode() + SLOWDOWN_BODY)
                        continue
                    with self._lock:
                        delay = self.delay_s if self.delay_match(method, target) else 0.0
                    if delay:
                        time.sleep(delay)
                    status, reason, rheaders, rbody = self._forward(method, target, headers, body)
                    with self._lock:
                        self.forwarded.append((method, target))
                    if decision == "reset_after":
                        self._reset(sock)
                        return
                    out = [f"HTTP/1.1 {status} {reason}"]
                    out += [f"{k}: {v}" for k, v in rheaders if k.lower() not in _HOP and k.lower() != "content-length"]
                    clen = dict((k.lower(), v) for k, v in rheaders).get("content-length") if method == "HEAD" else None
                    out.append(f"Content-Length: {clen if clen is not None else len(rbody)}")
                    sock.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rbody)
                    if hmap.get("connection", "").lower() == "close":
                        return
                finally:
                    with self._lock:
                        self.active -= 1
        except (OSError, ValueError):
            return
        finally:
            try:
                rfile.close()
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _read_body(rfile, hmap: dict[str, str]) -> bytes:
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            raw = bytearray()  # forwarded as-is, framing included
            while True:
                size_line = rfile.readline()
                raw += size_line
                n = int(size_line.split(b";")[0].strip(), 16)
                if n == 0:
                    while True:
                        t = rfile.readline()
                        raw += t
                        if t in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += rfile.read(n + 2)
        n = int(hmap.get("content-length", "0") or 0)
        body = rfile.read(n) if n else b""
        if len(body) != n:
            raise OSError("client went away mid-body")
        return body

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        conn = http.client.HTTPConnection(*self._up, timeout=120)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() in ("connection", "proxy-connection", "keep-alive", "expect"):
                    continue
                conn.putheader(k, v)
            conn.putheader("Connection", "close")
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            rbody = resp.read() if method != "HEAD" else b""
            return resp.status, resp.reason, resp.getheaders(), rbody
        finally:
            conn.close()
