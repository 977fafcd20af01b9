"""The sample `examples` app from the repository: its filter, listener, error pages and BASIC-protected
page, against a tomcat-users.xml through the server's UserDatabase, over real HTTP."""
import base64
import shutil

import pytest

from pycat.core.naming import NamingResources, ResourceRecord
from pycat.realm.realms import LockOutRealm, UserDatabaseRealm
from pycat_harness import REPO, Tree, get

pytestmark = pytest.mark.timeout(30)

USERS = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="tomcat"/>
  <user username="tomcat" password="s3cret" roles="tomcat"/>
  <user username="guest" password="guest" roles="guest"/>
</tomcat-users>
"""


@pytest.fixture
def tree(tmp_path):
    shutil.copytree(f"{REPO}/webapps/examples", tmp_path / "webapps" / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    t = Tree(tmp_path, contexts={"/examples": {}}, start=False)
    (tmp_path / "conf" / "tomcat-users.xml").write_text(USERS)
    naming = NamingResources()
    db = ResourceRecord()
    db.set_property("name", "UserDatabase")
    db.set_property("pathname", "conf/tomcat-users.xml")
    naming.add_resource(db)
    t.server.set_global_naming_resources(naming)
    realm = LockOutRealm()          # what conf/server.xml configures
    inner = UserDatabaseRealm()
    inner.resource_name = "UserDatabase"
    realm.add_realm(inner)
    t.engine.set_realm(realm)
    t.server.start()
    yield t
    t.stop()


def auth(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def test_protected_page_with_basic_auth(tree):
    status, headers, _ = get(tree.port, "/examples/protected/")
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="pycat examples"'
    assert get(tree.port, "/examples/protected/", headers=auth("tomcat", "wrong"))[0] == 401
    assert get(tree.port, "/examples/protected/", headers=auth("guest", "guest"))[0] == 403
    status, _, body = get(tree.port, "/examples/protected/", headers=auth("tomcat", "s3cret"))
    assert status == 200 and body == b"Hello tomcat: you are in the protected area (tomcat role: True)\n"


def test_filter_listener_and_error_pages(tree):
    status, headers, body = get(tree.port, "/examples/hello?name=x")
    assert status == 200 and body == b"Hello, x!\n"
    assert float(headers["x-examples-time"]) >= 0              # the timing filter
    status, _, body = get(tree.port, "/examples/stats")
    assert status == 200 and body.startswith(b"requests=2 ")   # the listener counted both requests
    status, _, body = get(tree.port, "/examples/fail")
    assert status == 500 and b"RuntimeError: this servlet fails on purpose" in body
    status, _, body = get(tree.port, "/examples/no-such-page")
    assert status == 404 and b"error-page" in body
