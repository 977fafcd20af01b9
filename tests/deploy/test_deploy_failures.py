"""A deploy that fails is logged with its reason and the previous version keeps serving."""
import os

import pytest

from deploy_helpers import LogCapture, Node, app_files, bump_mtime, write_folder, write_war

BROKEN = {
    "corrupt zip": (None, "is not a valid WAR"),
    "bad web.xml": ({"WEB-INF/web.xml": "<web-app><servlet>"}, "malformed"),
    "import error": ({"WEB-INF/classes/app.py": "import no_such_module_anywhere\n"},
                     "No module named 'no_such_module_anywhere'"),
    "raising listener": ({"WEB-INF/web.xml": """<web-app>
  <listener><listener-class>boom:Boom</listener-class></listener>
  <servlet><servlet-name>main</servlet-name><servlet-class>app:Hello</servlet-class></servlet>
  <servlet-mapping><servlet-name>main</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
</web-app>""", "WEB-INF/classes/boom.py": """
class Boom:
    def context_initialized(self, event):
        raise RuntimeError("listener says no")
"""}, "listener says no"),
}


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    yield n
    n.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_war_keeps_old_version_serving(node, kind):
    war = write_war(os.path.join(node.app_base, "app.war"), app_files(1, "good"))
    node.config.check(), node.config.check()
    assert node.body("/app/hello") == (200, "1 good more-good")
    good_ctx = node.host.find_child("/app")
    overrides, reason = BROKEN[kind]
    if overrides is None:
        with open(war, "wb") as fh:
            fh.write(b"PK\x03\x04 this is not a zip file at all" * 10)
    else:
        write_war(war, app_files(2, "bad", extra=overrides))
    bump_mtime(war)
    with LogCapture() as logs:
        node.config.check(), node.config.check()
    assert reason in logs.text, logs.text
    assert "previous version keeps serving" in logs.text
    assert node.host.find_child("/app") is good_ctx and good_ctx.state.available
    for _ in range(3):
        assert node.body("/app/hello") == (200, "1 good more-good")
    assert node.body("/app/") == (200, "static 1\n")     # its files were put back too
    # not retried while the file stays the same...
    with LogCapture() as logs:
        node.config.check(), node.config.check()
    assert "redeploying" not in logs.text
    # ...and a fixed WAR deploys
    write_war(war, app_files(3, "fixed"))
    bump_mtime(war, 4)
    node.config.check(), node.config.check()
    assert node.body("/app/hello") == (200, "3 fixed more-fixed")


@pytest.mark.timeout(60)
def test_broken_first_deploy_is_logged_and_others_serve(node):
    write_folder(os.path.join(node.app_base, "fine"), app_files("f", "fine"))
    write_war(os.path.join(node.app_base, "broken.war"),
              app_files(1, "b", extra={"WEB-INF/classes/app.py": "raise ImportError('nope')\n"}))
    with LogCapture() as logs:
        node.config.check(), node.config.check()
    assert "deploying /broken from" in logs.text and "nope" in logs.text
    assert node.get("/broken/hello")[0] == 404
    assert not os.path.exists(os.path.join(node.app_base, "broken"))
    assert node.body("/fine/hello") == (200, "f fine more-fine")
