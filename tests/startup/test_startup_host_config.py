"""HostConfig deploy-on-startup, with a stand-in Host (the real one is exercised by integration tests)."""
import logging
import os

import pytest

from pycat.lifecycle import LifecycleEvent
from pycat.startup.host_config import HostConfig, context_path_for


class FakeContext:
    path = None
    doc_base = None


class FakeHost:
    name = "localhost"
    deploy_on_startup = True
    auto_deploy = True
    deploy_ignore = None
    context_class = "startup_host_dummies:FakeContext"

    def __init__(self, app_base):
        self.app_base = app_base
        self.children = {}

    def get_app_base_path(self):
        return self.app_base

    def find_child(self, name):
        return self.children.get(name)

    def add_child(self, ctx):
        if ctx.path == "/explode":
            raise RuntimeError("bad app")
        self.children[ctx.path] = ctx


@pytest.fixture(autouse=True)
def _dummy_module(monkeypatch):
    import sys
    import types
    mod = types.ModuleType("startup_host_dummies")
    mod.FakeContext = FakeContext
    monkeypatch.setitem(sys.modules, "startup_host_dummies", mod)


@pytest.mark.parametrize("name, path, version", [
    ("ROOT", "", ""), ("app", "/app", ""), ("a#b", "/a/b", ""), ("a#b#c", "/a/b/c", ""),
    ("app##2", "/app", "2"), ("ROOT##1.0", "", "1.0"),
])
def test_context_names(name, path, version):
    assert context_path_for(name) == (path, version)


def test_deploys_each_directory_on_start(tmp_path, caplog):
    for name in ("ROOT", "shop", "a#b", ".hidden", "skipme", "explode"):
        (tmp_path / name).mkdir()
    (tmp_path / "archive.war").write_bytes(b"PK")
    (tmp_path / "notes.txt").write_text("x")
    host = FakeHost(str(tmp_path))
    host.deploy_ignore = "skip.*"
    existing = FakeContext()
    existing.path = "/shop"
    host.children["/shop"] = existing  # defined in server.xml: not deployed again
    config = HostConfig()
    with caplog.at_level(logging.INFO):
        config.lifecycle_event(LifecycleEvent(host, "start"))
        config.lifecycle_event(LifecycleEvent(host, "periodic"))
    assert sorted(host.children) == ["", "/a/b", "/shop"]
    assert host.children["/shop"] is existing
    assert host.children[""].doc_base == os.path.join(str(tmp_path), "ROOT")
    assert host.children["/a/b"].doc_base == os.path.join(str(tmp_path), "a#b")
    assert "archive.war is a WAR file; deploying WARs is not handled yet" in caplog.text
    assert "deploying" in caplog.text and "bad app" in caplog.text  # one failure, others go on
    assert "autoDeploy is on, but scanning appBase for changes is not handled yet" in caplog.text


def test_deploy_on_startup_false_deploys_nothing(tmp_path):
    (tmp_path / "ROOT").mkdir()
    host = FakeHost(str(tmp_path))
    host.deploy_on_startup = False
    HostConfig().lifecycle_event(LifecycleEvent(host, "start"))
    assert host.children == {}


def test_missing_app_base_is_a_warning(tmp_path, caplog):
    host = FakeHost(str(tmp_path / "nope"))
    HostConfig().lifecycle_event(LifecycleEvent(host, "start"))
    assert host.children == {} and "does not exist" in caplog.text
