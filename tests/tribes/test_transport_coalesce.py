"""No-ack sends to one member in one turn of the event loop share one write (PooledParallelSender).

Real channels on 127.0.0.1; the sender's sockets are wrapped to count their writes."""
import gevent
import pytest

from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.transport import sender as sender_mod
from pycat.tribes.transport.sender import PooledParallelSender

from _channel_fakes import Collect, FakeNetwork, real_channel, wait_for

pytestmark = pytest.mark.timeout(60)


class CountingSocket:
    """A socket that counts the send() calls made on it."""

    def __init__(self, sock, counts):
        self._sock = sock
        self._counts = counts

    def send(self, data, *args):
        self._counts.append(len(data))
        return self._sock.send(data, *args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.fixture
def pair():
    net = FakeNetwork()
    a, b = real_channel(net), real_channel(net)
    inbox = Collect()
    b.add_channel_listener(inbox)
    a.start()
    b.start()
    transport = a.sender.transport
    writes = []
    connect = transport._connect

    def counted(member, deadline):
        conn = connect(member, deadline)
        conn.sock = CountingSocket(conn.sock, writes)
        return conn
    transport._connect = counted
    (member,) = a.get_members()
    yield a, member, inbox, writes
    a.stop()
    b.stop()


def test_no_ack_sends_of_one_turn_go_in_one_write(pair):
    a, member, inbox, writes = pair
    a.send([member], b"warm", 0)                       # the connection exists before the burst
    wait_for(lambda: inbox.messages == [b"warm"])
    del writes[:]
    jobs = [gevent.spawn(a.send, [member], b"m%d" % i, 0) for i in range(20)]
    gevent.joinall(jobs, raise_error=True)
    wait_for(lambda: len(inbox.messages) == 21)
    assert sorted(inbox.messages[1:]) == sorted(b"m%d" % i for i in range(20))
    assert len(writes) == 1                            # twenty frames, one send()
    # positive control: acknowledged sends are written one by one (each waits for its ACK)
    del writes[:]
    jobs = [gevent.spawn(a.send, [member], b"ack%d" % i, ch.USE_ACK) for i in range(5)]
    gevent.joinall(jobs, raise_error=True)
    assert len(writes) == 5 and len(inbox.messages) == 26


def test_a_sender_alone_writes_at_once_and_the_frames_stay_in_order(pair):
    a, member, inbox, writes = pair
    for i in range(5):
        a.send([member], b"s%d" % i, 0)                # one greenlet: one write per send
    wait_for(lambda: len(inbox.messages) == 5)
    assert inbox.messages == [b"s%d" % i for i in range(5)] and len(writes) == 5


def test_every_sender_of_a_failed_write_hears_of_it():
    net = FakeNetwork()
    a, b, c = real_channel(net), real_channel(net), real_channel(net)
    inbox = Collect()
    b.add_channel_listener(inbox)
    for chan in (a, b, c):
        chan.start()
    members = {m.port: m for m in a.get_members()}
    live, gone = members[b.receiver.bound_port], members[c.receiver.bound_port]
    c.stop()                                           # nothing listens on its port any more
    try:
        lost = [gevent.spawn(a.send, [gone], b"lost%d" % i, 0) for i in range(5)]
        # positive control: the same kind of burst to a member that is there arrives whole
        kept = [gevent.spawn(a.send, [live], b"kept%d" % i, 0) for i in range(5)]
        gevent.joinall(lost + kept)
        for job in lost:
            assert isinstance(job.exception, ChannelError) and gone in job.exception.faulty
        assert all(job.successful() for job in kept)
        wait_for(lambda: sorted(inbox.messages) == [b"kept%d" % i for i in range(5)])
    finally:
        a.stop()
        b.stop()


class FlakySocket:
    """Takes ``limit`` bytes, then fails; records what it took."""

    def __init__(self, limit):
        self.limit = limit
        self.taken = b""

    def settimeout(self, timeout):
        pass

    def send(self, data):
        room = self.limit - len(self.taken)
        if room <= 0:
            raise ConnectionResetError("gone")
        data = bytes(data[:room])
        self.taken += data
        return len(data)

    def close(self):
        pass


def test_a_write_cut_short_counts_the_frames_written_whole_and_retries_the_rest():
    transport = PooledParallelSender()
    transport._configure()
    frames = [b"a" * 10, b"b" * 10, b"c" * 10]
    batch = sender_mod._Batch(frames[0])
    batch.frames += frames[1:]
    first = sender_mod._Connection(FlakySocket(15))    # the first frame and half of the second
    with pytest.raises(ConnectionResetError):
        transport._write_frames(first, batch, deadline=10 ** 9)
    assert batch.written == 1
    second = sender_mod._Connection(FlakySocket(100))
    transport._write_frames(second, batch, deadline=10 ** 9)
    assert batch.written == 3 and second.sock.taken == frames[1] + frames[2]   # no frame twice
