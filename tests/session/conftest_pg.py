"""Fixtures shared by the store tests (imported by test_store*.py / test_persistent*.py).

``backend`` is parametrised over the three store kinds: "file" (a FileStore folder), "sqlite"
(one database file) and "postgres" (the throwaway server of pg_server.py, skipped with its
reason when it cannot start). ``backend.new_store()`` returns a fresh, unstarted store on the
SAME shared backend each call: two managers given two of them behave like two nodes.
"""
import uuid

import pytest

from pg_server import pg_server  # noqa: F401  (the session-scoped fixture)
from pycat.session.persistent import PersistentManager
from pycat.session.store_file import FileStore
from pycat.session.store_jdbc import JDBCStore

KINDS = ["file", "sqlite", "postgres"]


class Backend:
    def __init__(self, kind, tmp_path, pg=None):
        self.kind = kind
        self.tmp_path = tmp_path
        self.pg = pg
        # a table per test keeps PostgreSQL tests independent; the "$" checks identifier quoting
        self.table = "pycat$sessions_%s" % uuid.uuid4().hex[:12]

    def new_store(self, app=None):
        if self.kind == "file":
            store = FileStore()
            store.directory = str(self.tmp_path / "shared-sessions")
            return store
        store = JDBCStore()
        store.session_table = self.table
        if self.kind == "sqlite":
            store.connection_url = "sqlite:%s" % (self.tmp_path / "sessions.db")
        else:
            store.connection_url = self.pg.url
        return store


def new_manager(store, clock, work_dir, name="/Catalina/localhost/app", start=True, **attrs):
    m = PersistentManager()
    m.clock = clock
    m.work_dir = str(work_dir)
    m.name = name
    for key, value in attrs.items():
        setattr(m, key, value)
    m.set_store(store)
    if start:
        m.start()
    return m


@pytest.fixture(params=KINDS)
def backend(request, tmp_path):
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    return Backend(request.param, tmp_path, pg)


@pytest.fixture
def node(backend, clock, tmp_path):
    """node(i, **attrs): a started PersistentManager ("node i") on the shared backend."""
    made = []

    def make(i=1, **attrs):
        work = tmp_path / ("node%d" % i)
        work.mkdir(exist_ok=True)
        m = new_manager(backend.new_store(), clock, work, **attrs)
        made.append(m)
        return m
    yield make
    for m in made:
        # tests "kill" nodes by abandoning them: just close their connections
        store = m.store
        if hasattr(store, "_close"):
            with store._lock:
                store._close()
