"""Socket helpers for every layer (layer 1: imports nothing of pycat).

One way to open a listening TCP socket (the HTTP connector, the shutdown port, the Tribes
receiver, the deploy channel) and one way to set the per-connection TCP options the Tribes
sender and receiver share. The callers keep their own policy: which address, what a bind
failure means (a LifecycleError, a ChannelError, the next port of an autoBind range).
"""
import errno
import socket

import gevent.socket


def listen_tcp(sockaddr, backlog, family=socket.AF_INET, reuse_address=True):
    """A gevent TCP socket bound to ``sockaddr`` and listening with ``backlog``.

    SO_REUSEADDR (on by default) lets a restarted node bind its port at once although
    connections of the previous run sit in TIME_WAIT. If bind or listen fails the socket is
    closed and the OSError raised, for the caller to word (see ``bind_failure``)."""
    sock = gevent.socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_failure(exc):
    """The reason a bind failed, in the words users search for ("Address already in use")."""
    return "Address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))


def set_tcp_options(sock, no_delay=True, keep_alive=False):
    """TCP_NODELAY (set either way, so the flag means what it says) and SO_KEEPALIVE (only
    turned on: off is the system default) on a connected socket."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if no_delay else 0)
    if keep_alive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
