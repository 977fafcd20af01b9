"""A real Apache httpd speaking AJP (mod_proxy_ajp or mod_jk) or HTTP (mod_proxy_http) to real pycat
nodes, for the AJP tests and bench/ajp.py.

* ``make_ajp_node(root, route, secret)``: an ``AjpNode`` (the plugin's Node, not started) whose
  server.xml has an HTTP connector and an AJP connector (``secret``), both on 127.0.0.1 with free
  ports, ``jvmRoute=route``, and ``webapps/app``, a
  WSGI app: ``/app/count`` counts requests in the session (``count=N route=R id=SID``),
  ``/app/body`` reads the whole request body and answers its length and SHA-256, ``/app/info``
  shows what the connector forwarded, ``/app/small`` is a fixed short answer (the bench).
* ``AjpFront(tmp_dir, port, mode, members, ...)``: httpd on 127.0.0.1 (its own config, pid, logs
  and runtime files under ``tmp_dir``; the ``Httpd`` of tests/ha/httpd.py does the starting and
  stopping) with, on its main port, ``/app/`` balanced over ``members`` [(route, ajp_port or
  http_port)] with sticky sessions: ``mode`` "proxy_ajp" (BalancerMember ajp://... secret=...),
  "jk" (mod_jk, an lb worker over one ajp13 worker per member, each named after its route) or
  "proxy_http". ``secret=None`` sends no secret (what pycat must refuse).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "integration"))
sys.path.insert(0, os.path.join(TESTS, "ha"))
from httpd import MODULES_DIR, Httpd  # noqa: E402

from pycat.testing import Node  # noqa: E402

SECRET = "s3cret-for-tests"

NODE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${{http.port}}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <!-- Tomcat's stock AJP connector, uncommented, with a secret -->
    <Connector protocol="AJP/1.3" address="127.0.0.1" port="${{ajp.port}}" redirectPort="8443"
               secret="${{ajp.secret}}" {ajp_extra}/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="${{jvm.route}}">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="localhost_access_log" suffix=".txt" pattern="%h %a %u &quot;%r&quot; %s %b"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""

APP = r'''"""The AJP tests' app (see tests/ajp/ajp_front.py)."""
import hashlib


def app(environ, start_response):
    request = environ["pycat.request"]
    path = environ.get("PATH_INFO", "")
    route = request.context.manager.jvm_route
    if path == "/count":
        session = environ["pycat.session"]
        session["count"] = session.get("count", 0) + 1
        body = "count=%d route=%s id=%s\n" % (session["count"], route, session.id)
    elif path == "/body":
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        total = 0
        while True:
            data = stream.read(65536)
            if not data:
                break
            total += len(data)
            digest.update(data)
        body = "len=%d sha=%s route=%s te=%s cl=%s\n" % (total, digest.hexdigest(), route,
                                                        environ.get("HTTP_TRANSFER_ENCODING", "-"),
                                                        environ.get("CONTENT_LENGTH", "-"))
    elif path == "/info":
        fields = {
            "route": route, "secure": request.is_secure, "scheme": request.scheme,
            "remote_addr": request.remote_addr, "remote_user": request.remote_user,
            "query": request.query_string, "server_name": request.server_name,
            "server_port": request.server_port, "x_test": request.get_header("x-test"),
            "cipher": request.get_attribute("jakarta.servlet.request.cipher_suite"),
            "ajp_route": request.get_attribute("pycat.ajp.route"),
        }
        body = "".join("%s=%s\n" % item for item in sorted(fields.items()))
    else:
        body = "hello from %s\n" % route
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data))),
                              ("Cache-Control", "no-store")])
    return [data]
'''

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <servlet><servlet-name>ajptest</servlet-name><servlet-class>ajptest_app:app</servlet-class></servlet>
  <servlet-mapping><servlet-name>ajptest</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"""


class AjpNode(Node):
    """A node of the AJP tests (module doc): the plugin's Node named after its route, the AJP port
    a free one (``${ajp.port}``), the secret a property."""

    def __init__(self, base, route, secret=SECRET, ajp_extra="", **options):
        super().__init__(base, NODE_XML.format(ajp_extra=ajp_extra), name=route,
                         properties={"ajp.secret": secret}, **options)
        self.route = route
        self.ajp_port = self.ports["ajp"]
        app = os.path.join(self.app_base, "app", "WEB-INF")
        os.makedirs(os.path.join(app, "classes"), exist_ok=True)
        with open(os.path.join(app, "web.xml"), "w") as fh:
            fh.write(WEB_XML)
        with open(os.path.join(app, "classes", "ajptest_app.py"), "w") as fh:
            fh.write(APP)

    def log_text(self):
        return self.log()


def make_ajp_node(root, route, secret=SECRET, ajp_extra=""):
    return AjpNode(root, route, secret, ajp_extra)


def start_nodes(procs, nodes, timeout=60.0):
    """Start every node at once; wait until each answers on HTTP and has its AJP connector up.
    ``procs`` (a node_helpers.Procs, or None) closes them at its cleanup."""
    for node in nodes:
        if procs is not None:
            procs.add(node)
        node.start(wait=False)
    for node in nodes:
        node.wait_ready("/app/small", 200, timeout)
        assert "ajp-%d" % node.ajp_port in node.log(), node.tail()
    return nodes


JK_MODULE = os.path.join(MODULES_DIR, "mod_jk.so")
PROXY_MODULES = ["mpm_event", "authz_core", "unixd", "log_config", "proxy", "proxy_http", "proxy_ajp",
                 "proxy_balancer", "lbmethod_byrequests", "slotmem_shm"]


def require_mod_jk():
    import pytest
    if not os.path.exists(JK_MODULE):
        pytest.skip("mod_jk is not installed (apt-get install libapache2-mod-jk, as .ci/run does)")


class AjpFront(Httpd):
    """httpd in front of pycat nodes over AJP (mod_proxy_ajp or mod_jk) or HTTP (mod_proxy_http)."""

    def __init__(self, tmp_dir, port, mode, members, secret=SECRET, packet_size=None,
                 log_level="warn", binary=None):
        super().__init__(tmp_dir, port, members, log_level=log_level, binary=binary)
        self.mode = mode
        self.secret = secret
        self.packet_size = packet_size
        self.workers_path = os.path.join(self.dir, "workers.properties")

    def workers_properties(self):
        """mod_jk's workers: one ajp13 worker per member, named after its route (= the node's
        jvmRoute), under an lb worker with sticky sessions."""
        lines = ["worker.list=balancer"]
        for route, port in self.members:
            lines += ["worker.%s.type=ajp13" % route, "worker.%s.host=127.0.0.1" % route,
                      "worker.%s.port=%d" % (route, port), "worker.%s.socket_connect_timeout=5000" % route]
            if self.secret:
                lines.append("worker.%s.secret=%s" % (route, self.secret))
            if self.packet_size:
                lines.append("worker.%s.max_packet_size=%d" % (route, self.packet_size))
        lines += ["worker.balancer.type=lb",
                  "worker.balancer.balance_workers=%s" % ",".join(r for r, _ in self.members),
                  "worker.balancer.sticky_session=true"]
        return "\n".join(lines) + "\n"

    def config(self):
        extra = ['LoadModule jk_module "%s"' % JK_MODULE] if self.mode == "jk" else []
        lines = self.server_lines("tests/ajp/ajp_front.py", list(PROXY_MODULES), extra)
        lines += [
            'CustomLog "%s" "%%h \\"%%r\\" %%>s %%b %%D"' % self.access_log,
            "StartServers 1", "ServerLimit 2", "ThreadsPerChild 64", "MaxRequestWorkers 128",
            "MinSpareThreads 16", "MaxSpareThreads 128",
            "KeepAlive On", "KeepAliveTimeout 5", "Timeout 60",
            "<Location />", "  Require all granted", "</Location>",
            "<Directory />", "  AllowOverride None", "</Directory>",
        ]
        if self.packet_size and self.mode == "proxy_ajp":
            lines.append("ProxyIOBufferSize %d" % self.packet_size)
        if self.mode == "jk":
            lines += ['JkWorkersFile "%s"' % self.workers_path,
                      'JkShmFile "%s"' % os.path.join(self.run_dir, "jk.shm"),
                      'JkLogFile "%s"' % os.path.join(self.logs_dir, "mod_jk.log"),
                      "JkLogLevel %s" % ("info" if self.log_level == "warn" else self.log_level),
                      "JkMount /app/* balancer"]
        else:
            scheme = "ajp" if self.mode == "proxy_ajp" else "http"
            lines.append('<Proxy "balancer://pycat">')
            for route, port in self.members:
                extra = " secret=%s" % self.secret if scheme == "ajp" and self.secret else ""
                lines.append('  BalancerMember "%s://127.0.0.1:%d" route=%s retry=1 timeout=60%s'
                             % (scheme, port, route, extra))
            lines += ["  ProxySet stickysession=JSESSIONID|jsessionid lbmethod=byrequests", "</Proxy>",
                      'ProxyPass "/app/" "balancer://pycat/app/"',
                      'ProxyPassReverse "/app/" "balancer://pycat/app/"']
        return "\n".join(lines) + "\n"

    def write_config(self):
        path = super().write_config()
        if self.mode == "jk":
            with open(self.workers_path, "w") as fh:
                fh.write(self.workers_properties())
        if os.geteuid() == 0:
            os.chmod(self.logs_dir, 0o777)      # mod_jk's children (User nobody) write its log
        return path
