"""Attribute values of an app's own classes across a restart (SESSIONS.ser) and through a store, on
real nodes over HTTP: they come back as the classes the app's code sees, and the manager's
sessionAttributeValueClassNameFilter, naming them as the app imports them, decides what loads."""
import pytest

from http_client import request
from pycat.session.manager import StandardManager
from pycat.session.persistent import PersistentManager
from pycat.session.store_file import FileStore
from pycat_harness import Tree

pytestmark = pytest.mark.timeout(60)

APP = {
    "WEB-INF/web.xml": """<web-app>
  <servlet><servlet-name>shop</servlet-name><servlet-class>shop:Shop</servlet-class></servlet>
  <servlet-mapping><servlet-name>shop</servlet-name><url-pattern>/shop</url-pattern></servlet-mapping>
</web-app>
""",
    "WEB-INF/classes/model.py": """class Thing:
    def __init__(self, v):
        self.v = v


class Other:
    pass
""",
    "WEB-INF/classes/shop.py": """import model
from pycat.webapp.servlet import HttpServlet


class Shop(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        if request.get_parameter("op") == "put":
            session = request.get_session()
            session["thing"] = model.Thing(7)
            session["other"] = model.Other()
            session["name"] = "ana"
        session = request.get_session(False)
        if session is None:
            response.write("none")
            return
        thing = session.get("thing")
        response.write("id=%s thing=%s apps=%s v=%s other=%s name=%s" % (
            session.id, type(thing).__name__, isinstance(thing, model.Thing), getattr(thing, "v", None),
            "other" in session, session.get("name")))
""",
}

FILTER = r"model\.Thing|builtins\.str"      # the app's class by the name its code imports it with


def node(base, manager):
    tree = Tree(base, {"/app": {"files": APP}}, start=False)
    tree.contexts["/app"].set_manager(manager)
    tree.server.start()
    return tree


def fields(reply):
    assert reply.status == 200, reply
    return reply.fields()


def put(tree):
    return fields(request(tree.port, "/app/shop?op=put"))["id"]


def show(tree, sid):
    return fields(request(tree.port, "/app/shop", cookie="JSESSIONID=" + sid))


def filtered(manager):
    manager.session_attribute_value_class_name_filter = FILTER
    return manager


def test_a_restart_restores_app_classes_and_applies_the_filter(tmp_path):
    first = node(tmp_path, StandardManager())          # no filter: everything is saved
    sid = put(first)
    assert show(first, sid) == {"id": sid, "thing": "Thing", "apps": "True", "v": "7", "other": "True",
                                "name": "ana"}
    first.stop()
    assert (tmp_path / "work" / "Catalina" / "localhost" / "app" / "SESSIONS.ser").exists()
    second = node(tmp_path, filtered(StandardManager()))
    try:
        # the app's Thing (as its code sees it now) is back; Other is not in the filter
        assert show(second, sid) == {"id": sid, "thing": "Thing", "apps": "True", "v": "7", "other": "False",
                                     "name": "ana"}
    finally:
        second.stop()


def store_manager(directory, **attrs):
    manager = PersistentManager()
    manager.max_idle_backup = 0              # written to the store at the end of every request
    for key, value in attrs.items():
        setattr(manager, key, value)
    store = FileStore()
    store.directory = str(directory)
    manager.set_store(store)
    return manager


def test_a_store_restores_app_classes_and_applies_the_filter(tmp_path):
    # two nodes sharing a store, as for failover; in one process they are two generations of the
    # app (two import prefixes), so the second also shows a value of another generation coming back
    # as the classes of its own
    shared = tmp_path / "shared-sessions"
    first = node(tmp_path / "n1", store_manager(shared))
    trees = [first]
    try:
        sid = put(first)
        control = node(tmp_path / "n2", store_manager(shared))    # unfiltered, Other loads
        trees.append(control)
        assert control.contexts["/app"].loader.prefix != first.contexts["/app"].loader.prefix
        assert show(control, sid) == {"id": sid, "thing": "Thing", "apps": "True", "v": "7", "other": "True",
                                      "name": "ana"}
        second = node(tmp_path / "n3", filtered(store_manager(shared)))
        trees.append(second)
        assert show(second, sid) == {"id": sid, "thing": "Thing", "apps": "True", "v": "7", "other": "False",
                                     "name": "ana"}
    finally:
        for tree in reversed(trees):
            tree.stop()
