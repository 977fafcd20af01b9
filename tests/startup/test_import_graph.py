"""No import cycle anywhere in pycat: the graph of pycat's modules (every import statement, at module level
or inside a function, absolute or relative, and dynamic imports of a literal name; read by
tests/import_graph.py, the one reader the layer test shares) has no circle. (deploy_support <-> manager_api
and static_membership <-> tcp_ping, response <-> session_support were such circles.)"""
from import_graph import all_sources, cycles, import_graph, read_imports


def test_the_graph_reader_finds_real_edges_and_circles():
    graph = import_graph()
    # positive controls: edges the code has, absolute and lazy (inside functions)
    assert "pycat.startup.deploy_support" in graph["pycat.startup.manager_api"]
    assert "pycat.startup.digester" in graph["pycat.startup.deploy_support"]        # a lazy import
    assert "pycat.tribes.group.interceptors.static_membership" in \
        graph["pycat.tribes.group.interceptors.tcp_ping"]
    assert "pycat.appcode" in graph["pycat.session.events"]
    # and a planted circle is found
    planted = dict(graph)
    planted["pycat.startup.deploy_support"] = graph["pycat.startup.deploy_support"] | {"pycat.startup.manager_api"}
    assert ["pycat.startup.deploy_support", "pycat.startup.manager_api"] in cycles(planted)


def test_relative_lazy_and_dynamic_imports_are_edges():
    sources = all_sources()
    text = ("from . import manager\n"
            "def lazy():\n    from ..core import mapper\n"
            "import importlib\nimportlib.import_module('pycat.webapp.war')\n")
    targets = {i.target for i in read_imports("pycat.session.planted", text, False, sources)}
    assert targets == {"pycat.session.manager", "pycat.core.mapper", "pycat.webapp.war"}


def test_no_circle_anywhere_in_pycat():
    assert cycles(import_graph()) == []

