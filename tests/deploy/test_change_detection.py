"""pycat.fileutil's change detection, which HostConfig watches appBase with (and a farm deployer will
watch its folder with): file and tree signatures, and a file counting only once it stopped changing."""
import os

from pycat.fileutil import StableFiles, signature, tree_signature


def bump(path, ns=1_000_000_000):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + ns))


def test_signature_of_a_file_a_folder_and_nothing(tmp_path):
    f = tmp_path / "app.war"
    f.write_bytes(b"12345")
    st = os.stat(f)
    assert signature(str(f)) == (st.st_mtime_ns, 5)
    assert signature(str(tmp_path)) == ("dir",)
    assert signature(str(tmp_path / "absent")) is None
    before = signature(str(f))
    bump(f)
    assert signature(str(f)) != before                      # a touch is a change
    f.write_bytes(b"123456")
    assert signature(str(f))[1] == 6


def test_tree_signature_sees_files_added_changed_removed_but_not_bytecode(tmp_path):
    (tmp_path / "pkg").mkdir()
    mod = tmp_path / "pkg" / "mod.py"
    mod.write_text("X = 1\n")
    first = tree_signature(str(tmp_path))
    assert [path for path, _ in first] == [os.path.join("pkg", "mod.py")]
    # importing writes bytecode: not a change of the code
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "old.pyc").write_bytes(b"\0")
    assert tree_signature(str(tmp_path)) == first
    bump(mod)
    changed = tree_signature(str(tmp_path))
    assert changed != first
    (tmp_path / "new.py").write_text("")
    added = tree_signature(str(tmp_path))
    assert len(added) == 2 and added != changed
    os.unlink(tmp_path / "new.py")
    assert tree_signature(str(tmp_path)) == changed


def test_a_file_is_stable_once_it_looked_the_same_twice(tmp_path):
    war = tmp_path / "app.war"
    stable = StableFiles()
    assert not stable.stable(str(war))                     # absent: never stable
    war.write_bytes(b"PK half")
    assert not stable.stable(str(war))                     # first look only records it
    war.write_bytes(b"PK half, more")                      # still being copied
    assert not stable.stable(str(war))
    assert stable.stable(str(war))                         # unchanged since the last look
    assert str(war) not in stable                          # and forgotten once reported
    assert not stable.stable(str(war))                     # so the next look starts over
    stable.forget(str(war))
    assert str(war) not in stable and not stable.stable(str(war))
    stable.clear()
    assert str(war) not in stable
