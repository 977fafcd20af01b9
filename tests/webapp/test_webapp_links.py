"""DefaultServlet and symbolic links, over a real connector (Tomcat's allowLinking).

By default no link is followed; with allowLinking="true" links are followed (also out of
docBase, as in Tomcat) but never into a WEB-INF or META-INF folder, whatever the link is called.
Also: a file asked for with a trailing slash is 404.
"""
import os

import pytest

from pycat.attrs import set_property

from pycat_harness import Tree, get

pytestmark = pytest.mark.timeout(30)

WEB_XML = ('<web-app><display-name>PRIVATE-DESCRIPTOR</display-name><servlet><servlet-name>default</servlet-name>'
           '<servlet-class>pycat.webapp.default_servlet:DefaultServlet</servlet-class>'
           '<init-param><param-name>listings</param-name><param-value>true</param-value></init-param>'
           '</servlet></web-app>')


def make_tree(tmp_path, allow_linking=None):
    """/app with a real file, and links: to WEB-INF, to META-INF, to the app itself, to a file,
    to a shared folder outside docBase, and to another app's WEB-INF outside docBase."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "common.txt").write_text("SHARED-FILE")
    other = tmp_path / "other" / "WEB-INF"
    other.mkdir(parents=True)
    (other / "web.xml").write_text("OTHER-PRIVATE")
    tree = Tree(tmp_path, contexts={"/app": {"files": {
        "real.txt": "REAL-FILE", "index.html": "WELCOME", "docs/page.txt": "PAGE",
        "WEB-INF/web.xml": WEB_XML, "META-INF/MANIFEST.MF": "PRIVATE-MANIFEST"}}}, start=False)
    docbase = tmp_path / "webapps" / "app"
    os.symlink("WEB-INF", str(docbase / "pub"))                  # the issue's `ln -s WEB-INF pub`
    os.symlink("META-INF", str(docbase / "meta"))
    os.symlink(".", str(docbase / "self"))
    os.symlink("real.txt", str(docbase / "alias.txt"))
    os.symlink(str(shared), str(docbase / "shared"))
    os.symlink(str(other), str(docbase / "other"))
    if allow_linking is not None:
        assert set_property(tree.contexts["/app"], "allowLinking", allow_linking)   # the XML name
    tree.server.start()
    return tree


@pytest.fixture
def strict(tmp_path):
    t = make_tree(tmp_path)
    yield t
    t.stop()


@pytest.fixture
def linking(tmp_path):
    t = make_tree(tmp_path, "true")
    yield t
    t.stop()


def test_no_link_is_followed_by_default(strict):
    assert strict.contexts["/app"].allow_linking is False
    # positive control: the same files without a link are served
    assert get(strict.port, "/app/real.txt")[:3:2] == (200, b"REAL-FILE")
    assert get(strict.port, "/app/docs/page.txt")[:3:2] == (200, b"PAGE")
    for path in ("/app/pub/web.xml", "/app/pub/", "/app/meta/MANIFEST.MF", "/app/self/real.txt",
                 "/app/self/WEB-INF/web.xml", "/app/alias.txt", "/app/shared/common.txt",
                 "/app/other/web.xml"):
        status, _, body = get(strict.port, path)
        assert status == 404, path
        assert b"PRIVATE" not in body and b"FILE" not in body, path


def test_allow_linking_follows_links_but_never_into_web_inf(linking):
    assert linking.contexts["/app"].allow_linking is True
    # followed: a link to a file, through a link to the app itself, out of docBase (as Tomcat)
    assert get(linking.port, "/app/alias.txt")[:3:2] == (200, b"REAL-FILE")
    assert get(linking.port, "/app/self/real.txt")[:3:2] == (200, b"REAL-FILE")
    assert get(linking.port, "/app/self/docs/page.txt")[:3:2] == (200, b"PAGE")
    assert get(linking.port, "/app/shared/common.txt")[:3:2] == (200, b"SHARED-FILE")
    # refused: whatever the link's name, the resolved path is WEB-INF / META-INF (this app's or another's)
    for path in ("/app/pub/web.xml", "/app/pub/", "/app/meta/MANIFEST.MF", "/app/self/WEB-INF/web.xml",
                 "/app/self/META-INF/MANIFEST.MF", "/app/self/web-inf/web.xml", "/app/other/web.xml"):
        status, _, body = get(linking.port, path)
        assert status == 404, path
        assert b"PRIVATE" not in body, path


def test_listing_hides_links_not_followed(tmp_path):
    t = Tree(tmp_path, contexts={"/app": {"files": {"list/plain.txt": "x", "list/.keep": "",
                                                     "WEB-INF/web.xml": WEB_XML}}}, start=False)
    folder = tmp_path / "webapps" / "app" / "list"
    os.symlink("plain.txt", str(folder / "linked.txt"))
    os.symlink("../WEB-INF", str(folder / "private"))
    t.server.start()
    try:
        status, _, body = get(t.port, "/app/list/")
        assert status == 200 and b"plain.txt" in body          # positive control
        assert b"linked.txt" not in body and b"private" not in body
        t.contexts["/app"].allow_linking = True
        status, _, body = get(t.port, "/app/list/")
        assert b"plain.txt" in body and b"linked.txt" in body   # now followed, so listed
        assert b"private" not in body                           # never: it resolves into WEB-INF
    finally:
        t.stop()


def test_file_with_trailing_slash_is_404(strict):
    assert get(strict.port, "/app/real.txt")[0] == 200
    assert get(strict.port, "/app/docs/page.txt")[0] == 200
    for path in ("/app/real.txt/", "/app/docs/page.txt/", "/app/docs/page.txt/.", "/app/index.html/"):
        status, _, body = get(strict.port, path)
        assert status == 404 and b"PAGE" not in body and b"REAL" not in body, path
    # a folder with the slash is still fine (its welcome file / listing)
    assert get(strict.port, "/app/")[:3:2] == (200, b"WELCOME")
    assert get(strict.port, "/app/docs/")[0] == 200
