"""A throwaway PostgreSQL server for the JDBCStore tests.

``pg_server`` (session-scoped fixture) runs initdb into a fresh temp dir, starts the server on a
free 127.0.0.1 port with its unix socket in that dir, creates a database and yields a PgServer
(``url``, ``stop()``, ``start()`` to simulate the database going away and coming back).
PostgreSQL refuses to run as root: as root we run its tools as the ``postgres`` user through
runuser. Anything missing (binaries, psycopg, the postgres user) skips the PostgreSQL tests
with the reason shown in pytest's summary (``-rs``).
"""
import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest


def find_pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name),
                        key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    return candidates[-1] if candidates else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, initdb, pg_ctl):
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.prefix = []
        self.user = "pycat"
        self.dbname = "pycat_test"
        self.root = tempfile.mkdtemp(prefix="pycat-pg-")
        self.data = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        self.port = free_port()
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                import pwd
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run PostgreSQL as")
            if runuser is None:
                raise RuntimeError("running as root and runuser is missing")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]

    @property
    def url(self):
        return "postgresql://%s@127.0.0.1:%d/%s" % (self.user, self.port, self.dbname)

    def _run(self, *args, timeout=60):
        proc = subprocess.run(self.prefix + list(args), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s%s" % (os.path.basename(args[0]), proc.returncode,
                                                       proc.stdout[-1500:], proc.stderr[-1500:], self._log_tail()))
        return proc

    def _log_tail(self):
        try:
            with open(self.logfile) as f:
                return "\nserver log:\n" + f.read()[-1500:]
        except OSError:
            return ""

    def init(self):
        self._run(self.initdb, "-D", self.data, "-A", "trust", "-U", self.user, "-E", "UTF8", "--no-sync")

    def start(self):
        opts = ("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off" % (self.port, self.root))
        self._run(self.pg_ctl, "-D", self.data, "-l", self.logfile, "-w", "-t", "60", "-o", opts, "start",
                  timeout=90)

    def stop(self, mode="immediate"):
        self._run(self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop")

    def create_db(self):
        import psycopg
        with psycopg.connect("postgresql://%s@127.0.0.1:%d/postgres" % (self.user, self.port),
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE %s" % self.dbname)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


_state = {}


def _start_once():
    """The one server of this test run (several test modules import the fixture, and a
    session-scoped fixture imported into two modules would otherwise start two servers).
    Returns (server, None) or (None, reason to skip)."""
    if "result" in _state:
        return _state["result"]
    _state["result"] = result = _start()
    if result[0] is not None:
        atexit.register(_shutdown, result[0])
    return result


def _start():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "PostgreSQL tests need psycopg 3: pip install 'psycopg[binary]'"
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        return None, "PostgreSQL tests need initdb and pg_ctl (Debian: apt-get install postgresql)"
    try:
        server = PgServer(initdb, pg_ctl)
    except RuntimeError as exc:
        return None, "cannot run PostgreSQL: %s" % exc
    started = False
    try:
        server.init()
        server.start()
        started = True
        server.create_db()
    except Exception as exc:
        if started:
            _shutdown(server)
        else:
            server.cleanup()
        return None, "could not start a throwaway PostgreSQL: %s" % exc
    return server, None


def _shutdown(server):
    try:
        server.stop("fast")
    except Exception:
        pass
    server.cleanup()


@pytest.fixture(scope="session")
def pg_server():
    server, reason = _start_once()
    if server is None:
        pytest.skip(reason)
    return server
