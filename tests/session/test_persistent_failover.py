"""Two PersistentManagers ("nodes") sharing one store: failover, and a store that goes away.

Each test runs over a shared FileStore folder, one SQLite file and one PostgreSQL database.
"""
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys

import gevent
import pytest

from conftest_pg import backend, node, pg_server  # noqa: F401

pytestmark = pytest.mark.timeout(120)

HERE = os.path.dirname(os.path.abspath(__file__))


def serve(manager, sid, change=None):
    """One request: find (or create) the session, run change(session), end the request."""
    s = manager.find_session(sid) if sid else None
    if s is None:
        s = manager.create_session()
    s.access()
    if change:
        change(s)
    s.end_access()
    return s


def node_1_process(backend, clock, work):
    """Start node 1 as a real process on the shared backend (failover_node.py); returns
    (Popen, its report: sid, pid, the cart of the request it was serving)."""
    config = {"kind": backend.kind, "work": str(work), "now": clock.now}
    if backend.kind == "file":
        config["directory"] = backend.new_store().directory
    else:
        store = backend.new_store()
        config.update(url=store.connection_url, table=store.session_table)
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "failover_node.py"), json.dumps(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError("node 1 did not start: %s" % proc.communicate(timeout=10)[1].decode())
    return proc, json.loads(line)


def test_failover_after_node_1_dies(node, backend, clock, tmp_path):
    proc, report = node_1_process(backend, clock, tmp_path / "node1")
    try:
        sid = report["sid"]
        assert sid.endswith(".n1")
        assert report["in_memory_cart"] == ["apple", "pear", "plum"]
        # node 1 really dies: SIGKILL, no stop(), no saveOnRestart, nothing flushed on the way out
        os.kill(report["pid"], signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    n2 = node(2, max_idle_backup=0)
    got = n2.find_session(sid)
    # what the store had: both completed requests, not the one node 1 was in the middle of
    assert got is not None and got["user"] == "ana" and got["cart"] == ["apple", "pear"]
    assert not got.is_new
    serve(n2, sid, lambda s: s.__setitem__("cart", s["cart"] + ["fig"]))
    # and back the other way: a third node sees node 2's change
    n3 = node(3, max_idle_backup=0)
    assert n3.find_session(sid)["cart"] == ["apple", "pear", "fig"]


def test_invalidate_on_one_node_is_seen_by_the_other(node):
    n1 = node(1, max_idle_backup=0)
    sid = serve(n1, None, lambda s: s.__setitem__("x", 1)).id
    n2 = node(2, max_idle_backup=0)
    s2 = n2.find_session(sid)
    s2.invalidate()
    n3 = node(3, max_idle_backup=0)
    assert n3.find_session(sid) is None


def test_expiry_removes_stored_sessions_of_dead_nodes(node, clock):
    n1 = node(1, max_idle_backup=0)
    s = serve(n1, None, lambda s: s.__setitem__("x", 1))
    s.max_inactive_interval = 30
    serve(n1, s.id)
    del n1
    n2 = node(2)
    clock.advance(31)
    n2.process_expires()
    assert n2.store.keys() == []


@contextlib.contextmanager
def outage(backend, *stores):
    """The shared backend of these stores is unreachable inside the block, back after it."""
    store = stores[0]
    if backend.kind == "file":
        d = store.directory_path()
        aside = d + ".away"
        os.rename(d, aside)
        with open(d, "w") as f:      # a file where the folder was: every access fails
            f.write("not a folder")
        try:
            yield
        finally:
            os.unlink(d)
            os.rename(aside, d)
    elif backend.kind == "sqlite":
        path = store._driver.path
        folder = os.path.dirname(path)
        for each in stores:
            with each._lock:
                each._close()        # open connections go away with the database
        os.rename(folder, folder + ".away")
        with open(folder, "w") as f:
            f.write("not a folder")
        try:
            yield
        finally:
            os.unlink(folder)
            os.rename(folder + ".away", folder)
    else:
        backend.pg.stop()
        try:
            yield
        finally:
            backend.pg.start()


@pytest.fixture
def sqlite_in_own_folder(backend, tmp_path):
    # the outage simulation moves the database's folder away: give it one of its own
    if backend.kind == "sqlite":
        (tmp_path / "db").mkdir()
        orig = backend.new_store

        def new_store(app=None):
            s = orig(app)
            s.connection_url = "sqlite:%s" % (tmp_path / "db" / "sessions.db")
            return s
        backend.new_store = new_store
    return backend


def test_store_going_away_is_logged_and_service_resumes(sqlite_in_own_folder, node, caplog):
    backend = sqlite_in_own_folder
    n1 = node(1, max_idle_backup=0)
    sid = serve(n1, None, lambda s: s.__setitem__("n", 1)).id
    n2 = node(2, max_idle_backup=0)
    assert n2.find_session(sid)["n"] == 1
    n2.find_session(sid).expire(notify=False)   # forget it on node 2 (removes it from the store too)
    serve(n1, sid, lambda s: s.__setitem__("n", 2))   # written again by node 1
    with caplog.at_level(logging.ERROR):
        with outage(backend, n1.store, n2.store):
            # requests are still served: from memory on node 1, a fresh session on node 2
            s = serve(n1, sid, lambda s: s.__setitem__("n", 3))
            assert s.id == sid and s["n"] == 3
            assert n2.find_session(sid) is None
            fresh = serve(n2, None, lambda s: s.__setitem__("other", True))
            assert fresh.id != sid
            n1.process_expires()
            n1.process_persistence_checks()
            assert n1.find_session("0123456789ABCDEF") is None
    assert "failed" in caplog.text and "serving from memory" in caplog.text
    caplog.clear()
    # back: the next request's backup reaches the store and node 2 sees it
    with caplog.at_level(logging.INFO):
        serve(n1, sid, lambda s: s.__setitem__("n", 4))
    assert "works again" in caplog.text
    assert n2.find_session(sid)["n"] == 4


def test_store_errors_are_rate_limited(node, caplog, monkeypatch):
    import pycat.session.persistent as persistent
    n1 = node(1, max_idle_backup=0)
    s = n1.create_session()

    def broken(session):
        raise OSError("disk on fire")
    monkeypatch.setattr(n1.store, "save", broken)
    # an interval no loaded machine can outrun, so the 50 failures all fall in the first one
    monkeypatch.setattr(persistent, "STORE_ERROR_INTERVAL", 3600.0)

    def store_errors():
        # only this manager's error lines: caplog also holds whatever the node logged while
        # starting (INFO, if an earlier test left a pycat logger at INFO) and any other logger's records
        return [r.getMessage() for r in caplog.records
                if r.name == "pycat.session.persistent" and r.levelno == logging.ERROR]

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="pycat.session.persistent"):
        for _ in range(50):
            s.access()
            s.end_access()
        errors = store_errors()
        assert len(errors) == 1 and "disk on fire" in errors[0], errors
        monkeypatch.setattr(persistent, "STORE_ERROR_INTERVAL", 0.0)
        s.access()
        s.end_access()
        errors = store_errors()
    assert len(errors) == 2 and "49 similar errors not logged" in errors[1], errors


def test_database_calls_leave_the_hub_responsive(pg_server, clock, tmp_path):
    from conftest_pg import new_manager
    from pycat.session.store_jdbc import JDBCStore
    store = JDBCStore()
    store.connection_url = pg_server.url
    new_manager(store, clock, tmp_path)
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0.01)
    t = gevent.spawn(ticker)
    try:
        store._db(lambda c: c.execute("SELECT pg_sleep(0.3)"))
    finally:
        t.kill()
    assert len(ticks) >= 10   # the hub kept running other greenlets during the query
    with store._lock:
        store._close()
