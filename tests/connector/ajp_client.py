"""A small AJP/1.3 client (the web server's side) over a gevent socket, for the connector tests."""
import gevent
import gevent.socket

from pycat.connector import ajp_packet as ajp


class AjpClient:
    def __init__(self, port, timeout=10.0):
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.decoder = ajp.container_decoder(ajp.MAX_PACKET_SIZE)
        self.packets = []
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def packet(self):
        """The next container packet, decoded; None when the connection closed."""
        with gevent.Timeout(self.timeout):
            while not self.packets:
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.packets.extend(self.decoder.feed(data))
        return ajp.parse_container_packet(self.packets.pop(0))

    def closed(self):
        """True when the server closed the connection (EOF or reset) with nothing more to say."""
        try:
            return self.packet() is None
        except ConnectionError:
            return True

    def response(self, body_chunks=()):
        """Read one response: (status, headers dict lower-case → list, body, reuse, gets).
        ``body_chunks`` answer the container's GET_BODY_CHUNK requests in order (then b"")."""
        chunks = list(body_chunks)
        status, headers, body, gets = None, {}, [], 0
        while True:
            p = self.packet()
            assert p is not None, "connection closed before END_RESPONSE"
            if p[0] == "headers":
                status = p[1]
                for name, value in p[3]:
                    headers.setdefault(name.lower(), []).append(value)
            elif p[0] == "body":
                body.append(p[1])
            elif p[0] == "get":
                gets += 1
                self.send(ajp.body_packet(chunks.pop(0) if chunks else b""))
            elif p[0] == "end":
                return status, headers, b"".join(body), p[1], gets
            else:
                raise AssertionError("unexpected %r" % (p,))

    def request(self, method="GET", uri="/", secret="s3cret", headers=(("host", "localhost"),), body=None,
                chunked_body=None, **kwargs):
        """Send one request (``body``: declared length, first packet unasked; ``chunked_body``: a list
        of pieces handed out on GET_BODY_CHUNK) and read its response."""
        headers = list(headers)
        attributes = list(kwargs.pop("attributes", ()))
        if secret is not None:
            attributes.append(("secret", secret))
        first = b""
        rest = []
        if body is not None:
            headers.append(("content-length", str(len(body))))
            step = 8186
            pieces = [body[i:i + step] for i in range(0, len(body), step)]
            first, rest = ajp.body_packet(pieces[0]) if pieces else b"", pieces[1:]
        elif chunked_body is not None:
            headers.append(("transfer-encoding", "chunked"))
            rest = list(chunked_body)
        self.send(ajp.forward_request(method, uri, headers=headers, attributes=attributes, **kwargs) + first)
        return self.response(rest)
