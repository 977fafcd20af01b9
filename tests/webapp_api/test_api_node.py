"""A real `pycat run` process with the repository's conf/server.xml: its LockOutRealm over the
UserDatabaseRealm (GlobalNamingResources UserDatabase → conf/tomcat-users.xml), plus a nested
CredentialHandler, protects the examples' page; the Flask demo serves next to it."""
import base64
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from node_helpers import HOME, Procs, free_port, http_get, make_base, node_env, pycat_cmd, wait_until  # noqa: E402
from pycat.realm.credential import SecretKeyCredentialHandler  # noqa: E402

HANDLERS = """<Realm className="org.apache.catalina.realm.UserDatabaseRealm"
               resourceName="UserDatabase">
          <CredentialHandler className="org.apache.catalina.realm.NestedCredentialHandler">
            <CredentialHandler className="org.apache.catalina.realm.SecretKeyCredentialHandler"/>
            <CredentialHandler className="org.apache.catalina.realm.MessageDigestCredentialHandler"/>
          </CredentialHandler>
        </Realm>"""


def fetch(port, path, user=None, password=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.timeout(90)
def test_examples_protected_page_in_a_real_node(tmp_path):
    pytest.importorskip("flask", reason="flask is not installed (pip install -e .[test])")
    with open(os.path.join(HOME, "conf", "server.xml")) as fh:
        server_xml = fh.read()
    stock = """<Realm className="org.apache.catalina.realm.UserDatabaseRealm"
               resourceName="UserDatabase"/>"""
    assert stock in server_xml
    port = free_port()
    base = make_base(tmp_path / "node", port, server_xml=server_xml.replace(stock, HANDLERS),
                     properties="shutdown.port=%d\n" % free_port())
    shutil.copytree(os.path.join(HOME, "webapps", "examples"), os.path.join(base, "webapps", "examples"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    # the Flask sample ships as a WAR: the stock Host (unpackWARs) expands and serves it
    shutil.copy(os.path.join(HOME, "webapps", "flask-demo.war"), os.path.join(base, "webapps"))
    handler = SecretKeyCredentialHandler()
    handler.iterations = 2000
    with open(os.path.join(base, "conf", "tomcat-users.xml"), "w") as fh:
        fh.write('<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">'
                 '<role rolename="tomcat"/><role rolename="role1"/>'
                 '<user username="hashed" password="%s" roles="role1"/>'
                 '<user username="plain" password="plain-pw" roles="tomcat"/>'
                 '<user username="nobody" password="x" roles="other"/></tomcat-users>'
                 % handler.mutate("hashed-pw"))
    procs = Procs()
    out = open(os.path.join(base, "logs", "out.txt"), "w")
    try:
        proc = procs.popen(pycat_cmd("run"), env=node_env(base), cwd=base, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: http_get(port, "/") is not None or proc.poll() is not None, timeout=30,
                   message="the node to serve")
        assert proc.poll() is None, open(os.path.join(base, "logs", "out.txt")).read()[-3000:]
        assert fetch(port, "/examples/protected/")[0] == 401
        assert fetch(port, "/examples/protected/", "plain", "wrong")[0] == 401
        assert fetch(port, "/examples/protected/", "nobody", "x")[0] == 403
        status, body = fetch(port, "/examples/protected/", "hashed", "hashed-pw")
        assert status == 200 and body.startswith(b"Hello hashed:")
        assert fetch(port, "/examples/protected/", "plain", "plain-pw")[0] == 200
        status, body = fetch(port, "/flask-demo/notes/0")
        assert status == 200 and b"Flask runs unmodified" in body
        # LockOutRealm from server.xml: 5 failures lock the user, even with the right password
        for _ in range(5):
            assert fetch(port, "/examples/protected/", "plain", "guess")[0] == 401
        assert fetch(port, "/examples/protected/", "plain", "plain-pw")[0] == 401
        assert fetch(port, "/examples/protected/", "hashed", "hashed-pw")[0] == 200
    finally:
        procs.cleanup()
        out.close()
