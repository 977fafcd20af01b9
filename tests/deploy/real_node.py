"""A real ``pycat run`` subprocess on a temporary CATALINA_BASE, for the deploy tests that must see
what the server does to its files and its log (the base is built by tests/integration/node_helpers)."""
import http.client
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from node_helpers import free_port, http_get, make_base, node_env, pycat_cmd, wait_until  # noqa: E402

# autoDeploy on a 0.2 s background tick, so a dropped file is looked at within a second
SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${{http.port}}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" backgroundProcessorDelay="0.2">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true" {host_attrs}/>
    </Engine>
  </Service>
</Server>
"""


class RealNode:
    """One node: ``start()``, ``cli(...)`` (the pycat command against it), ``log()``, ``stop()``."""

    def __init__(self, root, procs, host_attrs=""):
        self.procs = procs
        self.port = free_port()
        self.base = make_base(os.path.join(str(root), "node"), self.port,
                              server_xml=SERVER_XML.format(host_attrs=host_attrs))
        self.webapps = os.path.join(self.base, "webapps")
        self.work = os.path.join(self.base, "work", "Catalina", "localhost")
        self.token_file = os.path.join(self.base, "work", "pycat-manager.json")
        self.log_path = os.path.join(str(root), "node.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as out:
            self.proc = self.procs.popen(pycat_cmd("run", "--base", self.base), env=node_env(self.base),
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or http_get(self.port, "/"), timeout=30,
                   message="node up")
        assert self.proc.poll() is None, self.log()
        wait_until(lambda: os.path.exists(self.token_file), message="deploy channel")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            self.proc.wait(20)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def cli(self, *args):
        return subprocess.run(pycat_cmd(*args, "--base", self.base), env=node_env(self.base),
                              capture_output=True, text=True, timeout=90)

    def get(self, path, cookie=None):
        """(status, headers as a lower-cased dict, body text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Cookie": "JSESSIONID=" + cookie} if cookie else {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, \
                resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def status(self, path):
        return self.get(path)[0]
