"""The mapper is pure: strings stand in for hosts, contexts and wrappers."""
import pytest

from pycat.core.mapper import Mapper, ServletMap, host_without_port


def servlets(**patterns):
    m = ServletMap()
    for pattern, name in patterns.items():
        m.add(pattern, name)
    return m


def spec_map():
    # the example of Servlet spec 12.2.2
    m = ServletMap()
    m.add("/foo/bar/*", "servlet1")
    m.add("/baz/*", "servlet2")
    m.add("/catalog", "servlet3")
    m.add("*.bop", "servlet4")
    m.add("/", "default")
    return m


@pytest.mark.parametrize("rel, wrapper, servlet_path, path_info", [
    ("/foo/bar/index.html", "servlet1", "/foo/bar", "/index.html"),
    ("/foo/bar/index.bop", "servlet1", "/foo/bar", "/index.bop"),
    ("/foo/bar", "servlet1", "/foo/bar", None),
    ("/baz", "servlet2", "/baz", None),
    ("/baz/index.html", "servlet2", "/baz", "/index.html"),
    ("/catalog", "servlet3", "/catalog", None),
    ("/catalog/index.html", "default", "/catalog/index.html", None),
    ("/catalog/racecar.bop", "servlet4", "/catalog/racecar.bop", None),
    ("/index.bop", "servlet4", "/index.bop", None),
    ("/foo/barx", "default", "/foo/barx", None),
    ("/x.bop/y", "default", "/x.bop/y", None),
])
def test_servlet_spec_examples(rel, wrapper, servlet_path, path_info):
    w, sp, pi, _ = spec_map().match(rel)
    assert (w, sp, pi) == (wrapper, servlet_path, path_info)


def test_exact_beats_prefix_beats_extension_beats_default():
    m = ServletMap()
    m.add("/", "default")
    m.add("*.py", "ext")
    m.add("/a/*", "prefix")
    m.add("/a/b.py", "exact")
    assert m.match("/a/b.py")[0] == "exact"
    assert m.match("/a/c.py")[0] == "prefix"
    assert m.match("/c.py")[0] == "ext"
    assert m.match("/c.txt")[0] == "default"


def test_longest_prefix_wins_and_slash_star():
    m = ServletMap()
    m.add("/*", "all")
    m.add("/a/*", "a")
    m.add("/a/b/*", "ab")
    assert m.match("/a/b/c")[:3] == ("ab", "/a/b", "/c")
    assert m.match("/a/x")[:3] == ("a", "/a", "/x")
    assert m.match("/zzz")[:3] == ("all", "", "/zzz")


def test_empty_pattern_maps_the_context_root_only():
    m = ServletMap()
    m.add("", "root")
    m.add("/", "default")
    assert m.match("/")[:3] == ("root", "", "/")
    assert m.match("/x")[0] == "default"


def test_no_default_gives_no_wrapper():
    assert ServletMap().match("/x")[0] is None


def make_mapper():
    mapper = Mapper("localhost")
    mapper.add_host("localhost", "H1", aliases=["www.example.com"])
    mapper.add_host("other.test", "H2")
    mapper.add_context("localhost", "", "ROOT", servlets(**{"/": "rootdefault"}))
    mapper.add_context("localhost", "/app", "APP", servlets(**{"/": "appdefault", "/hello": "hello"}))
    mapper.add_context("localhost", "/app/sub", "SUB", servlets(**{"/": "subdefault"}))
    mapper.add_context("other.test", "/app", "OTHERAPP", servlets(**{"/": "od"}))
    return mapper


@pytest.mark.parametrize("host, path, expect_host, expect_ctx, cpath, wrapper", [
    ("localhost", "/", "H1", "ROOT", "", "rootdefault"),
    ("localhost:8080", "/app/hello", "H1", "APP", "/app", "hello"),
    ("LOCALHOST", "/app/x", "H1", "APP", "/app", "appdefault"),
    ("www.example.com", "/app/sub/y", "H1", "SUB", "/app/sub", "subdefault"),
    ("localhost", "/application", "H1", "ROOT", "", "rootdefault"),   # whole segments only
    ("localhost", "/app/subway", "H1", "APP", "/app", "appdefault"),
    ("other.test", "/app/x", "H2", "OTHERAPP", "/app", "od"),
    ("unknown.test", "/app/hello", "H1", "APP", "/app", "hello"),        # default host
    (None, "/app/hello", "H1", "APP", "/app", "hello"),
    ("[::1]:8080", "/", "H1", "ROOT", "", "rootdefault"),
])
def test_host_and_longest_context(host, path, expect_host, expect_ctx, cpath, wrapper):
    r = make_mapper().map(host, path)
    assert (r.host, r.context, r.context_path, r.wrapper) == (expect_host, expect_ctx, cpath, wrapper)


def test_context_root_without_slash_redirects():
    r = make_mapper().map("localhost", "/app")
    assert r.context == "APP" and r.redirect == "/app/" and r.wrapper is None


def test_other_host_without_root_context_maps_no_context():
    r = make_mapper().map("other.test", "/nothing")
    assert r.host == "H2" and r.context is None


def test_no_default_host_means_no_host():
    mapper = Mapper(None)
    mapper.add_host("a", "A")
    assert mapper.map("b", "/").host is None


def test_cache_is_invalidated_by_changes():
    mapper = make_mapper()
    assert mapper.map("localhost", "/new/x").context == "ROOT"
    mapper.add_context("localhost", "/new", "NEW", servlets(**{"/": "n"}))
    assert mapper.map("localhost", "/new/x").context == "NEW"


def test_host_without_port():
    assert host_without_port("Example.COM:80") == "example.com"
    assert host_without_port("[::1]:80") == "[::1]"
    assert host_without_port("") == ""
