"""The other side of treating an app's SystemExit as a failure: a greenlet *kill* (GreenletExit,
what stop() uses) passing through app code is not an app failure and must still end the
greenlet. In-process trees on real sockets; each test has a positive control (a SystemExit at
the same place is reported as the app's failure)."""
import logging
import os
import sys
import time

import gevent
import gevent.event
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy"))
from deploy_helpers import Node, write_folder  # noqa: E402
from pycat_harness import Tree, get, raw_exchange, wait_for  # noqa: E402
from pycat.webapp.servlet import HttpServlet  # noqa: E402

WEB_XML = """<web-app>
  <servlet><servlet-name>main</servlet-name><servlet-class>%s:Hello</servlet-class></servlet>
  <servlet-mapping><servlet-name>main</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
</web-app>
"""

SLOW_IMPORT = """import gevent
open(%(marker)r, "w").close()
gevent.sleep(30)
"""


@pytest.mark.timeout(60)
def test_stop_kills_a_deploy_that_is_importing_app_code(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pycat")
    node = Node(tmp_path / "base", tick=0.05)
    try:
        # positive control: SystemExit at import in the same place is a failed deploy, logged
        write_folder(os.path.join(node.app_base, "bad"), {
            "WEB-INF/web.xml": WEB_XML % "exits", "WEB-INF/classes/exits.py": "import sys\nsys.exit(2)\n"})
        wait_for(lambda: "deploying /bad from" in caplog.text and "failed" in caplog.text, timeout=10,
                 what="the failed deploy of /bad")
        assert "sys.exit(2)" in caplog.text
        assert node.tree.engine.greenlets and not list(node.tree.engine.greenlets)[0].dead
        # an import that blocks; stop() kills the background greenlet inside it
        marker = str(tmp_path / "importing")
        write_folder(os.path.join(node.app_base, "slow"), {
            "WEB-INF/web.xml": WEB_XML % "slow", "WEB-INF/classes/slow.py": SLOW_IMPORT % {"marker": marker}})
        wait_for(lambda: os.path.exists(marker), timeout=10, what="the slow import to begin")
        caplog.clear()
        t0 = time.monotonic()
    finally:
        node.stop()
    elapsed = time.monotonic() - t0
    # the kill ended the deploy at once; it did not become a failed deploy that the loop survives
    # (Lifecycle waits stop_join_timeout = 5 s for a greenlet that does not die)
    assert elapsed < 3.0, elapsed
    assert not [g for g in node.tree.engine.greenlets if not g.dead]
    assert "deploying /slow" not in caplog.text or "failed" not in caplog.text, caplog.text
    assert "/slow" not in [c.path for c in node.host.find_children()]


class Sleepy(HttpServlet):
    def __init__(self):
        self.entered = gevent.event.Event()
        self.seen = []

    def do_get(self, request, response):
        self.entered.set()
        try:
            gevent.sleep(30)
        except BaseException as exc:
            self.seen.append(type(exc))
            raise
        response.write("slept")


class Exits(HttpServlet):
    def do_get(self, request, response):
        sys.exit(9)


@pytest.mark.timeout(60)
def test_a_connection_killed_by_stop_inside_a_servlet_is_no_servlet_failure(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pycat")
    sleepy = Sleepy()
    tree = Tree(tmp_path, contexts={"/k": {"servlets": [("sleepy", sleepy, ["/sleep"]),
                                                         ("exits", Exits(), ["/exit"])]}},
                connector_attrs={"stop_timeout": 0.1})
    client = None
    try:
        # positive control: SystemExit in service() is the servlet's failure: logged, 500, serving on
        assert get(tree.port, "/k/exit")[0] == 500
        assert "Servlet.service() for servlet [exits] in context [/k] threw exception" in caplog.text
        assert "sys.exit(9)" in caplog.text
        assert get(tree.port, "/k/exit")[0] == 500
        caplog.clear()
        client = gevent.spawn(raw_exchange, tree.port,
                              b"GET /k/sleep HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 10)
        assert sleepy.entered.wait(5)
        tree.connector.stop()        # joins for stop_timeout, then kills the connection greenlets
        wait_for(lambda: sleepy.seen, timeout=5, what="the kill to reach the servlet")
        assert sleepy.seen == [gevent.GreenletExit]
        assert "threw exception" not in caplog.text, caplog.text
    finally:
        if client is not None:
            client.kill()
        tree.stop()
