"""Black-box POP3 sessions against poplard: the RFC 1939 / RFC 2449
protocol as clients see it (raw sockets, Python's poplib and curl).

Covers: greeting and CAPA, USER/PASS and the states, every TRANSACTION
command, sizes and byte-stuffing, strict message numbers, deletion on
disk, pipelining, line limits and NUL bytes, the bad-command and
failed-login limits, [IN-USE], the idle timeout, the log lines of a
session, and curl as a real client.
"""

import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import (PoplarServer, ServerTestCase, wire_form,  # noqa: E402
                        unstuff, parse_log_fields)

# Messages stored for the TRANSACTION tests.  Each exercises one part of
# the transformation from stored bytes to wire form (see wire_form()).
MESSAGES = {
    "lf": b"From: bob@example.org\nTo: alice@example.org\nSubject: lf\n"
          b"\nline one\nline two\nline three\n",
    "crlf": b"From: bob@example.org\r\nTo: alice@example.org\r\n"
            b"Subject: crlf\r\n\r\nfirst\r\nsecond\r\nthird\r\n",
    "nonl": b"From: bob@example.org\nSubject: no final newline\n\n"
            b"body without newline",
    "dots": b"From: bob@example.org\nSubject: dots\n\n.foo\n..bar\n.\n"
            b"middle\n.\r\nend\n",
    "empty": b"From: bob@example.org\nSubject: empty body\n\n",
    "cur": b"From: bob@example.org\r\nSubject: seen\r\n\r\nread before\r\n",
    "zero": b"",
    "lonecr": b"Subject: lone CR\n\nx\rmid\nnext\n",
}

# Message numbers that must all be refused: zero, signs, junk, empty,
# 2^32 + 1 (wraps to 1 in 32 bits), a value overflowing 64 bits.
BAD_NUMBERS = ["0", "-1", "+1", "1x", " ", "4294967297",
               "99999999999999999999", "0x1"]
# Line counts of TOP that must be refused (0 and large counts are valid).
BAD_LINE_COUNTS = ["-1", "+1", "1x", " ", "0x1", "99999999999999999999"]


def expected_top(raw, n):
    """What TOP sends (before byte-stuffing) for n body lines: the
    header, the blank line, then at most n lines of the body."""
    wire = wire_form(raw)
    lines = wire.split(b"\r\n")[:-1]  # the text after the last CRLF is ""
    if b"" not in lines:
        return wire
    keep = lines.index(b"") + 1 + n
    return b"".join(l + b"\r\n" for l in lines[:keep])


def big_message():
    """About 2 MB: long and short lines, LF and CRLF line ends, dots at
    line starts and empty lines at irregular places (so that they fall
    on every position of the server's buffers), and no final newline."""
    out = [b"From: bob@example.org\nSubject: big\n\n"]
    for i in range(30000):
        if i % 7 == 0:
            line = b".dot %d" % i
        elif i % 11 == 0:
            line = b""
        elif i % 13 == 0:
            line = b"." * (i % 5 + 1)
        else:
            line = b"line %d " % i + b"x" * (i * 37 % 150)
        out.append(line + (b"\r\n" if i % 3 == 0 else b"\n"))
    out.append(b"the end, without a newline")
    return b"".join(out)


class AuthorizationTests(ServerTestCase):
    """Greeting, CAPA, USER/PASS and what is legal in which state."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("alice", "secret")
        s.add_user("bob", "hunter2")
        s.add_message("alice", MESSAGES["crlf"])
        return s

    def capa(self, conn):
        status, lines = conn.multi("CAPA")
        self.assertTrue(status.startswith("+OK"), status)
        return [l.decode() for l in lines]

    def test_greeting(self):
        with self.server.connect() as c:
            self.assertIsNotNone(c.greeting)
            self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
            self.assertLessEqual(len(c.greeting) + 2, 512)

    def test_capa_authorization(self):
        with self.server.connect() as c:
            caps = self.capa(c)
            names = [l.split()[0].upper() for l in caps if l.strip()]
            for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
                        "PIPELINING", "USER", "IMPLEMENTATION"):
                self.assertIn(cap, names, caps)
            # The session goes on after CAPA.
            self.assertTrue(c.quit().startswith("+OK"))

    def test_capa_transaction_has_no_user(self):
        with self.server.login("alice") as c:
            caps = self.capa(c)
            names = [l.split()[0].upper() for l in caps if l.strip()]
            self.assertNotIn("USER", names, caps)
            for cap in ("TOP", "UIDL", "PIPELINING"):
                self.assertIn(cap, names, caps)
            self.assertTrue(c.quit().startswith("+OK"))

    def test_capa_poplib(self):
        p = self.server.poplib()
        try:
            caps = p.capa()
            self.assertIn("USER", caps)
            self.assertIn("UIDL", caps)
        finally:
            p.quit()

    def test_login_good(self):
        with self.server.connect() as c:
            self.assertTrue(c.cmd("USER alice").startswith("+OK"))
            self.assertTrue(c.cmd("PASS secret").startswith("+OK"))
            self.assertTrue(c.cmd("STAT").startswith("+OK 1 "))
            self.assertTrue(c.quit().startswith("+OK"))
            self.assertEqual(c.wait_closed(), [])

    def test_login_poplib(self):
        p = self.server.poplib()
        try:
            self.assertTrue(p.getwelcome().startswith(b"+OK"))
            p.user("alice")
            p.pass_("secret")
            count, size = p.stat()
            self.assertEqual(count, 1)
            self.assertEqual(size, len(MESSAGES["crlf"]))
        finally:
            p.quit()

    def test_wrong_password_and_unknown_user_alike(self):
        with self.server.connect() as c:
            u1 = c.cmd("USER alice")
            p1 = c.cmd("PASS wrong")
        with self.server.connect() as c:
            u2 = c.cmd("USER nosuchuser")
            p2 = c.cmd("PASS wrong")
        self.assertTrue(u1.startswith("+OK"), u1)
        self.assertTrue(u2.startswith("+OK"), u2)
        self.assertTrue(p1.startswith("-ERR [AUTH]"), p1)
        self.assertEqual(p1, p2)

    def test_wrong_password_then_right(self):
        with self.server.connect() as c:
            self.assertTrue(c.login("bob", "nope").startswith("-ERR [AUTH]"))
            self.assertTrue(c.login("bob", "hunter2").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_pass_before_user(self):
        with self.server.connect() as c:
            self.assertTrue(c.cmd("PASS secret").startswith("-ERR"))
            # Still in AUTHORIZATION: a proper login works.
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_transaction_commands_in_authorization(self):
        with self.server.connect() as c:
            for line in ("STAT", "LIST", "LIST 1", "UIDL", "UIDL 1",
                         "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP"):
                reply = c.cmd(line)
                self.assertTrue(reply.startswith("-ERR"), (line, reply))
                self.capa(c)    # the session goes on
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_authorization_commands_in_transaction(self):
        with self.server.login("alice") as c:
            for line in ("USER alice", "PASS secret", "USER bob"):
                reply = c.cmd(line)
                self.assertTrue(reply.startswith("-ERR"), (line, reply))
                self.assertTrue(c.cmd("NOOP").startswith("+OK"))
            self.assertTrue(c.cmd("STAT").startswith("+OK 1 "))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_unknown_command(self):
        with self.server.connect() as c:
            for line in ("FOO", "XYZZY 1 2", "RETRX 1", "US ER alice"):
                self.assertTrue(c.cmd(line).startswith("-ERR"), line)
                self.capa(c)
        with self.server.login("alice") as c:
            self.assertTrue(c.cmd("FOO").startswith("-ERR"))
            self.assertTrue(c.cmd("NOOP").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_case_insensitive(self):
        with self.server.connect() as c:
            self.assertTrue(c.multi("capa")[0].startswith("+OK"))
            self.assertTrue(c.cmd("user alice").startswith("+OK"))
            self.assertTrue(c.cmd("pAsS secret").startswith("+OK"))
            for line in ("stat", "Stat", "sTaT", "STAT"):
                self.assertTrue(c.cmd(line).startswith("+OK 1 "), line)
            status, lines = c.multi("list")
            self.assertTrue(status.startswith("+OK"))
            self.assertEqual(len(lines), 1)
            self.assertTrue(c.cmd("noop").startswith("+OK"))
            self.assertTrue(c.cmd("quit").startswith("+OK"))

    def test_quit_in_authorization(self):
        with self.server.connect() as c:
            self.assertTrue(c.quit().startswith("+OK"))
            self.assertEqual(c.wait_closed(), [])


class AfterTlsTests(ServerTestCase):
    """plaintext_auth = after-tls on a listener without TLS: no USER."""

    @classmethod
    def make_server(cls):
        s = PoplarServer(listener_opts={"plaintext_auth": "after-tls"})
        s.add_user("alice", "secret")
        return s

    def test_capa_without_user(self):
        with self.server.connect() as c:
            self.assertTrue(c.greeting.startswith("+OK"))
            status, lines = c.multi("CAPA")
            self.assertTrue(status.startswith("+OK"))
            names = [l.decode().split()[0].upper() for l in lines if l]
            self.assertNotIn("USER", names)
            self.assertIn("UIDL", names)

    def test_user_refused(self):
        with self.server.connect() as c:
            self.assertTrue(c.cmd("USER alice").startswith("-ERR"))
            self.assertTrue(c.cmd("PASS secret").startswith("-ERR"))
            self.assertTrue(c.cmd("STAT").startswith("-ERR"))
            self.assertTrue(c.quit().startswith("+OK"))


class TransactionTests(ServerTestCase):
    """STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP on a fixed maildrop.
    No test here commits a deletion: the maildrop stays as it is."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("alice", "secret")
        cls.raw_by_uidl = {}
        for key, data in MESSAGES.items():
            where = "cur" if key == "cur" else "new"
            flags = ":2,S" if key == "cur" else ":2,"
            _, uidl = s.add_message("alice", data, where=where, flags=flags)
            cls.raw_by_uidl[uidl] = data
        # Not messages: a file being delivered (tmp/) and a dot file.
        maildir = s.users["alice"].maildir
        for junk in ("tmp/1700000001.M1P1.delivering", "new/.hidden"):
            with open(os.path.join(maildir, junk), "wb") as f:
                f.write(b"Subject: not a message\n\n")
        return s

    def setUp(self):
        super().setUp()
        self.files_before = self.server.maildir_files("alice")

    def tearDown(self):
        # Nothing in this class may change the maildrop.
        deadline = time.monotonic() + 2
        while (self.server.maildir_files("alice") != self.files_before
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual(self.server.maildir_files("alice"),
                         self.files_before)

    def numbering(self, c):
        """{number: raw bytes} from UIDL, and the UIDL lines."""
        status, lines = c.multi("UIDL")
        self.assertTrue(status.startswith("+OK"), status)
        by_num = {}
        for line in lines:
            num, uidl = line.decode().split(" ")
            self.assertIn(uidl, self.raw_by_uidl)
            by_num[int(num)] = self.raw_by_uidl[uidl]
        return by_num, lines

    def test_uidl_is_maildir_base_name(self):
        with self.server.login("alice") as c:
            by_num, lines = self.numbering(c)
            self.assertEqual(sorted(by_num), list(range(1, len(MESSAGES) + 1)))
            uidls = [l.decode().split(" ")[1] for l in lines]
            self.assertEqual(sorted(uidls), sorted(self.raw_by_uidl))
            for line in lines:
                num, uidl = line.decode().split(" ")
                self.assertEqual(c.cmd("UIDL " + num),
                                 "+OK %s %s" % (num, uidl))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_uidl_stable_across_sessions(self):
        with self.server.login("alice") as c:
            _, first = self.numbering(c)
            c.quit()
        with self.server.login("alice") as c:
            _, second = self.numbering(c)
            c.quit()
        self.assertEqual(sorted(first), sorted(second))

    def test_stat_and_list_sizes(self):
        with self.server.login("alice") as c:
            by_num, _ = self.numbering(c)
            total = sum(len(wire_form(r)) for r in by_num.values())
            self.assertEqual(c.cmd("STAT"),
                             "+OK %d %d" % (len(by_num), total))
            status, lines = c.multi("LIST")
            self.assertTrue(status.startswith("+OK"), status)
            listed = {}
            for line in lines:
                num, size = line.decode().split(" ")
                listed[int(num)] = int(size)
            self.assertEqual(listed, {n: len(wire_form(r))
                                      for n, r in by_num.items()})
            for n, size in listed.items():
                self.assertEqual(c.cmd("LIST %d" % n), "+OK %d %d" % (n, size))
            c.quit()

    def test_retr_bytes_match_sizes(self):
        with self.server.login("alice") as c:
            by_num, _ = self.numbering(c)
            for n, raw in sorted(by_num.items()):
                size = int(c.cmd("LIST %d" % n).split()[2])
                status, lines = c.multi("RETR %d" % n)
                self.assertTrue(status.startswith("+OK"), status)
                got = unstuff(lines)
                self.assertEqual(got, wire_form(raw), n)
                self.assertEqual(len(got), size, n)
            c.quit()

    def test_byte_stuffing_on_the_wire(self):
        raw = MESSAGES["dots"]
        with self.server.login("alice") as c:
            by_num, _ = self.numbering(c)
            n = [k for k, v in by_num.items() if v == raw][0]
            status, lines = c.multi("RETR %d" % n)
            self.assertTrue(status.startswith("+OK"))
            body = lines[lines.index(b"") + 1:]
            self.assertEqual(body, [b"..foo", b"...bar", b"..", b"middle",
                                    b"..", b"end"])
            # TOP stuffs the same way.
            status, lines = c.multi("TOP %d 1" % n)
            self.assertTrue(status.startswith("+OK"))
            self.assertEqual(lines[-1], b"..foo")
            c.quit()

    def test_retr_poplib(self):
        p = self.server.poplib()
        try:
            p.user("alice")
            p.pass_("secret")
            count, total = p.stat()
            self.assertEqual(count, len(MESSAGES))
            seen = 0
            for n in range(1, count + 1):
                resp, lines, octets = p.retr(n)
                self.assertTrue(resp.startswith(b"+OK"))
                uidl = p.uidl(n).split()[2].decode()
                raw = self.raw_by_uidl[uidl]
                self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                                 wire_form(raw))
                self.assertEqual(octets, len(wire_form(raw)))
                seen += octets
            self.assertEqual(seen, total)
        finally:
            p.quit()

    def test_top(self):
        with self.server.login("alice") as c:
            by_num, _ = self.numbering(c)
            for n, raw in sorted(by_num.items()):
                for count in (0, 1, 2, 3, 1000):
                    status, lines = c.multi("TOP %d %d" % (n, count))
                    self.assertTrue(status.startswith("+OK"), status)
                    self.assertEqual(unstuff(lines), expected_top(raw, count),
                                     (n, count))
            # The plain case spelled out: header, blank line, 2 lines.
            n = [k for k, v in by_num.items() if v == MESSAGES["lf"]][0]
            status, lines = c.multi("TOP %d 0" % n)
            self.assertEqual(lines, [b"From: bob@example.org",
                                     b"To: alice@example.org",
                                     b"Subject: lf", b""])
            status, lines = c.multi("TOP %d 2" % n)
            self.assertEqual(lines[4:], [b"line one", b"line two"])
            c.quit()

    def test_bad_message_numbers(self):
        with self.server.login("alice") as c:
            count = len(MESSAGES)
            stat = c.cmd("STAT")
            numbers = BAD_NUMBERS + [str(count + 1), "4294967295"]
            for cmd in ("RETR %s", "LIST %s", "UIDL %s", "DELE %s",
                        "TOP %s 0", "TOP 1 %s"):
                for num in (BAD_LINE_COUNTS if cmd == "TOP 1 %s"
                            else numbers):
                    line = cmd % num
                    with self.subTest(line=line):
                        reply = c.cmd(line)
                        if reply.startswith("+OK") and (
                                line.strip() in ("LIST", "UIDL")):
                            c.read_multiline()  # keep the session in step
                        self.assertTrue(reply.startswith("-ERR"),
                                        (line, reply))
                    self.assertTrue(c.cmd("NOOP").startswith("+OK"), line)
            # Nothing was marked deleted by a refused DELE.
            self.assertEqual(c.cmd("STAT"), stat)
            for line in ("RETR", "DELE", "TOP 1", "TOP", "RETR 1 2",
                         "LIST 1 2", "NOOP x", "STAT 1"):
                with self.subTest(line=line):
                    reply = c.cmd(line)
                    self.assertTrue(reply.startswith("-ERR"), (line, reply))
                self.assertTrue(c.cmd("NOOP").startswith("+OK"), line)
            self.assertEqual(c.cmd("STAT"), stat)
            c.quit()

    def test_dele_rset_semantics(self):
        with self.server.login("alice") as c:
            by_num, _ = self.numbering(c)
            count = len(by_num)
            sizes = {n: len(wire_form(r)) for n, r in by_num.items()}
            total = sum(sizes.values())
            self.assertTrue(c.cmd("DELE 2").startswith("+OK"))
            self.assertTrue(c.cmd("DELE 2").startswith("-ERR"))
            self.assertTrue(c.cmd("RETR 2").startswith("-ERR"))
            self.assertTrue(c.cmd("TOP 2 0").startswith("-ERR"))
            self.assertTrue(c.cmd("LIST 2").startswith("-ERR"))
            self.assertTrue(c.cmd("UIDL 2").startswith("-ERR"))
            self.assertEqual(c.cmd("STAT"),
                             "+OK %d %d" % (count - 1, total - sizes[2]))
            status, lines = c.multi("LIST")
            nums = [int(l.split()[0]) for l in lines]
            self.assertEqual(nums, [n for n in range(1, count + 1) if n != 2])
            status, lines = c.multi("UIDL")
            nums = [int(l.split()[0]) for l in lines]
            self.assertEqual(nums, [n for n in range(1, count + 1) if n != 2])
            # Other messages keep their numbers.
            self.assertEqual(c.cmd("LIST 3"), "+OK 3 %d" % sizes[3])
            self.assertTrue(c.cmd("RSET").startswith("+OK"))
            self.assertEqual(c.cmd("STAT"), "+OK %d %d" % (count, total))
            self.assertEqual(c.cmd("LIST 2"), "+OK 2 %d" % sizes[2])
            status, lines = c.multi("RETR 2")
            self.assertEqual(unstuff(lines), wire_form(by_num[2]))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_noop(self):
        with self.server.login("alice") as c:
            for _ in range(5):
                self.assertTrue(c.cmd("NOOP").startswith("+OK"))
            c.quit()

    def test_pipelining(self):
        """Everything in one packet, before even reading the greeting."""
        with self.server.login("alice") as c:
            expect_stat = c.cmd("STAT")
            _, expect_list = c.multi("LIST")
            _, expect_uidl = c.multi("UIDL")
            _, expect_retr = c.multi("RETR 1")
            c.quit()
        c = self.server.connect(greeting=False)
        with c:
            c.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\n"
                   b"RETR 1\r\nNOOP\r\nTOP 1 0\r\nQUIT\r\n")
            self.assertTrue(c.readline().startswith(b"+OK"))  # greeting
            self.assertTrue(c.readline().startswith(b"+OK"))  # USER
            self.assertTrue(c.readline().startswith(b"+OK"))  # PASS
            self.assertEqual(c.readline().decode(), expect_stat)
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertEqual(c.read_multiline(), expect_list)
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertEqual(c.read_multiline(), expect_uidl)
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertEqual(c.read_multiline(), expect_retr)
            self.assertTrue(c.readline().startswith(b"+OK"))  # NOOP
            self.assertTrue(c.readline().startswith(b"+OK"))  # TOP
            c.read_multiline()
            self.assertTrue(c.readline().startswith(b"+OK"))  # QUIT
            self.assertEqual(c.wait_closed(), [])

    def test_pipelining_many(self):
        with self.server.login("alice") as c:
            count = len(MESSAGES)
            batch = b"".join(b"LIST %d\r\nNOOP\r\n" % (i % count + 1)
                             for i in range(200))
            c.send(batch)
            for i in range(200):
                line = c.readline()
                self.assertTrue(line.startswith(b"+OK %d " % (i % count + 1)),
                                line)
                self.assertTrue(c.readline().startswith(b"+OK"))
            # Several multi-line replies back to back.
            c.send(b"RETR 1\r\n" * 50 + b"QUIT\r\n")
            first = None
            for _ in range(50):
                self.assertTrue(c.readline().startswith(b"+OK"))
                lines = c.read_multiline()
                first = first or lines
                self.assertEqual(lines, first)
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertEqual(c.wait_closed(), [])


class BigMessageTests(ServerTestCase):
    """One message of about 2 MB, sent through every buffer boundary."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("big", "secret")
        cls.raw = big_message()
        s.add_message("big", cls.raw)
        return s

    def test_retr_raw(self):
        with self.server.login("big") as c:
            size = len(wire_form(self.raw))
            self.assertEqual(c.cmd("LIST 1"), "+OK 1 %d" % size)
            status, lines = c.multi("RETR 1", timeout=30)
            self.assertTrue(status.startswith("+OK"), status)
            self.assertEqual(unstuff(lines), wire_form(self.raw))
            # Every stored line starting with "." arrives with one more.
            stored = wire_form(self.raw).split(b"\r\n")[:-1]
            self.assertEqual(len(lines), len(stored))
            for got, want in zip(lines, stored):
                if want.startswith(b"."):
                    self.assertEqual(got, b"." + want)
            status, lines = c.multi("TOP 1 100")
            self.assertEqual(unstuff(lines), expected_top(self.raw, 100))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_retr_poplib(self):
        p = self.server.poplib(timeout=30)
        try:
            p.user("big")
            p.pass_("secret")
            resp, lines, octets = p.retr(1)
            self.assertEqual(octets, len(wire_form(self.raw)))
            self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                             wire_form(self.raw))
        finally:
            p.quit()


class DeletionTests(ServerTestCase):
    """What DELE does to the Maildir on disk, by how the session ends."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        for name in ("quitter", "dropper", "killed", "arrival"):
            s.add_user(name, "pw-" + name)
        return s

    def fill(self, user, n=3):
        """n messages, the first one in cur/ (seen), the others in new/."""
        for i in range(n):
            self.server.add_message(user, b"Subject: %d\n\nbody %d\n" % (i, i),
                                    where="cur" if i == 0 else "new",
                                    flags=":2,S")
        return self.server.maildir_files(user)

    def test_dele_quit_removes_file(self):
        before = self.fill("quitter")
        with self.server.login("quitter") as c:
            status, lines = c.multi("UIDL")
            uidl2 = lines[1].split()[1].decode()
            self.assertTrue(c.cmd("DELE 2").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
            self.assertEqual(c.wait_closed(), [])
        after = self.server.maildir_files("quitter")
        self.assertEqual(len(after), len(before) - 1)
        self.assertNotIn(uidl2, after)
        with self.server.login("quitter") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK 2 "))
            status, lines = c.multi("UIDL")
            self.assertNotIn(uidl2, [l.split()[1].decode() for l in lines])
            # Delete everything.
            self.assertTrue(c.cmd("DELE 1").startswith("+OK"))
            self.assertTrue(c.cmd("DELE 2").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
            c.wait_closed()
        self.assertEqual(self.server.maildir_files("quitter"), [])
        with self.server.login("quitter") as c:
            self.assertEqual(c.cmd("STAT"), "+OK 0 0")
            status, lines = c.multi("LIST")
            self.assertEqual(lines, [])
            self.assertTrue(c.cmd("RETR 1").startswith("-ERR"))
            c.quit()

    def test_dele_dropped_connection_keeps_files(self):
        before = self.fill("dropper")
        c = self.server.login("dropper")
        for n in (1, 2, 3):
            self.assertTrue(c.cmd("DELE %d" % n).startswith("+OK"))
        c.close()
        self.assertEqual(self.server.wait_children(0), 0)
        self.assertEqual(self.server.maildir_files("dropper"), before)
        with self.server.login("dropper") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK 3 "))
            c.quit()
        self.assertEqual(self.server.maildir_files("dropper"), before)

    def test_dele_killed_session_keeps_files(self):
        before = self.fill("killed")
        self.server.wait_children(0)
        c = self.server.login("killed")
        try:
            self.assertTrue(c.cmd("DELE 1").startswith("+OK"))
            kids = self.server.live_children()
            self.assertEqual(len(kids), 1, kids)
            os.kill(kids[0], 9)
            self.assertEqual(c.wait_closed(), [])
        finally:
            c.close()
        self.assertEqual(self.server.wait_children(0), 0)
        self.assertEqual(self.server.maildir_files("killed"), before)
        # The session lock died with the process.
        with self.server.login("killed") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK 3 "))
            c.quit()

    def test_mail_arriving_during_session_is_kept(self):
        self.fill("arrival", 2)
        with self.server.login("arrival") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK 2 "))
            _, late = self.server.add_message("arrival",
                                              b"Subject: late\n\nlate\n")
            self.assertTrue(c.cmd("DELE 1").startswith("+OK"))
            self.assertTrue(c.cmd("DELE 2").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
            c.wait_closed()
        self.assertEqual(self.server.maildir_files("arrival"), [late])


class LimitTests(ServerTestCase):
    """Line length, NUL bytes, max_bad_commands = 3, max_auth_failures = 2."""

    # 248 characters: "PASS " + 248 + CRLF is exactly 255 octets, the
    # longest command RFC 2449 allows.  A password is the one argument
    # that can be that long and still mean something checkable.
    LONG_PW = ("x0123456789" * 23)[:248]

    @classmethod
    def make_server(cls):
        s = PoplarServer(server_opts={"max_bad_commands": "3",
                                      "max_auth_failures": "2"})
        s.add_user("alice", "secret")
        s.add_user("longpw", cls.LONG_PW)
        s.add_message("alice", MESSAGES["lf"])
        return s

    def test_255_octet_command_accepted(self):
        line = b"PASS " + self.LONG_PW.encode()
        self.assertEqual(len(line) + 2, 255)
        with self.server.connect() as c:
            self.assertTrue(c.cmd("USER longpw").startswith("+OK"))
            self.assertTrue(c.cmd(line).startswith("+OK"))
            self.assertTrue(c.cmd("STAT").startswith("+OK 0 0"))
            c.quit()

    def test_300_octet_command_refused_once(self):
        with self.server.login("alice") as c:
            c.send(b"NOOP" + b" " * 294 + b"\r\nSTAT\r\n")
            first = c.readline()
            self.assertTrue(first.startswith(b"-ERR"), first)
            self.assertTrue(c.readline().startswith(b"+OK 1 "))
            # A long line made of something that looks like a command.
            c.send(b"RETR 1" + b"1" * 400 + b"\r\nNOOP\r\n")
            self.assertTrue(c.readline().startswith(b"-ERR"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            # A very long line (several input buffers).
            c.send(b"X" * 5000 + b"\r\nNOOP\r\n")
            self.assertTrue(c.readline().startswith(b"-ERR"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_long_line_in_authorization(self):
        with self.server.connect() as c:
            c.send(b"USER " + b"a" * 400 +
                   b"\r\nUSER alice\r\nPASS secret\r\n")
            self.assertTrue(c.readline().startswith(b"-ERR"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            c.quit()

    def test_nul_byte(self):
        with self.server.login("alice") as c:
            c.send(b"NO\x00OP\r\nNOOP\r\n")
            self.assertTrue(c.readline().startswith(b"-ERR"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            c.send(b"STAT\x00\r\nSTAT\r\n")
            self.assertTrue(c.readline().startswith(b"-ERR"))
            self.assertTrue(c.readline().startswith(b"+OK 1 "))
            c.quit()
        with self.server.connect() as c:
            c.send(b"USER ali\x00ce\r\nUSER alice\r\nPASS secret\r\n")
            self.assertTrue(c.readline().startswith(b"-ERR"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertTrue(c.readline().startswith(b"+OK"))
            c.quit()

    def test_bad_commands_close_session(self):
        with self.server.login("alice") as c:
            self.assertTrue(c.cmd("BOGUS").startswith("-ERR"))
            self.assertTrue(c.cmd("BOGUS").startswith("-ERR"))
            # A good command resets the count: the limit is "in a row".
            self.assertTrue(c.cmd("NOOP").startswith("+OK"))
            self.assertTrue(c.cmd("BOGUS").startswith("-ERR"))
            self.assertTrue(c.cmd("RETR 0").startswith("-ERR"))
            c.send(b"BOGUS\r\n")
            rest = c.wait_closed(timeout=5)
            self.assertTrue(1 <= len(rest) <= 2, rest)
            for line in rest:
                self.assertTrue(line.startswith(b"-ERR"), rest)

    def test_bad_commands_close_session_authorization(self):
        with self.server.connect() as c:
            c.send(b"FOO\r\nBAR\r\nBAZ\r\nCAPA\r\n")
            rest = c.wait_closed(timeout=5)
            self.assertTrue(3 <= len(rest) <= 4, rest)
            for line in rest:
                self.assertTrue(line.startswith(b"-ERR"), rest)

    def test_auth_failures_close_session(self):
        with self.server.connect() as c:
            self.assertTrue(c.login("alice", "bad1").startswith("-ERR [AUTH]"))
            self.assertTrue(c.cmd("USER alice").startswith("+OK"))
            c.send(b"PASS bad2\r\n")
            rest = c.wait_closed(timeout=5)
            self.assertTrue(1 <= len(rest) <= 2, rest)
            self.assertTrue(rest[0].startswith(b"-ERR [AUTH]"), rest)

    def test_one_auth_failure_then_login(self):
        with self.server.connect() as c:
            self.assertTrue(c.login("alice", "bad").startswith("-ERR [AUTH]"))
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.cmd("STAT").startswith("+OK 1 "))
            c.quit()


class InUseTests(ServerTestCase):
    """One session per maildrop: [IN-USE] for the second login."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("carol", "secret")
        s.add_message("carol", MESSAGES["lf"])
        return s

    def login_when_free(self, timeout=2.0):
        """Log in as carol, retrying while [IN-USE] (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.server.connect()
            reply = c.login("carol", "secret")
            if reply.startswith("+OK"):
                return c
            c.close()
            if time.monotonic() > deadline:
                self.fail("still refused after %.1fs: %s" % (timeout, reply))
            time.sleep(0.05)

    def test_in_use(self):
        first = self.server.login("carol")
        try:
            with self.server.connect() as c:
                reply = c.login("carol", "secret")
                self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
            with self.server.connect() as c:
                reply = c.login("carol", "wrong")
                self.assertTrue(reply.startswith("-ERR [AUTH]"), reply)
            # The first session is unharmed.
            self.assertTrue(first.cmd("STAT").startswith("+OK 1 "))
            self.assertTrue(first.quit().startswith("+OK"))
            first.wait_closed()
        finally:
            first.close()
        # Released at QUIT, before the server closed the connection: the
        # next login works at once.
        second = self.server.login("carol")
        try:
            self.assertTrue(second.cmd("STAT").startswith("+OK 1 "))
        finally:
            second.close()      # dropped without QUIT
        # The server learns of the drop when it reads EOF: a short grace.
        third = self.login_when_free()
        with third:
            self.assertTrue(third.quit().startswith("+OK"))

    def test_login_right_after_quit_reply(self):
        """A client that logs in again as soon as it has read "+OK" to
        QUIT (without waiting for the close) must not get [IN-USE]: the
        session has ended for it.  Repeated, as this is a race."""
        for i in range(50):
            first = self.server.login("carol")
            with first:
                self.assertTrue(first.cmd("QUIT").startswith("+OK"))
                with self.server.connect() as c:
                    reply = c.login("carol", "secret")
                    self.assertTrue(reply.startswith("+OK"), (i, reply))
                    c.quit()
            self.server.wait_children(0)

    def test_in_use_poplib(self):
        first = self.server.login("carol")
        try:
            p = self.server.poplib()
            try:
                p.user("carol")
                with self.assertRaises(poplartest.poplib.error_proto) as cm:
                    p.pass_("secret")
                self.assertIn(b"[IN-USE]", cm.exception.args[0])
            finally:
                p.close()
        finally:
            first.quit()
            first.close()
        self.login_when_free().close()


class IdleTimeoutTests(ServerTestCase):
    """idle_timeout = 2: idle sessions end, with reason=timeout logged;
    an idle session in TRANSACTION does not commit its deletions."""

    @classmethod
    def make_server(cls):
        s = PoplarServer(server_opts={"idle_timeout": "2"})
        s.add_user("idler", "secret")
        s.add_message("idler", MESSAGES["lf"])
        s.add_message("idler", MESSAGES["crlf"])
        # More than loopback's socket buffers hold: a client that does
        # not read blocks the server's writes.
        s.add_user("stalled", "secret")
        s.add_message("stalled", MESSAGES["lf"])
        s.add_message("stalled", b"Subject: big\n\n" +
                      (b"x" * 75 + b"\n") * (32 * 1024 * 1024 // 76))
        return s

    def wait_close_timed(self, c):
        t0 = time.monotonic()
        lines = c.wait_closed(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 1.5, lines)
        self.assertLessEqual(elapsed, 6.5, lines)
        for line in lines:
            self.assertTrue(line.startswith(b"-ERR"), lines)

    def test_idle_in_authorization(self):
        with self.server.connect() as c:
            self.wait_close_timed(c)
        lines = self.server.wait_log("session-end", "reason=timeout")
        self.assertTrue(lines, self.server.log()[-2000:])

    def test_idle_in_transaction_keeps_mail(self):
        before = self.server.maildir_files("idler")
        with self.server.login("idler") as c:
            self.assertTrue(c.cmd("DELE 1").startswith("+OK"))
            self.wait_close_timed(c)
        lines = self.server.wait_log("session-end", "user=idler",
                                     "reason=timeout")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertEqual(self.server.wait_children(0), 0)
        self.assertEqual(self.server.maildir_files("idler"), before)

    def test_client_that_stops_reading(self):
        """A client that stops reading in the middle of a RETR is idle
        too: the session ends after idle_timeout (the write times out),
        without committing its deletion, and the maildrop is free."""
        before = self.server.maildir_files("stalled")
        c = self.server.login("stalled")
        try:
            c.send(b"DELE 1\r\nRETR 2\r\n")
            t0 = time.monotonic()
            lines = self.server.wait_log("session-end", "user=stalled",
                                         timeout=15)
            elapsed = time.monotonic() - t0
            self.assertTrue(lines, self.server.log()[-2000:])
            self.assertIn("reason=timeout", lines[-1])
            self.assertGreaterEqual(elapsed, 1.5)
            self.assertLessEqual(elapsed, 8)
        finally:
            c.close()
        self.assertEqual(self.server.wait_children(0), 0)
        self.assertEqual(self.server.maildir_files("stalled"), before)
        with self.server.login("stalled") as again:
            self.assertTrue(again.cmd("STAT").startswith("+OK 2 "))
            self.assertTrue(again.quit().startswith("+OK"))

    def test_activity_keeps_session(self):
        with self.server.login("idler") as c:
            for _ in range(4):
                time.sleep(0.9)
                self.assertTrue(c.cmd("NOOP").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))


class LoggingTests(ServerTestCase):
    """The auth-fail and session-end log lines (log = stderr)."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("dave", "secret")
        s.add_user("frank", "secret")
        s.add_message("dave", MESSAGES["crlf"])
        s.add_message("dave", MESSAGES["lf"])
        return s

    def auth_fail_lines(self, user_field):
        """auth-fail lines whose user field (unquoted) is user_field."""
        self.server.wait_log("auth-fail")
        out = []
        for line in self.server.log_lines("auth-fail"):
            if parse_log_fields(line).get("user") == user_field:
                out.append(line)
        return out

    def wait_auth_fail(self, user_field, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            lines = self.auth_fail_lines(user_field)
            if lines or time.monotonic() > deadline:
                time.sleep(0.2)     # a duplicate would show up by now
                return self.auth_fail_lines(user_field)
            time.sleep(0.02)

    def test_auth_fail_unknown_user(self):
        with self.server.connect() as c:
            self.assertTrue(c.login("GhOsT", "x").startswith("-ERR [AUTH]"))
        lines = self.wait_auth_fail("GhOsT")
        self.assertEqual(len(lines), 1, self.server.log()[-2000:])
        fields = parse_log_fields(lines[0])
        self.assertEqual(fields.get("peer"), "127.0.0.1", lines[0])
        self.assertIn("reason", fields, lines[0])

    def test_auth_fail_wrong_password(self):
        with self.server.connect() as c:
            self.assertTrue(c.login("frank", "wrong-password")
                            .startswith("-ERR [AUTH]"))
        lines = self.wait_auth_fail("frank")
        self.assertEqual(len(lines), 1, self.server.log()[-2000:])
        self.assertIn("peer=127.0.0.1", lines[0])
        self.assertIn("reason=", lines[0])
        # The password never reaches the log.
        self.assertNotIn("wrong-password", self.server.log())

    def test_user_name_escaped(self):
        with self.server.connect() as c:
            self.assertTrue(c.login('a"b', "x").startswith("-ERR [AUTH]"))
        lines = self.wait_auth_fail('a"b')
        self.assertEqual(len(lines), 1, self.server.log()[-3000:])
        self.assertIn('user="a\\"b"', lines[0])
        fields = parse_log_fields(lines[0])
        self.assertIn("reason", fields, lines[0])

    def test_user_name_with_space_escaped(self):
        with self.server.connect() as c:
            reply = c.cmd("USER sp ace")
            if not reply.startswith("+OK"):
                # Refusing such a name at USER is fine too; then there
                # is nothing to log as a user.
                self.skipTest("USER refuses a name with a space: " + reply)
            self.assertTrue(c.cmd("PASS x").startswith("-ERR [AUTH]"))
        lines = self.wait_auth_fail("sp ace")
        self.assertEqual(len(lines), 1, self.server.log()[-3000:])
        self.assertIn('user="sp ace"', lines[0])
        self.assertIn("reason", parse_log_fields(lines[0]))

    def test_control_characters_escaped(self):
        with self.server.connect() as c:
            reply = c.cmd(b"USER es\x1b[31mc")
            if reply.startswith("+OK"):
                c.cmd("PASS x")
        time.sleep(0.2)
        self.assertNotIn("\x1b", self.server.log())

    def test_session_end(self):
        with self.server.login("dave") as c:
            status, lines = c.multi("UIDL")
            self.assertTrue(status.startswith("+OK"))
            size1 = int(c.cmd("LIST 1").split()[2])
            status, lines = c.multi("RETR 1")
            self.assertEqual(len(unstuff(lines)), size1)
            self.assertTrue(c.cmd("DELE 2").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
            c.wait_closed()
        lines = self.server.wait_log("session-end", "user=dave")
        self.assertEqual(len(lines), 1, self.server.log()[-3000:])
        f = parse_log_fields(lines[0])
        self.assertEqual(f.get("peer"), "127.0.0.1", lines[0])
        self.assertEqual(f.get("listener"), "pop3", lines[0])
        self.assertEqual(f.get("user"), "dave", lines[0])
        self.assertEqual(f.get("method"), "pass", lines[0])
        self.assertEqual(f.get("retr"), "1", lines[0])
        self.assertEqual(f.get("retr_bytes"), str(size1), lines[0])
        self.assertEqual(f.get("deleted"), "1", lines[0])
        self.assertIn("duration", f, lines[0])
        self.assertRegex(f.get("duration", ""), r"^[0-9]", lines[0])


@unittest.skipIf(shutil.which("curl") is None, "curl is not installed")
class CurlTests(ServerTestCase):
    """curl as a real POP3 client (USER/PASS: no SASL, no APOP offered)."""

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("alice", "secret")
        cls.raw_by_uidl = {}
        for key in ("lf", "crlf", "dots"):
            _, uidl = s.add_message("alice", MESSAGES[key])
            cls.raw_by_uidl[uidl] = MESSAGES[key]
        return s

    def curl(self, path, user="alice:secret"):
        url = "pop3://127.0.0.1:%d/%s" % (self.server.port, path)
        return subprocess.run(["curl", "-sS", "--fail", "--max-time", "20",
                               url, "-u", user],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=30)

    def listing(self):
        with self.server.login("alice") as c:
            _, lst = c.multi("LIST")
            _, uidl = c.multi("UIDL")
            c.quit()
        return lst, {int(l.split()[0]): l.split()[1].decode() for l in uidl}

    def test_list(self):
        expected, _ = self.listing()
        r = self.curl("")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [l.strip() for l in r.stdout.split(b"\n") if l.strip()]
        self.assertEqual(got, expected)

    def test_retrieve(self):
        _, uidls = self.listing()
        for n in sorted(uidls):
            r = self.curl(str(n))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, wire_form(self.raw_by_uidl[uidls[n]]))

    def test_wrong_password(self):
        r = self.curl("", user="alice:wrong")
        self.assertEqual(r.returncode, 67, r.stderr)


if __name__ == "__main__":
    poplartest.run_tests()
