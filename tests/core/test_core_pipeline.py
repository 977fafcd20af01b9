"""Pipelines: valves in document order on Engine, Host and Context, then the basic valve."""
import pytest

from pycat.core.pipeline import Pipeline, Valve
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, get


class Recording(Valve):
    def __init__(self, tag, log):
        super().__init__()
        self.tag, self.log = tag, log

    def invoke(self, request, response):
        self.log.append(self.tag + ">")
        self.next.invoke(request, response)
        self.log.append("<" + self.tag)


class Basic(Valve):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def invoke(self, request, response):
        self.log.append("basic")


def test_chain_is_linked_in_order_and_ends_in_basic():
    log = []
    p = Pipeline()
    p.set_basic(Basic(log))
    for tag in "abc":
        p.add_valve(Recording(tag, log))
    p.first.invoke(None, None)
    assert log == ["a>", "b>", "c>", "basic", "<c", "<b", "<a"]
    assert [v.tag for v in p.valves] == ["a", "b", "c"]


def test_remove_and_insert_relink():
    log = []
    p = Pipeline()
    p.set_basic(Basic(log))
    a, b = Recording("a", log), Recording("b", log)
    p.add_valve(a)
    p.add_valve(b)
    p.remove_valve(a)
    p.insert_valve(0, Recording("z", log))
    p.first.invoke(None, None)
    assert log == ["z>", "b>", "basic", "<b", "<z"]


class Servlet(HttpServlet):
    def __init__(self, log):
        self.log = log

    def do_get(self, request, response):
        self.log.append("servlet")
        response.write("ok")


@pytest.mark.timeout(20)
def test_request_walks_engine_host_context_valves_in_document_order(tmp_path):
    log = []
    tree = Tree(tmp_path,
                contexts={"/app": {"servlets": [("s", Servlet(log), ["/s"])],
                                   "valves": [Recording("c1", log), Recording("c2", log)]}},
                engine_valves=[Recording("e1", log), Recording("e2", log)],
                host_valves=[Recording("h1", log)])
    try:
        status, _, body = get(tree.port, "/app/s")
        assert (status, body) == (200, b"ok")
        assert log == ["e1>", "e2>", "h1>", "c1>", "c2>", "servlet", "<c2", "<c1", "<h1", "<e2", "<e1"]
    finally:
        tree.stop()


def test_host_adds_an_error_report_valve_last(tmp_path):
    from pycat.valves.error_report import ErrorReportValve
    log = []
    tree = Tree(tmp_path, host_valves=[Recording("h1", log)])
    try:
        kinds = [type(v) for v in tree.host.pipeline.valves]
        assert kinds == [Recording, ErrorReportValve]
    finally:
        tree.stop()
