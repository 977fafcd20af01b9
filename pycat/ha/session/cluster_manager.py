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
from time import perf_counter

from pycat.attrs import Attr
from pycat.ha.session import attr_values
from pycat.ha.session import delta as d
from pycat.ha.session import delta_session as ds
from pycat.ha.session.tracker import DeltaTracker, pickle_digest
from pycat.session import values
from pycat.session.id_generator import parse_session_id
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
        self.writer = ""                         # this node's name in the versions it stamps
        self.digest_function = pickle_digest     # how a tracker notices a value changed in place
        self._name_filter_source = None
        self._name_filter = None
        self.replication_count = 0               # requests whose end sent a message (request_completed)
        self.replication_seconds = 0.0           # the time those sends took, in total

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

    # -- the request side: what a request changed, and how values travel -------------------------
    def begin_tracking(self, session):
        """Start recording a request's changes to ``session`` (DeltaSession.access calls this)."""
        if self.cluster is None:
            return
        request = d.DeltaRequest(self.cluster_manager_name, session.id,
                                 record_all_actions=self.record_all_actions)
        if session.clock == 0 and not session.versions and session.is_primary and session.is_new:
            request.create(session.max_inactive_interval, session.creation_time)
        digest_function = self.digest_function
        if digest_function is pickle_digest:      # it uses neither (and this runs for every request)
            class_filter = loader = None
        else:
            class_filter, loader = self.value_class_filter(), self.app_loader
        tracker = DeltaTracker(session, request, class_filter=class_filter, loader=loader,
                               digest_function=digest_function)
        session.tracker = tracker
        session.observer = tracker
        principal = session.principal
        session.fields = (session.max_inactive_interval, None if principal is None else ds.principal_key(principal),
                          session.auth_type)

    def request_completed(self, session):
        """The end of a request that used ``session`` (the ReplicationValve calls this): send what
        it changed (``_replicate``: DeltaManager to every node, BackupManager to the backup).
        Errors are logged, never raised. Returns what was sent, or None.

        When something was sent, the time it took (from here, the request's end, until the
        message was written to the members, or acknowledged with a sync channelSendOptions) is
        added to ``replication_seconds`` and counted in ``replication_count`` (the manager's
        cluster view shows their ratio)."""
        started = perf_counter()
        try:
            sent = self._replicate(session, ending=True)
        except Exception:
            log.exception("%s: replicating session %s failed", self.component_name, session.id)
            return None
        if sent is not None:
            self.replication_seconds += perf_counter() - started
            self.replication_count += 1
        return sent

    def _replicate(self, session, ending):
        raise NotImplementedError

    def _request_delta(self, session, ending):
        """The DeltaRequest of what the request did to ``session`` (a valid session with a tracker):
        the tracker's actions, then changes to the interval, principal and auth type, minus what
        sessionAttributeNameFilter keeps here; None when nothing is left. ``ending``: the request's
        end (the tracker is finished unless another request still uses the session, else flushed)."""
        tracker = session.tracker
        in_use = session.access_count > 0 or not ending
        delta = tracker.flush() if in_use else tracker.finish()
        principal = session.principal
        fields = (session.max_inactive_interval, None if principal is None else ds.principal_key(principal),
                  session.auth_type)
        before = session.fields
        if in_use:
            session.fields = fields
        else:
            session.tracker = session.observer = session.fields = None
        if before is not None and fields != before:
            if delta is None:
                delta = d.DeltaRequest(self.cluster_manager_name, tracker.delta.session_id,
                                       record_all_actions=self.record_all_actions)
            if fields[0] != before[0]:
                delta.set_max_inactive(fields[0])
            if fields[1] != before[1]:
                delta.set_principal(fields[1])
            if fields[2] != before[2]:
                delta.set_auth_type(fields[2])
        return None if delta is None else self._outgoing(session, delta)

    def _outgoing(self, session, delta):
        """The delta minus the attributes sessionAttributeNameFilter keeps here; None if empty."""
        if self.name_filter() is None:
            return delta if delta.actions else None
        keep = [a for a in delta.actions if not (a[0] == d.SET or a[0] == d.REMOVE) or self.replicates(a[1])]
        if len(keep) != len(delta.actions):
            delta.actions = keep
        return delta if keep else None

    def _stamp(self, session, delta):
        """Give an outgoing delta the session's next version, and its keys that version."""
        session.clock += 1
        delta.version = (session.clock, self.writer)
        session.stamp(delta_keys(delta), delta.version)

    def value_encoder(self, session=None, local=False):
        """encode(name, value) -> an attribute's wire form, made once, or delta.SKIP for what stays
        here: a name sessionAttributeNameFilter refuses, a value that cannot be encoded (class
        filter, no pickler), or, on an untrusted channel (``local``: a handover inside this node is
        trusted), a value that would travel as dill bytes. For a delta (``session`` given) each
        value left here is logged as an error with the fix; for a state transfer at the filter
        failure level (one line per attribute per session would flood the log)."""
        trusted = local or self.trusted
        class_filter, loader = self.value_class_filter(), self.app_loader
        named = self.name_filter() is not None
        to_wire = ds.attr_values.encode

        def encode(name, value):
            if named and not self.replicates(name):
                return d.SKIP
            try:
                wire = to_wire(value, class_filter, loader)
            except Exception as exc:
                why = "%s: %s" % (type(exc).__name__, exc)
            else:
                if trusted or type(wire) is not tuple or wire[0] != "B":
                    return wire
                why = "it is not a plain value and cannot replicate on this channel. " + UNTRUSTED_FIX
            if session is not None:
                log.error("%s: session %s: attribute %r (%s) stays on this node: %s", self.component_name,
                          session.id, name, values.class_name(type(value)), why)
            else:
                self.filter_failure("attribute %r (%s) not sent: %s", name, values.class_name(type(value)), why)
            return d.SKIP
        return encode

    def value_writer(self, local=False):
        """write(out, name, value) -> bool: ``value_encoder()``'s rules (for a state transfer: what
        stays here is logged at the filter failure level) with the attribute's wire form appended
        to the bytearray ``out`` in one pass (``attr_values.write``), for
        ``delta_session.record_bytes``. False (``out`` unchanged) for what stays here."""
        trusted = local or self.trusted
        class_filter, loader = self.value_class_filter(), self.app_loader
        named = self.name_filter() is not None
        write_value = attr_values.write
        plain, not_plain, depth = attr_values.write_plain, attr_values.NotPlain, attr_values.MAX_DEPTH

        def write(out, name, value):
            if named and not self.replicates(name):
                return False
            mark = len(out)
            try:
                plain(value, out, depth)               # the common case: a plain value, one pass
                return True
            except not_plain:
                del out[mark:]
            try:
                if not write_value(value, out, class_filter, loader, trusted):
                    return True
                if trusted:
                    return True
                why = "it is not a plain value and cannot replicate on this channel. " + UNTRUSTED_FIX
            except Exception as exc:
                why = "%s: %s" % (type(exc).__name__, exc)
            self.filter_failure("attribute %r (%s) not sent: %s", name, values.class_name(type(value)), why)
            return False
        # every name replicates: record_bytes may write a plain value itself and call this only
        # for the others (one call per attribute instead of three)
        write.every_name = not named
        return write

    # -- the receiving side ----------------------------------------------------------------------
    def _resolve(self, name, value):
        if not self.replicates(name):
            raise values.ValueRefused(name, "does not match sessionAttributeNameFilter")
        return self.resolve_value(name, value)

    def _resolve_trusted(self, name, value):
        """As _resolve, for a source this node wrote itself (a redeploy's handover)."""
        return self.resolve_value(name, value, trusted=True)


    def _admits(self, session_id):
        """Whether a replicated session may be added: a well-formed id, maxActiveSessions not reached."""
        if parse_session_id(session_id) is None:
            log.warning("%s: replicated session id %r is malformed; dropped", self.component_name, session_id)
            return False
        limit = self.max_active_sessions
        if limit is not None and limit >= 0 and len(self._sessions) >= limit:
            self.rejected_sessions += 1
            log.warning("%s: maxActiveSessions (%d) reached; replicated session %s refused",
                        self.component_name, limit, session_id)
            return False
        return True


def delta_keys(delta):
    """The versioned keys a delta changes: attribute names and field codes."""
    keys = []
    for action in delta.actions:
        code = action[0]
        if code == d.SET or code == d.REMOVE:
            keys.append(action[1])
        elif code in (d.MAX_INACTIVE, d.PRINCIPAL, d.AUTH_TYPE):
            keys.append(code)
    return keys
