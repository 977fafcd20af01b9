"""ReplicationValve: at the end of each request, replicate the sessions it used (Tomcat's namesake).

The cluster puts this valve in its container's pipeline (Engine or Host). After the rest of the
pipeline has run, and before the connector writes the response, every session the request used
whose manager is a cluster manager registered with this cluster gets ``request_completed``: its
changes go to the other nodes as one message (pycat.ha.session.delta_manager for what the send
modes guarantee). Failures are logged, never shown to the client.

``filter``: a regex (full match) on the request's decoded URI; matching requests (static files)
are not replicated: their sessions' changes, if any, travel with the session's next replicated
request. ``primaryIndicator``: before the request runs, set the request attribute
``primaryIndicatorName`` to whether this node held the requested session as its primary copy.
``doProcessingStats``: keep request/send times; a summary is logged every 100 requests (at info).
"""
import logging
import re
import time

from pycat.attrs import Attr
from pycat.core import session_support
from pycat.core.pipeline import Valve

log = logging.getLogger(__name__)

PRIMARY_INDICATOR_NAME = "org.apache.catalina.ha.tcp.isPrimarySession"


def _filter(value):
    """The filter as one pattern. Tomcat 6 took a ";"-separated list of patterns (the cluster
    how-to's example still reads ``.*\\.gif;.*\\.js;...``); Tomcat 7+ one regex, in which that list
    would match nothing. A ";" never appears in a URI pattern otherwise, so a list is read as
    either of its patterns."""
    if not value:
        return None
    if ";" in value:
        parts = [p for p in value.split(";") if p]
        value = "|".join("(?:%s)" % p for p in parts)
    return re.compile(value) if value else None


class ReplicationValve(Valve):
    filter = Attr(_filter, None, "regex (full match) on the decoded URI of requests that never change a "
                                 "session (not replicated); empty: none")
    primary_indicator = Attr(bool, False, "set a request attribute telling whether this node holds the "
                                          "requested session as its primary copy")
    primary_indicator_name = Attr(str, PRIMARY_INDICATOR_NAME, "name of that request attribute")
    do_processing_stats = Attr(bool, False, "keep request and send times; a summary is logged every 100 requests")

    def __init__(self):
        super().__init__()
        self.cluster = None
        self.reset_statistics()

    def set_cluster(self, cluster):
        self.cluster = cluster

    def reset_statistics(self):
        self.total_request_time = 0.0
        self.total_send_time = 0.0
        self.last_send_time = 0.0
        self.nr_of_requests = 0
        self.nr_of_send_requests = 0
        self.nr_of_cross_context_send_requests = 0
        self.nr_of_filter_requests = 0

    def _cluster(self):
        if self.cluster is None and self.container is not None:
            self.cluster = self.container.get_cluster()
        return self.cluster

    def invoke(self, request, response):
        cluster = self._cluster()
        if self.primary_indicator and cluster is not None:
            self._indicate_primary(request, response)
        started = time.monotonic() if self.do_processing_stats else 0.0
        try:
            self.next.invoke(request, response)
        finally:
            if cluster is not None:
                self._replicate(cluster, request, started)

    def _indicate_primary(self, request, response):
        manager = getattr(request.context, "manager", None) if request.context is not None else None
        if manager is None or not hasattr(manager, "request_completed"):
            return
        for sid in session_support.requested_ids(request, response):
            session = manager.find_session(sid)
            if session is not None:
                request.set_attribute(self.primary_indicator_name, bool(session.is_primary))
                return

    def _replicate(self, cluster, request, started):
        sessions = session_support.used_sessions(request)
        pattern = self.filter
        if pattern is not None and pattern.fullmatch(request.decoded_uri or ""):
            self.nr_of_filter_requests += 1
            return
        if not sessions:
            return
        send_started = time.monotonic() if self.do_processing_stats else 0.0
        sent = 0
        own = request.context
        for session in sessions:
            manager = session.manager
            completed = getattr(manager, "request_completed", None)
            if completed is None or getattr(manager, "cluster", None) is not cluster:
                continue
            try:
                completed(session)
            except Exception:
                log.exception("ReplicationValve: replicating session %s failed", session.id)
            sent += 1
            if own is not None and getattr(manager, "context", None) is not own:
                self.nr_of_cross_context_send_requests += 1
        if self.do_processing_stats:
            now = time.monotonic()
            self.nr_of_requests += 1
            self.total_request_time += now - started
            if sent:
                self.nr_of_send_requests += 1
                self.last_send_time = now - send_started
                self.total_send_time += self.last_send_time
            if self.nr_of_requests % 100 == 0:
                log.info("ReplicationValve statistics: %d requests, %d sent, %d cross-context, %d filtered; "
                         "average request %.2f ms, average send %.2f ms", self.nr_of_requests,
                         self.nr_of_send_requests, self.nr_of_cross_context_send_requests,
                         self.nr_of_filter_requests, self.total_request_time * 1000 / self.nr_of_requests,
                         self.total_send_time * 1000 / max(1, self.nr_of_send_requests))
