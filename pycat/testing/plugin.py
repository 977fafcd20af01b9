"""pycat's pytest plugin (entry point ``pytest11: pycat``): real nodes and clusters as fixtures.

Fixtures (function scope; everything they start is stopped when the test ends):

* ``pycat_node(server_xml=None, apps=(), name=None, start=True, **Node options)`` -> ``Node``
* ``pycat_cluster(size=2, manager="delta", send_options=8, membership="multicast", apps=(),
  start=True, **Cluster options)`` -> ``Cluster`` (started: every node sees every other)
* ``pycat_user(node=None, name=None)`` -> ``Client``, one simulated user's cookie jar

Options: ``--pycat-keep`` keeps the CATALINA_BASE of every node of a failed test (the paths are
listed in the failure report and at the end of the run; otherwise the bases are removed after
the test), ``--pycat-log-level`` sets the nodes' root log level (INFO).

Marker: ``@pytest.mark.pycat_xml(host="<Valve .../>", engine=..., service=..., server=...)``
adds server.xml fragments to every node the fixtures make in that test (several markers add up).

When a test fails, the last lines of each of its nodes' logs are added to the report (any node
made while the test ran, by the fixtures or by ``Node`` directly). Nodes never outlive the
session: the fixtures stop them, ``pytest_sessionfinish`` and an atexit hook kill any left, and
on Linux each node dies with the pytest process even when that is killed (see node.py).
"""
import itertools
import os
import shutil

import pytest

from pycat.testing import node as _node
from pycat.testing import ports as _ports
from pycat.testing.client import Client
from pycat.testing.cluster import ASYNC, Cluster
from pycat.testing.node import Node

LOG_LINES = 60
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_nodes_key = pytest.StashKey[list]()
_reports_key = pytest.StashKey[dict]()
_tracker_key = pytest.StashKey[object]()


def pytest_addoption(parser):
    group = parser.getgroup("pycat", "pycat nodes (pycat.testing)")
    group.addoption("--pycat-keep", action="store_true", default=False,
                    help="keep the CATALINA_BASE folders of the nodes of failed tests for inspection")
    group.addoption("--pycat-log-level", default="INFO", type=str.upper, choices=LEVELS, metavar="LEVEL",
                    help="root log level of the pycat nodes the fixtures start (default: INFO)")


class _Tracker:
    """Ties every Node made while a test runs to that test (report sections, base removal)."""

    def __init__(self, config):
        self.config = config
        self.item = None
        self.kept = []

    def created(self, node):
        if self.item is not None:
            self.item.stash.setdefault(_nodes_key, []).append(node)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.item = item
        try:
            yield
        finally:
            self.item = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        item.stash.setdefault(_reports_key, {})[report.when] = report
        nodes = item.stash.get(_nodes_key, [])
        if not nodes:
            return
        keep = self.config.getoption("pycat_keep")
        if report.failed:
            for node in nodes:
                tail = node.tail(LOG_LINES)
                if tail:
                    report.sections.append(("pycat %s log (%s, last %d lines)" % (node.name, node.log_path,
                                                                                LOG_LINES), tail))
            owned = [n.base for n in nodes if n.remove_base]
            if owned:
                hint = ("kept for inspection (--pycat-keep)" if keep
                        else "removed after the test; --pycat-keep keeps them")
                report.sections.append(("pycat node bases", "%s:\n%s" % (hint, "\n".join(owned))))
        if report.when == "teardown":
            failed = any(r.failed for r in item.stash.get(_reports_key, {}).values())
            for node in nodes:
                if not node.remove_base:
                    continue
                if failed and keep:
                    self.kept.append(node.base)
                else:
                    shutil.rmtree(node.base, ignore_errors=True)
                    try:
                        os.rmdir(os.path.dirname(node.base))     # the cluster's folder, once empty
                    except OSError:
                        pass

    def pytest_terminal_summary(self, terminalreporter):
        if self.kept:
            terminalreporter.write_sep("-", "pycat: node bases of failed tests kept")
            for base in self.kept:
                terminalreporter.write_line(base)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pycat_xml(server=, service=, engine=, host=): server.xml fragments added to every "
        "node that pycat_node / pycat_cluster make in this test")
    tracker = _Tracker(config)
    config.pluginmanager.register(tracker, "pycat-testing-tracker")
    _node.on_node_created(tracker.created)
    config.stash[_tracker_key] = tracker


def pytest_unconfigure(config):
    tracker = config.stash.get(_tracker_key, None)
    if tracker is not None and tracker.created in _node._created_hooks:
        _node._created_hooks.remove(tracker.created)


def pytest_report_header(config):
    low, high = _ports.port_range()
    return "pycat: nodes log at %s; test ports from %d-%d" % (config.getoption("pycat_log_level"), low, high)


@pytest.hookimpl(trylast=True)      # after the runner tore the fixtures down (an interrupted session too)
def pytest_sessionfinish(session, exitstatus):
    left = _node.reap()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("pycat: killed %d node(s) still running at the end of the session" % left)


def _marker_fragments(item):
    """The pycat_xml markers of ``item``, merged: {element: fragments joined}."""
    merged = {}
    for marker in reversed(list(item.iter_markers("pycat_xml"))):
        for key, text in marker.kwargs.items():
            merged[key] = merged.get(key, "") + text
    return merged


def _merge(first, second):
    out = dict(first)
    for key, text in (second or {}).items():
        out[key] = out.get(key, "") + text
    return out


def _root(tmp_path, name):
    path = tmp_path / "pycat" / name
    if path.exists():
        raise ValueError("a node or cluster named %r already exists in this test" % name)
    return path


@pytest.fixture
def pycat_node(request, tmp_path):
    """Factory: ``pycat_node(server_xml=None, apps=(), name=None, start=True, **options)`` -> a
    started ``pycat.testing.Node`` (options: properties, fragments, attributes, log_level, env,
    args, isolate, startup_timeout; ``node_class``: a Node subclass with a project's own helpers).
    Names default to node1, node2..."""
    made = []
    marked = _marker_fragments(request.node)
    log_level = request.config.getoption("pycat_log_level")

    def make(server_xml=None, apps=(), name=None, start=True, node_class=Node, **options):
        name = name or "node%d" % (len(made) + 1)
        options["fragments"] = _merge(marked, options.get("fragments"))
        options.setdefault("log_level", log_level)
        node = node_class(_root(tmp_path, name), server_xml, apps, name=name, **options)
        node.remove_base = True
        made.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in made:
        node.close(remove_base=False)       # the report hook removes or keeps the base


@pytest.fixture
def pycat_cluster(request, tmp_path):
    """Factory: ``pycat_cluster(size=2, manager="delta", send_options=8, membership="multicast",
    apps=(), start=True, **options)`` -> a ``pycat.testing.Cluster``, started and fully meshed
    unless ``start=False`` (options: server_xml, manager_attrs, cluster_xml, interceptors, valves,
    extra, in_host, names, node_class, and every Node option)."""
    made = []
    marked = _marker_fragments(request.node)
    log_level = request.config.getoption("pycat_log_level")

    def make(size=2, manager="delta", send_options=ASYNC, membership="multicast", apps=(), start=True,
             **options):
        options["fragments"] = _merge(marked, options.get("fragments"))
        options.setdefault("log_level", log_level)
        cluster = Cluster(_root(tmp_path, "cluster%d" % (len(made) + 1)), size, manager, send_options,
                          membership, apps=apps, **options)
        for node in cluster:
            node.remove_base = True
        made.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    for cluster in made:
        cluster.close(remove_base=False)


@pytest.fixture
def pycat_user():
    """Factory: ``pycat_user(node=None, name=None, cookie_name="JSESSIONID")`` -> a
    ``pycat.testing.Client`` (one user's cookies; each call is another user)."""
    counter = itertools.count(1)

    def make(node=None, name=None, **options):
        return Client(node, name or "user%d" % next(counter), **options)
    return make

