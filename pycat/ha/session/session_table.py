"""SessionTable: a DeltaManager's session table, whose replicas may still be encoded records.

A state transfer brings every session of an app, most of which this node may never serve. So the
joiner keeps each received session as a ``PendingSession``: its id, its max inactive interval,
when it arrived, and its state-transfer record exactly as it came (delta_session.record_bytes's
bytes, checked only as far as ``peek_record`` reads). The DeltaSession is built (the record
decoded, checked whole, its values resolved under the trust rules of the record's source) the
first time anything asks for the session.

This is the one seam. A SessionTable is a dict of id -> DeltaSession or PendingSession, and:

* ``get``, ``[]``, ``values()``, ``items()`` answer DeltaSessions only: a pending entry met there
  is materialised first (``materialise(pending)``, the manager's, replaces the entry and returns
  the session, or removes it and returns None when its record is damaged). So every reader of
  ``manager._sessions`` (find_session, the valves, deltas, expiry and id-change messages,
  find_sessions...) sees real sessions without knowing about pending ones; ``values()`` and
  ``items()`` return lists, not views.
* ``len``, ``in`` and iteration over ids count pending entries as the sessions they are
  (maxActiveSessions, active_sessions, id generation).
* ``pending()`` and ``loaded()`` are for the few paths that can handle entries as they are
  without building them: expiry (a pending copy is due at twice its interval after its
  arrival, as a backup copy), a state transfer to another member (a pending record is forwarded
  as it came), stopping, a redeploy's handover.

Pure: no I/O. Code that reads entries with ``dict`` methods directly sees both kinds.
"""

_get = dict.get


class PendingSession:
    """A replicated session not built yet (module doc). ``local``: the record was written by this
    node (a redeploy's handover), so its values are trusted; otherwise they are resolved with the
    channel's trust when the session is built. ``sender``: for log lines."""
    __slots__ = ("id", "record", "max_inactive_interval", "arrived", "local", "sender")

    def __init__(self, session_id, record, max_inactive_interval, arrived, local=False, sender=None):
        self.id = session_id
        self.record = record
        self.max_inactive_interval = max_inactive_interval
        self.arrived = arrived
        self.local = local
        self.sender = sender

    def due(self, now):
        """Whether the copy has outlived its primary's silence (a backup copy's expiry: twice the
        interval since it arrived, as DeltaSession.is_valid for a copy that is not primary)."""
        interval = self.max_inactive_interval
        return interval > 0 and now - self.arrived >= 2 * interval

    def __repr__(self):
        return "<PendingSession %s (%d bytes)>" % (self.id, len(self.record))


class SessionTable(dict):
    """id -> DeltaSession | PendingSession (module doc)."""
    __slots__ = ("materialise",)

    def __init__(self, materialise):
        super().__init__()
        self.materialise = materialise

    def get(self, session_id, default=None):
        entry = _get(self, session_id)
        if type(entry) is PendingSession:
            entry = self.materialise(entry)
        return default if entry is None else entry

    def __getitem__(self, session_id):
        entry = self.get(session_id)
        if entry is None:
            raise KeyError(session_id)
        return entry

    def values(self):
        """Every session, pending ones built first (a list)."""
        out = []
        for session_id in list(self):
            entry = self.get(session_id)
            if entry is not None:
                out.append(entry)
        return out

    def items(self):
        return [(session.id, session) for session in self.values()]

    def pending(self):
        """The entries not built yet (a list)."""
        return [entry for entry in dict.values(self) if type(entry) is PendingSession]

    def loaded(self):
        """The entries built already (a list)."""
        return [entry for entry in dict.values(self) if type(entry) is not PendingSession]

    def entries(self):
        """Every entry as it is, built or pending (a list)."""
        return list(dict.values(self))

    def is_pending(self, session_id):
        return type(_get(self, session_id)) is PendingSession

    def __repr__(self):
        return "<SessionTable %d sessions, %d pending>" % (len(self), len(self.pending()))
