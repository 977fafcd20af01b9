"""The deploy channel (pycat deploy/undeploy/list) on a real node: the token is checked before the
body is parsed, refusals are logged once per source and interval, a failed deploy leaves appBase
as it was, and an undeploy removes the app's files and sessions but nothing outside appBase."""
import json
import os
import socket

import pytest

from real_node import real_node  # noqa: F401 (a fixture)

from deploy_helpers import app_files, write_folder, write_war


def raw(node, line, source="127.0.0.1"):
    """Send one raw line to the node's deploy channel from ``source``; the reply line ('' if none)."""
    with open(node.token_path) as fh:
        port = json.load(fh)["port"]
    with socket.socket() as sock:
        sock.settimeout(20)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        try:
            sock.sendall(line)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            # the channel answers a bad token after reading the line's start and closes with the
            # rest unread, so the kernel resets the connection; the answer is still readable
            pass
        return sock.makefile(encoding="utf-8").readline()


def token(node):
    with open(node.token_path) as fh:
        return json.load(fh)["token"].encode()


def settle(node, name):
    """Drop a WAR and wait until it serves: several background ticks have run by then."""
    write_war(os.path.join(node.webapps, name + ".war"), app_files(name, name))
    node.wait_until(lambda: node.status("/%s/hello" % name) == 200, 20, name)


@pytest.mark.timeout(120)
def test_token_is_checked_before_the_body_is_parsed(tmp_path, real_node):
    node = real_node().start()
    nested = b"[" * 60000 + b"\n"           # json.loads raises RecursionError on this
    assert json.loads(raw(node, nested)) == {"ok": False, "error": "bad token"}
    assert json.loads(raw(node, b'{"token": "nope", "cmd": "list"}\n')) == {"ok": False, "error": "bad token"}
    # a right token with a wrong body is answered, not a crash of the connection's greenlet
    assert json.loads(raw(node, token(node) + b" " + nested)) == {"ok": False, "error": "malformed request"}
    assert json.loads(raw(node, token(node) + b"x" + b'{"cmd": "list"}\n'))["error"] == "bad token"
    too_long = token(node) + b' {"cmd": "list", "pad": "' + b"x" * 70000 + b'"}\n'
    assert json.loads(raw(node, too_long)) == {"ok": False, "error": "request too long"}
    # positive control: the same channel answers a proper request
    reply = json.loads(raw(node, token(node) + b' {"cmd": "list"}\n'))
    assert reply["ok"] is True and [a["name"] for a in reply["apps"]] == [""]
    assert "RecursionError" not in node.log() and "Traceback" not in node.log()
    assert oct(os.stat(node.token_path).st_mode & 0o777) == "0o600"


@pytest.mark.timeout(120)
def test_refused_requests_are_logged_once_per_source(tmp_path, real_node):
    node = real_node().start()
    for _ in range(20):
        assert "bad token" in raw(node, b"nope {}\n")
    # positive control: another source address (all of 127/8 is loopback) gets its own warning
    for _ in range(3):
        assert "bad token" in raw(node, b"nope {}\n", source="127.0.0.2")
    log = node.log()
    assert log.count("from 127.0.0.1 with a wrong or missing token refused") == 1, log
    assert log.count("from 127.0.0.2 with a wrong or missing token refused") == 1, log


def counter_files(version):
    web = """<web-app>
  <servlet><servlet-name>c</servlet-name><servlet-class>counter:Counter</servlet-class></servlet>
  <servlet-mapping><servlet-name>c</servlet-name><url-pattern>/count</url-pattern></servlet-mapping>
</web-app>"""
    code = """from pycat.webapp.servlet import HttpServlet


class Counter(HttpServlet):
    def do_get(self, request, response):
        session = request.get_session(True)
        n = (session.get_attribute("n") or 0) + 1
        session.set_attribute("n", n)
        response.set_header("Content-Type", "text/plain")
        response.write("v%s n=%%d" %% n)
""" % version
    return {"WEB-INF/web.xml": web, "WEB-INF/classes/counter.py": code}


def count(node, cookie=None):
    resp = node.get("/shop/count", headers={"Cookie": "JSESSIONID=" + cookie} if cookie else None)
    assert resp.status == 200, resp.text
    return resp.text, resp.cookies.get("JSESSIONID")


@pytest.mark.timeout(180)
def test_undeploy_forgets_the_sessions_and_a_redeploy_keeps_them(tmp_path, real_node):
    node = real_node().start()
    v1 = write_war(str(tmp_path / "v1.war"), counter_files(1))
    v2 = write_war(str(tmp_path / "v2.war"), counter_files(2))
    assert node.cli("deploy", v1, "--name", "shop").returncode == 0
    body, sid = count(node)
    assert body == "v1 n=1" and sid
    # positive control: a redeploy carries the session over (through work/.../shop/SESSIONS.ser)
    assert node.cli("deploy", v2, "--name", "shop").returncode == 0
    assert count(node, sid) == ("v2 n=2", None)
    work = os.path.join(node.work, "shop")
    assert os.path.isdir(work)
    gone = node.cli("undeploy", "/shop")
    assert gone.returncode == 0, gone.stderr
    assert not os.path.exists(work)
    assert sorted(os.listdir(node.webapps)) == ["ROOT"]
    # the same app deployed again starts without the old sessions: the old cookie gets a new one
    assert node.cli("deploy", v1, "--name", "shop").returncode == 0
    body, new_sid = count(node, sid)
    assert body == "v1 n=1" and new_sid and new_sid != sid
    # an undeploy by autoDeploy (the WAR deleted) removes the work folder too
    count(node, new_sid)
    os.unlink(os.path.join(node.webapps, "shop.war"))
    node.wait_until(lambda: node.status("/shop/count") == 404, 20, "undeployed")
    node.wait_until(lambda: not os.path.exists(work), 20, "work folder removed")
    assert "Refusing to remove" not in node.log()


BROKEN_IMPORT = {"WEB-INF/classes/app.py": "import no_such_module_anywhere\n"}


@pytest.mark.timeout(180)
def test_a_failed_deploy_leaves_app_base_as_it_was(tmp_path, real_node):
    node = real_node().start()
    broken = write_war(str(tmp_path / "broken.war"), app_files(2, "b", extra=BROKEN_IMPORT))
    notzip = str(tmp_path / "notzip.war")
    with open(notzip, "wb") as fh:
        fh.write(b"PK\x03\x04 not a zip" * 10)
    for war in (broken, notzip):
        failed = node.cli("deploy", war, "--name", "shop")
        assert failed.returncode != 0 and "deploying /shop failed" in failed.stderr, failed.stderr
        assert sorted(os.listdir(node.webapps)) == ["ROOT"]
    # a folder the CLI cannot pack (a symbolic link in it): a one-line error, nothing sent
    folder = write_folder(tmp_path / "linked", app_files(3, "l"))
    os.symlink("/etc/passwd", os.path.join(folder, "passwd"))
    failed = node.cli("deploy", folder, "--name", "shop")
    assert failed.returncode != 0 and "passwd is a symbolic link" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert sorted(os.listdir(node.webapps)) == ["ROOT"]
    assert node.status("/shop/hello") == 404
    # a failed redeploy: the WAR it replaced is back, byte for byte, and the old version serves
    good = write_war(str(tmp_path / "good.war"), app_files(1, "g"))
    assert node.cli("deploy", good, "--name", "shop").returncode == 0
    with open(good, "rb") as fh:
        good_bytes = fh.read()
    for war in (broken, notzip):
        failed = node.cli("deploy", war, "--name", "shop")
        assert failed.returncode != 0 and "previous version keeps serving" in failed.stderr
        assert sorted(os.listdir(node.webapps)) == ["ROOT", "shop", "shop.war"]
        with open(os.path.join(node.webapps, "shop.war"), "rb") as fh:
            assert fh.read() == good_bytes
        assert node.get("/shop/hello").text == "1 g more-g"
    # the WAR put back is the baseline again, not a change the next ticks redeploy
    before = node.log().count("redeploying /shop")
    settle(node, "later")
    assert node.log().count("redeploying /shop") == before
    # and a restart serves the same version from the same files
    node.stop()
    node.start()
    assert node.get("/shop/hello").text == "1 g more-g"
    assert sorted(os.listdir(node.webapps)) == ["ROOT", "later", "later.war", "shop", "shop.war"]


@pytest.mark.timeout(120)
def test_undeploy_of_a_descriptor_app_never_removes_its_external_doc_base(tmp_path, real_node):
    node = real_node()
    outside = write_folder(tmp_path / "outside" / "ext", app_files("x", "x"))
    conf = os.path.join(node.base, "conf", "Catalina", "localhost")
    os.makedirs(conf)
    descriptor = os.path.join(conf, "ext.xml")
    with open(descriptor, "w") as fh:
        fh.write('<Context docBase="%s"/>' % outside)
    node.start()
    assert node.get("/ext/hello").text == "x x more-x"
    gone = node.cli("undeploy", "/ext")
    assert gone.returncode == 0, gone.stderr
    assert node.status("/ext/hello") == 404
    assert sorted(os.listdir(outside)) == ["WEB-INF", "index.html"]
    # the descriptor goes (as with Tomcat's manager), so the next ticks do not deploy it again
    assert not os.path.exists(descriptor)
    settle(node, "later")
    assert node.status("/ext/hello") == 404
