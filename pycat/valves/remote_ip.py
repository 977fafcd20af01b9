"""RemoteIpValve: believe X-Forwarded-For / X-Forwarded-Proto from trusted proxies.

Tomcat's algorithm: only when the TCP peer matches ``internalProxies`` (or ``trustedProxies``)
is the header read. Walking the X-Forwarded-For list right to left, internal proxies are
skipped, trusted proxies are remembered (``proxiesHeader``), and the first other address is
the client. Downstream valves and the app see the rewritten remote address/host, and, from
``protocolHeader``, the scheme, ``secure`` flag and server port. Everything is restored after
the request so the access log of an outer valve can choose.
"""
import re

from pycat.attrs import Attr
from pycat.core.pipeline import Valve

# Tomcat 10.1's default: 10/8, 192.168/16, 169.254/16, 127/8, 100.64/10, 172.16/12, ::1, fc00::/7
DEFAULT_INTERNAL_PROXIES = (
    r"10\.\d{1,3}\.\d{1,3}\.\d{1,3}|"
    r"192\.168\.\d{1,3}\.\d{1,3}|"
    r"169\.254\.\d{1,3}\.\d{1,3}|"
    r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}|"
    r"100\.6[4-9]{1}\.\d{1,3}\.\d{1,3}|"
    r"100\.[7-9]{1}\d{1}\.\d{1,3}\.\d{1,3}|"
    r"100\.1[0-1]{1}\d{1}\.\d{1,3}\.\d{1,3}|"
    r"100\.12[0-7]{1}\.\d{1,3}\.\d{1,3}|"
    r"172\.1[6-9]{1}\.\d{1,3}\.\d{1,3}|"
    r"172\.2[0-9]{1}\.\d{1,3}\.\d{1,3}|"
    r"172\.3[0-1]{1}\.\d{1,3}\.\d{1,3}|"
    r"0:0:0:0:0:0:0:1|::1|"
    r"fe[89ab]\p{XDigit}:.*|f[cd]\p{XDigit}{2}+:.*".replace(r"\p{XDigit}", "[0-9a-fA-F]"))


def _regex(value):
    return re.compile(value) if value else None


class RemoteIpValve(Valve):
    remote_ip_header = Attr(str, "X-Forwarded-For", "Header listing client and proxies")
    protocol_header = Attr(str, "X-Forwarded-Proto", "Header giving the original scheme")
    protocol_header_https_value = Attr(str, "https", "Value meaning https")
    host_header = Attr(str, None, "Header giving the original host (X-Forwarded-Host)")
    port_header = Attr(str, None, "Header giving the original port (X-Forwarded-Port)")
    internal_proxies = Attr(_regex, re.compile(DEFAULT_INTERNAL_PROXIES), "Regex of internal proxies")
    trusted_proxies = Attr(_regex, None, "Regex of trusted (listed) proxies")
    proxies_header = Attr(str, "X-Forwarded-By", "Request header set to the trusted proxies seen",
                          aliases=("remoteIpProxiesHeader",))
    http_server_port = Attr(int, 80, "Port for http requests")
    https_server_port = Attr(int, 443, "Port for https requests")
    change_local_port = Attr(bool, False, "Also change the local port")
    change_local_name = Attr(bool, False, "Also change the local name")
    request_attributes_enabled = Attr(bool, True, "Set the access-log request attributes")

    def _matches(self, regex, value):
        return regex is not None and regex.fullmatch(value) is not None

    def invoke(self, request, response):
        peer = request.remote_addr
        internal, trusted = self.internal_proxies, self.trusted_proxies
        if not (self._matches(internal, peer) or self._matches(trusted, peer)):
            self.next.invoke(request, response)
            return
        saved = (request.remote_addr, request.remote_host, request.scheme, request.secure,
                 request.server_port, request.server_name)
        header = request.get_header(self.remote_ip_header)
        remote_ip = None
        proxies = []
        if header:
            values = [v.strip() for v in header.split(",") if v.strip()]
            idx = len(values) - 1
            while idx >= 0:
                value = values[idx]
                remote_ip = value
                if self._matches(internal, value):
                    pass
                elif self._matches(trusted, value):
                    proxies.insert(0, value)
                else:
                    idx -= 1
                    break
                idx -= 1
            # addresses left of the client stay in the header (Tomcat rewrites it)
            remaining = values[:idx + 1]
        else:
            remaining = None
        try:
            if remote_ip is not None:
                request.remote_addr = remote_ip
                request.remote_host = remote_ip
                if proxies:
                    request.set_header_override(self.proxies_header, ", ".join(proxies))
                request.set_header_override(self.remote_ip_header,
                                            ", ".join(remaining) if remaining else None)
            if self.protocol_header:
                proto = request.get_header(self.protocol_header)
                if proto:
                    if proto.strip().lower() == self.protocol_header_https_value.lower():
                        request.scheme, request.secure = "https", True
                        request.server_port = self.https_server_port
                    else:
                        request.scheme, request.secure = "http", False
                        request.server_port = self.http_server_port
            if self.port_header:
                port = request.get_header(self.port_header)
                if port and port.strip().isdigit():
                    request.server_port = int(port)
            if self.host_header:
                host = request.get_header(self.host_header)
                if host:
                    request.server_name = host.strip().split(":")[0]
            if self.request_attributes_enabled:
                request.set_attribute("org.apache.catalina.AccessLog.RemoteAddr", request.remote_addr)
                request.set_attribute("org.apache.catalina.AccessLog.RemoteHost", request.remote_host)
                request.set_attribute("org.apache.catalina.AccessLog.Protocol", request.protocol)
                request.set_attribute("org.apache.catalina.AccessLog.ServerPort", request.server_port)
            self.next.invoke(request, response)
        finally:
            # Tomcat restores the original values once the request has gone through
            (request.remote_addr, request.remote_host, request.scheme, request.secure,
             request.server_port, request.server_name) = saved
