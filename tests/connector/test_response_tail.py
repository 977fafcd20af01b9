"""A streamed body's last bytes wait for finish() when they complete a declared Content-Length:
nothing can follow them, and they must leave after the pipeline (the ReplicationValve sends the
request's session changes before the client can have the whole response)."""
from pycat.connector.response import Response


class Wire:
    def __init__(self):
        self.sent = []

    def start_response(self, status, headers):
        self.status, self.headers = status, headers
        return self.sent.append


def streamed(declared, chunks):
    wire = Wire()
    response = Response(None, wire.start_response)
    if declared is not None:
        response.add_header("Content-Length", str(declared))
    for chunk in chunks:
        response.write_bytes(chunk)
        response.flush()          # what WsgiServlet does for each block of an iterator
    return wire, response


def test_the_block_completing_the_declared_length_waits_for_finish():
    wire, response = streamed(6, [b"abc", b"def"])
    assert wire.sent == [b"abc"]           # streamed as it came...
    assert response.finish() == []
    assert wire.sent == [b"abc", b"def"]   # ...but the end only at finish()


def test_a_single_block_body_waits_whole():
    wire, response = streamed(3, [b"abc"])
    assert wire.sent == []
    response.finish()
    assert wire.sent == [b"abc"]


def test_without_a_declared_length_every_block_streams_at_once():
    # positive control: the same writes with no Content-Length are all on the wire before finish()
    wire, response = streamed(None, [b"abc", b"def"])
    assert wire.sent == [b"abc", b"def"]
    response.finish()
    assert wire.sent == [b"abc", b"def"]
