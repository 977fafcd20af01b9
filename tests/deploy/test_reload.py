"""reloadable="true" and WatchedResource: the same Context restarts with fresh modules while its
requests wait; no request fails."""
import os

import gevent
import pytest

from deploy_helpers import Node, app_files, bump_mtime, write_folder

SLOW_START = """import gevent

class SlowStart:
    def context_initialized(self, event):
        gevent.sleep(0.3)          # requests arriving now must wait, not fail
"""
WEB_XML = """<web-app>
  <listener><listener-class>slow:SlowStart</listener-class></listener>
  <servlet><servlet-name>main</servlet-name><servlet-class>app:Hello</servlet-class></servlet>
  <servlet-mapping><servlet-name>main</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
</web-app>
"""


def reloadable_app(folder, value, reloadable=True):
    extra = {"WEB-INF/classes/slow.py": SLOW_START, "WEB-INF/web.xml": WEB_XML,
             "META-INF/context.xml": '<Context reloadable="%s"/>' % ("true" if reloadable else "false")}
    return write_folder(folder, app_files(value, "r", extra=extra))


class Loop:
    """Greenlets requesting a URL in a loop; every status and body is recorded."""

    def __init__(self, node, path, clients=4):
        self.node, self.path = node, path
        self.results = []
        self.running = True
        self.greenlets = [gevent.spawn(self._run) for _ in range(clients)]

    def _run(self):
        while self.running:
            try:
                self.results.append(self.node.body(self.path))
            except Exception as exc:       # a broken connection is a failure too
                self.results.append((None, repr(exc)))
            gevent.sleep(0.005)

    def stop(self):
        self.running = False
        gevent.joinall(self.greenlets, timeout=10)
        return self.results


@pytest.mark.timeout(60)
def test_reload_on_class_change_fails_no_request(tmp_path):
    node = Node(tmp_path)
    try:
        folder = reloadable_app(os.path.join(node.app_base, "live"), 1)
        node.config.check()
        ctx = node.host.find_child("/live")
        assert ctx.reloadable and node.body("/live/hello") == (200, "1 r more-r")
        old_prefix = ctx.loader.prefix
        loop = Loop(node, "/live/hello")
        gevent.sleep(0.1)
        app_py = os.path.join(folder, "WEB-INF", "classes", "app.py")
        with open(app_py) as fh:
            source = fh.read()
        with open(app_py, "w") as fh:
            fh.write(source.replace("VALUE = 1", "VALUE = 2"))
        bump_mtime(app_py)
        node.config.check()
        assert node.host.find_child("/live") is ctx       # the same Context, reloaded
        gevent.sleep(0.1)
        results = loop.stop()
        assert results and all(status == 200 for status, _ in results), \
            [r for r in results if r[0] != 200][:5]
        bodies = [body for _, body in results]
        assert "1 r more-r" in bodies and bodies[-1] == "2 r more-r"
        import sys
        assert not [k for k in sys.modules if k.startswith(old_prefix + ".")] \
            or ctx.loader.prefix == old_prefix      # same prefix reused only after the old modules went
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_watched_resource_reloads_and_plain_class_change_does_not(tmp_path):
    node = Node(tmp_path)
    try:
        folder = reloadable_app(os.path.join(node.app_base, "w"), 1, reloadable=False)
        node.config.check()
        ctx = node.host.find_child("/w")
        app_py = os.path.join(folder, "WEB-INF", "classes", "app.py")
        with open(app_py) as fh:
            source = fh.read()
        with open(app_py, "w") as fh:
            fh.write(source.replace("VALUE = 1", "VALUE = 5"))
        bump_mtime(app_py)
        node.config.check()
        assert node.body("/w/hello") == (200, "1 r more-r")        # not reloadable: old code
        web_xml = os.path.join(folder, "WEB-INF", "web.xml")
        bump_mtime(web_xml)                                          # WatchedResource (default)
        node.config.check()
        assert node.host.find_child("/w") is ctx
        assert node.body("/w/hello") == (200, "5 r more-r")
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_context_from_server_xml_reloads_too(tmp_path):
    from pycat.core.context import Context
    from deploy_helpers import Node
    folder = reloadable_app(os.path.join(str(tmp_path), "elsewhere", "configured"), 1)
    node = Node.__new__(Node)
    from pycat_harness import Tree
    from pycat.startup.host_config import HostConfig
    node.tree = Tree(tmp_path, contexts={}, start=False)
    node.host, node.config = node.tree.host, HostConfig()
    node.host.add_lifecycle_listener(node.config)
    ctx = Context()
    ctx.path, ctx.doc_base, ctx.reloadable = "/configured", folder, True
    node.host.add_child(ctx)
    node.tree.server.start()
    node.port = node.tree.port
    try:
        node.config.check()
        assert node.body("/configured/hello") == (200, "1 r more-r")
        app_py = os.path.join(folder, "WEB-INF", "classes", "app.py")
        with open(app_py) as fh:
            source = fh.read()
        with open(app_py, "w") as fh:
            fh.write(source.replace("VALUE = 1", "VALUE = 9"))
        bump_mtime(app_py)
        node.config.check()
        assert node.host.find_child("/configured") is ctx
        assert node.body("/configured/hello") == (200, "9 r more-r")
    finally:
        node.stop()
