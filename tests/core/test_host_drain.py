"""Host.drain waits for a retired Context's in-flight requests on an event, not by polling: it
returns as soon as the last request leaves, or after its timeout, and leaves nothing behind."""
import time

import gevent
import gevent.event
import pytest

from pycat.core.container import ContainerBase
from pycat.core.host import Host, StandardHostValve
from pycat.core.pipeline import Valve
from pycat.lifecycle import LifecycleState


class Gate(Valve):
    def __init__(self):
        super().__init__()
        self.open = gevent.event.Event()
        self.entered = 0

    def invoke(self, request, response):
        self.entered += 1
        self.open.wait()


class FakeContext(ContainerBase):
    def __init__(self, gate):
        super().__init__()
        self.name = "/app"
        self.loader = None
        self.pipeline.set_basic(gate)
        self._state = LifecycleState.STARTED


class Response:
    is_error = False
    committed = False


class Request:
    def __init__(self, context):
        self.context = context
        self.attributes = {}
        self.request_uri = "/app/x"


def serve(host, ctx, n):
    valve = host.pipeline.basic if hasattr(host.pipeline, "basic") else StandardHostValve()
    valve.container = host
    return [gevent.spawn(valve.invoke, Request(ctx), Response()) for _ in range(n)]


@pytest.mark.timeout(20)
def test_drain_waits_for_in_flight_requests_and_returns_when_they_finish():
    host, gate = Host(), Gate()
    ctx = FakeContext(gate)
    requests = serve(host, ctx, 3)
    gevent.sleep(0)
    assert gate.entered == 3 and ctx.inflight_requests == 3 and ctx.drained is None   # hot path: no event
    done = []

    def drainer():
        host.drain(ctx, 10)
        done.append(time.monotonic())

    drains = [gevent.spawn(drainer), gevent.spawn(drainer)]       # two drains share one event
    gevent.sleep(0.2)
    assert done == [] and ctx.inflight_requests == 3 and ctx.drained is not None
    released = time.monotonic()
    gate.open.set()
    gevent.joinall(requests + drains, timeout=5)
    assert len(done) == 2 and max(done) - released < 0.1
    assert ctx.inflight_requests == 0 and ctx.drained is None and ctx.drain_waiters == 0


@pytest.mark.timeout(20)
def test_drain_gives_up_after_its_timeout_and_returns_at_once_when_idle():
    host, gate = Host(), Gate()
    ctx = FakeContext(gate)
    start = time.monotonic()
    host.drain(ctx, 10)                       # nothing in flight: no wait
    assert time.monotonic() - start < 0.05 and ctx.drained is None
    requests = serve(host, ctx, 1)
    gevent.sleep(0)
    start = time.monotonic()
    host.drain(ctx, 0.3)
    waited = time.monotonic() - start
    assert 0.25 <= waited < 1.0 and ctx.inflight_requests == 1 and ctx.drained is None
    gate.open.set()
    gevent.joinall(requests, timeout=5)
    assert ctx.inflight_requests == 0


def test_drain_does_not_poll():
    import inspect
    assert "gevent.sleep" not in inspect.getsource(Host.drain)
