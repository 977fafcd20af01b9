"""ClusterManagerBase: what DeltaManager and BackupManager share (Tomcat's ClusterManagerBase).

A cluster manager belongs to a SimpleTcpCluster (``cluster``, set by ``create_manager`` or
``register_manager``) and sends session messages through it. It adds Tomcat's replication filters:

* ``sessionAttributeNameFilter``: a regex (full match) on attribute names; attributes whose names
  do not match stay on this node (never sent, and never applied when received).
* ``sessionAttributeValueClassNameFilter`` (ManagerBase): a regex on the classes a dill-blob value
  may name; it applies to every source, the cluster included.

Trust (the security model for values). Attribute values of plain types travel in pycat's own
codec (pycat.ha.session.attr_values). Anything else travels as dill bytes, and a receiver loads dill
bytes only when the channel authenticates its peers: an AuthInterceptor or an EncryptInterceptor in
the channel's stack (every message delivered has passed it). On a channel with neither, setting such
a value in a distributable application fails at once, in the application's request, with a
NotSerializableError naming the attribute, its type and the fix; and a blob arriving anyway (a
crafted message) is refused unread.
"""
import logging
import re

from pycat.attrs import Attr
from pycat.ha.session import attr_values
from pycat.session.errors import NotSerializableError
from pycat.session.manager import ManagerBase

log = logging.getLogger(__name__)

UNTRUSTED_FIX = ("values of plain types (str, int, float, bool, None, bytes, list, dict, tuple, set, "
                 "datetime, Decimal, UUID) always replicate; to replicate objects of other classes, add an "
                 "AuthInterceptor or EncryptInterceptor (with the same secret on every node) to the "
                 "cluster's <Channel>")


def member_name(member):
    """How log lines name a cluster member (its tcp://host:port name)."""
    return getattr(member, "name", None) or str(member)


class ClusterManagerBase(ManagerBase):
    notify_listeners_on_replication = Attr(bool, True, "fire attribute listeners and binding hooks when "
                                           "applying a replicated change")
    record_all_actions = Attr(bool, False, "send every action of a request; false: the last per name")
    session_attribute_name_filter = Attr(str, None, "regex (full match) on attribute names that replicate; "
                                         "unset: all")
    warn_on_session_attribute_filter_failure = Attr(bool, False, "log a warning (else debug) when a filter "
                                                    "keeps an attribute from replicating")
    enable_statistics = Attr(bool, True, "accepted for Tomcat compatibility; statistics are always kept")

    def __init__(self):
        super().__init__()
        self.cluster = None
        self._name_filter_source = None
        self._name_filter = None

    def set_cluster(self, cluster):
        self.cluster = cluster

    @property
    def cluster_manager_name(self):
        """The name the cluster knows this manager by (``host#/app`` in an Engine's cluster)."""
        return self.__dict__.get("_cluster_manager_name") or self.name or "/"

    @property
    def trusted(self):
        """Whether peers' messages passed authentication (dill values may be loaded from them)."""
        cluster = self.cluster
        return cluster is not None and bool(getattr(cluster, "trusted", False))

    def name_filter(self):
        source = self.session_attribute_name_filter or None
        if source != self._name_filter_source:
            self._name_filter = re.compile(source) if source else None
            self._name_filter_source = source
        return self._name_filter

    def replicates(self, name):
        """Whether attribute ``name`` passes sessionAttributeNameFilter."""
        pattern = self.name_filter()
        if pattern is None or pattern.fullmatch(name):
            return True
        self.filter_failure("attribute %r does not match sessionAttributeNameFilter; not replicated", name)
        return False

    def filter_failure(self, fmt, *args):
        level = logging.WARNING if self.warn_on_session_attribute_filter_failure else logging.DEBUG
        log.log(level, "%s: " + fmt, self.component_name, *args)

    def _init(self):
        super()._init()
        self.name_filter()          # a bad pattern fails the manager's init

    def check_serializable(self, name, value):
        """At set time in a distributable app: a value that would travel as dill bytes needs a
        trusted channel (module doc); otherwise it must be serialisable at all."""
        if not attr_values.needs_trust(value):
            return
        if not self.trusted and self.cluster is not None and self.replicates(name):
            raise NotSerializableError(name, value, "it is not a plain value, so it would travel as dill bytes, "
                                       "which cluster members load only from authenticated peers, and this "
                                       "cluster's channel has no AuthInterceptor or EncryptInterceptor; "
                                       + UNTRUSTED_FIX)
        super().check_serializable(name, value)

    def resolve_value(self, name, value, trusted=None):
        """A received attribute value (decode_structure's result) as the value to store: a dill
        blob is loaded only from a trusted source (by default: whether the channel is trusted),
        through the class filter and the app's loader. ValueRefused (with the reason) when it may
        not be loaded or cannot be."""
        if type(value) is not attr_values.Blob:
            return value
        try:
            return attr_values.resolve(value, self.trusted if trusted is None else trusted,
                                       self.value_class_filter(), self.app_loader)
        except attr_values.values.ValueRefused:
            raise
        except Exception as exc:
            raise attr_values.values.ValueRefused("<dill blob>", "could not be loaded: %s: %s"
                                                  % (type(exc).__name__, exc)) from None
