"""pycat.fileutil.atomic_write: the one way pycat replaces a file."""
import os
import stat

import pytest

from pycat.fileutil import atomic_write, remove_inside, temp_path


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


def test_a_leftover_temp_file_never_widens_a_secret(tmp_path):
    # a writer killed mid-write leaves its temp file; after a restart the pid (hence the temp
    # name) can be the same, and open() keeps an existing file's mode bits
    target = str(tmp_path / "secret.json")
    leftover = temp_path(target)
    with open(leftover, "w") as fh:
        fh.write("stale and longer than the new content")
    os.chmod(leftover, 0o644)
    with atomic_write(target, "w", perms=0o600) as f:
        f.write("{}")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    with open(target) as fh:
        assert fh.read() == "{}"
    # positive control: perms that allow more leave a fresh file as the umask makes it
    umask = os.umask(0o022)
    try:
        with atomic_write(str(tmp_path / "public.txt"), "w") as f:
            f.write("x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "public.txt").st_mode) == 0o644


def make_tree(root):
    (root / "owned" / "app" / "sub").mkdir(parents=True)
    (root / "owned" / "app" / "sub" / "f.txt").write_text("x")
    (root / "owned" / "file.txt").write_text("x")
    (root / "outside").mkdir()
    (root / "outside" / "keep.txt").write_text("keep")
    return str(root / "owned")


def test_remove_inside_removes_what_lies_strictly_inside(tmp_path):
    owned = make_tree(tmp_path)
    assert remove_inside(os.path.join(owned, "app"), [owned])
    assert remove_inside(os.path.join(owned, "file.txt"), [owned])
    assert remove_inside(os.path.join(owned, "absent"), [owned])
    assert os.listdir(owned) == []
    # through a symbolic link to the owned folder: the resolved paths compare
    os.symlink(owned, tmp_path / "alias")
    os.mkdir(os.path.join(owned, "again"))
    assert remove_inside(str(tmp_path / "alias" / "again"), [str(tmp_path / "alias")])
    assert os.listdir(owned) == []


@pytest.mark.parametrize("rel", [".", "..", "app/../..", "../outside", "app/sub/../../../outside"])
def test_remove_inside_refuses_the_root_its_parents_and_anything_else(tmp_path, caplog, rel):
    owned = make_tree(tmp_path)
    assert not remove_inside(os.path.join(owned, rel), [owned])
    assert "Refusing to remove" in caplog.text
    assert (tmp_path / "outside" / "keep.txt").read_text() == "keep"
    assert (tmp_path / "owned" / "app" / "sub" / "f.txt").exists()
    # positive control: the same call removes a path inside
    assert remove_inside(os.path.join(owned, "app"), [owned]) and not os.path.exists(os.path.join(owned, "app"))


def test_remove_inside_removes_a_link_not_what_it_points_to(tmp_path, caplog):
    owned = make_tree(tmp_path)
    os.symlink(tmp_path / "outside", os.path.join(owned, "link"))
    # a path through the link resolves outside: refused
    assert not remove_inside(os.path.join(owned, "link", "keep.txt"), [owned])
    assert "Refusing to remove" in caplog.text
    # the link itself lies inside: it goes, what it points to stays
    assert remove_inside(os.path.join(owned, "link"), [owned])
    assert not os.path.lexists(os.path.join(owned, "link"))
    assert (tmp_path / "outside" / "keep.txt").read_text() == "keep"
