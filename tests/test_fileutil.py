"""pycat.fileutil.atomic_write: the one way pycat replaces a file."""
import os
import stat

import pytest

from pycat.fileutil import atomic_write, temp_path


def test_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_write(str(target), "wb", fsync=True, fsync_dir=True) as f:
        f.write(b"new")
        assert target.read_bytes() == b"old"  # readers see the old content until the rename
        assert os.path.basename(f.name).startswith(".data.bin.")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_a_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "pid"
    target.write_text("1\n")
    with pytest.raises(RuntimeError):
        with atomic_write(str(target), "w") as f:
            f.write("2\n")
            raise RuntimeError("boom")
    assert target.read_text() == "1\n"
    assert os.listdir(tmp_path) == ["pid"]


def test_perms_and_temp_names(tmp_path):
    target = str(tmp_path / "secret.json")
    with atomic_write(target, "w", perms=0o600) as f:
        f.write("{}")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert temp_path(target) == str(tmp_path / (".secret.json.%d.tmp" % os.getpid()))
    a, b = temp_path(target, unique=True), temp_path(target, unique=True)
    assert a != b and a.endswith(".tmp") and os.path.basename(a).startswith(".secret.json.")
