"""What a newcomer does first, on a real node started from the shipped conf/server.xml: add a user
to conf/tomcat-users.xml and log in at once, find the session sample from /examples/, and follow
the README and docs/design.md without landing outside the repository."""
import base64
import http.cookiejar
import os
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from node_helpers import HOME, http_get, read

USERS = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
%s
</tomcat-users>
"""


@pytest.fixture
def stock_node(pycat_node):
    """A node on the shipped server.xml (LockOutRealm over the UserDatabaseRealm, tomcat-users.xml
    copied as shipped; the plugin binds its Connector to 127.0.0.1 and gives ${http.port} and
    ${shutdown.port} free ports) serving the shipped examples app. The background tick is set to
    an hour so nothing a test sees can come from a tick."""
    node = pycat_node(server_xml=os.path.join(HOME, "conf", "server.xml"),
                      apps=[os.path.join(HOME, "webapps", "examples")],
                      attributes={"engine": {"backgroundProcessorDelay": "3600"}})
    written = read(os.path.join(node.base, "conf", "server.xml"))
    assert 'backgroundProcessorDelay="3600"' in written and 'address="127.0.0.1"' in written
    assert node.get("/examples/").status == 200
    return node.base, node.http_port, node


def protected(port, user=None, password=None):
    """Status and body of /examples/protected/ with BASIC credentials (none when user is None)."""
    req = urllib.request.Request("http://127.0.0.1:%d/examples/protected/" % port)
    if user is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def write_users(base, body):
    # an operator's edit: the file rewritten in place, no rename, no touch of the mtime
    with open(os.path.join(base, "conf", "tomcat-users.xml"), "w") as fh:
        fh.write(USERS % body)


def test_a_user_added_to_tomcat_users_logs_in_at_once(stock_node):
    base, port, node = stock_node
    log = node.log_path
    assert "UserDatabaseRealm: 0 users" in read(log)        # the shipped file enables nobody
    assert protected(port)[0] == 401
    assert protected(port, "alice", "wonder-1")[0] == 401   # not a user yet

    write_users(base, '<user username="alice" password="wonder-1" roles="tomcat"/>'
                      '<user username="carol" password="carol-pw" roles="manager"/>')
    status, body = protected(port, "alice", "wonder-1")     # immediately: no tick in between
    assert (status, body) == (200, "Hello alice: you are in the protected area (tomcat role: True)\n")
    assert protected(port, "alice", "wrong")[0] == 401      # the password is checked
    assert protected(port, "carol", "carol-pw")[0] == 403   # known user, role not allowed
    assert "reloaded" in read(log)

    # a broken save (half-written file, typo) keeps the users we had, and is said once
    with open(os.path.join(base, "conf", "tomcat-users.xml"), "w") as fh:
        fh.write('<tomcat-users><user username="alice" password="')
    assert protected(port, "alice", "wonder-1")[0] == 200
    assert protected(port, "alice", "wonder-1")[0] == 200
    assert read(log).count("reloading %s failed" % os.path.join(base, "conf", "tomcat-users.xml")) == 1

    # removing a user takes effect at once too
    write_users(base, '<user username="bob" password="builder-2" roles="role1"/>')
    assert protected(port, "alice", "wonder-1")[0] == 401
    status, body = protected(port, "bob", "builder-2")
    assert status == 200 and body.startswith("Hello bob:")
    assert node.alive


def test_the_shipped_example_users_work_once_given_passwords(stock_node):
    """conf/tomcat-users.xml carries a commented example; uncommented with real passwords it is a
    working users file for /examples/protected/ (and the placeholder passwords do not load)."""
    shipped = read(os.path.join(HOME, "conf", "tomcat-users.xml"))
    example = re.search(r"<!--((?:(?!-->).)*<user username=(?:(?!-->).)*)-->", shipped, re.S)
    assert example, "no commented <user> example in conf/tomcat-users.xml"
    lines = [ln.strip() for ln in example.group(1).splitlines() if ln.strip().startswith("<")]
    users = re.findall(r'<user username="([^"]+)"', "\n".join(lines))
    assert users and all('password="<must-be-changed>"' in ln for ln in lines if ln.startswith("<user"))

    base, port, node = stock_node
    chosen = "\n".join(ln.replace("<must-be-changed>", "pw-%d" % i) for i, ln in enumerate(lines))
    write_users(base, chosen)
    allowed = {"tomcat", "role1"}
    for i, line in enumerate(lines):
        if not line.startswith("<user"):
            continue
        name = re.search(r'username="([^"]+)"', line).group(1)
        roles = set(re.search(r'roles="([^"]*)"', line).group(1).split(","))
        status, body = protected(port, name, "pw-%d" % i)
        assert status == (200 if roles & allowed else 403), (name, status, body)
        assert protected(port, name, "<must-be-changed>")[0] == 401


def test_the_session_sample_is_linked_from_the_examples_index(stock_node):
    base, port, node = stock_node
    status, page = http_get(port, "/examples/")
    assert status == 200
    links = re.findall(r'href="([^"]+)"', page.decode())
    counters = [h for h in links if urllib.parse.urlsplit(h).path == "session" and "op=inc" in h]
    assert counters, "no link to the session counter on /examples/: %s" % links
    assert "session-events" in links

    # follow the link as a browser would: the counter grows with the cookie, restarts without it
    url = urllib.parse.urljoin("http://127.0.0.1:%d/examples/" % port, counters[0])
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    first = browser.open(url, timeout=5).read().decode()
    second = browser.open(url, timeout=5).read().decode()
    session_id = re.search(r"id=(\S+)", first).group(1)
    assert "new=True count=1" in first and second == "id=%s new=False count=2\n" % session_id
    stranger = urllib.request.urlopen(url, timeout=5).read().decode()
    assert "count=1" in stranger and session_id not in stranger
    events = http_get(port, "/examples/session-events")[1].decode()
    assert "created %s" % session_id in events and "added count %s" % session_id in events

    # the "change id" link: a clear 409 before there is a session, a new id for the same data after
    change = [h for h in links if h.endswith("op=change")]
    assert change, "no link to the id change on /examples/"
    change_url = urllib.parse.urljoin(url, change[0])
    assert http_get(port, "/examples/" + change[0])[0] == 409
    changed = browser.open(change_url, timeout=5).read().decode()
    new_id = re.fullmatch(r"old=%s new=(\S+)\n" % re.escape(session_id), changed).group(1)
    assert new_id != session_id
    assert browser.open(url, timeout=5).read().decode() == "id=%s new=False count=3\n" % new_id


MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", ["README.md", "docs/design.md"])
def test_docs_link_only_inside_the_repository(doc):
    path = os.path.join(HOME, doc)
    text = read(path)
    targets = MD_LINK.findall(text)
    if doc == "README.md":
        assert "docs/design.md" in targets       # the design summary points at the document
    assert "../" not in text, "%s names a path outside the repository" % doc
    for target in targets:
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
        assert resolved.startswith(HOME + os.sep), "%s links outside the repository: %s" % (doc, target)
        assert os.path.exists(resolved), "%s links to a missing file: %s" % (doc, target)


def test_readme_tick_is_the_engine_default():
    """The README says how long a background tick is; it must be the Engine's real default."""
    from pycat.core.engine import Engine
    readme = read(os.path.join(HOME, "README.md"))
    said = re.search(r"`backgroundProcessorDelay`[^.]*?(\d+) s by default", readme)
    assert said, "the README does not say how long a background tick is"
    assert float(said.group(1)) == Engine.background_processor_delay.default
