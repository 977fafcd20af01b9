import pytest

from pycat.session.cookies import (encode_url, is_encodeable, normalize_same_site, parse_cookie_ids,
                                   select_session_id, session_cookie_path, session_cookie_value,
                                   strip_path_session_id, uri_param_name)

SID = "0123456789ABCDEF0123456789ABCDEF.node1"


def test_default_session_cookie():
    assert session_cookie_value(SID, path="/app") == "JSESSIONID=%s; Path=/app; HttpOnly" % SID


def test_full_session_cookie():
    value = session_cookie_value(SID, name="MYSESSION", path="/", domain="example.org", secure=True,
                                 same_site="strict", max_age=3600, now=0)
    assert value == ("MYSESSION=%s; Max-Age=3600; Expires=Thu, 01 Jan 1970 01:00:00 GMT; "
                     "Domain=example.org; Path=/; Secure; HttpOnly; SameSite=Strict" % SID)


def test_max_age_zero_deletes_and_http_only_can_be_off():
    value = session_cookie_value("", path="/a", http_only=False, max_age=0, now=1e9)
    assert value == "JSESSIONID=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/a"


@pytest.mark.parametrize("setting, out", [(None, None), ("", None), ("unset", None), ("None", "None"),
                                          ("LAX", "Lax"), (" strict ", "Strict")])
def test_same_site_values(setting, out):
    assert normalize_same_site(setting) == out


@pytest.mark.parametrize("kwargs", [{"same_site": "sometimes"}, {"name": "BAD NAME"}, {"name": ""},
                                    {"path": "/a;b"}, {"domain": "x\r\nSet-Cookie: y"}])
def test_bad_cookie_settings_raise(kwargs):
    with pytest.raises(ValueError):
        session_cookie_value(SID, **kwargs)


def test_bad_cookie_value_raises():
    with pytest.raises(ValueError):
        session_cookie_value("a;b")


def test_cookie_path():
    assert session_cookie_path("") == "/"
    assert session_cookie_path("/app") == "/app"
    assert session_cookie_path("/app", trailing_slash=True) == "/app/"
    assert session_cookie_path("", trailing_slash=True) == "/"


def test_parse_cookie_ids_in_order():
    header = 'theme=dark; JSESSIONID=AAA; other=1; JSESSIONID="BBB" ;JSESSIONID=CCC.n1'
    assert parse_cookie_ids(header) == ["AAA", "BBB", "CCC.n1"]
    assert parse_cookie_ids(["JSESSIONID=A", "JSESSIONID=B"]) == ["A", "B"]
    assert parse_cookie_ids(b"X=1; S=Z", name="S") == ["Z"]


@pytest.mark.parametrize("header", [None, "", ";;;", "JSESSIONID", "JSESSIONID=", "=x", "jsessionid=A",
                                    "\x00\xff;JSESSIONID", 'JSESSIONID=""', [None, 3]])
def test_parse_malformed_cookie_headers_never_raise(header):
    assert parse_cookie_ids(header) == []


def test_select_tries_each_candidate_like_tomcat():
    live = {"GOOD"}
    assert select_session_id(["STALE", "GOOD", "OTHER"], live.__contains__) == ("GOOD", True)
    assert select_session_id(["STALE", "OLD"], live.__contains__) == ("OLD", False)
    assert select_session_id([], live.__contains__) == (None, False)


def test_uri_param_name():
    assert uri_param_name() == "jsessionid"
    assert uri_param_name("MYSESSION") == "mysession"


@pytest.mark.parametrize("path, out", [
    ("/app/page", ("/app/page", None)),
    ("/app/page;jsessionid=ABC", ("/app/page", "ABC")),
    ("/app;jsessionid=ABC/page", ("/app/page", "ABC")),
    ("/app/page;v=1;jsessionid=ABC.n1;x", ("/app/page;v=1;x", "ABC.n1")),
    ("/a;jsessionid=ONE/b;jsessionid=TWO", ("/a/b", "TWO")),
    ("/app/page;jsessionid=", ("/app/page", None)),
    ("/app/page;JSESSIONID=ABC", ("/app/page;JSESSIONID=ABC", None)),
])
def test_strip_path_session_id(path, out):
    assert strip_path_session_id(path) == out


@pytest.mark.parametrize("url, out", [
    ("/app/page", "/app/page;jsessionid=S1"),
    ("page?a=1&b=2", "page;jsessionid=S1?a=1&b=2"),
    ("/app/#top", "/app/;jsessionid=S1#top"),
    ("/app/p?q=1#f", "/app/p;jsessionid=S1?q=1#f"),
    ("/app/p#f?notquery", "/app/p;jsessionid=S1#f?notquery"),
    ("/app/p;jsessionid=OLD?x", "/app/p;jsessionid=S1?x"),
    ("http://h:8080/app/p", "http://h:8080/app/p;jsessionid=S1"),
])
def test_encode_url(url, out):
    assert encode_url(url, "S1") == out


def test_encode_url_without_session_is_unchanged():
    assert encode_url("/a", None) == "/a"
    assert encode_url("", "S") == ""


def _enc(url, **kw):
    args = dict(session_id="S1", session_valid=True, id_from_cookie=False, scheme="http",
                server_name="www.example.org", server_port=8080, context_path="/app")
    args.update(kw)
    return is_encodeable(url, **args)


def test_is_encodeable_rules():
    assert _enc("page.jsp")
    assert _enc("/app/page")
    assert _enc("/app")
    assert not _enc("/other/page")
    assert not _enc("/application")
    assert _enc("http://www.example.org:8080/app/x")
    assert not _enc("http://evil.example.com:8080/app/x")
    assert not _enc("https://www.example.org:8080/app/x")
    assert not _enc("http://www.example.org/app/x")           # port 80 is not 8080
    assert _enc("//www.example.org:8080/app/x")
    assert not _enc("#frag")
    assert not _enc("/app/x;jsessionid=S1")
    assert not _enc("/app/x", id_from_cookie=True)
    assert not _enc("/app/x", url_tracking=False)
    assert not _enc("/app/x", session_valid=False)
    assert not _enc("/app/x", session_id=None)
    assert not _enc("http://[bad")
    assert not _enc("../../other/x", request_path="/app/a/b")
    assert _enc("../x", request_path="/app/a/b")
    assert _enc("/x", context_path="")
    assert _enc("https://h/x", scheme="https", server_name="h", server_port=443, context_path="")
