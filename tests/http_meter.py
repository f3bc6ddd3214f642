"""A small HTTP/1.1 forwarding proxy on 127.0.0.1 that counts requests and bytes, and injects faults.

Put it between a real SDK and a real server (Azurite, moto) to measure what an operation costs on the
wire (requests, bytes up and down) and to produce the transient failures a cloud service produces
(429/500/503 answers, connection resets) that a local server never does. Bodies are streamed in pieces,
so it holds no whole file in memory. ``Expect: 100-continue`` is answered by the proxy itself.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

_PIECE = 1 << 20
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_CODES = {429: "SlowDown", 500: "InternalError", 503: "ServerBusy"}


@dataclass
class Meter:
    """What went through the proxy since the last :meth:`MeteringProxy.take`."""

    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    faults: int = 0


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status`` (an int) or reset the connection
    (``"reset"``); ``match(method, path)`` picks the requests."""

    status: int | str
    times: int
    match: Callable[[str, str], bool] = lambda method, path: True


class MeteringProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<upstream_port>."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._meter = Meter()
        self._faults: list[Fault] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> MeteringProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self) -> Meter:
        """The counts so far; the counters start again from zero."""
        with self._lock:
            meter, self._meter = self._meter, Meter()
        return meter

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    # -- the forwarding loop ----------------------------------------------------------------------
    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.match(method, path):
                    fault.times -= 1
                    self._meter.faults += 1
                    return fault
        return None

    def _count(self, method: str = "", up: int = 0, down: int = 0) -> None:
        with self._lock:
            if method:
                self._meter.requests += 1
                self._meter.by_method[method] = self._meter.by_method.get(method, 0) + 1
            self._meter.bytes_up += up
            self._meter.bytes_down += down

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        cin = client.makefile("rb")
        try:
            while True:
                head = _read_head(cin)
                if head is None:
                    return
                request_line, headers = head
                method, path = request_line.split(" ", 2)[:2]
                self._count(method)
                if _header(headers, "expect").lower() == "100-continue":
                    headers = [h for h in headers if not h.lower().startswith("expect:")]
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                fault = self._fault_for(method, path)
                if fault is not None and fault.status == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if fault is not None:
                    self._count(up=_forward_body(cin, headers, None))
                    _send_error(client, int(fault.status))
                    continue
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                upstream.sendall(_head_bytes(request_line, headers))
                self._count(up=_forward_body(cin, headers, upstream))
                uin = upstream.makefile("rb")
                response = _read_head(uin)
                if response is None:
                    return
                status_line, rheaders = response
                client.sendall(_head_bytes(status_line, rheaders))
                status = int(status_line.split(" ", 2)[1])
                no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
                if not no_body:
                    # Counted piece by piece: a body that ends only when the server closes the
                    # connection must not be counted after the caller has read its meter.
                    _forward_body(
                        uin, rheaders, client, until_close=True, on_bytes=lambda n: self._count(down=n)
                    )
                if _header(rheaders, "connection").lower() == "close":
                    return
        except OSError:
            return
        finally:
            cin.close()
            if upstream is not None:
                upstream.close()
            client.close()


def _read_head(stream: BinaryIO) -> tuple[str, list[str]] | None:
    line = stream.readline(65536)
    while line in (b"\r\n", b"\n"):
        line = stream.readline(65536)
    if not line:
        return None
    headers = []
    while True:
        h = stream.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        headers.append(h.decode("latin-1").rstrip("\r\n"))
    return line.decode("latin-1").rstrip("\r\n"), headers


def _header(headers: list[str], name: str) -> str:
    for h in headers:
        key, _, value = h.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def _head_bytes(first: str, headers: list[str]) -> bytes:
    return ("\r\n".join([first, *headers]) + "\r\n\r\n").encode("latin-1")


def _forward_body(
    src: BinaryIO,
    headers: list[str],
    dst: socket.socket | None,
    until_close: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Copy a message body from ``src`` to ``dst`` (None: discard); returns the body bytes and tells
    ``on_bytes`` each piece's size as it passes."""
    if _header(headers, "transfer-encoding").lower() == "chunked":
        total = 0
        while True:
            size_line = src.readline(65536)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if dst is not None:
                dst.sendall(size_line)
            total += _copy(src, dst, size + 2, on_bytes)  # the chunk and its CRLF
            if size == 0:
                # trailers (usually none) end with an empty line, already copied as the CRLF above
                return total
    length = _header(headers, "content-length")
    if length:
        return _copy(src, dst, int(length), on_bytes)
    if until_close:
        return _copy(src, dst, None, on_bytes)
    return 0


def _copy(
    src: BinaryIO, dst: socket.socket | None, n: int | None, on_bytes: Callable[[int], None] | None = None
) -> int:
    done = 0
    while n is None or done < n:
        piece = src.read(_PIECE if n is None else min(_PIECE, n - done))
        if not piece:
            break
        if on_bytes is not None:
            on_bytes(len(piece))  # before sending: the receiver may read the meter right after
        if dst is not None:
            dst.sendall(piece)
        done += len(piece)
    return done


def _send_error(client: socket.socket, status: int) -> None:
    code = _CODES.get(status, "InternalError")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected by the test proxy</Message></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/xml\r\n"
        f"x-ms-error-code: {code}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    client.sendall(head.encode() + body)
