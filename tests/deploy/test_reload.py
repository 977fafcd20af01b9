"""reloadable="true" and WatchedResource: the same Context restarts with fresh modules while its
requests wait; no request fails."""
import os
import sys
import time

import gevent
import pytest

from deploy_helpers import Node, app_files, bump_mtime, write_folder
from waiting import wait_for

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
    """Greenlets requesting a URL in a loop; every status and body is recorded in ``results``,
    and with the request's start and end times (time.monotonic) in ``timed``."""

    def __init__(self, node, path, clients=4):
        self.node, self.path = node, path
        self.results = []
        self.timed = []
        self.running = True
        self.greenlets = [gevent.spawn(self._run) for _ in range(clients)]

    def _run(self):
        while self.running:
            start = time.monotonic()
            try:
                result = self.node.body(self.path)
            except Exception as exc:       # a broken connection is a failure too
                result = (None, repr(exc))
            self.results.append(result)
            self.timed.append((start, time.monotonic()) + tuple(result))
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
        old_modules = {k: m for k, m in sys.modules.items() if k.startswith(old_prefix + ".")}
        assert old_modules[old_prefix + ".app"].VALUE == 1
        loop = Loop(node, "/live/hello")
        wait_for(lambda: len(loop.results) >= 8, timeout=10, what="requests before the change")
        app_py = os.path.join(folder, "WEB-INF", "classes", "app.py")
        with open(app_py) as fh:
            source = fh.read()
        with open(app_py, "w") as fh:
            fh.write(source.replace("VALUE = 1", "VALUE = 2"))
        bump_mtime(app_py)
        began = time.monotonic()
        node.config.check()
        ended = time.monotonic()
        assert node.host.find_child("/live") is ctx       # the same Context, reloaded
        wait_for(lambda: any(start > ended for start, *_ in loop.timed), timeout=10,
                 what="requests after the reload")
        results = loop.stop()
        assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:5]
        # requests in flight while the Context restarted (its listener sleeps 0.3 s, so each client
        # sends one then) waited for it and were answered by the new code; none was refused or
        # answered by half an app
        waited = [r for r in loop.timed if r[0] < ended < r[1]]
        assert waited and all(r[2:] == (200, "2 r more-r") for r in waited), waited
        assert all(r[3] == "1 r more-r" for r in loop.timed if r[1] < began)
        assert all(r[3] == "2 r more-r" for r in loop.timed if r[0] > ended)
        # the new code runs from fresh modules; the old generation's are gone from sys.modules
        live = {k: m for k, m in sys.modules.items() if k.startswith(ctx.loader.prefix + ".")}
        assert live[ctx.loader.prefix + ".app"].VALUE == 2
        assert not [k for k, m in old_modules.items() if sys.modules.get(k) is m]
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
