"""Integration tests of mbox maildrops: sizes against RETR octets,
[IN-USE], delivery by Debian's dotlockfile and procmail during a session,
100 deliveries racing 100 sessions, a root:mail 2775 spool with
mail_group, and the update stopped at every write step.

Runs as root (sessions drop to nobody, the spool is root:mail 2775) or as
any user (everything owned by that user)."""

import grp
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import IS_ROOT, NOBODY  # noqa: E402

HAVE_DOTLOCKFILE = shutil.which("dotlockfile") is not None
HAVE_PROCMAIL = shutil.which("procmail") is not None
try:
    MAIL_GID = grp.getgrnam("mail").gr_gid
except KeyError:
    MAIL_GID = None

FROM_RE = re.compile(rb"From ")


def parse_mbox(data):
    """Stored messages of an mbox, by the same rules as the server: a
    message starts at a "From " line at the start or after an empty line;
    the empty line before the next one (and a final one) is a separator."""
    lines = data.split(b"\n")
    # Re-attach the newline to every line but the last.
    lines = [l + b"\n" for l in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    msgs, cur, prev_blank = [], None, True
    for i, line in enumerate(lines):
        if line.startswith(b"From ") and (i == 0 or prev_blank):
            if cur is not None:
                if cur and cur[-1] in (b"\n", b"\r\n"):
                    cur.pop()
                msgs.append(b"".join(cur))
            cur = []
            prev_blank = False
            continue
        if cur is None:
            raise ValueError("not an mbox")
        cur.append(line)
        prev_blank = line in (b"\n", b"\r\n")
    if cur is not None:
        if cur and cur[-1] in (b"\n", b"\r\n") and prev_blank:
            cur.pop()
        msgs.append(b"".join(cur))
    return msgs


def message(n, tag="m", body_lines=3):
    body = "".join("line %d of %s%d\n" % (i, tag, n) for i in range(body_lines))
    return ("From sender%d@example.org Mon Jan  1 00:00:00 2024\n"
            "Message-Id: <%s%d@test>\nSubject: %s%d\n\n%s\n"
            % (n, tag, n, tag, n, body)).encode()


class MboxServer(poplartest.PoplarServer):
    """A PoplarServer whose maildrops are mboxes in a spool directory."""

    def __init__(self, maildrop_extra="", mail_group=True, **kw):
        super().__init__(**kw)
        self.spool = os.path.join(self.tmp, "spool")
        os.mkdir(self.spool)
        self.mail_group = mail_group and IS_ROOT and MAIL_GID is not None
        if IS_ROOT and MAIL_GID is not None:
            # Debian's /var/mail: root:mail, setgid, group-writable.
            os.chown(self.spool, 0, MAIL_GID)
            os.chmod(self.spool, 0o2775)
        self.maildrop_extra = maildrop_extra

    def mbox(self, user):
        return os.path.join(self.spool, user)

    def config_text(self):
        text = super().config_text()
        lines = ["location = mbox:%s/%%u" % self.spool,
                 "lock_timeout = 20"]
        if self.mail_group:
            lines.append("mail_group = mail")
        if self.maildrop_extra:
            lines.append(self.maildrop_extra)
        return text.replace("location = maildir:%h/Maildir",
                            "\n".join(lines))

    def write_mbox(self, user, data):
        path = self.mbox(user)
        with open(path, "wb") as f:
            f.write(data)
        if IS_ROOT:
            os.chown(path, NOBODY, MAIL_GID if MAIL_GID is not None
                     else NOBODY)
        os.chmod(path, 0o660)

    def read_mbox(self, user):
        try:
            with open(self.mbox(user), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def deliver(self, user, data, tool="dotlockfile"):
        """Append one message the way an MDA does, under the dotlock."""
        path = self.mbox(user)
        if tool == "dotlockfile":
            subprocess.run(["dotlockfile", "-l", "-r", "30", "-p",
                            path + ".lock", "sh", "-c", 'cat >> "$0"',
                            path], input=data, check=True, timeout=60)
        else:
            rc = os.path.join(self.tmp, "procmailrc")
            with open(rc, "w") as f:
                f.write("LOCKTIMEOUT=60\n:0:\n%s\n" % path)
            subprocess.run(["procmail", "-m", rc], input=data, check=True,
                           timeout=60)


def retr(conn, n):
    status, lines = conn.multi("RETR %d" % n)
    assert status.startswith("+OK"), status
    return poplartest.unstuff(lines)


class MboxTests(unittest.TestCase):
    def setUp(self):
        self.s = MboxServer()
        self.s.add_user("alice", "secret")
        self.s.add_user("bob", "secret2")

    def tearDown(self):
        code, left = self.s.stop()
        log = self.s.log()
        self.s.cleanup()
        self.assertEqual((code, left), (0, []), log[-3000:])

    def test_sizes_equal_retr_octets(self):
        big = b"x" * 200000
        data = (b"From a Mon Jan  1 00:00:00 2024\nSubject: plain\n\nbody\n"
                b">From quoted\n.leading dot\n..two\n\n"
                b"From b Mon Jan  1 00:00:00 2024\r\nSubject: crlf\r\n\r\n"
                b"crlf body\r\n\r\n"
                b"From c Mon Jan  1 00:00:00 2024\nSubject: nul\n\na\x00b\r"
                b"c\n\n"
                b"From d Mon Jan  1 00:00:00 2024\nSubject: long\n\n" + big +
                b"\n\n"
                b"From e Mon Jan  1 00:00:00 2024\nSubject: last\n\nno final"
                b" newline")
        self.s.write_mbox("alice", data)
        self.s.start()
        stored = parse_mbox(data)
        self.assertEqual(len(stored), 5)
        c = self.s.login("alice")
        try:
            status, lines = c.multi("LIST")
            sizes = [int(l.split()[1]) for l in lines]
            self.assertEqual(len(sizes), 5)
            stat = c.cmd("STAT").split()
            self.assertEqual(int(stat[1]), 5)
            self.assertEqual(int(stat[2]), sum(sizes))
            for i, raw in enumerate(stored):
                got = retr(c, i + 1)
                self.assertEqual(len(got), sizes[i])
                self.assertEqual(got, poplartest.wire_form(raw))
            status, lines = c.multi("UIDL")
            uidls = [l.split()[1] for l in lines]
            self.assertEqual(len(set(uidls)), 5)
            c.cmd("QUIT")
        finally:
            c.close()
        # poplib agrees.
        p = self.s.poplib()
        p.user("alice")
        p.pass_("secret")
        resp, listing, _ = p.list()
        for entry in listing:
            num, size = entry.split()
            if int(size) > 100000:
                continue        # poplib refuses lines over 2048 bytes
            resp, lines, octets = p.retr(int(num))
            self.assertEqual(sum(len(l) + 2 for l in lines), int(size))
        p.quit()
        self.assertEqual(self.s.read_mbox("alice"), data)

    def test_in_use_and_missing(self):
        self.s.start()
        c = self.s.login("bob")      # no mbox at all: empty maildrop
        self.assertEqual(c.cmd("STAT"), "+OK 0 0")
        d = self.s.connect()
        reply = d.login("bob", "secret2")
        self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
        d.close()
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))
        c.close()
        c = self.s.login("bob")
        c.cmd("QUIT")
        c.close()

    def test_not_mbox(self):
        self.s.write_mbox("alice", b"Subject: no From line\n\nbody\n")
        self.s.start()
        c = self.s.connect()
        reply = c.login("alice", "secret")
        self.assertTrue(reply.startswith("-ERR [SYS/PERM]"), reply)
        c.close()
        self.assertTrue(self.s.wait_log("not an mbox"))
        self.assertEqual(self.s.read_mbox("alice"),
                         b"Subject: no From line\n\nbody\n")

    def delivery_during_session(self, tool):
        self.s.write_mbox("alice", b"".join(message(i) for i in range(5)))
        self.s.start()
        c = self.s.login("alice")
        status, lines = c.multi("UIDL")
        before = dict(l.split()[::-1] for l in lines)
        self.s.deliver("alice", message(100, "new"), tool)
        self.s.deliver("alice", message(101, "new"), tool)
        # Invisible to this session.
        self.assertEqual(c.cmd("STAT").split()[1], "5")
        for n in (1, 3, 5):
            self.assertTrue(c.cmd("DELE %d" % n).startswith("+OK"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"), self.s.log())
        c.close()
        msgs = parse_mbox(self.s.read_mbox("alice"))
        subjects = [re.search(rb"Subject: (\S+)", m).group(1) for m in msgs]
        self.assertEqual(subjects, [b"m1", b"m3", b"new100", b"new101"])
        c = self.s.login("alice")
        status, lines = c.multi("UIDL")
        after = [l.split()[1].decode() for l in lines]
        self.assertEqual(len(after), 4)
        # Kept messages keep their UIDLs; new ones get unused ones.
        kept = [u for u, n in before.items() if n in (b"2", b"4")]
        self.assertEqual(sorted(after[:2]), sorted(u.decode() for u in kept))
        for u in after[2:]:
            self.assertNotIn(u.encode(), before)
        self.assertEqual(retr(c, 3), poplartest.wire_form(
            parse_mbox(message(100, "new"))[0]))
        c.cmd("QUIT")
        c.close()

    @unittest.skipUnless(HAVE_DOTLOCKFILE, "dotlockfile is not installed")
    def test_delivery_dotlockfile(self):
        self.delivery_during_session("dotlockfile")

    @unittest.skipUnless(HAVE_PROCMAIL, "procmail is not installed")
    def test_delivery_procmail(self):
        self.delivery_during_session("procmail")

    def test_outside_rewrite(self):
        data = b"".join(message(i) for i in range(4))
        self.s.write_mbox("alice", data)
        self.s.start()
        c = self.s.login("alice")
        self.assertTrue(c.cmd("DELE 2").startswith("+OK"))
        # A mail reader drops message 1 in place.
        rest = b"".join(message(i) for i in range(1, 4))
        with open(self.s.mbox("alice"), "r+b") as f:
            f.write(rest)
            f.truncate()
        reply = c.cmd("QUIT")
        self.assertTrue(reply.startswith("-ERR [SYS/TEMP]"), reply)
        c.close()
        self.assertEqual(self.s.read_mbox("alice"), rest)
        self.assertTrue(self.s.wait_log("changed by another program"))

    @unittest.skipUnless(HAVE_DOTLOCKFILE, "dotlockfile is not installed")
    def test_race_100_deliveries_100_sessions(self):
        self.s.write_mbox("alice", b"")
        self.s.start()
        fetched = []            # subjects of messages deleted with +OK QUIT
        errors = []
        lock = threading.Lock()
        done_sessions = [0]

        def deliverer(start):
            try:
                for n in range(start, 100, 4):
                    self.s.deliver("alice", message(n, "race", 2))
            except Exception as e:  # noqa: BLE001
                errors.append("delivery: %r" % e)

        def sessions():
            while True:
                with lock:
                    if done_sessions[0] >= 100:
                        return
                    done_sessions[0] += 1
                try:
                    c = self.s.connect()
                    reply = c.login("alice", "secret")
                    if reply.startswith("-ERR [IN-USE]"):
                        c.close()
                        with lock:
                            done_sessions[0] -= 1
                        time.sleep(0.01)
                        continue
                    assert reply.startswith("+OK"), reply
                    status, lines = c.multi("LIST")
                    got = []
                    for l in lines:
                        n = int(l.split()[0])
                        body = retr(c, n)
                        got.append(re.search(rb"Subject: (\S+)",
                                             body).group(1))
                        c.cmd("DELE %d" % n)
                    reply = c.cmd("QUIT")
                    c.close()
                    if reply.startswith("+OK"):
                        with lock:
                            fetched.extend(got)
                    else:
                        errors.append("quit: " + reply)
                except Exception as e:  # noqa: BLE001
                    errors.append("session: %r" % e)

        threads = [threading.Thread(target=deliverer, args=(i,))
                   for i in range(4)]
        threads += [threading.Thread(target=sessions) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(errors, [])
        remaining = [re.search(rb"Subject: (\S+)", m).group(1)
                     for m in parse_mbox(self.s.read_mbox("alice"))]
        everything = sorted(fetched + remaining)
        self.assertEqual(everything,
                         sorted(("race%d" % n).encode() for n in range(100)))

    def test_fault_injection(self):
        """Stop the update at every write step; after each, the next
        session finds the mailbox as before or as after the QUIT, plus the
        mail delivered during the session, every message exactly once."""
        fixture = b"".join(message(i, "f", 1) for i in range(300))
        late = message(999, "late", 1)
        fault = os.path.join(self.s.tmp, "fault")
        with open(fault, "w") as f:
            f.write("0\n")
        os.environ["POPLAR_MBOX_FAULT_FILE"] = fault
        try:
            self.s.server_opts["idle_timeout"] = "60"
            self.s.maildrop_extra = "dotlock_stale_age = 0"
            self.s.write_mbox("alice", fixture)
            self.s.start()
        finally:
            del os.environ["POPLAR_MBOX_FAULT_FILE"]
        stored = parse_mbox(fixture)
        deleted = set(range(0, 300, 3)) | {299}
        before = stored + parse_mbox(late)
        after = [m for i, m in enumerate(stored) if i not in deleted] + \
            parse_mbox(late)
        # UIDLs before.
        c = self.s.login("alice")
        status, lines = c.multi("UIDL")
        uidls = [l.split()[1] for l in lines]
        c.cmd("QUIT")
        c.close()
        state = os.path.join(self.s.spool, ".alice.uidl")
        with open(state, "rb") as f:
            saved_state = f.read()
        points = applied = 0
        step = 1
        while True:
            self.s.write_mbox("alice", fixture)
            with open(state, "wb") as f:
                f.write(saved_state)
            with open(fault, "w") as f:
                f.write("%d exit 97\n" % step)
            c = self.s.login("alice")
            c.send("".join("DELE %d\r\n" % (i + 1) for i in sorted(deleted)))
            for _ in deleted:
                c.readline()
            with open(self.s.mbox("alice"), "ab") as f:
                f.write(late)
            c.send("QUIT\r\n")
            reply = c.readline()
            c.close()
            with open(fault, "w") as f:
                f.write("0\n")
            # The next session finishes an interrupted update.
            c = self.s.login("alice")
            status, lines = c.multi("UIDL")
            got_uidls = [l.split()[1] for l in lines]
            c.cmd("QUIT")
            c.close()
            msgs = parse_mbox(self.s.read_mbox("alice"))
            self.assertIn(msgs, (before, after), "step %d" % step)
            if msgs == after:
                applied += 1
                kept = [u for i, u in enumerate(uidls) if i not in deleted]
                self.assertEqual(got_uidls[:-1], kept)
            else:
                self.assertEqual(got_uidls[:-1], uidls)
            self.assertFalse(os.path.exists(
                os.path.join(self.s.spool, ".alice.journal")))
            if reply is not None and reply.startswith(b"+OK"):
                self.assertEqual(msgs, after)
                break
            points += 1
            step += 1
        print("fault injection: %d steps, %d found applied" %
              (points, applied))
        self.assertGreaterEqual(points, 300)
        self.assertGreater(applied, 0)


@unittest.skipUnless(IS_ROOT and MAIL_GID is not None,
                     "needs root and a mail group")
class SpoolWithoutMailGroup(unittest.TestCase):
    def test_dotlock_needs_mail_group(self):
        s = MboxServer(mail_group=False)
        s.add_user("alice", "secret")
        try:
            s.write_mbox("alice", message(1))
            s.start()
            c = s.connect()
            reply = c.login("alice", "secret")
            c.close()
            self.assertTrue(reply.startswith("-ERR [SYS/TEMP]"), reply)
            self.assertTrue(s.wait_log("Permission denied"))
        finally:
            s.stop()
            s.cleanup()


if __name__ == "__main__":
    poplartest.require_environment()
    unittest.main(verbosity=2)
