"""bench/sessions: memory of 10k/100k sessions of ~1 KB and StandardManager save/restore time.

Baseline in the same run: the same attribute payload held in plain dicts (no Session objects,
no manager), so the figure that matters -- what the session model adds per session -- is the
difference. Usage: python bench/sessions.py [--sizes 10000,100000] [--persist 100000]
"""
import argparse
import gc
import os
import tempfile
import time
import tracemalloc

from pycat.session import persistence
from pycat.session.manager import StandardManager


def payload(i):
    """About 1 KB of typical attributes, distinct objects per session."""
    return {
        "user": "user%07d" % i,
        "roles": ["user", "reader", "team-%d" % (i % 50)],
        "prefs": {"lang": "en", "tz": "UTC", "page_size": 20, "theme": "dark", "visits": i},
        "cart": [{"sku": "SKU-%06d" % (i + k), "qty": k + 1} for k in range(4)],
        "blob": ("%08d" % i) * 96,  # 768 chars
    }


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(build):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return kept, after - before


def bench_memory(n):
    baseline, base_bytes = measure(lambda: [payload(i) for i in range(n)])
    del baseline

    def build():
        m = StandardManager()
        m.pathname = ""
        for i in range(n):
            s = m.create_session()
            for k, v in payload(i).items():
                s.set_attribute(k, v)
        return m
    rss0 = rss_kb()
    manager, total = measure(build)
    rss1 = rss_kb()
    sample = next(iter(manager.find_sessions()))
    record = len(persistence.encode_session(sample))
    print("memory  %7d sessions: %8.1f MB traced (%5.0f B/session); payload alone %7.1f MB "
          "(%4.0f B); session model adds %4.0f B/session; RSS delta %7.1f MB; record %d B"
          % (n, total / 1e6, total / n, base_bytes / 1e6, base_bytes / n, (total - base_bytes) / n,
             (rss1 - rss0) / 1024, record))
    del manager
    gc.collect()


def bench_persist(n):
    with tempfile.TemporaryDirectory() as work:
        m = StandardManager()
        m.work_dir = work
        m.start()
        for i in range(n):
            s = m.create_session()
            for k, v in payload(i).items():
                s.set_attribute(k, v)
        t0 = time.perf_counter()
        m.stop()
        save = time.perf_counter() - t0
        size = os.path.getsize(os.path.join(work, "SESSIONS.ser"))
        del m
        gc.collect()
        m2 = StandardManager()
        m2.work_dir = work
        t0 = time.perf_counter()
        m2.start()
        load = time.perf_counter() - t0
        assert m2.active_sessions == n, m2.active_sessions
        print("persist %7d sessions: save %.2f s (%.1f us/session), restore %.2f s (%.1f us/session), "
              "file %.1f MB" % (n, save, save / n * 1e6, load, load / n * 1e6, size / 1e6))
        m2.pathname = ""
        m2.stop()


def bench_codec(n=10_000):
    """Why values go through pickle first and dill only as a fallback."""
    import dill
    import pickle
    values = [v for i in range(n) for v in payload(i).values()]
    t0 = time.perf_counter()
    for v in values:
        dill.dumps(v, pickle.HIGHEST_PROTOCOL)
    dill_t = time.perf_counter() - t0
    t0 = time.perf_counter()
    for v in values:
        persistence.dump_value(v)
    ours = time.perf_counter() - t0
    print("codec   %7d values: dill.dumps %.1f us/value, dump_value (pickle, dill fallback) %.1f us/value"
          % (len(values), dill_t / len(values) * 1e6, ours / len(values) * 1e6))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--persist", type=int, default=100_000)
    args = p.parse_args()
    for n in (int(x) for x in args.sizes.split(",") if x):
        bench_memory(n)
    if args.persist:
        bench_persist(args.persist)
    bench_codec()


if __name__ == "__main__":
    main()
