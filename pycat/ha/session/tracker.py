"""DeltaTracker: one request's changes to one session, including values changed in place.

A ``DeltaTracker`` is the session's ``observer`` (pycat.session.session.AttributeObserver) for the
length of one request. It records what went through the write path into its ``DeltaRequest``:

    attribute_written(name, value)   ->  delta.set_attribute(name, value)
    attribute_removed(name)          ->  delta.remove_attribute(name)

and catches what did not (Tomcat does not: ``session["cart"].append(x)`` never calls
``setAttribute``). On the FIRST read of a name not yet written or removed in this request it keeps
a digest of the value as it was then; ``finish()`` digests those values again and records a SET for
each one whose digest differs, then returns the DeltaRequest, or None if it holds no action.

The digest is ``blake2b(codec.dumps(attr_values.encode(value)), digest_size=16)``: the value's wire
form, so "changed" means exactly "would travel differently". A value that needs dill encodes as
``("B", values.dump(value))``, so its digest is the digest of its pickle; nothing is ever unpickled.

Cheap cases, no digest at all: immutable scalars (exact str, int, float, bool, None, bytes, and
tuples/frozensets of those, nested) cannot change in place. A name is digested once per request,
however often it is read (``items()`` reads each name, then its value).

If the value cannot be encoded when it is read (the class filter refuses it, no pickler can write
it), the tracker cannot tell whether it changed, and ``finish()`` records it as SET. That is the
safe choice: a spurious SET costs bytes on the wire, a missed change loses the user's data on
failover; and the SET makes the send fail loudly in ``to_plain`` rather than the replica silently
keeping a stale value. (A distributable app cannot normally get such a value in: the manager refuses
it at set time.)

At ``finish()``, a name whose value is no longer the object that was read (replaced or removed by an
untracked change, e.g. a replicated one) is skipped: that change is not this request's.

Pure: no I/O, no threads; one tracker per request per session, not shared between greenlets.
"""
import hashlib

from pycat.ha.session import attr_values
from pycat.ha.session.delta import DeltaRequest
from pycat.session import values
from pycat.session.session import AttributeObserver
from pycat.tribes.io import codec

_SCALARS = frozenset((type(None), bool, int, float, str, bytes))
_UNKNOWN = object()         # digest of a value that could not be encoded: counts as changed
_MISSING = object()


def immutable(value, depth=8):
    """True if ``value`` cannot change in place: an exact scalar, or a tuple/frozenset of such."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if (kind is tuple or kind is frozenset) and depth > 0:
        return all(immutable(item, depth - 1) for item in value)
    return False


def digest(value, class_filter=None, loader=None):
    """The digest of ``value``'s wire form (module doc); raises what ``attr_values.encode`` raises."""
    return hashlib.blake2b(codec.dumps(attr_values.encode(value, class_filter, loader)),
                           digest_size=16).digest()


def pickle_digest(value, class_filter=None, loader=None):
    """A cheaper digest (bench/mutation.py: ~10x on 1 KB lists/dicts): of ``values.dump(value)``
    (pickle; dill when pickle cannot) for every value. Pickle writes every bit of a plain value's
    content, so any change the wire form would show changes this digest too (it may also change
    when only the sharing between sub-objects does: a spurious SET, never a missed one). The class
    filter is not applied here: it is the send's business (``to_plain``)."""
    return hashlib.blake2b(values.dump(value), digest_size=16).digest()


class DeltaTracker(AttributeObserver):
    """Observer of one session for one request; ``finish()`` -> DeltaRequest or None.

    ``delta``: the DeltaRequest to record into (the caller may record its own actions too: create,
    access, principal...), or None for a new coalescing one of ``app`` and ``session.id``.
    ``session``: the session observed; events about any other session are ignored. ``class_filter``
    and ``loader``: as for ``attr_values.encode`` (the manager's filter, the app's loader).
    ``digest_function``: ``digest`` (the wire form, default) or ``pickle_digest`` (cheaper)."""
    __slots__ = ("session", "delta", "class_filter", "loader", "digest_function", "_read", "_written",
                 "digests")

    def __init__(self, session, delta=None, app="", class_filter=None, loader=None, digest_function=None):
        self.session = session
        self.digest_function = digest_function
        self.delta = DeltaRequest(app, session.id) if delta is None else delta
        self.class_filter = class_filter
        self.loader = loader
        self._read = {}          # name -> (value object read, its digest) for mutable values
        self._written = set()    # names written or removed in this request (or scalar when read)
        self.digests = 0         # digests taken (reads plus finish): for tests and the bench

    def _digest(self, value):
        self.digests += 1
        try:
            return (self.digest_function or digest)(value, self.class_filter, self.loader)
        except Exception:
            return _UNKNOWN

    # -- AttributeObserver -------------------------------------------------------------------
    def attribute_read(self, session, name, value):
        if session is not self.session or name in self._read or name in self._written:
            return
        if type(value) in _SCALARS or immutable(value):
            self._read[name] = None            # seen: never digested, never re-examined
            return
        self._read[name] = (value, self._digest(value))

    def attribute_written(self, session, name, value, old):
        if session is not self.session:
            return
        self._written.add(name)
        self._read.pop(name, None)
        self.delta.set_attribute(name, value)

    def attribute_removed(self, session, name, old):
        if session is not self.session:
            return
        self._written.add(name)
        self._read.pop(name, None)
        self.delta.remove_attribute(name)

    # -- end of request ----------------------------------------------------------------------
    def changed(self):
        """The names read (not written) whose value changed in place since their first read."""
        current = self.session.raw_attributes()
        names = []
        for name, seen in self._read.items():
            if seen is None:
                continue
            value, before = seen
            if current.get(name, _MISSING) is not value:
                continue                       # replaced or removed outside this request's tracking
            if before is _UNKNOWN or self._digest(value) != before:
                names.append(name)
        return names

    def forget(self, name):
        """A replicated write of ``name`` was applied after this request's: drop what the request
        recorded or read of it (its pending action and its digest), so the request does not send
        an older value over the newer one."""
        self._read.pop(name, None)
        self._written.discard(name)
        self.delta.discard_attribute(name)

    def flush(self, delta=None):
        """The actions so far (values changed in place included) as a DeltaRequest, or None; the
        tracker goes on observing into ``delta`` (a fresh DeltaRequest of the same session unless
        given), with the values read so far digested again as they are now, so a change in place
        after the flush is still found."""
        current = self.session.raw_attributes()
        for name in self.changed():
            self.delta.set_attribute(name, current[name])
        done = self.delta if len(self.delta) else None
        self.delta = DeltaRequest(done.app if done is not None else self.delta.app, self.session.id,
                                  record_all_actions=self.delta.record_all_actions) if delta is None else delta
        self._written = set()
        read = {}
        for name, seen in self._read.items():
            if seen is None:
                read[name] = None
            elif current.get(name, _MISSING) is seen[0]:
                read[name] = (seen[0], self._digest(seen[0]))
        self._read = read
        return done

    def finish(self):
        """Record a SET for every value changed in place; the DeltaRequest, or None if empty.
        The tracker is spent afterwards (its reads are forgotten)."""
        current = self.session.raw_attributes()
        for name in self.changed():
            self.delta.set_attribute(name, current[name])
        self._read = {}
        self._written = set()
        return self.delta if len(self.delta) else None
