"""Session fixation and BASIC: a BASIC login changes the id of the session the client brought, as
FORM does (Tomcat's changeSessionIdOnAuthentication), over real HTTP on an in-process node."""
import base64
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pycat.realm.authenticator import Authenticator  # noqa: E402
from pycat.realm.realms import MemoryRealm  # noqa: E402
from pycat_harness import Tree, get  # noqa: E402

pytestmark = pytest.mark.timeout(30)

SESSION_SERVLET = r'''
from pycat.webapp.servlet import HttpServlet

class Report(HttpServlet):
    def do_get(self, req, resp):
        resp.content_type = "text/plain"
        if req.get_parameter("op") == "start":
            s = req.get_session(True)
            s["cart"] = ["apple"]
        s = req.get_session(False)
        resp.write("id=%s cart=%s user=%s" % (s.id if s else None, s.get("cart") if s else None,
                                              req.remote_user))
    do_post = do_get
'''

CONSTRAINT = '''<security-constraint>
    <web-resource-collection><url-pattern>/secure/*</url-pattern></web-resource-collection>
    <auth-constraint><role-name>user</role-name></auth-constraint>
  </security-constraint>
  <security-role><role-name>user</role-name></security-role>'''
SERVLET = ('<servlet><servlet-name>r</servlet-name><servlet-class>fixation_app:Report</servlet-class></servlet>'
           '<servlet-mapping><servlet-name>r</servlet-name><url-pattern>/</url-pattern></servlet-mapping>')
BASIC_XML = ('<web-app>%s%s<login-config><auth-method>BASIC</auth-method><realm-name>R</realm-name>'
             '</login-config></web-app>' % (SERVLET, CONSTRAINT))
FORM_XML = ('<web-app>%s%s<login-config><auth-method>FORM</auth-method><form-login-config>'
            '<form-login-page>/login.html</form-login-page><form-error-page>/login.html</form-error-page>'
            '</form-login-config></login-config></web-app>' % (SERVLET.replace(
                "<url-pattern>/</url-pattern>", "<url-pattern>/secure/*</url-pattern><url-pattern>/open/*"
                "</url-pattern>"), CONSTRAINT))


@pytest.fixture
def tree(tmp_path):
    files = {"WEB-INF/classes/fixation_app.py": SESSION_SERVLET}
    t = Tree(tmp_path / "base", start=False, contexts={
        "/basic": {"files": {"WEB-INF/web.xml": BASIC_XML, **files}},
        "/form": {"files": {"WEB-INF/web.xml": FORM_XML, "login.html": "LOGIN PAGE", **files}}})
    users = tmp_path / "users.xml"
    users.write_text('<tomcat-users><user username="alice" password="alice-pw" roles="user"/>'
                     '<user username="bob" password="bob-pw" roles="user"/></tomcat-users>')
    realm = MemoryRealm()
    realm.pathname = str(users)
    t.engine.set_realm(realm)
    t.server.start()
    yield t
    t.stop()


def basic(user, password, sid=None):
    headers = {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}
    if sid:
        headers["Cookie"] = "JSESSIONID=" + sid
    return headers


def cookie(headers):
    m = re.search(r"JSESSIONID=([^;,\s]+)", headers.get("set-cookie", ""))
    return m.group(1) if m else None


def fields(body):
    return dict(p.split("=", 1) for p in body.decode().split())


def start_session(port, ctx):
    status, headers, body = get(port, ctx + "/open/start?op=start")
    assert status == 200
    sid = cookie(headers)
    assert sid and fields(body) == {"id": sid, "cart": "['apple']", "user": "None"}
    return sid


def test_basic_login_changes_the_session_id_and_keeps_the_attributes(tree):
    port = tree.port
    # the attacker gets a session before any login and plants its id in the victim's browser
    planted = start_session(port, "/basic")
    status, headers, body = get(port, "/basic/secure/page", headers=basic("alice", "alice-pw", planted))
    assert status == 200
    new = cookie(headers)
    assert new and new != planted
    # the session itself survives the change: same attributes, new id
    assert fields(body) == {"id": new, "cart": "['apple']", "user": "alice"}
    # the planted id is worthless now: no session behind it
    assert fields(get(port, "/basic/open/peek", headers={"Cookie": "JSESSIONID=" + planted})[2])["id"] == "None"
    # positive control for that probe: the new id does find the session
    assert fields(get(port, "/basic/open/peek", headers={"Cookie": "JSESSIONID=" + new})[2])["id"] == new
    # the next requests of the same user keep the id (a change at authentication, not per request)
    status, headers, body = get(port, "/basic/secure/page", headers=basic("alice", "alice-pw", new))
    assert status == 200 and cookie(headers) is None and fields(body)["id"] == new
    # another user authenticating with that session: a new id again
    status, headers, body = get(port, "/basic/secure/page", headers=basic("bob", "bob-pw", new))
    third = cookie(headers)
    assert status == 200 and third not in (None, new) and fields(body) == {"id": third, "cart": "['apple']",
                                                                            "user": "bob"}
    # a failed login changes nothing
    status, headers, _ = get(port, "/basic/secure/page", headers=basic("bob", "wrong", third))
    assert status == 401 and cookie(headers) is None
    assert fields(get(port, "/basic/open/peek", headers={"Cookie": "JSESSIONID=" + third})[2])["id"] == third


def test_basic_without_a_session_creates_none(tree):
    status, headers, body = get(tree.port, "/basic/secure/page", headers=basic("alice", "alice-pw"))
    assert status == 200 and cookie(headers) is None and fields(body)["id"] == "None"


def test_form_login_does_the_same(tree):
    # positive control: FORM already changed the id; same probe, same outcome
    planted = start_session(tree.port, "/form")
    status, _, body = get(tree.port, "/form/secure/page", headers={"Cookie": "JSESSIONID=" + planted})
    assert status == 200 and body == b"LOGIN PAGE"
    status, headers, _ = get(tree.port, "/form/j_security_check", method="POST",
                             body=b"j_username=alice&j_password=alice-pw",
                             headers={"Content-Type": "application/x-www-form-urlencoded",
                                      "Cookie": "JSESSIONID=" + planted})
    new = cookie(headers)
    assert status == 303 and new and new != planted
    status, _, body = get(tree.port, "/form/secure/page", headers={"Cookie": "JSESSIONID=" + new})
    assert status == 200 and fields(body) == {"id": new, "cart": "['apple']", "user": "alice"}
    assert fields(get(tree.port, "/form/open/x", headers={"Cookie": "JSESSIONID=" + planted})[2])["id"] == "None"


def test_change_session_id_on_authentication_false_keeps_the_id(tree, monkeypatch):
    monkeypatch.setattr(tree.contexts["/basic"].authenticator, "change_session_id_on_authentication", False)
    sid = start_session(tree.port, "/basic")
    status, headers, body = get(tree.port, "/basic/secure/page", headers=basic("alice", "alice-pw", sid))
    assert status == 200 and cookie(headers) is None and fields(body)["id"] == sid
    assert Authenticator.change_session_id_on_authentication is True     # the default
