"""URI normalization and rejection, byte by byte (pure)."""
import pytest

from pycat.connector.uri import BadUri, normalize, remove_dot_segments


@pytest.mark.parametrize("raw, expected", [
    ("/", "/"),
    ("/a/b", "/a/b"),
    ("/a//b", "/a/b"),
    ("//a", "/a"),
    ("/a/./b", "/a/b"),
    ("/a/b/..", "/a/"),
    ("/a/b/../c", "/a/c"),
    ("/a/.", "/a/"),
    ("/a/%2e/b", "/a/b"),
    ("/a/b/%2e%2e/c", "/a/c"),
    ("/%7Euser/x%20y", "/~user/x y"),
    ("/caf%C3%A9", "/café"),
    ("http://example.com/a/b", "/a/b"),
    ("/a;jsessionid=123/b;x=y", "/a/b"),
])
def test_normalizes(raw, expected):
    assert normalize(raw)[0] == expected


@pytest.mark.parametrize("raw", [
    "/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/etc/passwd", "/%2E%2E/%2e%2e/x",
    "/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5cb", "/a\\b", "/a%00b", "/a\x00b",
    "relative/path", "/%zz", "/%C3", "/a/%2e%2e/%2e%2e/x",
])
def test_rejects(raw):
    with pytest.raises(BadUri):
        normalize(raw)


def test_path_parameters_are_kept():
    assert normalize("/app;jsessionid=abc.node1/x")[1] == {"jsessionid": "abc.node1"}


def test_latin1_uri_encoding():
    assert normalize("/caf%E9", "ISO-8859-1")[0] == "/café"
    with pytest.raises(BadUri):
        normalize("/caf%E9", "utf-8")


def test_remove_dot_segments_fast_path_returns_same_object():
    s = "/plain/path"
    assert remove_dot_segments(s) is s
