"""pycat.netutil: the one way pycat opens a listening socket and sets per-connection TCP options."""
import socket

import pytest

from pycat.netutil import bind_failure, listen_tcp, set_tcp_options


@pytest.mark.timeout(10)
def test_listen_tcp_and_a_taken_port():
    first = listen_tcp(("127.0.0.1", 0), 4)
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError) as info:
            listen_tcp(("127.0.0.1", port), 4)
        assert bind_failure(info.value) == "Address already in use"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            set_tcp_options(client, no_delay=True, keep_alive=True)
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            set_tcp_options(client, no_delay=False)
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    finally:
        first.close()
