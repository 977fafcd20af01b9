"""ErrorReportValve, RemoteAddrValve/RemoteHostValve and RemoteIpValve."""
import pytest

from pycat.valves.error_report import ErrorReportValve, render
from pycat.valves.remote_addr import RemoteAddrValve, RemoteHostValve
from pycat.valves.remote_ip import RemoteIpValve
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, get

pytestmark = pytest.mark.timeout(30)


class Boom(HttpServlet):
    def do_get(self, request, response):
        raise KeyError("secret-detail")


class Who(HttpServlet):
    def do_get(self, request, response):
        response.write("%s %s %s %s %s" % (request.remote_addr, request.scheme, request.secure,
                                           request.server_port, request.get_header("x-forwarded-for")))


def tree_with(tmp_path, **kw):
    return Tree(tmp_path, contexts={"/app": {"servlets": [("boom", Boom(), ["/boom"]), ("who", Who(), ["/who"])]}},
                **kw)


def test_error_report_shows_report_by_default(tmp_path):
    tree = tree_with(tmp_path)
    try:
        status, headers, body = get(tree.port, "/app/boom")
        assert status == 500 and headers["content-type"] == "text/html;charset=utf-8"
        assert b"Exception Report" in body and b"secret-detail" in body and b"Traceback" in body
        assert b"pycat/" in body
    finally:
        tree.stop()


def test_error_report_show_report_false_never_leaks(tmp_path):
    valve = ErrorReportValve()
    valve.show_report = False
    valve.show_server_info = False
    tree = tree_with(tmp_path, host_valves=[valve])
    try:
        status, _, body = get(tree.port, "/app/boom")
        assert status == 500 and b"HTTP Status 500" in body
        for leak in (b"secret-detail", b"Traceback", b"KeyError", b"pycat/", b"Description"):
            assert leak not in body
        assert [type(v) for v in tree.host.pipeline.valves] == [ErrorReportValve]   # no second one added
    finally:
        tree.stop()


def test_render_escapes_messages():
    page = render(404, "<img src=x>")
    assert "<img" not in page and "&lt;img src=x&gt;" in page


def test_remote_addr_deny_and_allow(tmp_path):
    deny = RemoteAddrValve()
    deny.deny = r"127\.0\.0\.\d+"
    tree = tree_with(tmp_path, engine_valves=[deny])
    try:
        assert get(tree.port, "/app/who")[0] == 403
        deny.deny = None
        deny.allow = r"10\..*"
        deny.deny_status = 404
        assert get(tree.port, "/app/who")[0] == 404
        deny.allow = r"127\.0\.0\.1"
        assert get(tree.port, "/app/who")[0] == 200
    finally:
        tree.stop()


def test_remote_addr_with_connector_port(tmp_path):
    valve = RemoteAddrValve()
    valve.add_connector_port = True
    # on the Context, inside the Host's ErrorReportValve (Tomcat's order: Host valves, then the report)
    tree = tree_with(tmp_path, context_valves=[valve])
    try:
        valve.allow = r"127\.0\.0\.1;%d" % tree.port
        assert get(tree.port, "/app/who")[0] == 200
        valve.allow = r"127\.0\.0\.1;1"
        status, _, body = get(tree.port, "/app/who")
        assert status == 403 and b"HTTP Status 403" in body       # rendered by the ErrorReportValve
    finally:
        tree.stop()


def test_remote_host_valve_uses_the_host_name(tmp_path):
    valve = RemoteHostValve()
    valve.deny = r"127\.0\.0\.1"          # no lookups: the host is the address, as Tomcat without enableLookups
    tree = tree_with(tmp_path, context_valves=[valve])
    try:
        assert get(tree.port, "/app/who")[0] == 403
    finally:
        tree.stop()


def test_remote_ip_rewrites_for_downstream(tmp_path):
    tree = tree_with(tmp_path, engine_valves=[RemoteIpValve()])
    try:
        body = get(tree.port, "/app/who", headers={"X-Forwarded-For": "198.51.100.9, 10.1.2.3",
                                                   "X-Forwarded-Proto": "https"})[2]
        assert body == b"198.51.100.9 https True 443 None"
        body = get(tree.port, "/app/who", headers={"X-Forwarded-For": "1.1.1.1, 2.2.2.2"})[2]
        assert body.startswith(b"2.2.2.2 http False ") and body.endswith(b" 1.1.1.1")
    finally:
        tree.stop()


def test_remote_ip_ignores_untrusted_peers(tmp_path):
    valve = RemoteIpValve()
    valve.internal_proxies = r"10\.9\.9\.9"
    tree = tree_with(tmp_path, engine_valves=[valve])
    try:
        body = get(tree.port, "/app/who", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"})[2]
        assert body.startswith(b"127.0.0.1 http False")
    finally:
        tree.stop()


def test_remote_ip_trusted_proxies_are_reported(tmp_path):
    valve = RemoteIpValve()
    valve.trusted_proxies = r"192\.0\.2\.\d+"

    class Proxies(HttpServlet):
        def do_get(self, request, response):
            response.write("%s|%s" % (request.remote_addr, request.get_header("x-forwarded-by")))
    tree = Tree(tmp_path, contexts={"": {"servlets": [("p", Proxies(), ["/p"])]}}, engine_valves=[valve])
    try:
        body = get(tree.port, "/p", headers={"X-Forwarded-For": "203.0.113.5, 192.0.2.1, 127.0.0.2"})[2]
        assert body == b"203.0.113.5|192.0.2.1"
    finally:
        tree.stop()


def test_remote_ip_old_attribute_name_is_an_alias():
    from pycat.attrs import set_property
    valve = RemoteIpValve()
    assert set_property(valve, "remoteIpProxiesHeader", "X-Via")
    assert valve.proxies_header == "X-Via"
    assert set_property(valve, "internalProxies", r"10\.0\.0\.1")
    assert valve.internal_proxies.fullmatch("10.0.0.1")


def test_error_report_valve_error_code_files(tmp_path):
    (tmp_path / "conf").mkdir(exist_ok=True)
    (tmp_path / "conf" / "404.html").write_text("<p>my own 404</p>")
    (tmp_path / "conf" / "key.html").write_text("<p>key error page</p>")
    from pycat.attrs import set_property
    valve = ErrorReportValve()
    assert set_property(valve, "errorCode.404", "conf/404.html")
    assert set_property(valve, "exceptionType.KeyError", "conf/key.html")
    assert not set_property(valve, "nonsense", "x")
    tree = tree_with(tmp_path, host_valves=[valve])
    try:
        assert get(tree.port, "/app/nothing") [2] == b"<p>my own 404</p>"
        status, _, body = get(tree.port, "/app/boom")
        assert (status, body) == (500, b"<p>key error page</p>")
    finally:
        tree.stop()


def test_remote_host_with_enable_lookups(tmp_path):
    import socket
    name = socket.gethostbyaddr("127.0.0.1")[0]
    valve = RemoteHostValve()
    valve.deny = re_escape(name)
    tree = tree_with(tmp_path, context_valves=[valve], connector_attrs={"enable_lookups": True})
    try:
        assert get(tree.port, "/app/who")[0] == 403
    finally:
        tree.stop()


def re_escape(text):
    import re
    return re.escape(text)
