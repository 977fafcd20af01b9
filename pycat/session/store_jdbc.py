"""JDBCStore: sessions in a database table (Tomcat's org.apache.catalina.session.JDBCStore).

``connectionURL`` picks the driver (``driverName`` is accepted and ignored):

* ``sqlite:path/to/file.db`` (relative to the context's work directory), ``sqlite:/abs/file.db``,
  ``sqlite::memory:`` -- the stdlib sqlite3 module, the embedded default. A file database is
  put in WAL mode with synchronous=NORMAL (commits do not fsync); nodes sharing one SQLite
  file must be on the same host (SQLite locking does not work over network filesystems);
  use PostgreSQL across hosts;
* ``postgresql://user:pass@host:port/db`` -- psycopg 3 (``pip install "psycopg[binary]"``), for
  several nodes sharing one database. ``connectionName``/``connectionPassword`` override the URL's.

The table (Tomcat's column names by default; all configurable) is created if missing -- Tomcat
does not, a Python user expects it::

    CREATE TABLE "tomcat$sessions" (
      session_id VARCHAR(100) NOT NULL, app_name VARCHAR(255) NOT NULL,
      session_data BYTEA|BLOB, valid_session CHAR(1) NOT NULL,
      max_inactive INT NOT NULL, last_access BIGINT NOT NULL,   -- epoch milliseconds
      PRIMARY KEY (session_id, app_name))

An existing Tomcat table (session_id alone as primary key) works too: a save is a DELETE then an
INSERT in one transaction. ``session_data`` holds a persistence.encode_session record. Rows are
per application: app_name is ``/<engine>/<host><context path>`` as in Tomcat.

Database calls are blocking I/O. `pycat run` monkey-patches Python sockets, but drivers block inside
C (sqlite3, psycopg's libpq), where patching cannot reach, so each call runs in gevent's hub
threadpool: the hub keeps serving while a query waits. One connection per store, used by one
thread at a time (a lock; sqlite3 opened with check_same_thread=False). Any database error
closes the connection and raises StoreError; the next operation reconnects. ``dataSourceName``
(JNDI) is accepted and logged as unsupported.
"""
import logging
import os
import threading
import urllib.parse

import gevent

from pycat.attrs import Attr
from pycat.session.store import Store, StoreError

log = logging.getLogger(__name__)


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


class _SQLite:
    placeholder = "?"
    blob_type = "BLOB"

    def __init__(self, url, store):
        path = url[len("sqlite:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("connectionURL %r names no database file" % url)
        if path != ":memory:" and not os.path.isabs(path):
            base = getattr(store.manager, "work_dir", None) or os.getcwd()
            path = os.path.join(base, path)
        self.path = path
        import sqlite3
        self.module = sqlite3
        self.errors = (sqlite3.Error, OSError)

    def connect(self, user, password):
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            # session data is private: create the file 0600 before sqlite does (sqlite gives its
            # -wal/-shm files the database file's mode), whatever the umask
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        # used from the hub's pool threads, one at a time under the store's lock
        conn = self.module.connect(self.path, timeout=10, check_same_thread=False)
        if self.path != ":memory:":
            try:
                # WAL + synchronous=NORMAL: a commit is not an fsync (a killed process loses
                # nothing; an OS crash may lose the last commits), readers never block the writer
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except self.module.Error as exc:
                log.debug("sqlite %s: keeping the default journal: %s", self.path, exc)
        return conn

    def describe(self):
        return "sqlite:" + self.path


class _Postgres:
    placeholder = "%s"
    blob_type = "BYTEA"

    def __init__(self, url, store):
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError("JDBCStore: %s needs psycopg 3 (pip install \"psycopg[binary]\")"
                             % url.split("@")[-1]) from exc
        self.module = psycopg
        self.errors = (psycopg.Error,)
        self.url = url

    def connect(self, user, password):
        kwargs = {"connect_timeout": 10}
        if user:
            kwargs["user"] = user
        if password:
            kwargs["password"] = password
        return self.module.connect(self.url, **kwargs)

    def describe(self):
        parts = urllib.parse.urlsplit(self.url)
        return "postgresql://%s%s" % (parts.hostname or "", parts.path)  # never log the password


def driver_for(url, store):
    if not url:
        raise ValueError("JDBCStore needs a connectionURL (sqlite:FILE or postgresql://...)")
    if url.startswith("sqlite:"):
        return _SQLite(url, store)
    if url.startswith(("postgresql://", "postgres://")):
        return _Postgres(url, store)
    raise ValueError("JDBCStore: unsupported connectionURL %r (use sqlite:FILE or postgresql://...)" % url)


class JDBCStore(Store):
    session_table = Attr(str, "tomcat$sessions", "table holding the sessions")
    session_id_col = Attr(str, "session_id", "column of the session id")
    session_data_col = Attr(str, "session_data", "column of the serialised session")
    session_valid_col = Attr(str, "valid_session", "column of the valid flag ('1'/'0')")
    session_max_inactive_col = Attr(str, "max_inactive", "column of the max inactive interval (seconds)")
    session_last_accessed_col = Attr(str, "last_access", "column of the last access time (epoch ms)")
    session_app_col = Attr(str, "app_name", "column of the application name")
    connection_url = Attr(str, None, "sqlite:FILE, sqlite::memory: or postgresql://user:pass@host:port/db",
                          xml="connectionURL")
    driver_name = Attr(str, None, "accepted for Tomcat compatibility; the URL scheme picks the driver")
    connection_name = Attr(str, None, "database user (overrides the URL's)")
    connection_password = Attr(str, None, "database password (overrides the URL's)")
    data_source_name = Attr(str, None, "JNDI data source: not supported (logged); use connectionURL")
    use_threadpool = Attr(bool, True, "run database calls in gevent's hub threadpool (keeps the hub responsive)")

    def __init__(self):
        super().__init__()
        self._driver = None
        self._conn = None
        self._lock = threading.Lock()
        self._app_name = None
        self._sql = None

    # -- configuration -------------------------------------------------------------------------
    def _init(self):
        if self.data_source_name:
            log.warning("%s: dataSourceName=%r is not supported (no JNDI); using connectionURL",
                        self.component_name, self.data_source_name)
        if self.driver_name:
            log.debug("%s: driverName %r ignored: the connectionURL scheme picks the driver",
                      self.component_name, self.driver_name)

    def _start(self):
        self._driver = driver_for(self.connection_url, self)
        self._build_sql()
        try:
            self._db(lambda conn: None)   # connect and create the table now, to report problems early
            log.info("%s: sessions of %s in %s", self.component_name, self.app_name(), self._driver.describe())
        except StoreError as exc:
            log.error("%s: database not reachable at start (will retry on use): %s", self.component_name, exc)

    def _stop(self):
        with self._lock:
            self._close()

    def app_name(self):
        """Tomcat's JDBCStore name: /<engine>/<host><context name>."""
        if self._app_name is None:
            context = getattr(self.manager, "context", None)
            if context is None:
                return getattr(self.manager, "name", None) or "/"
            name = getattr(context, "name", None) or getattr(context, "path", None) or ""
            if not name.startswith("/"):
                name = "/" + name
            host = getattr(context, "parent", None)
            engine = getattr(host, "parent", None)
            self._app_name = "/%s/%s%s" % (getattr(engine, "name", None) or "",
                                          getattr(host, "name", None) or "", name)
        return self._app_name

    def _build_sql(self):
        q = quote_ident
        p = self._driver.placeholder
        t, sid, data, valid = (q(self.session_table), q(self.session_id_col), q(self.session_data_col),
                               q(self.session_valid_col))
        maxi, last, app = q(self.session_max_inactive_col), q(self.session_last_accessed_col), q(self.session_app_col)
        self._sql = {
            "create": ("CREATE TABLE IF NOT EXISTS %s (%s VARCHAR(100) NOT NULL, %s VARCHAR(255) NOT NULL, "
                       "%s %s, %s CHAR(1) NOT NULL, %s INT NOT NULL, %s BIGINT NOT NULL, PRIMARY KEY (%s, %s))"
                       % (t, sid, app, data, self._driver.blob_type, valid, maxi, last, sid, app)),
            "probe": "SELECT %s FROM %s WHERE 1 = 0" % (sid, t),
            "load": "SELECT %s FROM %s WHERE %s = %s AND %s = %s" % (data, t, sid, p, app, p),
            "delete": "DELETE FROM %s WHERE %s = %s AND %s = %s" % (t, sid, p, app, p),
            "insert": ("INSERT INTO %s (%s, %s, %s, %s, %s, %s) VALUES (%s, %s, %s, %s, %s, %s)"
                       % ((t, sid, app, data, valid, maxi, last) + (p,) * 6)),
            "clear": "DELETE FROM %s WHERE %s = %s" % (t, app, p),
            "keys": "SELECT %s FROM %s WHERE %s = %s" % (sid, t, app, p),
            "count": "SELECT COUNT(*) FROM %s WHERE %s = %s" % (t, app, p),
            "expired": ("SELECT %s FROM %s WHERE %s = %s AND (%s <> '1' OR (%s > 0 AND %s + %s * 1000 <= %s))"
                        % (sid, t, app, p, valid, maxi, last, maxi, p)),
        }

    # -- connection handling ---------------------------------------------------------------------
    def _db(self, work):
        """work(conn) in a pool thread under the lock, committed; a database error closes the
        connection (the next call reconnects) and becomes StoreError."""
        if self._driver is None:
            raise StoreError("%s is not started" % self.component_name)
        if not self.use_threadpool:
            return self._locked(work)
        # errors come back as values: gevent would print a traceback for one raised in the pool
        ok, value = gevent.get_hub().threadpool.apply(self._outcome, (work,))
        if ok:
            return value
        raise value

    def _outcome(self, work):
        try:
            return True, self._locked(work)
        except Exception as exc:
            return False, exc

    def _locked(self, work):
        with self._lock:
            reused = self._conn is not None
            try:
                return self._attempt(work)
            except self._driver.errors as exc:
                self._close()
                if not reused:
                    raise StoreError("%s: %s: %s" % (self._driver.describe(), type(exc).__name__, exc)) from exc
                # a kept connection may have died with a server restart: one retry on a fresh one
                log.debug("%s: retrying on a new connection after %s", self.component_name, exc)
            try:
                return self._attempt(work)
            except self._driver.errors as exc:
                self._close()
                raise StoreError("%s: %s: %s" % (self._driver.describe(), type(exc).__name__, exc)) from exc

    def _attempt(self, work):
        try:
            conn = self._conn if self._conn is not None else self._connect()
            result = work(conn)
            conn.commit()
            return result
        except BaseException:
            if self._conn is not None:
                try:
                    self._conn.rollback()
                except Exception:
                    self._close()
            raise

    def _connect(self):
        conn = self._driver.connect(self.connection_name, self.connection_password)
        try:
            self._ensure_table(conn)
        except BaseException:
            _quiet_close(conn)
            raise
        self._conn = conn
        return conn

    def _ensure_table(self, conn):
        try:
            conn.execute(self._sql["create"])
            conn.commit()
        except self._driver.errors:
            # two nodes creating it at once can collide in PostgreSQL's catalog: fine if it exists now
            conn.rollback()
            conn.execute(self._sql["probe"])
            conn.commit()

    def _close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            _quiet_close(conn)

    # -- Store primitives --------------------------------------------------------------------------
    def _read(self, session_id):
        app = self.app_name()
        row = self._db(lambda c: c.execute(self._sql["load"], (session_id, app)).fetchone())
        return None if row is None or row[0] is None else bytes(row[0])

    def _write(self, session_id, payload, session):
        app = self.app_name()
        values = (session_id, app, payload, "1" if session.valid else "0",
                  int(session.max_inactive_interval), int(session.this_accessed_time * 1000))

        def work(conn):
            conn.execute(self._sql["delete"], (session_id, app))
            conn.execute(self._sql["insert"], values)
        self._db(work)

    def save_all(self, sessions, batch=1000):
        """Many sessions, ``batch`` rows per transaction (one commit each, not one per row)."""
        app = self.app_name()
        count = 0
        rows = []
        for session, payload in self._encoded(sessions):
            rows.append((session.id, app, payload, "1" if session.valid else "0",
                         int(session.max_inactive_interval), int(session.this_accessed_time * 1000)))
            if len(rows) >= batch:
                count += self._write_rows(rows)
                rows = []
        if rows:
            count += self._write_rows(rows)
        return count

    def _write_rows(self, rows):
        def work(conn):
            cur = conn.cursor()
            cur.executemany(self._sql["delete"], [(r[0], r[1]) for r in rows])
            cur.executemany(self._sql["insert"], rows)
        self._db(work)
        return len(rows)

    def _delete(self, session_id):
        app = self.app_name()
        self._db(lambda c: c.execute(self._sql["delete"], (session_id, app)))

    def _delete_all(self):
        app = self.app_name()
        self._db(lambda c: c.execute(self._sql["clear"], (app,)))

    def _ids(self):
        app = self.app_name()
        return [r[0] for r in self._db(lambda c: c.execute(self._sql["keys"], (app,)).fetchall())]

    def _count(self):
        app = self.app_name()
        return self._db(lambda c: c.execute(self._sql["count"], (app,)).fetchone()[0])

    def _expired_ids(self, now):
        app, now_ms = self.app_name(), int(now * 1000)
        return [r[0] for r in self._db(lambda c: c.execute(self._sql["expired"], (app, now_ms)).fetchall())]


def _quiet_close(conn):
    try:
        conn.close()
    except Exception:
        pass
