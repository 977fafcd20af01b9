"""Session data on disk is the owner's only (0600 files, 0700 folders pycat creates), whatever
the process umask: SESSIONS.ser of StandardManager and the records of a FileStore."""
import contextlib
import os
import stat

import pytest

from conftest_pg import new_manager
from pycat.session.manager import StandardManager
from pycat.session.store_file import FileStore


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def control_file(folder):
    """Positive control: a file made the ordinary way under the same umask is world-readable, so
    the 0600 below comes from pycat, not from the test's environment."""
    path = os.path.join(str(folder), "ordinary.txt")
    with open(path, "w") as fh:
        fh.write("x")
    return mode(path)


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_sessions_ser_is_0600_whatever_the_umask(tmp_path, clock, mask):
    with umask(mask):
        assert control_file(tmp_path) == 0o666 & ~mask
        m = StandardManager()
        m.clock = clock
        m.work_dir = str(tmp_path / "work")
        m.start()
        m.create_session()["user"] = "ana"
        m.stop()
        path = m.persistence_path()
        assert mode(path) == 0o600
        # saved again over an existing file (a second stop): still 0600
        os.chmod(path, 0o644)
        m2 = StandardManager()
        m2.clock = clock
        m2.work_dir = m.work_dir
        m2.start()                                  # loads and deletes it
        assert not os.path.exists(path)
        assert m2.find_sessions()[0]["user"] == "ana"
        m2.stop()
        assert mode(path) == 0o600


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_file_store_records_and_folder_are_the_owners_only(tmp_path, clock, mask):
    with umask(mask):
        assert control_file(tmp_path) == 0o666 & ~mask
        store = FileStore()
        store.directory = str(tmp_path / "shared" / "sessions")
        m = new_manager(store, clock, tmp_path, max_idle_backup=0)
        s = m.create_session()
        s.access()
        s["cart"] = ["apple"]
        s.end_access()                              # maxIdleBackup=0: written now
        folder = store.directory_path()
        names = os.listdir(folder)
        assert names == [s.id + ".session"]         # no temp file left either
        assert mode(os.path.join(folder, names[0])) == 0o600
        assert mode(folder) == 0o700
        # and it is read back by another node sharing the folder
        other = FileStore()
        other.directory = store.directory
        n2 = new_manager(other, clock, tmp_path / "n2")
        assert n2.find_session(s.id)["cart"] == ["apple"]
        m.stop()
        n2.stop()
        # saveOnRestart writes every session in one batch: 0600 too
        assert all(mode(os.path.join(folder, n)) == 0o600 for n in os.listdir(folder))
        assert os.listdir(folder)


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_sqlite_store_database_and_journal_are_the_owners_only(tmp_path, clock, mask):
    from pycat.session.store_jdbc import JDBCStore
    with umask(mask):
        assert control_file(tmp_path) == 0o666 & ~mask
        store = JDBCStore()
        db = tmp_path / "db" / "sessions.db"
        store.connection_url = "sqlite:%s" % db
        m = new_manager(store, clock, tmp_path, max_idle_backup=0)
        s = m.create_session()
        s.access()
        s["cart"] = ["apple"]
        s.end_access()                              # maxIdleBackup=0: written now
        files = [p for p in os.listdir(db.parent) if p.startswith("sessions.db")]
        assert "sessions.db" in files and len(files) > 1        # WAL journal files too
        assert all(mode(db.parent / p) == 0o600 for p in files), files
        m.stop()
