"""bench/mutation: what in-place mutation detection (pycat.ha.session.tracker) costs per request.

One request = read every attribute of one session (``session[name]``), change nothing. With the
tracker: a DeltaTracker is attached, each value (a ~1 KB list or dict) is digested at its first read
and again at ``finish()``. Without: the same reads, no observer. Reported per N (attributes in the
session): microseconds per request each way, the ratio (median of interleaved repeats: each repeat
times each variant, in alternating order), and the digest cost per value; for the default digest
(the wire form: attr_values.encode + codec.dumps) and for ``pickle_digest``.
Usage: python bench/mutation.py [--attrs 1,10,50] [--requests 200] [--repeats 9]
"""
import argparse
import statistics
import time

from pycat.ha.session.tracker import DeltaTracker, pickle_digest
from pycat.session.manager import StandardManager


def value(i):
    """About 1 KB of plain data: a cart (list of dicts) or a preferences dict, alternately."""
    if i % 2:
        return [{"sku": "SKU-%06d" % (i * 100 + k), "qty": k, "price": 9.99 + k, "tags": ["a", "b"]}
                for k in range(12)]
    return {"key%02d" % k: "value-%d-%s" % (k, "x" * 40) for k in range(16)}


def make_session(n):
    s = StandardManager().create_session()
    for i in range(n):
        s["attr%03d" % i] = value(i)
    return s


def plain_request(s, names):
    for name in names:
        s[name]


def tracked_request(s, names):
    t = DeltaTracker(s)
    s.observer = t
    for name in names:
        s[name]
    result = t.finish()
    s.observer = None
    assert result is None
    return t


def fast_request(s, names):
    t = DeltaTracker(s, digest_function=pickle_digest)
    s.observer = t
    for name in names:
        s[name]
    result = t.finish()
    s.observer = None
    assert result is None


def timed(fn, s, names, requests):
    start = time.perf_counter()
    for _ in range(requests):
        fn(s, names)
    return (time.perf_counter() - start) / requests


def run(n, requests, repeats):
    s = make_session(n)
    names = list(s.raw_attributes())
    tracked_request(s, names)                          # warm-up (imports, caches)
    plain, tracked, fast = [], [], []
    for r in range(repeats):
        order = ((plain, plain_request), (tracked, tracked_request), (fast, fast_request))
        for sink, fn in (order if r % 2 == 0 else order[::-1]):
            sink.append(timed(fn, s, names, requests))
    p, t, f = statistics.median(plain), statistics.median(tracked), statistics.median(fast)
    return (p, t, statistics.median([a / b for a, b in zip(tracked, plain)]), (t - p) / (2 * n),
            f, statistics.median([a / b for a, b in zip(fast, plain)]), (f - p) / (2 * n))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attrs", default="1,10,50")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    from pycat.tribes.io import codec
    from pycat.ha.session import attr_values
    size = len(codec.dumps(attr_values.encode(value(0)))), len(codec.dumps(attr_values.encode(value(1))))
    print("values: %d B (dict) / %d B (list) encoded; %d requests x %d interleaved repeats"
          % (size[0], size[1], args.requests, args.repeats))
    print("tracked: wire-form digest (default); pickle: digest_function=pickle_digest")
    print("%5s %9s | %11s %7s %9s | %11s %7s %9s" % ("attrs", "plain us", "tracked us", "ratio",
                                                       "us/digest", "pickle us", "ratio", "us/digest"))
    for n in (int(x) for x in args.attrs.split(",")):
        p, t, ratio, per, f, fratio, fper = run(n, args.requests, args.repeats)
        print("%5d %9.1f | %11.1f %7.0f %9.1f | %11.1f %7.0f %9.1f" % (
            n, p * 1e6, t * 1e6, ratio, per * 1e6, f * 1e6, fratio, fper * 1e6))


if __name__ == "__main__":
    main()
