"""Engine: the request-processing top of a Service (Tomcat's StandardEngine).

The Engine owns the mapper tables (rebuilt lazily after the tree changes) and the one
background greenlet that calls ``background_process()`` down the tree every
``backgroundProcessorDelay`` seconds. Its basic valve hands the request to the mapped Host.
"""
import logging

import gevent

from pycat.attrs import Attr
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
        host.pipeline.first.invoke(request, response)


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
        self._mapper = None
        self.pipeline.set_basic(StandardEngineValve())

    def invalidate_mapper(self):
        self._mapper = None

    @property
    def mapper(self):
        mapper = self._mapper
        if mapper is None:
            mapper = self._mapper = self._build_mapper()
        return mapper

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
