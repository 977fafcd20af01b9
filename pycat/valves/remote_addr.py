"""RemoteAddrValve and RemoteHostValve: allow/deny requests by client address or host name.

Tomcat's RequestFilterValve rules: a deny match → denied; else an allow match → allowed; else
allowed only when no allow pattern is set. With ``addConnectorPort`` the tested string is
``addr;port`` (the connector's local port). Denied requests get ``denyStatus`` (403) via
send_error, so the ErrorReportValve renders the page.
"""
import re

from pycat.attrs import Attr
from pycat.core.pipeline import Valve


def _compile(pattern):
    return re.compile(pattern) if pattern else None


class RequestFilterValve(Valve):
    allow = Attr(_compile, None, "Regex of allowed values (full match)")
    deny = Attr(_compile, None, "Regex of denied values (full match)")
    deny_status = Attr(int, 403, "Status sent to denied requests")
    add_connector_port = Attr(bool, False, "Test 'value;localPort' instead of the value")
    invalid_authentication_when_deny = Attr(bool, False, "Kept for compatibility")
    use_peer_address = Attr(bool, False, "Test the TCP peer, not a RemoteIpValve-rewritten address")

    def value_of(self, request):
        raise NotImplementedError

    def is_allowed(self, value):
        deny, allow = self.deny, self.allow
        if deny is not None and deny.fullmatch(value):
            return False
        if allow is not None:
            return bool(allow.fullmatch(value))
        return True

    def invoke(self, request, response):
        value = self.value_of(request)
        if self.add_connector_port:
            value = "%s;%s" % (value, request.local_port)
        if self.is_allowed(value):
            self.next.invoke(request, response)
        else:
            response.send_error(self.deny_status)


class RemoteAddrValve(RequestFilterValve):
    def value_of(self, request):
        return request.peer_addr if self.use_peer_address else request.remote_addr


class RemoteHostValve(RequestFilterValve):
    def value_of(self, request):
        return request.remote_host
