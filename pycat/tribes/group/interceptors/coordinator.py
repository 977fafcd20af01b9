"""NonBlockingCoordinator: agree on one coordinator (leader) among the members.

Simplified from Tomcat: instead of the token-ring election messages, every node derives the
leader from its own view (members + itself) as the first member in AbsoluteOrder (address bytes
ascending with IPv4 before IPv6, then lower port, then unique id bytes). Nodes with the same view
agree by construction, and membership changes re-elect immediately. The election messages are not
wire-compatible with Tomcat's; a mixed Java/pycat cluster must not rely on this interceptor.
"""
import logging

from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)


def absolute_order_key(member):
    host = bytes(member.host or b"")
    return (len(host), host, member.port, bytes(member.unique_id))


class NonBlockingCoordinator(ChannelInterceptor):
    def __init__(self):
        super().__init__()
        self._coordinator = None

    def get_view(self):
        view = list(self.get_members())
        local = self.get_local_member(False)
        if local is not None and local not in view:
            view.append(local)
        return sorted(view, key=absolute_order_key)

    def get_coordinator(self):
        view = self.get_view()
        return view[0] if view else None

    def is_coordinator(self):
        coord, local = self.get_coordinator(), self.get_local_member(False)
        return coord is not None and coord == local

    def _check(self):
        coord = self.get_coordinator()
        if coord != self._coordinator:
            log.info("coordinator is now %s", getattr(coord, "name", None))
            self._coordinator = coord

    def member_added(self, member):
        super().member_added(member)
        self._check()

    def member_disappeared(self, member):
        super().member_disappeared(member)
        self._check()
