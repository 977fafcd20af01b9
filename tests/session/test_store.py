"""Store primitives over FileStore, JDBCStore/SQLite and JDBCStore/PostgreSQL."""
import datetime
import logging
import os

import pytest

from conftest_pg import backend, new_manager, node, pg_server  # noqa: F401
from pycat import attrs
from pycat.reflect import load_class
from pycat.session.persistent import PersistentManager
from pycat.session.store_file import FileStore
from pycat.session.store_jdbc import JDBCStore

pytestmark = pytest.mark.timeout(60)


def make_session(m, **values):
    s = m.create_session()
    for k, v in values.items():
        s[k] = v
    return s


def test_round_trip_keys_size_remove_clear(node, clock):
    m = node(1)
    store = m.store
    s1 = make_session(m, user="ana", when=datetime.date(2024, 1, 2), nums=[1, 2, 3])
    s2 = make_session(m, user="bo")
    s1.max_inactive_interval = 77
    store.save(s1)
    store.save(s2)
    store.save(s2)  # a second save replaces
    assert sorted(store.keys()) == sorted([s1.id, s2.id])
    assert store.get_size() == 2
    loaded = store.load(s1.id)
    assert loaded is not s1 and loaded.id == s1.id
    assert dict(loaded.raw_attributes()) == {"user": "ana", "when": datetime.date(2024, 1, 2), "nums": [1, 2, 3]}
    assert loaded.max_inactive_interval == 77
    assert loaded.creation_time == s1.creation_time and loaded.this_accessed_time == s1.this_accessed_time
    assert loaded.manager is m and loaded.valid
    store.remove(s2.id)
    assert store.load(s2.id) is None and store.keys() == [s1.id]
    store.clear()
    assert store.keys() == [] and store.get_size() == 0


def test_save_all_in_batches(node):
    m = node(1)
    sessions = [make_session(m, i=i) for i in range(7)]
    if hasattr(m.store, "_write_rows"):
        assert m.store.save_all(sessions, batch=3) == 7
    else:
        assert m.store.save_all(sessions) == 7
    assert sorted(m.store.keys()) == sorted(s.id for s in sessions)
    assert [m.store.load(s.id)["i"] for s in sessions] == list(range(7))


def test_unknown_and_malformed_ids(node):
    store = node(1).store
    assert store.load("ABCDEF0123") is None
    for bad in ("../../etc/passwd", "", None, "a/b", "x" * 400, ".."):
        assert store.load(bad) is None
        store.remove(bad)  # no error, nothing touched


def test_apps_do_not_see_each_others_sessions(backend, clock, tmp_path):
    # JDBC: one table, rows keyed by app name; FileStore: the default folder is in each context's work dir
    sa_store, sb_store = backend.new_store(), backend.new_store()
    if backend.kind == "file":
        sa_store.directory = sb_store.directory = FileStore().directory
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = new_manager(sa_store, clock, tmp_path / "a", name="/Catalina/localhost/a")
    b = new_manager(sb_store, clock, tmp_path / "b", name="/Catalina/localhost/b")
    sa = make_session(a, x=1)
    a.store.save(sa)
    assert b.store.keys() == [] and b.store.load(sa.id) is None
    b.store.clear()
    assert a.store.keys() == [sa.id]


def corrupt(backend, store, sid):
    """Damage the stored record of sid in place."""
    if backend.kind == "file":
        path = os.path.join(store.directory_path(), sid + ".session")
        with open(path, "r+b") as f:
            f.seek(20)
            f.write(b"\xff\xfe garbage")
        return
    store._db(lambda c: c.execute('UPDATE %s SET session_data = %s WHERE session_id = %s'
                                   % ('"%s"' % backend.table, store._driver.placeholder, store._driver.placeholder),
                                   (b"\x00\x05not a record", sid)))


def test_corrupt_record_is_skipped_and_logged_the_others_load(backend, node, caplog):
    m = node(1)
    store = m.store
    good = make_session(m, n=1)
    bad = make_session(m, n=2)
    store.save(good)
    store.save(bad)
    corrupt(backend, store, bad.id)
    with caplog.at_level(logging.ERROR):
        assert store.load(bad.id) is None
    assert bad.id in caplog.text
    assert store.load(good.id)["n"] == 1
    if backend.kind == "file":
        # moved aside for inspection, out of the key list
        assert os.path.exists(os.path.join(store.directory_path(), bad.id + ".session.corrupt"))
        assert store.keys() == [good.id]


def test_a_value_that_no_longer_unpickles_costs_only_its_session(node, caplog):
    m = node(1)
    s = make_session(m, ok="yes")
    m.store.save(s)
    raw = bytearray(m.encode_session(s))
    # replace the value blob of "ok" with a truncated pickle: decode fails -> skipped
    idx = raw.rfind(b"yes")
    broken = bytes(raw[:idx - 3])
    m.store._write(s.id, broken, s)
    with caplog.at_level(logging.ERROR):
        assert m.store.load(s.id) is None
    assert "cannot be restored" in caplog.text


def test_process_expires_removes_expired_stored_sessions(node, clock, Recorder):
    m = node(1)
    rec = Recorder()
    m.add_session_listener(rec)
    old = make_session(m, a=1)
    old.max_inactive_interval = 10
    young = make_session(m, b=2)
    young.max_inactive_interval = 1000
    forever = make_session(m, c=3)
    forever.max_inactive_interval = -1
    for s in (old, young, forever):
        m.store.save(s)
        m._sessions.pop(s.id)   # only in the store now, as after a swap-out on another node
    clock.advance(60)
    assert m.store.process_expires() == 1
    assert sorted(m.store.keys()) == sorted([young.id, forever.id])
    assert ("destroyed", old.id, ["a"]) in rec.events


def test_class_name_aliases_and_tomcat_attributes():
    assert load_class("org.apache.catalina.session.PersistentManager", object) is PersistentManager
    assert load_class("org.apache.catalina.session.FileStore", object) is FileStore
    assert load_class("org.apache.catalina.session.JDBCStore", object) is JDBCStore
    j = JDBCStore()
    for xml, value in [("sessionTable", "t"), ("sessionIdCol", "i"), ("sessionDataCol", "d"),
                       ("sessionValidCol", "v"), ("sessionMaxInactiveCol", "m"), ("sessionLastAccessedCol", "l"),
                       ("sessionAppCol", "a"), ("connectionURL", "sqlite::memory:"), ("driverName", "org.x.Driver"),
                       ("connectionName", "u"), ("connectionPassword", "p"), ("dataSourceName", "jdbc/x")]:
        assert attrs.set_property(j, xml, value), xml
    assert (j.session_table, j.session_id_col, j.session_data_col, j.session_valid_col, j.session_max_inactive_col,
            j.session_last_accessed_col, j.session_app_col, j.connection_url) == \
        ("t", "i", "d", "v", "m", "l", "a", "sqlite::memory:")
    f = FileStore()
    assert attrs.set_property(f, "directory", "/x") and f.directory == "/x"
    m = PersistentManager()
    for xml, value in [("maxIdleSwap", "5"), ("minIdleSwap", "2"), ("maxIdleBackup", "0"), ("saveOnRestart", "false"),
                       ("processExpiresFrequency", "1"), ("maxActiveSessions", "9"),
                       ("sessionAttributeValueClassNameFilter", r"builtins\..*")]:
        assert attrs.set_property(m, xml, value), xml
    assert (m.max_idle_swap, m.min_idle_swap, m.max_idle_backup, m.save_on_restart, m.max_active_sessions) == \
        (5, 2, 0, False, 9)
    d = PersistentManager()
    assert (d.max_idle_swap, d.min_idle_swap, d.max_idle_backup, d.save_on_restart) == (-1, -1, -1, True)


def test_sqlite_memory_relative_path_and_unsupported_datasource(clock, tmp_path, caplog):
    store = JDBCStore()
    store.connection_url = "sqlite::memory:"
    store.data_source_name = "jdbc/Sessions"
    with caplog.at_level(logging.WARNING):
        m = new_manager(store, clock, tmp_path)
    assert "dataSourceName" in caplog.text
    s = make_session(m, k="v")
    store.save(s)
    assert store.load(s.id)["k"] == "v"
    rel = JDBCStore()
    rel.connection_url = "sqlite:db/sessions.db"
    new_manager(rel, clock, tmp_path)
    assert os.path.exists(tmp_path / "db" / "sessions.db")


def test_jdbc_app_name_follows_tomcat(clock, tmp_path):
    class Node:
        def __init__(self, name, parent=None):
            self.name, self.parent = name, parent
    ctx = Node("/shop", Node("localhost", Node("Catalina")))
    store = JDBCStore()
    store.connection_url = "sqlite::memory:"
    m = new_manager(store, clock, tmp_path, start=False)
    m.context = ctx
    assert store.app_name() == "/Catalina/localhost/shop"
    root = JDBCStore()
    PersistentManager().set_store(root)
    root.manager.context = Node("", Node("localhost", Node("Catalina")))
    assert root.app_name() == "/Catalina/localhost/"


def test_bad_connection_url_fails_start_clearly(clock, tmp_path):
    store = JDBCStore()
    store.connection_url = "mysql://nope"
    m = new_manager(store, clock, tmp_path, start=False)
    with pytest.raises(Exception, match="unsupported connectionURL"):
        store.start()
    del m


def test_file_store_layout_atomic_and_default_directory(clock, tmp_path):
    store = FileStore()
    m = new_manager(store, clock, tmp_path)
    s = make_session(m, a="b")
    store.save(s)
    assert os.listdir(tmp_path / "sessions") == [s.id + ".session"]   # no temp file left behind
    with open(tmp_path / "sessions" / (s.id + ".session"), "rb") as f:
        assert f.read(8) == b"PYCATSF1"
    # stray files in the folder are not sessions
    (tmp_path / "sessions" / "README").write_text("hello")
    (tmp_path / "sessions" / "..session").write_text("x")
    assert store.keys() == [s.id]


def test_file_store_cleans_up_temp_files_of_dead_writers(clock, tmp_path):
    store = FileStore()
    m = new_manager(store, clock, tmp_path)
    d = tmp_path / "sessions"
    old, fresh = d / "ABC.session.1f2e.tmp", d / "DEF.session.3a4b.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(old, (0, 0))
    m.process_expires()
    assert not old.exists() and fresh.exists()
