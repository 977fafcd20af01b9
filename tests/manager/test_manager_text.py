"""/manager/text (webapps/manager) on real `pycat run` nodes, driven over HTTP with the request
forms of Tomcat's manager-howto; answers compared with Tomcat's ManagerServlet formats."""
import base64
import http.client
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from node_helpers import (HOME, SERVER_XML, Procs, free_port, make_base, node_env, pycat_cmd,  # noqa: E402
                          read, wait_until)

USERS = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <user username="deployer" password="s3cret" roles="manager-script"/>
  <user username="plain" password="plain-pw" roles="tomcat"/>
</tomcat-users>
"""

# the test server.xml: SERVER_XML plus the shipped realm setup and a RemoteIpValve, so a request
# can claim a non-local client through X-Forwarded-For (the TCP peer 127.0.0.1 is an internal proxy)
REALM = """<GlobalNamingResources>
    <Resource name="UserDatabase" auth="Container" type="org.apache.catalina.UserDatabase"
              factory="org.apache.catalina.users.MemoryUserDatabaseFactory" pathname="conf/tomcat-users.xml"/>
  </GlobalNamingResources>
  <Service name="Catalina">"""


def server_xml():
    xml = SERVER_XML.format(shutdown_port=free_port())
    xml = xml.replace('<Service name="Catalina">', REALM, 1)
    xml = xml.replace('jvmRoute="${jvm.route:-node0}">',
                      'jvmRoute="${jvm.route:-node0}" backgroundProcessorDelay="3600">\n'
                      '      <Realm className="org.apache.catalina.realm.LockOutRealm">\n'
                      '        <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase"/>\n'
                      '      </Realm>', 1)
    xml = xml.replace('autoDeploy="true">', 'autoDeploy="true">\n'
                      '        <Valve className="org.apache.catalina.valves.RemoteIpValve"/>', 1)
    assert "RemoteIpValve" in xml and "UserDatabaseRealm" in xml and "backgroundProcessorDelay" in xml
    return xml


HELLO_WEB_XML = """<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <servlet><servlet-name>hello</servlet-name><servlet-class>hello:Hello</servlet-class></servlet>
  <servlet-mapping><servlet-name>hello</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
  <session-config><session-timeout>30</session-timeout></session-config>
</web-app>
"""
HELLO_PY = """from pycat.webapp.servlet import HttpServlet

class Hello(HttpServlet):
    def do_get(self, request, response):
        if request.get_parameter("session"):
            request.get_session()["seen"] = True
        response.content_type = "text/plain"
        response.write("hello %s\\n" % (request.get_parameter("from") or "TAG"))
"""


def app_files(tag):
    return {"WEB-INF/web.xml": HELLO_WEB_XML, "WEB-INF/classes/hello.py": HELLO_PY.replace("TAG", tag)}


def write_folder(root, tag):
    for name, text in app_files(tag).items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
    return str(root)


def war_bytes(tag):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in app_files(tag).items():
            zf.writestr(name, text)
    return buf.getvalue()


class Node:
    def __init__(self, base, port, proc):
        self.base, self.port, self.proc = base, port, proc

    def request(self, method, path, user=None, password=None, body=None, headers=None):
        """(status, headers dict, body text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            hdrs = dict(headers or {})
            if user is not None:
                hdrs["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def text(self, command, method="GET", body=None, headers=None):
        """A /manager/text command as the deployer (manager-script); returns the answer's lines."""
        status, hdrs, text = self.request(method, "/manager/text/" + command, "deployer", "s3cret", body, headers)
        assert status == 200, (status, text)
        assert hdrs["content-type"].startswith("text/plain"), hdrs
        return text.splitlines()

    def get(self, path):
        return self.request("GET", path)[::2]

    def log(self):
        return read(os.path.join(self.base, "logs", "out.txt"))


def start_node(tmp_path, procs, users=USERS):
    port = free_port()
    base = make_base(tmp_path / "node", port, server_xml=server_xml())
    shutil.copytree(os.path.join(HOME, "webapps", "manager"), os.path.join(base, "webapps", "manager"))
    write_folder(os.path.join(base, "webapps", "hello"), "folder")
    if users is not None:
        with open(os.path.join(base, "conf", "tomcat-users.xml"), "w") as fh:
            fh.write(users)
    out = open(os.path.join(base, "logs", "out.txt"), "w")
    # this tree's pycat, whatever an editable install elsewhere points to: the manager relies on
    # the deployer methods of this tree's HostConfig
    path = os.pathsep.join(p for p in (HOME, os.environ.get("PYTHONPATH")) if p)
    proc = procs.popen(pycat_cmd("run"), env=node_env(base, PYTHONPATH=path), cwd=base, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    node = Node(base, port, proc)

    def up():
        if proc.poll() is not None:
            return True
        try:
            return node.get("/hello/hello")[0] == 200 and node.get("/manager/")[0] == 200
        except OSError:
            return False
    wait_until(up, timeout=30, message="the node to serve /hello and /manager")
    assert proc.poll() is None, node.log()
    return node


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


@pytest.fixture
def node(tmp_path, procs):
    return start_node(tmp_path, procs)


LIST_LINE = re.compile(r"^(/[^:]*):(running|stopped):(\d+):(.+)$")


def listed(node):
    lines = node.text("list")
    assert lines[0] == "OK - Listed applications for virtual host [localhost]"
    apps = {}
    for line in lines[1:]:
        m = LIST_LINE.match(line)
        assert m, line
        apps[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4))
    return apps


def test_protection_401_403_and_local_addresses_only(node):
    # no credentials: 401 with Tomcat's realm name and a page that says how to add a user
    status, hdrs, body = node.request("GET", "/manager/text/list")
    assert status == 401
    assert hdrs["www-authenticate"] == 'Basic realm="Tomcat Manager Application"'
    assert "manager-script" in body and "conf/tomcat-users.xml" in body
    # wrong password: 401 too
    assert node.request("GET", "/manager/text/list", "deployer", "wrong")[0] == 401
    # a user without the role: 403 with the page naming the role
    status, _, body = node.request("GET", "/manager/text/list", "plain", "plain-pw")
    assert status == 403 and "manager-script" in body
    # a client that is not local (as the RemoteIpValve reports it) is refused by the RemoteAddrValve,
    # even with good credentials; the positive control: the same request from a local client passes
    far = {"X-Forwarded-For": "203.0.113.9"}
    near = {"X-Forwarded-For": "127.0.0.7"}
    status, _, body = node.request("GET", "/manager/text/list", "deployer", "s3cret", headers=far)
    assert status == 403 and "same machine" in body
    status, _, body = node.request("GET", "/manager/text/list", "deployer", "s3cret", headers=near)
    assert status == 200 and body.startswith("OK - Listed applications for virtual host [localhost]\n")
    # the error pages are reachable only through an error dispatch
    assert node.get("/manager/WEB-INF/access-help")[0] == 404


def test_list_serverinfo_resources_and_unknown(node):
    apps = listed(node)
    assert apps["/"] == ("running", 0, "ROOT")
    assert apps["/hello"] == ("running", 0, "hello")
    assert apps["/manager"] == ("running", 0, "manager")
    info = node.text("serverinfo")
    assert info[0] == "OK - Server info"
    assert [line.split(": [")[0] for line in info[1:]] == [
        "Tomcat Version", "OS Name", "OS Version", "OS Architecture", "JVM Version", "JVM Vendor"]
    assert info[1].startswith("Tomcat Version: [pycat/") and all(line.endswith("]") for line in info[1:])
    assert node.text("resources") == ["OK - Listed global resources of all types",
                                      "UserDatabase:org.apache.catalina.UserDatabase"]
    assert node.text("nosuch") == ["FAIL - Unknown command [/nosuch]"]
    assert node.text("") == ["FAIL - No command was specified"]
    assert node.text("stop?path=nope") == ["FAIL - Invalid context path [nope] was specified"]
    assert node.text("stop?path=/nope") == ["FAIL - No context exists named [/nope]"]
    assert node.text("stop?path=/manager") == ["FAIL - The manager cannot reload, undeploy, stop, or undeploy itself"]


def test_stop_start_reload_sessions_expire(node):
    assert node.get("/hello/hello") == (200, "hello folder\n")
    # two sessions in /hello
    for _ in range(2):
        assert node.get("/hello/hello?session=1")[0] == 200
    assert listed(node)["/hello"] == ("running", 2, "hello")
    assert node.text("sessions?path=/hello") == [
        "OK - Session information for application at context path [/hello]",
        "Default maximum session inactive interval is [30] minutes",
        "Inactive for [<1] minutes: [2] sessions"]
    # expire with idle=30: none is that idle (the positive control for the idle=0 below)
    assert node.text("expire?path=/hello&idle=30")[-1] == "Inactive for [>30] minutes: [0] sessions were expired"
    assert listed(node)["/hello"][1] == 2
    assert node.text("expire?path=/hello&idle=0")[-1] == "Inactive for [>0] minutes: [2] sessions were expired"
    assert listed(node)["/hello"][1] == 0

    assert node.text("stop?path=/hello") == ["OK - Stopped application at context path [/hello]"]
    assert listed(node)["/hello"] == ("stopped", 0, "hello")
    # Tomcat unmaps a stopped Context (404); pycat keeps it mapped and its valve answers 503
    assert node.get("/hello/hello")[0] == 503
    assert node.text("start?path=/hello") == ["OK - Started application at context path [/hello]"]
    assert node.get("/hello/hello") == (200, "hello folder\n")

    # reload picks up changed code without a tick (backgroundProcessorDelay is an hour)
    write_folder(os.path.join(node.base, "webapps", "hello"), "reloaded")
    assert node.text("reload?path=/hello") == ["OK - Reloaded application at context path [/hello]"]
    assert node.get("/hello/hello") == (200, "hello reloaded\n")

    log = node.log()
    for what in ("stop", "start", "reload", "expire(idle=0)"):
        assert re.search(r"Manager: %s /hello by user \[deployer\] from \[127\.0\.0\.1\]: OK"
                         % re.escape(what), log), what


def test_deploy_local_war_and_folder_undeploy(node, tmp_path):
    war = tmp_path / "shop.war"
    war.write_bytes(war_bytes("war"))
    assert node.text("deploy?path=/shop&war=file:%s" % war) == ["OK - Deployed application at context path [/shop]"]
    assert node.get("/shop/hello") == (200, "hello war\n")
    assert listed(node)["/shop"] == ("running", 0, "shop")
    # deploying over it needs update=true (Tomcat's rule)
    assert node.text("deploy?path=/shop&war=%s" % war) == ["FAIL - Application already exists at path [/shop]"]
    war.write_bytes(war_bytes("war2"))
    assert node.text("deploy?path=/shop&war=%s&update=true" % war) == \
        ["OK - Deployed application at context path [/shop]"]
    assert node.get("/shop/hello") == (200, "hello war2\n")

    # a folder; without path= the name comes from the folder's (Tomcat's ContextName.extractFromPath)
    folder = write_folder(tmp_path / "blog", "dir")
    assert node.text("deploy?war=%s" % folder) == ["OK - Deployed application at context path [/blog]"]
    assert node.get("/blog/hello") == (200, "hello dir\n")
    assert os.path.isdir(os.path.join(node.base, "webapps", "blog"))

    # a version
    assert node.text("deploy?path=/shop&version=3&war=%s" % war) == \
        ["OK - Deployed application at context path [/shop##3]"]
    assert listed(node)["/shop##3"][0] == "running"

    # undeploy: the app is gone and so are its files; what server.xml has not made is refused
    assert node.text("undeploy?path=/blog") == ["OK - Undeployed application at context path [/blog]"]
    assert node.get("/blog/hello")[0] == 404
    assert not os.path.exists(os.path.join(node.base, "webapps", "blog"))
    assert node.text("undeploy?path=/blog") == ["FAIL - No context exists named [/blog]"]
    assert node.text("undeploy?path=/manager") == ["FAIL - The manager cannot reload, undeploy, stop, or undeploy itself"]

    # a missing source, a relative one
    assert node.text("deploy?path=/x&war=/nonexistent/x.war")[0].startswith("FAIL - Encountered exception [")
    assert node.text("deploy?path=/x&war=x.war")[0].startswith("FAIL - Encountered exception [")
    assert node.get("/x/hello")[0] == 404
    assert re.search(r"Manager: undeploy /blog by user \[deployer\] from \[127\.0\.0\.1\]: OK", node.log())


def test_put_upload_bounded(node):
    body = war_bytes("uploaded")
    assert node.text("deploy?path=/up", "PUT", body) == ["OK - Deployed application at context path [/up]"]
    assert node.get("/up/hello") == (200, "hello uploaded\n")
    assert node.text("deploy?path=/up", "PUT", body) == ["FAIL - Application already exists at path [/up]"]
    assert node.text("deploy?path=/up&update=true", "PUT", war_bytes("again")) == \
        ["OK - Deployed application at context path [/up]"]
    assert node.get("/up/hello") == (200, "hello again\n")
    # a body that is not a WAR: the deploy fails, nothing is left in appBase, /up2 is not served
    assert node.text("deploy?path=/up2", "PUT", b"not a zip") == \
        ["FAIL - Failed to deploy application at context path [/up2]"]
    assert node.get("/up2/hello")[0] == 404
    webapps = os.path.join(node.base, "webapps")
    assert not [n for n in os.listdir(webapps) if n.startswith((".up", "up2"))], os.listdir(webapps)

    # over maxUploadSize (50 MiB): refused from Content-Length before anything is read
    status, _, text = node.request("PUT", "/manager/text/deploy?path=/big", "deployer", "s3cret",
                                   headers={"Content-Length": str(50 * 1024 * 1024 + 1)}, body=b"")
    assert status == 413 and text.startswith("FAIL - Encountered exception [")
    assert node.get("/big/hello")[0] == 404
    assert re.search(r"Manager: deploy\(upload\) /up by user \[deployer\] from \[127\.0\.0\.1\]: OK", node.log())


def test_without_a_manager_user_the_page_says_how_to_add_one(tmp_path, procs):
    # the shipped tomcat-users.xml (no user at all)
    node = start_node(tmp_path, procs, users=None)
    assert "<user " not in re.sub(r"<!--.*?-->", "", read(os.path.join(node.base, "conf", "tomcat-users.xml")),
                                  flags=re.S)
    status, hdrs, body = node.request("GET", "/manager/text/list")
    assert status == 401 and "www-authenticate" in hdrs
    assert 'roles="manager-script"' in body and "conf/tomcat-users.xml" in body
    status, _, body = node.request("GET", "/manager/text/list", "admin", "admin")
    assert status == 401 and "manager-script" in body
