"""Send option UDP (32): one datagram per message to the member's udpPort (Tomcat's UDP sender).

The datagram carries the same frame as TCP. With USE_ACK the sender waits for the receiver's
ACK/FAIL_ACK datagram on the same socket, bounded by the transport's ``timeout``; nothing is
retried (UDP loss is the caller's risk, as in Tomcat). Frames above 65 507 bytes do not fit.
A small stack of idle sockets is reused; one that timed out is closed (a late ack would
otherwise answer the next send).
"""
from gevent import socket

from pycat.errors import ChannelError, ProtocolError
from pycat.tribes import channel as ch
from pycat.tribes.io import framing
from pycat.tribes.transport.errors import RemoteProcessError, SendTimeout

#: largest frame a UDP datagram can carry
MAX_UDP_FRAME = 65507


class UdpSender:
    def __init__(self, owner):
        self.owner = owner  # the PooledParallelSender whose timeout and buffer sizes apply
        self._idle = []

    def close(self):
        for sock in self._idle:
            sock.close()
        self._idle = []

    def send(self, member, frame, options, faulty):
        """Send option UDP: one datagram to the member's udpPort; with USE_ACK wait for the ack
        datagram (no retry: UDP loss is the caller's risk, as in Tomcat)."""
        if member.udp_port is None or member.udp_port < 0:
            faulty[member] = ChannelError("member %s has no UDP port" % member.name)
            return
        if len(frame) > MAX_UDP_FRAME:
            faulty[member] = ChannelError("a %d-byte frame does not fit in a datagram" % len(frame))
            return
        family = socket.AF_INET6 if ":" in member.hostname else socket.AF_INET
        sock = self._idle.pop() if self._idle else None
        if sock is None or sock.family != family:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(65536, self.owner.udp_tx_buf_size))
        reusable = True
        try:
            sock.settimeout(self.owner._cfg.timeout)
            sock.sendto(frame, (member.hostname, member.udp_port))
            if options & ch.USE_ACK:
                while True:
                    data, addr = sock.recvfrom(64)
                    if addr[1] == member.udp_port:
                        break
                if data == framing.FAIL_ACK_FRAME:
                    faulty[member] = RemoteProcessError("remote processing failed (FAIL_ACK)")
                elif data != framing.ACK_FRAME:
                    faulty[member] = ProtocolError("expected an ACK datagram, got %r" % data[:21])
        except socket.timeout:
            reusable = False  # a late ack would confuse the next send on this socket
            faulty[member] = SendTimeout("no UDP ACK within %d ms" % self.owner._cfg.timeout_ms)
        except OSError as exc:
            reusable = False
            faulty[member] = exc
        finally:
            if reusable and len(self._idle) < 16:
                self._idle.append(sock)
            else:
                sock.close()

