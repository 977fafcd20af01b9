"""JvmRouteBinderValve: after a fail-over, move the session's id to this node's jvmRoute.

A sticky load balancer (mod_proxy_balancer, mod_jk) routes by the suffix of the session id
(``<hex>.node1`` goes to the member whose route is node1). When node1 fails, the balancer sends the
request elsewhere; this valve, on node2, finds the session (replicated here) and gives it the id
``<hex>.node2`` (Tomcat's JvmRouteBinderValve): the response sets the new cookie, the id change is
replicated to every node, and the next requests stick to node2. The old id goes into the request
attribute ``sessionIdAttribute``. If only ``<hex>.node2`` exists here already, the request just
switches to it. Ids without a route, and apps that are not distributable or not managed by a cluster
manager, are left alone.
"""
import logging

from pycat.attrs import Attr
from pycat.core import session_support
from pycat.core.pipeline import Valve

log = logging.getLogger(__name__)

SESSION_ID_ATTRIBUTE = "org.apache.catalina.ha.session.JvmRouteOrignalSessionID"


class JvmRouteBinderValve(Valve):
    enabled = Attr(bool, True, "rewrite session ids to this node's jvmRoute after a fail-over")
    session_id_attribute = Attr(str, SESSION_ID_ATTRIBUTE, "request attribute that receives the old session id")

    def __init__(self):
        super().__init__()
        self.cluster = None
        self.number_of_sessions = 0

    def set_cluster(self, cluster):
        self.cluster = cluster

    def invoke(self, request, response):
        if self.enabled:
            try:
                self._bind(request, response)
            except Exception:
                log.exception("JvmRouteBinderValve: moving the session of %s failed", request.request_uri)
        self.next.invoke(request, response)

    def _bind(self, request, response):
        context = request.context
        if context is None or not context.distributable:
            return
        manager = context.manager
        if not hasattr(manager, "request_completed") or manager.cluster is None:
            return
        route = manager.jvm_route
        if not route:
            return
        for sid in session_support.requested_ids(request, response):
            base, dot, old_route = sid.rpartition(".")
            if not dot or old_route == route:
                continue
            new_id = "%s.%s" % (base, route)
            # find_session: a BackupManager takes over a session another node holds
            session = manager.find_session(sid)
            if session is not None:
                log.debug("JvmRouteBinderValve: session %s moves to %s", sid, new_id)
                manager.change_session_id(session, new_id)
                self.number_of_sessions += 1
            else:
                if manager.find_session(new_id) is None:
                    continue
            session_support.change_requested_id(request, sid, new_id)
            request.set_attribute(self.session_id_attribute, sid)
            return
