"""Test harness: build a started Server→Service→Engine→Host→Context tree in Python (no
server.xml), with a Connector on 127.0.0.1 port 0, and talk to it.

Client code that blocks (http.client, ssl, urllib) runs in a real thread via ``in_thread`` so
the gevent hub keeps serving; byte-level clients use gevent sockets directly.
"""
import os
import sys

import gevent
import gevent.socket

from pycat.connector.connector import Connector
from pycat.core.context import Context
from pycat.core.engine import Engine
from pycat.core.host import Host
from pycat.core.server import Server
from pycat.core.service import Service

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# tests/ holds the helpers every folder shares; put it on the path also for subprocesses that
# import this harness on their own
if os.path.join(REPO, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "tests"))
from waiting import wait_for  # noqa: E402,F401 - the container tests import it from here


class Tree:
    def __init__(self, base, contexts=None, engine_valves=(), host_valves=(), context_valves=(),
                 connector_attrs=None, host_name="localhost", aliases=(), extra_hosts=(),
                 executors=(), start=True, conf_web_xml=True):
        self.base = str(base)
        os.makedirs(os.path.join(self.base, "webapps"), exist_ok=True)
        if conf_web_xml:
            os.makedirs(os.path.join(self.base, "conf"), exist_ok=True)
            with open(os.path.join(REPO, "conf", "web.xml"), "rb") as src, \
                    open(os.path.join(self.base, "conf", "web.xml"), "wb") as dst:
                dst.write(src.read())
        self.server = Server()
        self.server.port = -1
        self.server.catalina_base = self.base
        self.service = Service()
        self.server.add_service(self.service)
        for e in executors:
            self.service.add_executor(e)
        self.engine = Engine()
        self.engine.background_processor_delay = -1
        self.service.set_container(self.engine)
        for v in engine_valves:
            self.engine.add_valve(v)
        self.host = Host()
        self.host.name = host_name
        for a in aliases:
            self.host.add_alias(a)
        for v in host_valves:
            self.host.add_valve(v)
        self.engine.add_child(self.host)
        for h in extra_hosts:
            self.engine.add_child(h)
        self.contexts = {}
        for path, spec in (contexts if contexts is not None else {"": {}}).items():
            ctx = Context()
            ctx.path = path
            folder = spec.get("folder") or (path.strip("/").replace("/", "#") or "ROOT")
            docbase = os.path.join(self.base, "webapps", folder)
            os.makedirs(docbase, exist_ok=True)
            for rel, content in spec.get("files", {}).items():
                full = os.path.join(docbase, rel)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as fh:
                    fh.write(content.encode() if isinstance(content, str) else content)
            ctx.doc_base = spec.get("doc_base", folder)
            for name, servlet, patterns in spec.get("servlets", ()):
                ctx.add_servlet(name, servlet, patterns)
            for v in spec.get("valves", ()):
                ctx.add_valve(v)
            self.host.add_child(ctx)
            self.contexts[path] = ctx
        for v in context_valves:
            self.contexts[next(iter(self.contexts))].add_valve(v)
        self.connector = Connector()
        self.connector.port = 0
        self.connector.address = "127.0.0.1"
        for k, v in (connector_attrs or {}).items():
            setattr(self.connector, k, v)
        self.service.add_connector(self.connector)
        if start:
            self.server.start()

    @property
    def port(self):
        return self.connector.bound_port

    def stop(self):
        self.server.stop()


def in_thread(fn, *args, timeout=20, **kwargs):
    """Run blocking client code in a real thread while the hub keeps serving."""
    return gevent.get_hub().threadpool.spawn(fn, *args, **kwargs).get(timeout=timeout)


def raw_exchange(port, data, timeout=5.0, read_until_close=True):
    """Send bytes, read until the server closes (or timeout). gevent socket: no thread needed."""
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        chunks = []
        with gevent.Timeout(timeout):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close:
                    break
        return b"".join(chunks)
    finally:
        sock.close()


def parse_response(data):
    """One HTTP response (Content-Length or close-delimited) → (status, headers, body, rest)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, "no end of headers in %r" % data[:200]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                rest = rest[2:]
                break
            body += rest[:size]
            rest = rest[size + 2:]
        return status, headers, body, rest
    return status, headers, rest, b""


def get(port, path, headers=None, method="GET", body=b"", host="localhost"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host, "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if body:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    status, hdrs, payload, _ = parse_response(raw_exchange(port, data))
    return status, hdrs, payload


