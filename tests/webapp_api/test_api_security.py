"""Realms, credential handlers, BASIC and FORM login, roles, lockout, CONFIDENTIAL — real HTTP."""
import base64
import hashlib
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pycat.core.naming import NamingResources, ResourceRecord  # noqa: E402
from pycat.realm import credential  # noqa: E402
from pycat.realm.authenticator import parse_basic  # noqa: E402
from pycat.realm.realms import LockOutRealm, MemoryRealm, UserDatabaseRealm  # noqa: E402
from pycat_harness import Tree, get  # noqa: E402

pytestmark = pytest.mark.timeout(30)

SECURE_CLASSES = r'''
from pycat.webapp.servlet import HttpServlet

class Who(HttpServlet):
    def do_get(self, req, resp):
        resp.content_type = "text/plain"
        resp.write("user=%s admin=%s type=%s path=%s" % (req.remote_user, req.is_user_in_role("admin"),
                                                         req.auth_type, req.path))
        if req.get_parameter("x") is not None:
            resp.write(" method=%s x=%s" % (req.method, req.get_parameter_values("x")))
    do_post = do_get
'''

CONSTRAINTS = '''
  <servlet><servlet-name>who</servlet-name><servlet-class>secure_app:Who</servlet-class></servlet>
  <servlet-mapping><servlet-name>who</servlet-name><url-pattern>/</url-pattern></servlet-mapping>
  <security-constraint>
    <web-resource-collection><web-resource-name>users</web-resource-name><url-pattern>/secure/*</url-pattern></web-resource-collection>
    <auth-constraint><role-name>user</role-name></auth-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/admin/*</url-pattern></web-resource-collection>
    <auth-constraint><role-name>admin</role-name></auth-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/anyrole/*</url-pattern></web-resource-collection>
    <auth-constraint><role-name>*</role-name></auth-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/anyone/*</url-pattern></web-resource-collection>
    <auth-constraint><role-name>**</role-name></auth-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/nobody/*</url-pattern></web-resource-collection>
    <auth-constraint/>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/secure/public.txt</url-pattern></web-resource-collection>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/writes/*</url-pattern><http-method>POST</http-method></web-resource-collection>
    <auth-constraint><role-name>admin</role-name></auth-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/tls/*</url-pattern></web-resource-collection>
    <user-data-constraint><transport-guarantee>CONFIDENTIAL</transport-guarantee></user-data-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/mixed-open/*</url-pattern><url-pattern>/mixed-deny/*</url-pattern>
    </web-resource-collection>
    <auth-constraint><role-name>admin</role-name></auth-constraint>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/mixed-open/*</url-pattern><url-pattern>/mixed-deny/*</url-pattern>
    </web-resource-collection>
  </security-constraint>
  <security-constraint>
    <web-resource-collection><url-pattern>/mixed-deny/*</url-pattern></web-resource-collection>
    <auth-constraint/>
  </security-constraint>
  <security-role><role-name>user</role-name></security-role>
  <security-role><role-name>admin</role-name></security-role>
'''

BASIC_XML = ('<web-app>%s<login-config><auth-method>BASIC</auth-method><realm-name>Test Realm</realm-name>'
             '</login-config></web-app>' % CONSTRAINTS)
FORM_XML = ('<web-app>%s<login-config><auth-method>FORM</auth-method><form-login-config>'
            '<form-login-page>/login.html</form-login-page><form-error-page>/login-error.html</form-error-page>'
            '</form-login-config></login-config></web-app>' % CONSTRAINTS).replace(
    "<url-pattern>/</url-pattern>", "<url-pattern>/secure/*</url-pattern><url-pattern>/admin/*</url-pattern>")

PBKDF2 = credential.SecretKeyCredentialHandler()
PBKDF2.iterations = 1000              # fast tests; the format carries the count
SHA256 = credential.MessageDigestCredentialHandler()
SHA256.algorithm = "SHA-256"
SHA256.iterations = 3
SHA256.salt_length = 8


def users_xml():
    return ('<?xml version="1.0"?><tomcat-users xmlns="http://tomcat.apache.org/xml">'
            '<role rolename="user"/><role rolename="admin"/>'
            '<group groupname="admins" roles="admin"/>'
            '<user username="alice" password="alice-pw" roles="user"/>'
            '<user username="bob" password="%s" roles="user" groups="admins"/>'
            '<user username="carol" password="%s" roles="user"/>'
            '<user username="dave" password="dave-pw" roles="user"/>'
            '<user username="erin" password="erin-pw" roles="guest"/>'
            '</tomcat-users>' % (PBKDF2.mutate("bob-pw"), SHA256.mutate("carol-pw")))


def make_tree(tmp_path, failure_count=3):
    t = Tree(tmp_path / "base", start=False, contexts={
        "/basic": {"files": {"WEB-INF/web.xml": BASIC_XML, "WEB-INF/classes/secure_app.py": SECURE_CLASSES}},
        "/form": {"files": {"WEB-INF/web.xml": FORM_XML, "WEB-INF/classes/secure_app.py": SECURE_CLASSES,
                            "login.html": "<form method=POST action=j_security_check>LOGIN PAGE</form>",
                            "login-error.html": "LOGIN FAILED", "index.html": "open"}}},
        connector_attrs={"redirect_port": 8443})
    (tmp_path / "base" / "conf" / "tomcat-users.xml").write_text(users_xml())
    naming = NamingResources()
    db = ResourceRecord()
    db.set_property("name", "UserDatabase")
    db.set_property("pathname", "conf/tomcat-users.xml")
    naming.add_resource(db)
    t.server.set_global_naming_resources(naming)
    lockout = LockOutRealm()
    lockout.failure_count = failure_count
    inner = UserDatabaseRealm()
    nested = credential.NestedCredentialHandler()
    for h in (credential.MessageDigestCredentialHandler(), SHA256, PBKDF2):
        nested.add_credential_handler(h)
    inner.set_credential_handler(nested)
    lockout.add_realm(inner)
    t.engine.set_realm(lockout)
    t.realm = lockout
    t.server.start()
    return t


@pytest.fixture
def tree(tmp_path):
    t = make_tree(tmp_path)
    yield t
    t.stop()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


# -- credential handlers (no network) ---------------------------------------------------------
def test_pbkdf2_rfc6070_vector_in_tomcat_format():
    h = credential.SecretKeyCredentialHandler()
    h.algorithm = "PBKDF2WithHmacSHA1"
    stored = "73616c74$2$ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"     # RFC 6070: "password"/"salt", c=2
    assert h.matches("password", stored)
    assert not h.matches("passwore", stored)
    assert not h.matches("password", "nonsense")


def test_pbkdf2_mutate_round_trip_and_key_length_from_stored():
    h = credential.SecretKeyCredentialHandler()
    h.iterations = 10
    stored = h.mutate("secret")
    salt, iterations, digest = stored.split("$")
    assert len(bytes.fromhex(salt)) == 32 and iterations == "10" and len(digest) == 64   # 256 bits
    assert h.matches("secret", stored) and not h.matches("Secret", stored)


def test_message_digest_formats():
    h = credential.MessageDigestCredentialHandler()
    assert h.matches("pw", "pw") and not h.matches("pw", "PW")      # no algorithm: clear text
    h.algorithm = "SHA-256"
    assert h.matches("pw", hashlib.sha256(b"pw").hexdigest().upper())          # plain hex digest
    salt = bytes.fromhex("a1b2")
    r = hashlib.sha256(salt + b"pw").digest()
    r = hashlib.sha256(r).digest()
    assert h.matches("pw", "a1b2$2$" + r.hex())                                   # salt$iterations$hex
    assert not h.matches("px", "a1b2$2$" + r.hex())
    h.algorithm = "SHA"
    assert h.matches("pw", "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode())


def test_credential_command_prints_stored_forms(capsys):
    assert credential.main(["-i", "5", "pw"]) == 0
    password, stored = capsys.readouterr().out.strip().split(":", 1)
    assert password == "pw" and stored.split("$")[1] == "5"
    assert credential.SecretKeyCredentialHandler().matches("pw", stored)
    credential.main(["-a", "SHA-256", "-i", "1", "-s", "0", "pw"])
    assert capsys.readouterr().out.strip() == "pw:" + hashlib.sha256(b"pw").hexdigest()


def test_parse_basic_header():
    assert parse_basic("Basic " + base64.b64encode(b"a:b:c").decode()) == ("a", "b:c")
    assert parse_basic("Basic !!!") is None and parse_basic("Bearer x") is None and parse_basic(None) is None


def test_lockout_with_an_injected_clock(tmp_path):
    users = tmp_path / "users.xml"
    users.write_text('<tomcat-users><user username="u" password="right" roles="r"/></tomcat-users>')
    realm = LockOutRealm()
    realm.failure_count = 5
    realm.lock_out_time = 300
    now = [1000.0]
    realm.clock = lambda: now[0]
    memory = MemoryRealm()
    memory.pathname = str(users)
    realm.add_realm(memory)
    realm.start()
    try:
        for _ in range(5):
            assert realm.authenticate("u", "wrong") is None
        assert realm.is_locked("u")
        assert realm.authenticate("u", "right") is None         # locked: even the right password fails
        now[0] += 299
        assert realm.authenticate("u", "right") is None
        now[0] += 2
        assert realm.authenticate("u", "right").name == "u"      # lock expired
        assert not realm.is_locked("u")
    finally:
        realm.stop()


# -- BASIC over HTTP ---------------------------------------------------------------------------
def test_basic_challenge_and_login_with_plain_pbkdf2_and_sha256_users(tree):
    status, headers, _ = get(tree.port, "/basic/secure/x")
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="Test Realm"'
    for user, pw, admin in (("alice", "alice-pw", False), ("bob", "bob-pw", True), ("carol", "carol-pw", False)):
        status, _, body = get(tree.port, "/basic/secure/x", headers=basic(user, pw))
        assert status == 200, user
        assert body == ("user=%s admin=%s type=BASIC path=/secure/x" % (user, admin)).encode()


def test_wrong_password_and_unknown_user(tree):
    assert get(tree.port, "/basic/secure/x", headers=basic("alice", "nope"))[0] == 401
    assert get(tree.port, "/basic/secure/x", headers=basic("nobody", "x"))[0] == 401
    assert get(tree.port, "/basic/secure/x", headers={"Authorization": "Basic garbage"})[0] == 401


def test_roles(tree):
    assert get(tree.port, "/basic/admin/x", headers=basic("alice", "alice-pw"))[0] == 403
    assert get(tree.port, "/basic/admin/x", headers=basic("bob", "bob-pw"))[0] == 200     # via group
    # "*": any role declared in security-role; erin has only "guest"
    assert get(tree.port, "/basic/anyrole/x", headers=basic("alice", "alice-pw"))[0] == 200
    assert get(tree.port, "/basic/anyrole/x", headers=basic("erin", "erin-pw"))[0] == 403
    # "**": any authenticated user
    assert get(tree.port, "/basic/anyone/x", headers=basic("erin", "erin-pw"))[0] == 200
    # empty auth-constraint: nobody
    assert get(tree.port, "/basic/nobody/x", headers=basic("bob", "bob-pw"))[0] == 403
    # the exact pattern without auth-constraint wins over /secure/*
    assert get(tree.port, "/basic/secure/public.txt")[0] == 200
    # method-specific collections
    assert get(tree.port, "/basic/writes/x")[0] == 200
    assert get(tree.port, "/basic/writes/x", method="POST", body=b"a=1")[0] == 401
    # several constraints on one pattern: no auth-constraint opens it, an empty one closes it
    assert get(tree.port, "/basic/mixed-open/x")[0] == 200
    assert get(tree.port, "/basic/mixed-deny/x", headers=basic("bob", "bob-pw"))[0] == 403
    # unconstrained
    status, _, body = get(tree.port, "/basic/open")
    assert status == 200 and body.startswith(b"user=None")


def test_confidential_redirects_to_the_redirect_port(tree):
    status, headers, _ = get(tree.port, "/basic/tls/page?q=1")
    assert status == 302 and headers["location"] == "https://localhost:8443/basic/tls/page?q=1"


def test_lockout_over_http(tree):
    for _ in range(3):
        assert get(tree.port, "/basic/secure/x", headers=basic("dave", "bad"))[0] == 401
    assert get(tree.port, "/basic/secure/x", headers=basic("dave", "dave-pw"))[0] == 401   # locked
    assert get(tree.port, "/basic/secure/x", headers=basic("alice", "alice-pw"))[0] == 200  # others fine
    tree.realm.unlock("dave")
    assert get(tree.port, "/basic/secure/x", headers=basic("dave", "dave-pw"))[0] == 200


# -- FORM over HTTP ----------------------------------------------------------------------------
def _cookie(headers):
    m = re.search(r"JSESSIONID=([^;,\s]+)", headers.get("set-cookie", ""))
    return m.group(1) if m else None


def test_form_login_flow_with_session_id_change(tree):
    status, headers, body = get(tree.port, "/form/secure/page?x=1")
    assert status == 200 and b"LOGIN PAGE" in body          # forwarded to the login page
    first = _cookie(headers)
    assert first
    cookie = {"Cookie": "JSESSIONID=" + first}
    form = {"Content-Type": "application/x-www-form-urlencoded", **cookie}
    status, _, body = get(tree.port, "/form/j_security_check", method="POST",
                          body=b"j_username=bob&j_password=wrong", headers=form)
    assert status == 200 and body == b"LOGIN FAILED"
    status, headers, _ = get(tree.port, "/form/j_security_check", method="POST",
                             body=b"j_username=bob&j_password=bob-pw", headers=form)
    assert status == 303 and headers["location"].endswith("/form/secure/page?x=1")
    second = _cookie(headers)
    assert second and second != first                       # session fixation defence
    status, _, body = get(tree.port, "/form/secure/page?x=1", headers={"Cookie": "JSESSIONID=" + second})
    assert status == 200 and body == b"user=bob admin=True type=FORM path=/secure/page method=GET x=['1']"
    assert get(tree.port, "/form/admin/y", headers={"Cookie": "JSESSIONID=" + second})[0] == 200
    # the old id is worthless
    assert b"LOGIN PAGE" in get(tree.port, "/form/secure/page", headers=cookie)[2]


def test_form_role_denied_and_direct_login_post(tree):
    status, headers, _ = get(tree.port, "/form/admin/z")
    sid = _cookie(headers)
    form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "JSESSIONID=" + sid}
    status, headers, _ = get(tree.port, "/form/j_security_check", method="POST",
                             body=b"j_username=alice&j_password=alice-pw", headers=form)
    assert status == 303
    sid = _cookie(headers)
    assert get(tree.port, "/form/admin/z", headers={"Cookie": "JSESSIONID=" + sid})[0] == 403
    # a login POST with no saved request (no session): Tomcat's 400
    assert get(tree.port, "/form/j_security_check", method="POST", body=b"j_username=alice&j_password=alice-pw",
               headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 400


def test_form_login_replays_a_saved_post(tree):
    urlenc = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, body = get(tree.port, "/form/secure/post", method="POST", body=b"x=5&x=6", headers=urlenc)
    assert status == 200 and b"LOGIN PAGE" in body
    sid = _cookie(headers)
    status, headers, _ = get(tree.port, "/form/j_security_check", method="POST",
                             body=b"j_username=alice&j_password=alice-pw",
                             headers={**urlenc, "Cookie": "JSESSIONID=" + sid})
    assert status == 303 and headers["location"].endswith("/form/secure/post")
    sid = _cookie(headers)
    status, _, body = get(tree.port, "/form/secure/post", headers={"Cookie": "JSESSIONID=" + sid})
    assert body == b"user=alice admin=False type=FORM path=/secure/post method=POST x=['5', '6']"
    # replayed once only
    status, _, body = get(tree.port, "/form/secure/post", headers={"Cookie": "JSESSIONID=" + sid})
    assert body == b"user=alice admin=False type=FORM path=/secure/post"


def test_realm_inheritance_context_realm_wins(tmp_path):
    t = make_tree(tmp_path)
    try:
        users = tmp_path / "other.xml"
        users.write_text('<tomcat-users><user username="zed" password="z" roles="user"/></tomcat-users>')
        own = MemoryRealm()
        own.pathname = str(users)
        ctx = t.contexts["/basic"]
        ctx.set_realm(own)
        own.start()
        assert get(t.port, "/basic/secure/x", headers=basic("zed", "z"))[0] == 200
        assert get(t.port, "/basic/secure/x", headers=basic("alice", "alice-pw"))[0] == 401
    finally:
        t.stop()


def test_server_xml_realm_and_credential_handler_are_digested():
    from pycat.startup.digester import Digester
    server = Digester().parse_string("""<Server port="-1"><Service name="S">
      <Connector port="0"/>
      <Engine name="E" defaultHost="localhost">
        <Realm className="org.apache.catalina.realm.LockOutRealm" failureCount="4" lockOutTime="60">
          <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase">
            <CredentialHandler className="org.apache.catalina.realm.SecretKeyCredentialHandler"
                               algorithm="PBKDF2WithHmacSHA256" iterations="100" keyLength="128" saltLength="8"/>
          </Realm>
        </Realm>
      </Engine></Service></Server>""")
    realm = server.services[0].container.realm
    assert isinstance(realm, LockOutRealm) and realm.failure_count == 4 and realm.lock_out_time == 60
    handler = realm.realms[0].credential_handler
    assert isinstance(handler, credential.SecretKeyCredentialHandler)
    stored = handler.mutate("pw")
    assert re.fullmatch(r"[0-9a-f]{16}\$100\$[0-9a-f]{32}", stored) and handler.matches("pw", stored)
