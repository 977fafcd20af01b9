"""AccessLogValve: file naming, common/combined/custom patterns, buffering and flushing."""
import os
import re
import time

import pytest

from pycat.valves.access_log import AccessLogValve, compile_pattern, java_date_format
from pycat.valves.remote_ip import RemoteIpValve
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, get

pytestmark = pytest.mark.timeout(30)


class Hello(HttpServlet):
    def do_get(self, request, response):
        response.set_header("X-Out", "outval")
        response.content_type = "text/plain"
        response.write("hello!")


def make(tmp_path, pattern, **attrs):
    valve = AccessLogValve()
    valve.pattern = pattern
    for k, v in attrs.items():
        setattr(valve, k, v)
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("h", Hello(), ["/h"])]}}, host_valves=[valve])
    return tree, valve


def lines(valve):
    valve.flush()
    with open(valve.current_path) as fh:
        return fh.read().splitlines()


def test_common_pattern_and_default_file_name(tmp_path):
    tree, valve = make(tmp_path, "common")
    try:
        get(tree.port, "/app/h?x=1")
        get(tree.port, "/app/missing")
        expected_name = "localhost_access_log.%s.txt" % time.strftime("%Y-%m-%d")
        assert valve.current_path == os.path.join(str(tmp_path), "logs", expected_name)
        first, second = lines(valve)
        assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                            r'"GET /app/h\?x=1 HTTP/1\.1" 200 6', first), first
        assert re.search(r'"GET /app/missing HTTP/1\.1" 404 \d+$', second)
    finally:
        tree.stop()


def test_combined_pattern(tmp_path):
    tree, valve = make(tmp_path, "combined")
    try:
        get(tree.port, "/app/h", headers={"Referer": "http://ref/", "User-Agent": "tester/1.0"})
        get(tree.port, "/app/h")
        one, two = lines(valve)
        assert one.endswith('"GET /app/h HTTP/1.1" 200 6 "http://ref/" "tester/1.0"')
        assert two.endswith('200 6 "-" "-"')
    finally:
        tree.stop()


def test_every_code(tmp_path):
    pattern = ("%a|%A|%b|%B|%h|%H|%l|%m|%p|%q|%r|%s|%S|%u|%U|%v|%D|%T|%I|"
               "%{X-In}i|%{X-Out}o|%{c1}c|%{attr}r|%{local}p|%{remote}p|%{yyyy}t|%%")
    tree, valve = make(tmp_path, pattern)
    try:
        get(tree.port, "/app/h?q=2", headers={"X-In": "inval", "Cookie": "c1=cookieval"})
        (line,) = lines(valve)
        f = line.split("|")
        assert f[0:9] == ["127.0.0.1", "127.0.0.1", "6", "6", "127.0.0.1", "HTTP/1.1", "-", "GET", str(tree.port)]
        assert f[9:16] == ["?q=2", "GET /app/h?q=2 HTTP/1.1", "200", "-", "-", "/app/h", "localhost"]
        assert f[16].isdigit() and f[17] == "0" and f[18]
        assert f[19:24] == ["inval", "outval", "cookieval", "-", str(tree.port)]
        assert f[24].isdigit() and f[25] == time.strftime("%Y") and f[26] == "%"
    finally:
        tree.stop()


def test_buffered_lines_reach_the_file_on_background_process_and_stop(tmp_path):
    tree, valve = make(tmp_path, "%s %U", prefix="acc", suffix=".log", rotatable=False)
    path = os.path.join(str(tmp_path), "logs", "acc.log")
    try:
        get(tree.port, "/app/h")
        assert open(path).read() == ""                     # buffered
        tree.engine.background_process()                   # the Engine ticker's job
        assert open(path).read() == "200 /app/h\n"
        get(tree.port, "/app/nope")
    finally:
        tree.stop()
    assert open(path).read() == "200 /app/h\n404 /app/nope\n"


def test_unbuffered_writes_each_line(tmp_path):
    tree, valve = make(tmp_path, "%s", buffered=False, directory=str(tmp_path / "elsewhere"),
                       file_date_format="yyyyMMdd", prefix="x-")
    try:
        get(tree.port, "/app/h")
        assert valve.current_path == str(tmp_path / "elsewhere" / ("x-%s.txt" % time.strftime("%Y%m%d")))
        assert open(valve.current_path).read() == "200\n"
    finally:
        tree.stop()


def test_forwarded_address_reaches_the_access_log(tmp_path):
    access = AccessLogValve()
    access.pattern = "%a %h %{X-Forwarded-For}i"
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("h", Hello(), ["/h"])]}},
                engine_valves=[RemoteIpValve(), access])
    try:
        get(tree.port, "/app/h", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2"})
        get(tree.port, "/app/h")
        assert lines(access) == ["203.0.113.7 203.0.113.7 -", "127.0.0.1 127.0.0.1 -"]
    finally:
        tree.stop()


def test_request_attributes_enabled_when_the_log_runs_outside_remote_ip(tmp_path):
    access = AccessLogValve()
    access.pattern = "%a"
    access.request_attributes_enabled = True
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("h", Hello(), ["/h"])]}},
                engine_valves=[access], host_valves=[RemoteIpValve()])
    try:
        get(tree.port, "/app/h", headers={"X-Forwarded-For": "198.51.100.1"})
        assert lines(access) == ["198.51.100.1"]
    finally:
        tree.stop()


def test_conditions(tmp_path):
    tree, valve = make(tmp_path, "%U", condition_if="never-set")
    try:
        get(tree.port, "/app/h")
        assert lines(valve) == []
    finally:
        tree.stop()


def test_java_date_format():
    assert java_date_format(".yyyy-MM-dd") == ".%Y-%m-%d"
    assert java_date_format("yyyy'T'HH") == "%YT%H"


def test_pattern_compiles_literals_together():
    parts = compile_pattern('"%r" x', AccessLogValve())
    assert parts[0] == '"' and parts[2] == '" x'


def test_rotation_when_the_file_date_changes(tmp_path):
    from pycat_harness import wait_for
    tree, valve = make(tmp_path, "%U", file_date_format="-HH-mm-ss", buffered=False)
    try:
        get(tree.port, "/app/h")
        first = valve.current_path
        second_now = int(time.time())
        wait_for(lambda: int(time.time()) != second_now, timeout=3)
        get(tree.port, "/app/h")
        assert valve.current_path != first
        assert open(first).read() == "/app/h\n" and open(valve.current_path).read() == "/app/h\n"
    finally:
        tree.stop()
