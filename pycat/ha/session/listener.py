"""ClusterSessionListener: hands each received session message to its application's manager.

Tomcat's ClusterSessionListener. It takes the cluster messages of kind "session", reads the
SessionMessage inside (a malformed one is dropped with a warning), and gives it to the manager the
cluster registered under the message's application name (``host#/app`` or ``/app``). A message for
an application this node does not run is dropped with a log line, except a GET-ALL (a joining node
asking for state), which is answered with NO-CONTEXT-MANAGER so the joiner asks someone else
instead of waiting for its timeout.

``JvmRouteSessionIDBinderListener`` is the Tomcat 6 listener that applied the id changes of the old
JvmRouteBinderValve; since Tomcat 8 (and in pycat) id changes travel in the session messages
themselves. The name is accepted, so Tomcat 6 configurations load, and does nothing more than say so.
"""
import logging

from pycat.errors import ProtocolError
from pycat.ha.cluster_listener import ClusterListener
from pycat.ha.session import delta as d
from pycat.ha.session.delta_manager import KIND, session_message

log = logging.getLogger(__name__)


class ClusterSessionListener(ClusterListener):
    kinds = (KIND,)

    def message_received(self, msg):
        sender = msg.address
        try:
            message = d.SessionMessage.from_plain(msg.body)
        except ProtocolError as exc:
            log.warning("ClusterSessionListener: malformed session message from %s dropped: %s",
                        getattr(sender, "name", sender), exc)
            return
        cluster = self.cluster
        manager = cluster.get_manager(message.app) if cluster is not None else None
        receive = getattr(manager, "message_received", None)
        if receive is None:
            if message.event_type == d.EVT_GET_ALL_SESSIONS:
                log.info("ClusterSessionListener: %s asks for the sessions of %r, which this node does not "
                         "run; answering NO-CONTEXT-MANAGER", getattr(sender, "name", sender), message.app)
                if cluster is not None:
                    cluster.send(session_message(message.app, d.EVT_ALL_SESSION_NOCONTEXTMANAGER, "", None,
                                                 message.unique_id), sender)
            else:
                log.warning("ClusterSessionListener: %s for application %r from %s dropped: no such "
                            "distributable application here", message.event_name, message.app,
                            getattr(sender, "name", sender))
            return
        receive(message, sender)


class JvmRouteSessionIDBinderListener(ClusterListener):
    """Tomcat 6's listener for JvmRouteBinderValve id changes: accepted, nothing to do."""

    def set_cluster(self, cluster):
        super().set_cluster(cluster)
        if cluster is not None:
            log.info("JvmRouteSessionIDBinderListener is Tomcat 6's listener for session id changes; in pycat "
                     "(as since Tomcat 8) id changes travel in the session messages that "
                     "ClusterSessionListener handles, so this listener has nothing to do")

    def message_received(self, msg):
        pass
