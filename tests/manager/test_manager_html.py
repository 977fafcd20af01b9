"""/manager/html (webapps/manager/WEB-INF/classes/manager_html.py) on a real `pycat run` node, driven
over HTTP as a browser would (cookies, BASIC credentials, the forms' action URLs with their CSRF
nonce) and parsed with lxml.html; plus the pure parts (the streaming multipart reader, the upload
name rules) with hostile inputs.

The cluster page's turnover action and the replication times are tested on test_manager_status.py's
two-node cluster."""
import base64
import http.client
import io
import os
import re
import sys
import urllib.parse
import zipfile

import lxml.html
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
# the manager's own modules, for the unit tests of its pure parts
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "webapps", "manager", "WEB-INF", "classes"))

from node_helpers import Procs, wait_until  # noqa: E402
from test_manager_text import start_node, war_bytes, write_folder  # noqa: E402

import manager_html  # noqa: E402
from multipart_stream import MultipartError, MultipartReader, boundary_of  # noqa: E402

NONCE = "org.apache.catalina.filters.CSRF_NONCE"
USERS = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <user username="admin" password="a-pw" roles="manager-gui"/>
  <user username="deployer" password="s3cret" roles="manager-script"/>
  <user username="watcher" password="w-pw" roles="manager-status"/>
</tomcat-users>
"""
MiB = 1024 * 1024


# -- the pure parts ----------------------------------------------------------------------------------
def multipart(parts, boundary="b0undary"):
    """A multipart/form-data body: parts are (name, filename or None, bytes)."""
    out = b""
    for name, filename, data in parts:
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out += b"--" + boundary.encode() + b"\r\nContent-Disposition: " + disp.encode("utf-8") + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def events_of(reader, body, step=None):
    """All events of feeding body (in slices of ``step`` bytes), consecutive data joined."""
    events = []
    for i in range(0, len(body), step or len(body) or 1):
        for event in reader.feed(body[i:i + (step or len(body))]):
            if event[0] == "data" and events and events[-1][0] == "data":
                events[-1] = ("data", events[-1][1] + event[1])
            else:
                events.append(event)
    reader.finish()
    return events


def test_multipart_reader_streams_the_parts_whatever_the_chunking():
    # data that nearly holds the delimiter (CRLF--b0undar, --b0undary without its CRLF) must survive
    war = b"PK\x03\x04" + bytes(range(256)) * 3 + b"\r\n--b0undar\r\nx--b0undary-not\x00end\r\n"
    body = b"a preamble to skip\r\n" + multipart([("x", None, b"field"), ("deployWar", "shop.war", war)]) + b"epilogue"
    expected = [("part", "x", None), ("data", b"field"), ("end",), ("part", "deployWar", "shop.war"),
                ("data", war), ("end",)]
    for step in (None, 1, 2, 7, 64, 4096):
        reader = MultipartReader("b0undary")
        events = [e[:3] if e[0] == "part" else e for e in events_of(reader, body, step)]
        assert events == expected, step
        assert reader.done
    # an empty part, and a body without a preamble
    reader = MultipartReader("b0undary")
    assert [e[:3] if e[0] == "part" else e for e in events_of(reader, multipart([("deployWar", "e.war", b"")]))] == \
        [("part", "deployWar", "e.war"), ("end",)]
    # what the reader holds stays small however long a part is: one delimiter's length at most
    reader = MultipartReader("b0undary")
    reader.feed(b"--b0undary\r\nContent-Disposition: form-data; name=\"deployWar\"; filename=\"a.war\"\r\n\r\n")
    for _ in range(64):
        reader.feed(b"x" * 65536)
        assert len(reader.buf) < 32


def test_multipart_reader_refuses_hostile_bodies():
    # no boundary in the Content-Type, or not multipart at all
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=", "text/plain; boundary=x",
                  "multipart/form-data; boundary=" + "x" * 300, ""):
        with pytest.raises(MultipartError):
            boundary_of(ctype)
    assert boundary_of('multipart/form-data; boundary="a b"') == "a b"

    def fails(body, **limits):
        reader = MultipartReader("b0undary", **limits)
        with pytest.raises(MultipartError):
            for i in range(0, len(body), 1000):
                reader.feed(body[i:i + 1000])
            reader.finish()
        return reader

    # a huge header block is refused once it passes the limit, not buffered to its end
    huge = b"--b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: " + b"p" * (10 * MiB)
    reader = fails(huge, max_header_size=8192)
    assert len(reader.buf) < 8192 + 1000
    # a body that never opens a boundary: refused after max_header_size bytes of preamble
    fails(b"z" * (1 * MiB))
    # truncated: no closing delimiter
    fails(multipart([("deployWar", "a.war", b"PK")])[:-20])
    fails(b"--b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue")
    # malformed: a header line without a colon, a part without form-data/name, a delimiter
    # followed by something other than CRLF or "--"
    fails(b"--b0undary\r\nno colon here\r\n\r\nx\r\n--b0undary--")
    fails(b"--b0undary\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0undary--")
    fails(b"--b0undary\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b0undary--")
    fails(b"--b0undaryXX\r\n")
    # too many parts
    fails(multipart([("f%d" % i, None, b"v") for i in range(20)]), max_parts=16)
    # the positive control: the same shapes within the limits pass
    reader = MultipartReader("b0undary", max_parts=20)
    assert sum(1 for e in events_of(reader, multipart([("f%d" % i, None, b"v") for i in range(20)]))
               if e[0] == "part") == 20


def test_upload_names_follow_tomcat_and_refuse_tricks():
    name = manager_html.upload_context_name
    cn, problem = name("shop.war")
    assert problem is None and cn.name == "/shop"
    assert name("shop##2.war")[0].display == "/shop##2"
    assert name("ROOT.war")[0].name == ""
    assert name("a#b.WAR")[0].name == "/a/b"
    # folders in the client's name are dropped (a browser on Windows sends the full path)
    assert name("../../etc/evil.war")[0].name == "/evil"
    assert name("..\\..\\evil.war")[0].name == "/evil"
    assert name("C:\\builds\\shop.war")[0].name == "/shop"
    # not a WAR, no name, an empty name (a form sent with no file chosen)
    assert name(None) == (None, "FAIL - File uploaded [None] must be a .war")
    assert name("") == (None, "FAIL - File uploaded [] must be a .war")
    assert name("shop.zip") == (None, "FAIL - File uploaded [shop.zip] must be a .war")
    assert name("../") == (None, "FAIL - File uploaded [] must be a .war")
    # names no app may have
    assert name("sh\x00op.war") == (None, "FAIL - Invalid context path [sh\\x00op.war] was specified")
    assert name("a\x1bb.war")[1].startswith("FAIL - Invalid context path [a\\x1bb.war]")
    assert name("..war") == (None, "FAIL - Invalid context path [..war] was specified")
    assert name(".war") == (None, "FAIL - Invalid context path [.war] was specified")
    assert name("x##.war")[1] == "FAIL - Invalid context path [x##.war] was specified"


# -- a node ----------------------------------------------------------------------------------------
class Browser:
    """A user agent: BASIC credentials, the manager's session cookie, and forms submitted as a
    browser does (POST to the form's action URL)."""

    def __init__(self, node, user="admin", password="a-pw", headers=None):
        self.node, self.user, self.password = node, user, password
        self.cookie = None
        self.headers = dict(headers or {})
        self.last = None

    def request(self, method, path, body=None, headers=None, keep_cookie=True):
        """(status, headers dict, text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=60)
        try:
            hdrs = dict(self.headers)
            hdrs.update(headers or {})
            if self.user is not None:
                hdrs["Authorization"] = "Basic " + base64.b64encode(
                    ("%s:%s" % (self.user, self.password)).encode()).decode()
            if self.cookie:
                hdrs["Cookie"] = "JSESSIONID=" + self.cookie
            encode_chunked = hdrs.pop("_chunked", False)
            conn.request(method, path, body=body, headers=hdrs, encode_chunked=encode_chunked)
            resp = conn.getresponse()
            status, rh, text = resp.status, {k.lower(): v for k, v in resp.getheaders()}, \
                resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        m = re.search(r"JSESSIONID=([^;]+)", rh.get("set-cookie", ""))
        if m and keep_cookie:
            self.cookie = m.group(1)
        return status, rh, text

    def page(self, path="/manager/html"):
        status, headers, text = self.request("GET", path)
        assert status == 200, (status, text[:500])
        return lxml.html.fromstring(text)

    def post(self, action, fields=None):
        body = urllib.parse.urlencode(fields or {})
        return self.request("POST", action, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def act(self, doc, path, command, **fields):
        """Submit the ``command`` form of the app at ``path``; returns (status, the new page)."""
        form = app_row(doc, path).xpath('.//form[contains(@class, "action-%s")]' % command)
        assert len(form) == 1, command
        form = form[0]
        data = {i.get("name"): i.get("value") or "" for i in form.xpath(".//input[@name]")}
        data.update(fields)
        status, _, text = self.post(form.get("action"), data)
        return status, lxml.html.fromstring(text) if text.strip() else None

    def upload(self, doc, filename, data, field="deployWar", headers=None, chunked=False):
        """POST a WAR through the page's upload form. ``doc`` None: the page the last upload
        answered (each answer carries a new nonce; the session keeps only the 5 latest)."""
        form = (doc if doc is not None else self.last).get_element_by_id("upload")
        body = multipart([(field, filename, data)])
        hdrs = {"Content-Type": "multipart/form-data; boundary=b0undary"}
        hdrs.update(headers or {})
        if chunked:
            hdrs["_chunked"] = True
        status, _, text = self.request("POST", form.get("action"), body, hdrs)
        if status == 200:
            self.last = lxml.html.fromstring(text)
        return status, text


def app_row(doc, path):
    rows = doc.xpath('//table[@id="apps"]//tr[@data-path=$p]', p=path)
    assert len(rows) == 1, (path, [r.get("data-path") for r in doc.xpath('//tr[@class]')])
    return rows[0]


def cell(doc, path, name):
    return app_row(doc, path).xpath('./td[@class=$c]', c=name)[0].text_content().strip()


def message(doc):
    return doc.get_element_by_id("message").text_content()


def nonce_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)[NONCE][0]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    procs = Procs()
    try:
        yield start_node(tmp_path_factory.mktemp("mhtml"), procs, users=USERS)
    finally:
        procs.cleanup()


def test_list_page_contract(node):
    browser = Browser(node)
    status, headers, text = browser.request("GET", "/manager/html")
    assert status == 200 and headers["content-type"].startswith("text/html")
    # frames, sniffing, caches and Referer headers (the nonce is in URLs) are all kept out
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    assert "samesite=strict" in headers["set-cookie"].lower() and "path=/manager" in headers["set-cookie"].lower()
    doc = lxml.html.fromstring(text)
    assert not doc.xpath('//*[@id="message"]')          # a message comes with an action only
    paths = [r.get("data-path") for r in doc.xpath('//table[@id="apps"]//tr[contains(@class, "app")]')]
    assert {"/", "/hello", "/manager"} <= set(paths), paths
    for path in ("/", "/hello", "/manager"):
        row = app_row(doc, path)
        assert row.xpath('./td[@class="path"]')[0].text_content() == path
        assert cell(doc, path, "state") == "running"
        assert cell(doc, path, "sessions") == ("0" if path != "/manager" else cell(doc, path, "sessions"))
        assert cell(doc, path, "sessions").isdigit()
        nonces = set()
        for command in ("start", "stop", "reload", "undeploy", "expire"):
            forms = row.xpath('.//form[@method="post" and contains(@class, "action-%s")]' % command)
            assert len(forms) == 1, (path, command)
            assert len(forms[0].xpath('.//button[@type="submit"]')) == 1
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(forms[0].get("action")).query)
            assert forms[0].get("action").startswith("/manager/html/" + command + "?")
            assert query["path"] == [path]
            nonces.add(query[NONCE][0])
        assert len(nonces) == 1 and re.fullmatch(r"[0-9A-F]{32}", nonces.pop())
        assert len(row.xpath('.//form[contains(@class, "action-expire")]//input[@name="idle"]')) == 1
    upload = doc.get_element_by_id("upload")
    assert upload.get("method") == "post" and upload.get("enctype") == "multipart/form-data"
    assert NONCE in upload.get("action")
    assert len(upload.xpath('.//input[@type="file" and @name="deployWar"]')) == 1
    assert doc.get_element_by_id("upload-submit").get("type") == "submit"
    info = doc.get_element_by_id("serverinfo")
    assert info.tag == "table"
    fields = dict(zip([th.text_content() for th in info.xpath(".//th")], [td.text_content() for td in info.xpath(".//td")]))
    assert fields["Tomcat Version"].startswith("pycat/") and fields["JVM Version"].startswith(("CPython", "PyPy"))
    assert fields["OS Name"] and fields["Process ID"] == str(node.proc.pid)
    assert "<script" not in text
    # /manager/ links the four interfaces
    status, _, index = Browser(node, user=None).request("GET", "/manager/")
    links = {a.get("href") for a in lxml.html.fromstring(index).xpath("//a")}
    assert {"html", "status", "cluster", "text/list"} <= links


def test_actions_change_the_container(node, tmp_path):
    browser = Browser(node)
    visitor = Browser(node, user=None)
    for _ in range(2):
        assert visitor.request("GET", "/hello/hello?session=1", keep_cookie=False)[0] == 200
    doc = browser.page()
    assert cell(doc, "/hello", "sessions") == "2"

    # expire: idle >= 30 minutes expires none (the control), idle >= 0 all of them
    status, doc = browser.act(doc, "/hello", "expire", idle="30")
    assert status == 200 and message(doc).startswith("OK - Session information for application at context path [/hello]")
    assert message(doc).endswith("Inactive for [>30] minutes: [0] sessions were expired")
    assert cell(doc, "/hello", "sessions") == "2"
    status, doc = browser.act(doc, "/hello", "expire", idle="0")
    assert message(doc).endswith("Inactive for [>0] minutes: [2] sessions were expired")
    assert cell(doc, "/hello", "sessions") == "0"

    # stop: the app answers 503 (a stopped app); start: 200 again
    status, doc = browser.act(doc, "/hello", "stop")
    assert status == 200, lxml.html.tostring(doc)[:3000]
    assert message(doc) == "OK - Stopped application at context path [/hello]"
    assert cell(doc, "/hello", "state") == "stopped"
    assert visitor.request("GET", "/hello/hello")[0] == 503
    status, doc = browser.act(doc, "/hello", "start")
    assert message(doc) == "OK - Started application at context path [/hello]"
    assert cell(doc, "/hello", "state") == "running"
    assert visitor.request("GET", "/hello/hello")[::2] == (200, "hello folder\n")

    # reload picks up new code
    write_folder(os.path.join(node.base, "webapps", "hello"), "reloaded")
    status, doc = browser.act(doc, "/hello", "reload")
    assert message(doc) == "OK - Reloaded application at context path [/hello]"
    assert visitor.request("GET", "/hello/hello")[::2] == (200, "hello reloaded\n")

    # the manager cannot stop itself; a GET of an action URL (with a good nonce) changes nothing
    status, doc = browser.act(doc, "/manager", "stop")
    assert message(doc) == "FAIL - The manager cannot reload, undeploy, stop, or undeploy itself"
    stop_url = app_row(doc, "/hello").xpath('.//form[contains(@class, "action-stop")]')[0].get("action")
    status, _, text = browser.request("GET", stop_url)
    assert status == 200
    assert message(lxml.html.fromstring(text)) == \
        "FAIL - Tried to use command [/stop] via a GET request but POST is required"
    assert visitor.request("GET", "/hello/hello")[0] == 200

    # deploy a folder and a WAR from this machine, then undeploy one
    folder = write_folder(tmp_path / "blog", "dir")
    form = doc.get_element_by_id("deploy")
    status, _, text = browser.post(form.get("action"), {"deployPath": "/blog", "deployWar": folder})
    doc = lxml.html.fromstring(text)
    assert message(doc) == "OK - Deployed application at context path [/blog]"
    assert visitor.request("GET", "/blog/hello")[::2] == (200, "hello dir\n")
    war = tmp_path / "shop##3.war"
    war.write_bytes(war_bytes("war"))
    status, _, text = browser.post(doc.get_element_by_id("deploy").get("action"), {"deployWar": str(war)})
    doc = lxml.html.fromstring(text)
    assert message(doc) == "OK - Deployed application at context path [/shop##3]"
    rows = doc.xpath('//tr[@data-path="/shop"]')
    assert len(rows) == 1 and rows[0].get("data-version") == "3"
    assert rows[0].xpath('./td[@class="version"]')[0].text_content() == "3"
    status, _, text = browser.post(doc.get_element_by_id("deploy").get("action"), {"deployWar": "relative.war"})
    assert message(lxml.html.fromstring(text)).startswith("FAIL - ")
    status, _, text = browser.post(lxml.html.fromstring(text).get_element_by_id("deploy").get("action"),
                                   {"deployWar": str(war) + "\nManager: forged line"})
    doc = lxml.html.fromstring(text)
    assert message(doc) == "FAIL - Invalid context path [%s\\nManager: forged line] was specified" % war
    assert "\nManager: forged line" not in node.log()
    status, doc = browser.act(doc, "/blog", "undeploy")
    assert message(doc) == "OK - Undeployed application at context path [/blog]"
    assert not doc.xpath('//tr[@data-path="/blog"]')
    assert visitor.request("GET", "/blog/hello")[0] == 404
    assert not os.path.exists(os.path.join(node.base, "webapps", "blog"))

    # every change is in the audit log with the user and the address
    log = node.log()
    for what in ("expire\\(idle=0\\) /hello", "stop /hello", "start /hello", "reload /hello",
                 "deploy\\(war=%s\\) /blog" % re.escape(folder), "undeploy /blog"):
        assert re.search(r"Manager: %s by user \[admin\] from \[127\.0\.0\.1\]: OK - " % what, log), what


def test_upload_a_war(node):
    browser = Browser(node)
    doc = browser.page()
    status, text = browser.upload(doc, "up.war", war_bytes("uploaded"))
    doc = lxml.html.fromstring(text)
    assert status == 200 and message(doc) == "OK - Deployed application at context path [/up]"
    assert cell(doc, "/up", "state") == "running"
    assert Browser(node, user=None).request("GET", "/up/hello")[::2] == (200, "hello uploaded\n")
    webapps = os.path.join(node.base, "webapps")
    assert os.path.isfile(os.path.join(webapps, "up.war"))
    # the same name again: Tomcat's answer, nothing replaced
    status, text = browser.upload(None, "up.war", war_bytes("again"))
    assert message(lxml.html.fromstring(text)) == "FAIL - War file [up.war] already exists on server"
    assert Browser(node, user=None).request("GET", "/up/hello")[2] == "hello uploaded\n"
    # folders in the name are dropped: it lands in appBase as evil.war, nowhere else
    status, text = browser.upload(None, "../../evil.war", war_bytes("evil"))
    assert message(lxml.html.fromstring(text)) == "OK - Deployed application at context path [/evil]"
    assert os.path.isfile(os.path.join(webapps, "evil.war"))
    assert not os.path.exists(os.path.join(node.base, "evil.war"))
    # a version from the name; chunked transfer works too
    status, text = browser.upload(None, "C:\\builds\\up##2.war", war_bytes("v2"), chunked=True)
    assert message(lxml.html.fromstring(text)) == "OK - Deployed application at context path [/up##2]"
    # refused names, a part without a file name, no WAR part, not a zip
    for filename, field, answer in (
            ("bad\x00.war", "deployWar", "FAIL - Invalid context path [bad\\x00.war] was specified"),
            ("notes.txt", "deployWar", "FAIL - File uploaded [notes.txt] must be a .war"),
            (None, "deployWar", "FAIL - File uploaded [None] must be a .war"),
            ("x.war", "other", "FAIL - File upload failed, no file")):
        status, text = browser.upload(None, filename, war_bytes("x"), field=field)
        assert status == 200 and message(lxml.html.fromstring(text)) == answer, filename
    status, text = browser.upload(None, "junk.war", b"not a zip")
    assert message(lxml.html.fromstring(text)) == "FAIL - Failed to deploy application at context path [/junk]"
    assert Browser(node, user=None).request("GET", "/junk/hello")[0] == 404
    # not multipart at all
    status, _, text = browser.request("POST", browser.last.get_element_by_id("upload").get("action"), b"x=1",
                                      {"Content-Type": "application/x-www-form-urlencoded"})
    assert message(lxml.html.fromstring(text)).startswith("FAIL - Deploy Upload Failed, Exception: [")
    # nothing half-written stays in appBase
    assert not [n for n in os.listdir(webapps) if n.startswith(".") or n.startswith("junk")], os.listdir(webapps)
    assert re.search(r"Manager: deploy\(upload up\.war\) /up by user \[admin\] from \[127\.0\.0\.1\]: OK - ", node.log())


def war_with_payload(tag, size):
    """The hello WAR plus ``size`` random bytes stored in it (a WAR of about that size)."""
    buf = io.BytesIO(war_bytes(tag))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(zipfile.ZipInfo("payload.bin"), os.urandom(size), compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def _peak_rss(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _body(total, block=MiB):
    """``total`` bytes of a multipart body, made as they are sent (never held whole here either)."""
    head = b'--b0undary\r\nContent-Disposition: form-data; name="deployWar"; filename="big.war"\r\n\r\n'
    yield head
    left = total - len(head)
    while left > 0:
        n = min(block, left)
        yield b"\0" * n
        left -= n


def test_oversize_upload_is_refused_while_reading(node):
    browser = Browser(node)
    doc = browser.page()
    action = doc.get_element_by_id("upload").get("action")
    ctype = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    peak = _peak_rss(node.proc.pid)
    size = 60 * MiB
    # a Content-Length over maxUploadSize: refused before anything is read
    status, _, text = browser.request("POST", action, _body(size), dict(ctype, **{"Content-Length": str(size)}))
    assert status == 413
    assert message(lxml.html.fromstring(text)) == ("FAIL - Deploy Upload Failed, Exception: [the request body of "
                                                   "%d bytes is larger than maxUploadSize (52428800 bytes)]" % size)
    # chunked, so no length is known: refused when the 50 MiB are passed, the part written so far removed
    status, _, text = browser.request("POST", action, _body(size), dict(ctype, _chunked=True))
    assert status == 413
    assert message(lxml.html.fromstring(text)) == ("FAIL - Deploy Upload Failed, Exception: [the request body is "
                                                   "larger than maxUploadSize (52428800 bytes)]")
    grown = _peak_rss(node.proc.pid) - peak
    # holding either body would have grown the node's peak by 50 MiB or more
    assert grown < 16 * MiB, grown
    webapps = os.path.join(node.base, "webapps")
    assert not [n for n in os.listdir(webapps) if "big" in n or n.endswith(".upload")], os.listdir(webapps)
    assert Browser(node, user=None).request("GET", "/big/hello")[0] == 404
    # the node still serves, and a WAR under the limit still deploys (the positive control)
    assert Browser(node, user=None).request("GET", "/hello/hello")[0] == 200
    status, text = browser.upload(browser.page(), "small.war", war_with_payload("small", 4 * MiB))
    assert message(lxml.html.fromstring(text)) == "OK - Deployed application at context path [/small]"


def test_csrf_nonce_required_for_every_change(node):
    visitor = Browser(node, user=None)
    one, other = Browser(node), Browser(node)
    doc_one, doc_other = one.page(), other.page()
    assert one.cookie and other.cookie and one.cookie != other.cookie
    stop_one = app_row(doc_one, "/hello").xpath('.//form[contains(@class, "action-stop")]')[0].get("action")
    stop_other = app_row(doc_other, "/hello").xpath('.//form[contains(@class, "action-stop")]')[0].get("action")
    bare = stop_one.split("&" + NONCE)[0]
    assert "path=/hello" in bare and NONCE not in bare
    wrong = bare + "&%s=%s" % (NONCE, "0" * 32)

    def running():
        return visitor.request("GET", "/hello/hello")[0] == 200

    assert running()
    refused = [
        one.post(bare),                       # no nonce
        one.post(wrong),                      # a nonce never issued
        one.post(stop_other),                 # another session's nonce
        one.request("GET", bare),             # a GET of the action URL without a nonce
        Browser(node).post(stop_one),         # the right nonce without its session
        one.post(bare, {NONCE: "0" * 32}),    # a wrong one in the form body
    ]
    for status, _, text in refused:
        assert status == 403 and "CSRF" in text
        assert running()
    # an upload without a nonce is refused before its body is read; nothing is deployed
    status, _, _ = one.request("POST", "/manager/html/upload", multipart([("deployWar", "sneaky.war", war_bytes("s"))]),
                               {"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert status == 403 and visitor.request("GET", "/sneaky/hello")[0] == 404
    # the positive control: the same POST with this session's nonce stops the app
    status, _, text = one.post(stop_one)
    assert status == 200 and message(lxml.html.fromstring(text)) == "OK - Stopped application at context path [/hello]"
    assert visitor.request("GET", "/hello/hello")[0] == 503
    # the nonce in the form body works as well as in the URL
    start = app_row(lxml.html.fromstring(text), "/hello").xpath('.//form[contains(@class, "action-start")]')[0]
    status, _, text = one.post(start.get("action").split("&" + NONCE)[0], {NONCE: nonce_of(start.get("action"))})
    assert status == 200 and message(lxml.html.fromstring(text)) == "OK - Started application at context path [/hello]"
    assert running()
    # the session keeps the 5 latest nonces (Tomcat's nonceCacheSize): the 6th page later, the first is stale
    first = app_row(one.page(), "/hello").xpath('.//form[contains(@class, "action-reload")]')[0].get("action")
    for _ in range(4):
        one.page()
    assert one.post(first)[0] == 200              # 5 issued since, counting this one's page: still known
    for _ in range(5):
        one.page()
    assert one.post(first)[0] == 403
    assert re.search(r"Manager: POST /manager/html/stop refused: no valid CSRF nonce \(user \[admin\] "
                     r"from \[127\.0\.0\.1\]\)", node.log())


def test_roles_and_local_clients_only(node):
    # no credentials: 401 naming the realm and telling how to add a manager-gui user
    status, headers, text = Browser(node, user=None).request("GET", "/manager/html")
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="Tomcat Manager Application"'
    assert "manager-gui" in text
    assert Browser(node, "admin", "wrong").request("GET", "/manager/html")[0] == 401
    # manager-script and manager-status users may not use the HTML interface (Tomcat's rule)
    for user, password in (("deployer", "s3cret"), ("watcher", "w-pw")):
        status, _, text = Browser(node, user, password).request("GET", "/manager/html")
        assert status == 403 and "manager-gui" in text, user
    # and manager-gui does not drive the text interface (whose requests carry no nonce)
    assert Browser(node).request("GET", "/manager/text/list")[0] == 403
    assert Browser(node, "deployer", "s3cret").request("GET", "/manager/text/list")[0] == 200
    # a client that is not on this machine (as the Host's RemoteIpValve reports it: the TCP peer
    # 127.0.0.1 is a trusted proxy) is refused even with the role and a valid nonce
    near = Browser(node, headers={"X-Forwarded-For": "127.0.0.7"})
    doc = near.page()                                    # the positive control: a local client gets in
    stop = app_row(doc, "/hello").xpath('.//form[contains(@class, "action-stop")]')[0].get("action")
    far = Browser(node, headers={"X-Forwarded-For": "203.0.113.9"})
    far.cookie = near.cookie
    status, _, text = far.request("GET", "/manager/html")
    assert status == 403 and "same machine" in text
    status, _, text = far.post(stop)
    assert status == 403 and "same machine" in text
    assert Browser(node, user=None).request("GET", "/hello/hello")[0] == 200
    # the local client with the same session and nonce does get through
    status, _, text = near.post(app_row(doc, "/hello").xpath('.//form[contains(@class, "action-reload")]')[0]
                                .get("action"))
    assert status == 200 and message(lxml.html.fromstring(text)) == "OK - Reloaded application at context path [/hello]"
    wait_until(lambda: Browser(node, user=None).request("GET", "/hello/hello")[0] == 200, timeout=10,
               message="/hello to serve after the reload")


def test_turnover_without_a_cluster_says_so(node):
    # the two-node case is in test_manager_status.py; a node without a cluster has nothing to switch
    browser = Browser(node)
    doc = browser.page("/manager/cluster")
    assert doc.get_element_by_id("turnover-state").text_content() == "no JvmRouteBinderValve"
    form = doc.get_element_by_id("turnover")
    assert form.get("method") == "post" and NONCE in form.get("action")
    status, _, text = browser.post(form.get("action"), {"enabled": "true"})
    assert status == 200
    assert message(lxml.html.fromstring(text)) == "FAIL - this node has no cluster with a JvmRouteBinderValve"
    status, _, text = browser.post(form.get("action"), {"enabled": "maybe"})
    assert message(lxml.html.fromstring(text)) == "FAIL - The enabled parameter must be true or false, not [maybe]"
    status, _, body = browser.request("GET", "/manager/cluster/json")
    assert status == 200 and '"turnover": null' in body
