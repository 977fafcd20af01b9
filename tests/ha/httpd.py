"""A real Apache httpd (Debian's ``apache2``) as the sticky load balancer in front of pycat nodes,
plus the load clients and the session-counter app that the balancer / fail-over tests share.

* ``Httpd(tmp_dir, port, members)`` writes its own httpd.conf in ``tmp_dir`` (ServerRoot, pid file,
  logs, runtime dir and mutex files all there: nothing of the system's /etc/apache2 or
  /var/run/apache2 is read or written), runs ``apache2 -f CONF -DFOREGROUND`` as a child process on
  127.0.0.1:port, and balances ``/`` over the members, a list of ``(route, http_port)``, with
  mod_proxy_balancer (``stickysession=JSESSIONID|jsessionid``, each member ``route=`` its node's
  jvmRoute). Its access log records, per request, the member used (``BALANCER_WORKER_ROUTE``), the
  route the session asked for and whether the balancer had to change it (fail-over).
* ``LoadClients(url, clients=N)``: N threads, each a browser with its own cookie jar, recording
  ``Record(start, t, status, node, count, sid, sent_sid, error)`` for every request.
* ``install_counter_app(base)``: webapps/app, a WSGI callable at /app/* counting requests in the
  session and answering ``count=N route=R id=SID``.

Tests skip (with the reason) only when the apache2 binary is absent.
"""
import collections
import grp
import http.cookiejar
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from node_helpers import http_get, read, wait_until  # noqa: E402

MODULES_DIR = "/usr/lib/apache2/modules"
# the probe path httpd answers itself (never proxied): start() waits for any HTTP answer on it
ALIVE_PATH = "/pycat-httpd-alive"
MODULES = ["mpm_event", "authz_core", "unixd", "log_config", "proxy", "proxy_http", "proxy_balancer",
           "lbmethod_byrequests", "slotmem_shm"]
# access log: epoch time, status, the member that served, the session's route, the balancer's
# "route changed" flag (1 when the sticky member was unusable), the request line, microseconds
ACCESS_FORMAT = ('%{sec}t.%{usec_frac}t %>s worker=%{BALANCER_WORKER_ROUTE}e '
                 'session_route=%{BALANCER_SESSION_ROUTE}e changed=%{BALANCER_ROUTE_CHANGED}e '
                 '\\"%r\\" %D')


def apache2_binary():
    for path in (shutil.which("apache2"), "/usr/sbin/apache2"):
        if path and os.access(path, os.X_OK):
            return path
    return None


def require_apache2():
    """The apache2 binary, or pytest.skip with the reason."""
    binary = apache2_binary()
    if binary is None:
        pytest.skip("Apache httpd is not installed (no apache2 on PATH nor /usr/sbin/apache2; "
                    "apt-get install apache2, as .ci/run does)")
    return binary


def _run_as():
    """(user, group) for the User/Group directives when running as root, else None. httpd refuses
    to serve as root; its children then run as the current SUDO user, or nobody/nogroup."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("SUDO_USER"), "nobody"):
        if not name or name == "root":
            continue
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        try:
            group = grp.getgrgid(entry.pw_gid).gr_name
        except KeyError:
            group = "#%d" % entry.pw_gid
        return name, group
    return "#65534", "#65534"


class Httpd:
    """A real httpd balancing over ``members`` [(route, http_port)] on 127.0.0.1:port."""

    def __init__(self, tmp_dir, port, members, sticky=True, lbmethod="byrequests", retry=1,
                 connectiontimeout=1, timeout=10, nofailover=False, log_level="warn", extra_conf="",
                 binary=None):
        self.binary = binary or require_apache2()
        self.dir = os.path.abspath(str(tmp_dir))
        self.port = port
        self.members = list(members)
        self.sticky = sticky
        self.lbmethod = lbmethod
        self.retry = retry
        self.connectiontimeout = connectiontimeout
        self.timeout = timeout
        self.nofailover = nofailover
        self.log_level = log_level
        self.extra_conf = extra_conf
        self.conf_path = os.path.join(self.dir, "httpd.conf")
        self.run_dir = os.path.join(self.dir, "run")
        self.logs_dir = os.path.join(self.dir, "logs")
        self.pid_file = os.path.join(self.run_dir, "httpd.pid")
        self.error_log = os.path.join(self.logs_dir, "error.log")
        self.access_log = os.path.join(self.logs_dir, "access.log")
        self.out_path = os.path.join(self.logs_dir, "httpd.out")
        self.proc = None

    # -- configuration ------------------------------------------------------------------------------
    def server_lines(self, writer, modules=MODULES, extra=()):
        """The head of a configuration: modules, user, address, run files, logs (subclasses share it)."""
        lines = ["# written by %s" % writer, "ServerRoot \"%s\"" % self.dir]
        # Debian builds unixd and log_config into the binary: load a module only when it is not
        # there already ("module unixd_module is built-in and can't be loaded" otherwise)
        lines += ['<IfModule !%s_module>\n  LoadModule %s_module "%s/mod_%s.so"\n</IfModule>' % (m, m, MODULES_DIR, m)
                  for m in modules]
        lines += list(extra)
        run_as = _run_as()
        if run_as:
            lines += ['User "%s"' % run_as[0], 'Group "%s"' % run_as[1]]
        return lines + [
            "ServerName 127.0.0.1",
            "Listen 127.0.0.1:%d" % self.port,
            'DefaultRuntimeDir "%s"' % self.run_dir,
            'PidFile "%s"' % self.pid_file,
            'Mutex file:%s default' % self.run_dir,
            'DocumentRoot "%s"' % os.path.join(self.dir, "htdocs"),
            'ErrorLog "%s"' % self.error_log,
            "LogLevel %s" % self.log_level,
        ]

    def config(self):
        lines = self.server_lines("tests/ha/httpd.py")
        lines += [
            'LogFormat "%s" balanced' % ACCESS_FORMAT,
            'CustomLog "%s" balanced' % self.access_log,
            # a small event MPM: 2 processes x 25 threads to start, 100 workers at most
            "StartServers 2", "ServerLimit 4", "ThreadsPerChild 25", "MaxRequestWorkers 100",
            "MinSpareThreads 25", "MaxSpareThreads 75",
            "KeepAlive On", "KeepAliveTimeout 5", "Timeout 30",
            "<Location />", "  Require all granted", "</Location>",
            '<Proxy "balancer://pycat">',
        ]
        for route, http_port in self.members:
            lines.append('  BalancerMember "http://127.0.0.1:%d" route=%s retry=%d connectiontimeout=%d timeout=%d'
                         % (http_port, route, self.retry, self.connectiontimeout, self.timeout))
        settings = ["lbmethod=%s" % self.lbmethod]
        if self.sticky:
            # nofailover=Off (the default, said out loud): a session whose member is in error state
            # goes to another member instead of failing
            settings = ["stickysession=JSESSIONID|jsessionid", "nofailover=%s" % ("On" if self.nofailover else "Off")] \
                + settings
        lines += ["  ProxySet %s" % " ".join(settings), "</Proxy>",
                  'ProxyPass "%s" "!"' % ALIVE_PATH,
                  'ProxyPass "/" "balancer://pycat/"',
                  'ProxyPassReverse "/" "balancer://pycat/"']
        if self.extra_conf:
            lines.append(self.extra_conf)
        return "\n".join(lines) + "\n"

    def write_config(self):
        for d in (self.dir, self.run_dir, self.logs_dir, os.path.join(self.dir, "htdocs")):
            os.makedirs(d, exist_ok=True)
        if os.geteuid() == 0:
            # the children (User nobody) look up files under DocumentRoot for the alive probe
            for d in (self.dir, os.path.join(self.dir, "htdocs")):
                os.chmod(d, 0o755)
        with open(self.conf_path, "w") as fh:
            fh.write(self.config())
        return self.conf_path

    def configtest(self):
        """``apache2 -t`` on the written config: (ok, output)."""
        self.write_config()
        result = subprocess.run([self.binary, "-t", "-f", self.conf_path], capture_output=True, text=True,
                                timeout=30, env=self._env())
        return result.returncode == 0, result.stdout + result.stderr

    def _env(self):
        env = dict(os.environ)
        env.setdefault("LANG", "C")
        return env

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, timeout=15.0):
        """Start httpd and wait until it answers HTTP on its port (its own probe path, so the
        members need not be up). Raises with the error log if it exits instead."""
        self.write_config()
        out = open(self.out_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "-f", self.conf_path, "-DFOREGROUND"], env=self._env(),
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        wait_until(lambda: self.proc.poll() is not None or http_get(self.port, ALIVE_PATH) is not None,
                   timeout=timeout, message="httpd to answer on 127.0.0.1:%d" % self.port)
        if self.proc.poll() is not None:
            raise AssertionError("httpd exited with %s\n%s" % (self.proc.returncode, self.diagnostics()))
        return self

    def stop(self, timeout=15.0):
        """SIGTERM (httpd's immediate stop: the parent ends its children) and wait for the parent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("httpd did not stop within %.0fs of SIGTERM\n%s" % (timeout, self.diagnostics()))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    # -- logs -------------------------------------------------------------------------------------
    def error_log_text(self):
        return read(self.error_log) if os.path.exists(self.error_log) else ""

    def access_entries(self):
        """The access log as dicts: time (epoch float), status, worker (member route or None),
        session_route, changed ("1" when the balancer moved a sticky session), request, usec."""
        entries = []
        if not os.path.exists(self.access_log):
            return entries
        for line in read(self.access_log).splitlines():
            head, _, rest = line.partition(' "')
            request, _, usec = rest.rpartition('" ')
            parts = head.split()
            if len(parts) < 5:
                continue
            fields = dict(p.split("=", 1) for p in parts[2:5])
            entries.append({"time": float(parts[0]), "status": int(parts[1]),
                            "worker": None if fields["worker"] == "-" else fields["worker"],
                            "session_route": None if fields["session_route"] == "-" else fields["session_route"],
                            "changed": None if fields["changed"] == "-" else fields["changed"],
                            "request": request, "usec": int(usec) if usec.isdigit() else None})
        return entries

    def diagnostics(self, tail=4000):
        out = read(self.out_path) if os.path.exists(self.out_path) else ""
        return "--- %s\n%s\n--- %s\n%s" % (self.out_path, out[-tail:], self.error_log,
                                           self.error_log_text()[-tail:])


# -- the session-counter app ---------------------------------------------------------------------
COUNTER_APP = '''"""Counts requests in the session; answers count=N route=<jvmRoute> id=<session id>."""


def app(environ, start_response):
    session = environ["pycat.session"]
    session["count"] = session.get("count", 0) + 1
    route = environ["pycat.request"].context.manager.jvm_route
    body = ("count=%d route=%s id=%s\\n" % (session["count"], route, session.id)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-store")])
    return [body]
'''

COUNTER_WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  {distributable}<servlet><servlet-name>counter</servlet-name><servlet-class>counter_app:app</servlet-class></servlet>
  <servlet-mapping><servlet-name>counter</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"""


def install_counter_app(base, name="app", distributable=False):
    """webapps/<name> in the node folder: the counter WSGI callable mapped to /*."""
    root = os.path.join(str(base), "webapps", name)
    os.makedirs(os.path.join(root, "WEB-INF", "classes"), exist_ok=True)
    with open(os.path.join(root, "WEB-INF", "web.xml"), "w") as fh:
        fh.write(COUNTER_WEB_XML.format(distributable="<distributable/>\n  " if distributable else ""))
    with open(os.path.join(root, "WEB-INF", "classes", "counter_app.py"), "w") as fh:
        fh.write(COUNTER_APP)
    return root


def parse_fields(body):
    """``count=3 route=node1 id=XYZ.node1`` -> {"count": "3", "route": "node1", "id": "XYZ.node1"}."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return dict(token.split("=", 1) for token in text.split() if "=" in token)


# -- load clients ---------------------------------------------------------------------------------
Record = collections.namedtuple("Record", "start t status node count sid sent_sid error")
Record.__doc__ = """One request of one client: start/t are time.monotonic() before it and when its
answer (or error) came; status is the HTTP status or None (no answer); node/count/sid come from a
200 answer's body (the serving node's route, the session counter, the session id), else None;
sent_sid is the session cookie the client sent (None: none); error is the exception text."""


class _Client(threading.Thread):
    def __init__(self, owner, index):
        super().__init__(name="load-client-%d" % index, daemon=True)
        self.owner = owner
        self.index = index
        self.records = []
        self.jar = http.cookiejar.CookieJar()
        handlers = [urllib.request.ProxyHandler({})]      # never an environment proxy: 127.0.0.1 only
        if owner.cookies:
            handlers.append(urllib.request.HTTPCookieProcessor(self.jar))
        self.opener = urllib.request.build_opener(*handlers)

    def sent_sid(self):
        for cookie in self.jar:
            if cookie.name == self.owner.cookie_name:
                return cookie.value
        return None

    def one(self):
        owner = self.owner
        sent = self.sent_sid() if owner.cookies else None
        start = time.monotonic()
        status = node = count = sid = error = None
        try:
            with self.opener.open(owner.url, timeout=owner.timeout) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, b""
            try:
                exc.read()
            finally:
                exc.close()
        except Exception as exc:  # noqa: BLE001 - recorded: the tests judge errors, not the client
            body, error = b"", "%s: %s" % (type(exc).__name__, exc)
        if status == 200:
            try:
                fields = owner.parse(body)
                node, sid = fields.get("route"), fields.get("id")
                count = int(fields["count"]) if "count" in fields else None
            except Exception as exc:  # noqa: BLE001
                error = "unparsable answer %r: %s" % (body[:200], exc)
        self.records.append(Record(start, time.monotonic(), status, node, count, sid, sent, error))

    def run(self):
        owner = self.owner
        done = 0
        while not owner._stop.is_set() and (owner.requests is None or done < owner.requests):
            self.one()
            done += 1
            if owner.interval and owner._stop.wait(owner.interval):
                break


class LoadClients:
    """``clients`` threads, each a browser with its own cookie jar (or none: ``cookies=False``),
    GETting ``url`` ``requests`` times each (None: until ``stop()``), ``interval`` seconds apart.

    ``results`` is one list of ``Record`` per client, in request order. ``wait(predicate)`` waits
    (with a timeout) until ``predicate(self)`` holds while the clients run."""

    def __init__(self, url, clients=10, requests=None, interval=0.0, timeout=15.0, cookies=True,
                 cookie_name="JSESSIONID", parse=parse_fields):
        self.url = url
        self.requests = requests
        self.interval = interval
        self.timeout = timeout
        self.cookies = cookies
        self.cookie_name = cookie_name
        self.parse = parse
        self._stop = threading.Event()
        self.clients = [_Client(self, i) for i in range(clients)]

    def start(self):
        for client in self.clients:
            client.start()
        return self

    def stop(self, timeout=30.0):
        self._stop.set()
        self.join(timeout)
        return self.results

    def join(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        for client in self.clients:
            client.join(max(0.0, deadline - time.monotonic()))
        alive = [c.name for c in self.clients if c.is_alive()]
        if alive:
            raise AssertionError("load clients still running after %.0fs: %s" % (timeout, alive))
        return self.results

    def run(self, timeout=60.0):
        """start(), then wait for every client to finish its ``requests``."""
        assert self.requests is not None, "run() needs a finite number of requests per client"
        return self.start().join(timeout)

    def wait(self, predicate, timeout=15.0, message="the load clients' condition"):
        return wait_until(lambda: predicate(self), timeout=timeout, message=message)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def results(self):
        return [list(c.records) for c in self.clients]

    def ok(self, index):
        return [r for r in self.clients[index].records if r.status == 200 and r.error is None]

    def route_of(self, index):
        """The route of the client's first session (its id's suffix after the dot), or None."""
        for r in self.ok(index):
            if r.sid:
                return route_of(r.sid)
        return None


def route_of(sid):
    return sid.rpartition(".")[2] if sid and "." in sid else None


def run_clients(url, clients=10, requests=10, **kwargs):
    """Run ``clients`` cookie-keeping clients for ``requests`` requests each; their results."""
    return LoadClients(url, clients=clients, requests=requests, **kwargs).run()
