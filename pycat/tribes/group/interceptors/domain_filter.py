"""DomainFilterInterceptor: only members and messages of our domain pass (Tomcat's namesake).

``domain`` is given as text (``"cluster-a"``) or Tomcat's byte-array form ``{1,2,3}``.
Foreign messages are dropped (a warning every ``logInterval`` drops); foreign members are never
reported and are absent from ``get_members``.
"""
import logging

from pycat.attrs import Attr
from pycat.tribes.group.interceptor import MemberViewInterceptor

log = logging.getLogger(__name__)


def parse_domain(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value).strip()
    if text.startswith("{") and text.endswith("}"):
        return bytes(int(x) & 0xFF for x in text[1:-1].split(",") if x.strip())
    return text.encode("iso-8859-1")


class DomainFilterInterceptor(MemberViewInterceptor):
    domain = Attr(parse_domain, b"", "the cluster domain (text or {1,2,3} bytes)")
    log_interval = Attr(int, 100, "warn once every this many dropped messages")

    def __init__(self):
        super().__init__()
        self.dropped = 0

    def _ours(self, member):
        return member is not None and bytes(member.domain) == self.domain

    def message_received(self, msg):
        if self._ours(msg.address):
            super().message_received(msg)
            return
        self.dropped += 1
        if self.log_interval > 0 and self.dropped % self.log_interval == 1:
            log.warning("dropped %d message(s) from other domains (last from %s, domain %r)",
                        self.dropped, msg.address.name if msg.address else None,
                        msg.address.domain if msg.address else None)

    def member_added(self, member):
        if self._ours(member):
            notify = member not in self._members
            self._members[member] = member
            if notify:
                super().member_added(member)

    def member_disappeared(self, member):
        if self._members.pop(member, None) is not None:
            super().member_disappeared(member)
