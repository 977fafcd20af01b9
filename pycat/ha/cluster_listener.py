"""ClusterListener: what receives the cluster's messages (Tomcat's ClusterListener).

A ``<ClusterListener>`` (or any object given to ``SimpleTcpCluster.add_cluster_listener``) is
offered every ClusterMessage the cluster receives: ``accept(msg)`` says whether it wants it, then
``message_received(msg)`` gets it (``msg.address`` is the sending Member). The cluster calls
``set_cluster(cluster)`` when the listener is added, so a listener can answer through
``self.cluster.send(...)``. Subclasses override ``accept`` and ``message_received``; the base
accepts the kinds named in ``kinds`` (none by default).
"""


class ClusterListener:
    #: the ClusterMessage kinds this listener takes (``accept``'s default rule)
    kinds = ()

    def __init__(self):
        self.cluster = None

    def set_cluster(self, cluster):
        self.cluster = cluster

    def get_cluster(self):
        return self.cluster

    def accept(self, msg):
        return msg.kind in self.kinds

    def message_received(self, msg):
        raise NotImplementedError("%s must implement message_received" % type(self).__name__)
