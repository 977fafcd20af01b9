"""Pure pieces without sockets: web.xml elements and merge, filter matching, constraint finding,
CombinedRealm, user database reload."""
import os

from pycat.realm.constraints import find_constraints
from pycat.realm.realms import CombinedRealm, MemoryRealm
from pycat.webapp import web_xml
from pycat.webapp.filters import FilterMap, _match_url
from pycat.webapp.web_xml_ext import FilterMapping, ResourceCollection, SecurityConstraint

APP = b"""<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee">
  <filter><filter-name>f</filter-name><filter-class>m:F</filter-class>
    <init-param><param-name>k</param-name><param-value>v</param-value></init-param></filter>
  <filter-mapping><filter-name>f</filter-name><url-pattern>/a/*</url-pattern><url-pattern>*.x</url-pattern>
    <dispatcher>forward</dispatcher><dispatcher>ERROR</dispatcher></filter-mapping>
  <filter-mapping><filter-name>f</filter-name><servlet-name>s</servlet-name></filter-mapping>
  <listener><listener-class>m:L</listener-class></listener>
  <security-constraint>
    <web-resource-collection><url-pattern>/p/*</url-pattern><http-method-omission>GET</http-method-omission>
    </web-resource-collection>
    <auth-constraint/>
    <user-data-constraint><transport-guarantee>confidential</transport-guarantee></user-data-constraint>
  </security-constraint>
  <login-config><auth-method>form</auth-method><realm-name>R</realm-name>
    <form-login-config><form-login-page>/in.html</form-login-page><form-error-page>/bad.html</form-error-page>
    </form-login-config></login-config>
  <security-role><role-name>r1</role-name></security-role>
</web-app>"""


def test_parse_and_merge_the_new_elements():
    app = web_xml.parse_web_xml(APP)
    (f,) = app.filters
    assert (f.name, f.filter_class, f.init_params) == ("f", "m:F", {"k": "v"})
    m1, m2 = app.filter_mappings
    assert m1.url_patterns == ["/a/*", "*.x"] and m1.dispatchers == ("FORWARD", "ERROR")
    assert m2.servlet_names == ["s"] and m2.dispatchers == ("REQUEST",)
    assert app.listeners == ["m:L"]
    (c,) = app.security_constraints
    assert c.roles == [] and c.transport == "CONFIDENTIAL"
    assert c.collections[0].omitted_methods == ["GET"]
    lc = app.login_config
    assert (lc.auth_method, lc.realm_name, lc.form_login_page, lc.form_error_page) == \
        ("FORM", "R", "/in.html", "/bad.html")
    assert app.security_roles == ["r1"]
    defaults = web_xml.builtin_defaults()
    defaults.listeners = ["base:L"]
    merged = web_xml.merge(defaults, app)
    assert merged.listeners == ["base:L", "m:L"] and merged.filters == app.filters
    assert merged.login_config is lc and merged.security_constraints == app.security_constraints


def test_url_pattern_matching():
    assert _match_url("/*", "/anything")
    assert _match_url("/a/*", "/a") and _match_url("/a/*", "/a/b") and not _match_url("/a/*", "/ab")
    assert _match_url("*.x", "/d/f.x") and not _match_url("*.x", "/d.x/f")
    assert _match_url("/exact", "/exact") and not _match_url("/exact", "/exact/")
    assert _match_url("", "/") and not _match_url("/", "/foo")


def test_filter_map_order_and_dispatchers():
    fm = FilterMap([FilterMapping("byname", servlet_names=["s"]),
                    FilterMapping("two", url_patterns=["/*"]),
                    FilterMapping("one", url_patterns=["/a/*"], dispatchers=("REQUEST", "INCLUDE")),
                    FilterMapping("all", servlet_names=["*"], dispatchers=("ERROR",)),
                    FilterMapping("ghost", url_patterns=["/*"])],
                   {"byname": "N", "two": "T", "one": "O", "all": "A"})
    assert fm.match("/a/b", "s", "REQUEST") == ["T", "O", "N"]
    assert fm.match("/a/b", "s", "INCLUDE") == ["O"]
    assert fm.match("/z", "other", "ERROR") == ["A"]


def _c(patterns, roles=None, methods=(), omitted=()):
    return SecurityConstraint([ResourceCollection(list(patterns), list(methods), list(omitted))], roles)


def test_find_constraints_phases():
    exact = _c(["/a/b"])
    prefix_short = _c(["/a/*"], ["r"])
    prefix_long = _c(["/a/b/*"], ["r"])
    ext = _c(["*.jsp"], ["j"])
    default = _c(["/"], ["d"])
    post_only = _c(["/w/*"], ["w"], methods=["POST"])
    all_ = [exact, prefix_short, prefix_long, ext, default, post_only]
    assert find_constraints(all_, "/a/b", "GET") == [exact]
    assert find_constraints(all_, "/a/b/c", "GET") == [prefix_long]
    assert find_constraints(all_, "/a/x.jsp", "GET") == [prefix_short]       # prefix beats extension
    assert find_constraints(all_, "/x.jsp", "GET") == [ext]
    assert find_constraints(all_, "/elsewhere", "GET") == [default]
    assert find_constraints(all_, "/w/1", "POST") == [post_only]
    assert find_constraints(all_, "/w/1", "GET") == [default]
    assert find_constraints([_c(["/o/*"], omitted=["GET"])], "/o/1", "GET") == []


def _users(path, body):
    path.write_text("<tomcat-users>%s</tomcat-users>" % body)
    return str(path)


def test_combined_realm_asks_each_in_order(tmp_path):
    first, second = MemoryRealm(), MemoryRealm()
    first.pathname = _users(tmp_path / "a.xml", '<user username="u" password="a" roles="ra"/>')
    second.pathname = _users(tmp_path / "b.xml", '<user username="u" password="b" roles="rb"/>'
                                                  '<user username="v" password="v" roles="rv"/>')
    combined = CombinedRealm()
    combined.add_realm(first)
    combined.add_realm(second)
    combined.start()
    try:
        assert combined.authenticate("u", "a").roles == {"ra"}
        p = combined.authenticate("u", "b")
        assert p.roles == {"rb"} and p.realm is second and combined.has_role(p, "rb")
        assert combined.authenticate("v", "v").name == "v"
        assert combined.authenticate("v", "x") is None and combined.authenticate(None, "x") is None
    finally:
        combined.stop()


def test_user_database_is_reread_when_the_file_changes(tmp_path):
    realm = MemoryRealm()
    realm.pathname = _users(tmp_path / "u.xml", '<user username="u" password="old" roles="r"/>')
    realm.start()
    try:
        assert realm.authenticate("u", "old")
        _users(tmp_path / "u.xml", '<group groupname="g" roles="x,y"/><user name="u" password="new" groups="g"/>')
        os.utime(realm.pathname, (1, 1))          # a distinct mtime without waiting for the clock
        realm.background_process()
        assert realm.authenticate("u", "old") is None
        assert realm.authenticate("u", "new").roles == {"x", "y"}
    finally:
        realm.stop()
