"""WAR expansion refuses archives that escape the folder or expand too much (nothing is written)."""
import os
import stat
import zipfile

import pytest

from deploy_helpers import LogCapture, Node, app_files, write_war
from pycat.errors import DeployError
from pycat.webapp.war import ContextName, build_war, safe_unpack, version_key


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return str(path)


def symlink_entry(name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


BAD = {
    "dot-dot": [("WEB-INF/web.xml", "<web-app/>"), ("../../evil.txt", "x")],
    "nested dot-dot": [("a/b/../../../evil.txt", "x")],
    "backslash dot-dot": [("..\\evil.txt", "x")],
    "absolute": [("/tmp/evil.txt", "x")],
    "drive letter": [("C:/evil.txt", "x")],
    "symlink": [("index.html", "ok"), symlink_entry("WEB-INF/classes/link", "/etc/passwd")],
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path, kind):
    war = make_zip(tmp_path / "bad.war", BAD[kind])
    dest = tmp_path / "apps" / "bad"
    (tmp_path / "apps").mkdir()
    with pytest.raises(DeployError):
        safe_unpack(war, str(dest))
    assert os.listdir(tmp_path / "apps") == []
    assert not (tmp_path / "evil.txt").exists()


def test_oversized_archive_is_refused(tmp_path):
    war = make_zip(tmp_path / "big.war", [("a.bin", b"\0" * 5000), ("b.bin", b"\0" * 5000)])
    with pytest.raises(DeployError, match="maxExpandedSize"):
        safe_unpack(war, str(tmp_path / "big"), max_size=8000)
    assert not (tmp_path / "big").exists()
    assert safe_unpack(war, str(tmp_path / "big"), max_size=10000)


def test_good_archive_expands(tmp_path):
    war = make_zip(tmp_path / "ok.war", [("WEB-INF/web.xml", "<web-app/>"), ("dir/", ""), ("dir/f.txt", "hi")])
    safe_unpack(war, str(tmp_path / "ok"))
    assert (tmp_path / "ok" / "dir" / "f.txt").read_text() == "hi"


@pytest.mark.parametrize("kind", ["dot-dot", "symlink", "oversized"])
@pytest.mark.timeout(60)
def test_running_host_refuses_unsafe_wars_with_reason(tmp_path, kind):
    node = Node(tmp_path, max_expanded_size=20000)
    try:
        if kind == "oversized":
            files = app_files(1, "big", extra={"big.bin": b"\0" * 50000})
            write_war(os.path.join(node.app_base, "evil.war"), files)
        else:
            make_zip(os.path.join(node.app_base, "evil.war"), [e for e in app_files(1, "e").items() if e[0] not in ("WEB-INF/web.xml", "index.html")] + BAD[kind])
        with LogCapture() as logs:
            node.config.check(), node.config.check()
        expected = {"dot-dot": "escapes the application folder", "symlink": "symbolic link",
                    "oversized": "maxExpandedSize"}[kind]
        assert expected in logs.text
        assert node.get("/evil/hello")[0] == 404
        assert sorted(os.listdir(node.app_base)) == ["evil.war"]
        assert not (tmp_path / "evil.txt").exists()
    finally:
        node.stop()


def test_context_names():
    assert ContextName.from_base_name("ROOT").path == ""
    assert ContextName.from_base_name("a#b.war").path == "/a/b"
    v = ContextName.from_base_name("app##2")
    assert (v.path, v.version, v.name, v.base_name) == ("/app", "2", "/app##2", "app##2")
    assert ContextName("/a/b", "1.0").base_name == "a#b##1.0"
    assert ContextName("", "").base_name == "ROOT"
    assert version_key("10") > version_key("9") and version_key("2.1") > version_key("2")


def test_build_war_skips_bytecode_and_refuses_symlinks(tmp_path):
    app = tmp_path / "app"
    for rel, content in app_files(1, "w").items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(content)
    (app / "WEB-INF" / "classes" / "__pycache__").mkdir()
    (app / "WEB-INF" / "classes" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    out = tmp_path / "app.war"
    assert build_war(str(app), str(out)) == 5
    names = zipfile.ZipFile(out).namelist()
    assert "WEB-INF/web.xml" in names and not any("pycache" in n for n in names)
    os.symlink("/etc/passwd", app / "link")
    with pytest.raises(DeployError, match="symbolic link"):
        build_war(str(app), str(out))


def test_archive_with_too_many_entries_is_refused(tmp_path):
    from pycat.webapp.war import declared_entries
    war = make_zip(tmp_path / "many.war", [("d/", "")] + [("d/f%02d.txt" % i, "") for i in range(10)])
    with open(war, "rb") as fh:
        assert declared_entries(fh) == 11         # read from the end record, before the listing
    (tmp_path / "apps").mkdir()
    with pytest.raises(DeployError, match=r"11 entries, more than the limit of 10 \(maxExpandedEntries\)"):
        safe_unpack(war, str(tmp_path / "apps" / "many"), max_entries=10)
    assert os.listdir(tmp_path / "apps") == []
    # at the limit, and with no limit (-1), it expands
    assert safe_unpack(war, str(tmp_path / "apps" / "many"), max_entries=11)
    assert safe_unpack(war, str(tmp_path / "apps" / "unlimited"), max_entries=-1)
    assert len(os.listdir(tmp_path / "apps" / "many" / "d")) == 10
