"""Benchmark: time to log in and answer STAT on a large mbox and a large
Maildir, the first time (no index or size cache) and the second time.

Not part of `make check`.  Run after building:

  POPLARD=./poplard POPLAR_MODULE_BUILD_DIR=modules/.libs \
      python3 tests/bench/bench_maildrop.py [--mbox-mib 1024] \
      [--maildir-messages 100000]

It builds the maildrops in a temporary directory (about 1 GiB of disk
for the defaults), prints one line per measurement and removes them."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import poplartest  # noqa: E402


def timed_stat(server, user, password):
    t0 = time.monotonic()
    c = server.login(user, password, timeout=600)
    reply = c.cmd("STAT", timeout=600)
    t1 = time.monotonic()
    c.cmd("QUIT")
    c.close()
    return t1 - t0, reply


def make_mbox(path, mib):
    body = "".join("body line %02d of a benchmark message, some text\n" % i
                   for i in range(70)).encode()
    n = 0
    target = mib * 1024 * 1024
    written = 0
    with open(path, "wb", buffering=4 * 1024 * 1024) as f:
        while written < target:
            msg = (b"From bench@example.org Mon Jan  1 00:00:00 2024\n"
                   b"Message-Id: <%d@bench>\nSubject: %d\n\n" % (n, n) +
                   body + b"\n")
            f.write(msg)
            written += len(msg)
            n += 1
    return n, written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbox-mib", type=int, default=1024)
    ap.add_argument("--maildir-messages", type=int, default=100000)
    args = ap.parse_args()
    poplartest.require_environment()

    s = poplartest.PoplarServer(server_opts={"idle_timeout": "600"})
    try:
        s.add_user("alice", "secret")
        s.add_user("bob", "secret")
        spool = os.path.join(s.tmp, "spool")
        os.mkdir(spool)
        os.chmod(spool, 0o777 if poplartest.IS_ROOT else 0o755)
        mbox = os.path.join(spool, "alice")
        t0 = time.monotonic()
        count, size = make_mbox(mbox, args.mbox_mib)
        if poplartest.IS_ROOT:
            os.chown(mbox, poplartest.NOBODY, poplartest.NOBODY)
        print("mbox: %d messages, %.1f MiB written in %.1f s" %
              (count, size / 1048576, time.monotonic() - t0))
        t0 = time.monotonic()
        body = b"Subject: x\n\n" + b"a line of a message body\n" * 40
        for i in range(args.maildir_messages):
            s.add_message("bob", body)
        print("maildir: %d messages written in %.1f s" %
              (args.maildir_messages, time.monotonic() - t0))

        # alice reads an mbox, bob a Maildir: one server per format.
        text = s.config_text

        def mbox_config():
            return text().replace("location = maildir:%h/Maildir",
                                  "location = mbox:%s/%%u" % spool)
        s.config_text = mbox_config
        s.start()
        for run in ("first", "second"):
            t, reply = timed_stat(s, "alice", "secret")
            print("mbox    %-6s login+STAT: %7.3f s  (%s)" % (run, t, reply))
        s.stop()
        s.config_text = text
        s.start()
        for run in ("first", "second"):
            t, reply = timed_stat(s, "bob", "secret")
            print("maildir %-6s login+STAT: %7.3f s  (%s)" % (run, t, reply))
        s.stop()
    finally:
        s.cleanup()


if __name__ == "__main__":
    main()
