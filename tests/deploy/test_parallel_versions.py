"""Parallel deployment: app##1 and app##2 side by side; new sessions go to the newest version,
requests with a session of an older version stay there."""
import os

import pytest

from deploy_helpers import Node, write_folder, write_war

COUNTER = """from pycat.webapp.servlet import HttpServlet

VERSION = %r


class Counter(HttpServlet):
    def do_get(self, request, response):
        session = request.get_session(True)
        n = (session.get_attribute("n") or 0) + 1
        session.set_attribute("n", n)
        response.set_header("Content-Type", "text/plain")
        response.write("v%%s n=%%d" %% (VERSION, n))
"""
WEB = """<web-app>
  <servlet><servlet-name>c</servlet-name><servlet-class>counter:Counter</servlet-class></servlet>
  <servlet-mapping><servlet-name>c</servlet-name><url-pattern>/count</url-pattern></servlet-mapping>
</web-app>"""


def files(version):
    return {"WEB-INF/web.xml": WEB, "WEB-INF/classes/counter.py": COUNTER % version}


def call(node, cookie=None, path="/app/count"):
    status, headers, body = node.get(path, headers={"Cookie": "JSESSIONID=" + cookie} if cookie else None)
    assert status == 200, (status, body)
    sid = None
    if "set-cookie" in headers:
        sid = headers["set-cookie"].split(";")[0].split("=", 1)[1]
    return body.decode(), sid


@pytest.mark.timeout(60)
def test_sessions_stick_to_their_version(tmp_path):
    node = Node(tmp_path)
    try:
        write_folder(os.path.join(node.app_base, "app##1"), files(1))
        node.config.check()
        body, old_sid = call(node)
        assert body == "v1 n=1" and old_sid
        write_war(os.path.join(node.app_base, "app##2.war"), files(2))
        node.config.check(), node.config.check()
        assert {c.name for c in node.host.find_children()} == {"/app##1", "/app##2"}
        body, new_sid = call(node)                 # no session: the newest version
        assert body == "v2 n=1" and new_sid
        assert call(node, old_sid) == ("v1 n=2", None)      # old session stays on version 1
        assert call(node, new_sid) == ("v2 n=2", None)
        assert call(node, old_sid) == ("v1 n=3", None)
        assert call(node, "bogus-id")[0] == "v2 n=1"        # unknown id: newest version
        # path-parameter session ids are honoured too
        assert call(node, path="/app/count;jsessionid=%s" % old_sid)[0] == "v1 n=4"
        # a third version takes new sessions; both older sessions stay put
        write_folder(os.path.join(node.app_base, "app##10"), files(10))
        node.config.check()
        assert call(node)[0] == "v10 n=1"
        assert call(node, old_sid)[0] == "v1 n=5" and call(node, new_sid)[0] == "v2 n=3"
        # undeploying the old version: its session's requests go to the newest
        os.rename(os.path.join(node.app_base, "app##1"), os.path.join(node.app_base, ".gone"))
        node.config.check()
        assert call(node, old_sid)[0] == "v10 n=1"
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_undeploy_old_versions_once_their_sessions_are_gone(tmp_path):
    node = Node(tmp_path, undeploy_old_versions=True)
    try:
        write_folder(os.path.join(node.app_base, "app##1"), files(1))
        node.config.check()
        body, sid = call(node)
        write_folder(os.path.join(node.app_base, "app##2"), files(2))
        node.config.check()
        assert call(node, sid)[0] == "v1 n=2"          # a live session keeps version 1 deployed
        assert node.host.find_child("/app##1") is not None
        node.host.find_child("/app##1").manager.find_session(sid).invalidate()
        node.config.check()
        assert node.host.find_child("/app##1") is None
        assert not os.path.exists(os.path.join(node.app_base, "app##1"))
        assert call(node)[0] == "v2 n=1"
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_deploy_on_startup_and_auto_deploy_off(tmp_path):
    os.makedirs(tmp_path / "webapps" / "app")
    write_folder(tmp_path / "webapps" / "app", files(1))
    node = Node(tmp_path, tick=0.05, deploy_on_startup=False, auto_deploy=False)
    try:
        import gevent
        gevent.sleep(0.3)                       # several ticks: nothing is scanned
        assert node.get("/app/count")[0] == 404
        node.config.check()                     # an explicit check still deploys
        assert call(node)[0] == "v1 n=1"
    finally:
        node.stop()
