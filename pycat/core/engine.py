"""Engine: the request-processing top of a Service (Tomcat's StandardEngine).

The Engine owns the mapper tables (rebuilt lazily after the tree changes) and the one
background greenlet that calls ``background_process()`` down the tree every
``backgroundProcessorDelay`` seconds. Its basic valve hands the request to the mapped Host.
"""
import logging

import gevent

from pycat.attrs import Attr
from pycat.core import session_support
from pycat.core.container import ContainerBase
from pycat.core.mapper import Mapper
from pycat.core.pipeline import Valve

log = logging.getLogger(__name__)


class StandardEngineValve(Valve):
    def invoke(self, request, response):
        host = request.host
        if host is None:
            response.send_error(400, "No host matches the request's Host header and there is no default host")
            return
        try:
            host.pipeline.first.invoke(request, response)
        finally:
            # the Host and everything under it are done: the request's session state lets go of the
            # response, so request and response are freed by reference counting at once instead of
            # waiting as a cycle for the garbage collector, whose passes (one every few dozen
            # requests, run inside whichever request allocates next) cost ~3 us per request on average
            session_support.release(request)


class _BuildOnRead:
    """``Engine.mapper``: the first read after a change builds the mapper and stores it in the
    Engine's __dict__, where every later read (one per request) finds it as a plain attribute,
    not a property call. A non-data descriptor, so the instance attribute wins."""

    def __get__(self, engine, owner=None):
        if engine is None:
            return self
        mapper = engine.__dict__["mapper"] = engine._build_mapper()
        return mapper


class Engine(ContainerBase):
    is_engine = True

    name = Attr(str, "Catalina", "Engine name (also the conf/<engine>/ folder name)")
    default_host = Attr(str, "localhost", "Host serving requests whose Host header matches no host")
    jvm_route = Attr(str, None, "Suffix appended to session ids for sticky load balancing")
    background_processor_delay = Attr(float, 10, "Seconds between background_process() runs; <= 0 disables")
    start_stop_threads = Attr(int, 1, "Kept for compatibility")

    def __init__(self):
        super().__init__()
        self.service = None
        self.pipeline.set_basic(StandardEngineValve())

    def invalidate_mapper(self):
        self.__dict__.pop("mapper", None)     # the next read of .mapper builds a fresh one

    mapper = _BuildOnRead()

    def _build_mapper(self):
        mapper = Mapper(self.default_host)
        for host in self.children.values():
            mapper.add_host(host.name, host, host.aliases)
            for context in host.children.values():
                mapper.add_context(host.name, context.path, context, context.servlet_map)
        return mapper

    def _start(self):
        if self.default_host and self.default_host not in self.children and self.children:
            log.warning("Engine %s: defaultHost %r names no Host", self.name, self.default_host)
        super()._start()
        if self.background_processor_delay > 0:
            self.spawn(self._background_loop)

    def _background_loop(self):
        delay = self.background_processor_delay
        while True:
            gevent.sleep(delay)
            try:
                self.background_process()
            except Exception:
                log.exception("Engine %s: background processing failed", self.name)
