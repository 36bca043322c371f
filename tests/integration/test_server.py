"""The poplard process as a whole: session limits, many sessions without
leaks, SIGTERM, IPv6, several listeners and the inetd mode (-i).
"""

import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import PoplarServer, ServerTestCase, free_port  # noqa: E402

MESSAGE = b"From: bob@example.org\nSubject: hello\n\nHello, world.\n"


def source_address_usable(addr):
    """True when a socket can be bound to the loopback address addr."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


class LimitMixin:
    """Helpers for the session-limit tests."""

    def assert_refused(self, conn):
        self.assertIsNotNone(conn.greeting)
        self.assertTrue(conn.greeting.startswith("-ERR [SYS/TEMP]"),
                        conn.greeting)
        self.assertEqual(conn.wait_closed(timeout=5), [])

    def connect_when_free(self, timeout=5.0):
        """A connection that got a +OK greeting, retrying while refused
        (the master learns that a session ended when it reaps it)."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.server.connect()
            if c.greeting and c.greeting.startswith("+OK"):
                return c
            c.close()
            if time.monotonic() > deadline:
                self.fail("still refused after %.1fs: %r"
                          % (timeout, c.greeting))
            time.sleep(0.05)


class MaxSessionsTests(LimitMixin, ServerTestCase):

    @classmethod
    def make_server(cls):
        s = PoplarServer(server_opts={"max_sessions": "2"})
        s.add_user("alice", "secret")
        s.add_user("bob", "secret")
        s.add_message("alice", MESSAGE)
        return s

    def test_third_session_refused(self):
        self.server.wait_children(0)
        c1 = self.server.login("alice")
        c2 = self.server.connect()
        try:
            self.assertTrue(c2.greeting.startswith("+OK"))
            with self.server.connect() as c3:
                self.assert_refused(c3)
            # The two sessions are unharmed.
            self.assertTrue(c1.cmd("STAT").startswith("+OK 1 "))
            self.assertTrue(c2.login("bob", "secret").startswith("+OK"))
        finally:
            c1.close()
            c2.close()
        with self.connect_when_free() as c:
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))


class MaxSessionsPerIpTests(LimitMixin, ServerTestCase):

    @classmethod
    def make_server(cls):
        s = PoplarServer(server_opts={"max_sessions_per_ip": "2",
                                      "max_sessions": "10"})
        s.add_user("alice", "secret")
        return s

    def test_third_session_from_one_address_refused(self):
        self.server.wait_children(0)
        c1 = self.server.connect()
        c2 = self.server.connect()
        try:
            self.assertTrue(c1.greeting.startswith("+OK"))
            self.assertTrue(c2.greeting.startswith("+OK"))
            with self.server.connect() as c3:
                self.assert_refused(c3)
            if source_address_usable("127.0.0.2"):
                # Another address is not limited by this one's sessions.
                with self.server.connect(source="127.0.0.2") as c4:
                    self.assertTrue(c4.greeting.startswith("+OK"),
                                    c4.greeting)
                    self.assertTrue(c4.quit().startswith("+OK"))
            self.assertTrue(c1.login("alice", "secret").startswith("+OK"))
        finally:
            c1.close()
            c2.close()
        with self.connect_when_free() as c:
            self.assertTrue(c.quit().startswith("+OK"))


class ManySessionsTests(ServerTestCase):
    """1,000 sequential sessions: no descriptor leak in the master, no
    zombies."""

    SESSIONS = 1000

    @classmethod
    def make_server(cls):
        s = PoplarServer()
        s.add_user("alice", "secret")
        s.add_message("alice", MESSAGE)
        return s

    def test_sequential_sessions(self):
        srv = self.server
        srv.wait_children(0)
        fds_before = srv.fd_count()
        t0 = time.monotonic()
        for i in range(self.SESSIONS):
            with srv.connect() as c:
                self.assertTrue(c.greeting and c.greeting.startswith("+OK"),
                                (i, c.greeting))
                if i % 2:
                    self.assertTrue(c.login("alice", "secret")
                                    .startswith("+OK"), i)
                    self.assertTrue(c.cmd("STAT").startswith("+OK 1 "), i)
                self.assertTrue(c.quit().startswith("+OK"), i)
                self.assertEqual(c.wait_closed(), [], i)
            if i % 100 == 99:
                zombies = [p for p, st in srv.children().items()
                           if st == "Z"]
                # A zombie may exist for a moment between exit and
                # reaping; many of them mean the master does not reap.
                self.assertLess(len(zombies), 20, (i, zombies))
        elapsed = time.monotonic() - t0
        self.assertEqual(srv.wait_children(0, timeout=5), 0,
                         srv.children())
        self.assertEqual(srv.fd_count(), fds_before,
                         os.listdir("/proc/%d/fd" % srv.pid))
        self.assertLess(elapsed, 90)
        ends = srv.log_lines("session-end")
        self.assertGreaterEqual(len(ends), self.SESSIONS)


class SignalTests(unittest.TestCase):
    """SIGTERM ends the master promptly with status 0 and no children."""

    def setUp(self):
        self.server = PoplarServer()
        self.server.add_user("alice", "secret")
        self.server.add_message("alice", MESSAGE)
        self.server.start()

    def tearDown(self):
        self.server.cleanup()

    def test_sigterm_idle(self):
        t0 = time.monotonic()
        code, left = self.server.stop()
        self.assertEqual(code, 0, self.server.log()[-2000:])
        self.assertEqual(left, [])
        self.assertLess(time.monotonic() - t0, 5)

    def test_sigterm_with_sessions(self):
        before = self.server.maildir_files("alice")
        c1 = self.server.login("alice")
        c2 = self.server.connect()
        try:
            # A session ended by the server, not by QUIT, deletes nothing.
            self.assertTrue(c1.cmd("DELE 1").startswith("+OK"))
            kids = self.server.live_children()
            self.assertEqual(len(kids), 2, kids)
            t0 = time.monotonic()
            code, left = self.server.stop()
            self.assertEqual(code, 0, self.server.log()[-2000:])
            self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(left, [])
            for pid in kids:
                self.assertFalse(poplartest.pid_alive(pid), pid)
            # The clients see their connections end.
            c1.wait_closed(timeout=5)
            c2.wait_closed(timeout=5)
        finally:
            c1.close()
            c2.close()
        self.assertEqual(self.server.maildir_files("alice"), before)
        # Nobody listens on the port any more (no child kept the
        # listening socket).  SO_REUSEADDR: connections of the test may
        # still be in TIME_WAIT.
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.server.port))
            s.listen(1)

    def test_sigint(self):
        self.server.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.server.proc.wait(5), 0)


@unittest.skipUnless(poplartest.ipv6_loopback_available(),
                     "::1 is not available")
class IPv6Tests(ServerTestCase):

    @classmethod
    def make_server(cls):
        cls.port6 = free_port(socket.AF_INET6, "::1")
        s = PoplarServer(listener_opts={"address": "[::1]:%d" % cls.port6})
        s.add_user("alice", "secret")
        s.add_message("alice", MESSAGE)
        return s

    @classmethod
    def setUpClass(cls):
        cls.server = cls.make_server()
        try:
            cls.server.start(wait_host="::1", wait_port=cls.port6)
        except Exception:
            cls.server.cleanup()
            raise

    def test_session_over_ipv6(self):
        with self.server.connect(host="::1", port=self.port6) as c:
            self.assertTrue(c.greeting.startswith("+OK"))
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.cmd("STAT").startswith("+OK 1 "))
            self.assertTrue(c.quit().startswith("+OK"))
            c.wait_closed()
        lines = self.server.wait_log("session-end", "user=alice")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertEqual(poplartest.parse_log_fields(lines[-1]).get("peer"),
                         "::1", lines[-1])

    def test_not_on_ipv4(self):
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.port6),
                                     timeout=2).close()


class TwoListenersTests(ServerTestCase):

    @classmethod
    def make_server(cls):
        cls.port2 = free_port()
        s = PoplarServer(listeners=[("alt", {
            "address": "127.0.0.1:%d" % cls.port2,
            "tls": "none",
            "auth": "pass",
            "plaintext_auth": "always"})])
        s.add_user("alice", "secret")
        s.add_user("bob", "secret")
        s.add_message("alice", MESSAGE)
        return s

    def test_both_serve(self):
        for port, user, listener in ((self.server.port, "alice", "pop3"),
                                     (self.port2, "bob", "alt")):
            with self.server.connect(port=port) as c:
                self.assertTrue(c.greeting.startswith("+OK"))
                self.assertTrue(c.login(user, "secret").startswith("+OK"))
                self.assertTrue(c.cmd("STAT").startswith("+OK"))
                self.assertTrue(c.quit().startswith("+OK"))
                c.wait_closed()
            lines = self.server.wait_log("session-end", "user=" + user)
            self.assertEqual(len(lines), 1, self.server.log()[-2000:])
            fields = poplartest.parse_log_fields(lines[0])
            self.assertEqual(fields.get("listener"), listener, lines[0])

    def test_concurrent_on_both(self):
        c1 = self.server.login("alice")
        c2 = self.server.login("bob", port=self.port2)
        with c1, c2:
            self.assertTrue(c1.cmd("STAT").startswith("+OK 1 "))
            self.assertTrue(c2.cmd("STAT").startswith("+OK 0 0"))
            c1.quit()
            c2.quit()


class InetdModeTests(unittest.TestCase):
    """poplard -i pop3: one session on stdin/stdout."""

    @classmethod
    def setUpClass(cls):
        cls.server = PoplarServer()
        cls.server.add_user("alice", "secret")
        cls.server.add_message("alice", MESSAGE)
        cls.server.add_message("alice", MESSAGE + b"more\n")
        cls.server.add_user("bob", "secret")
        for i in range(3):
            cls.server.add_message("bob", b"Subject: %d\n\n%d\n" % (i, i))
        cls.server.write_config()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def run_inetd(self, data, listener="pop3"):
        p = subprocess.Popen([poplartest.poplard_path(), "-c",
                              self.server.config_path, "-i", listener],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(data, timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate(timeout=10)
            self.fail("poplard -i did not end")
        poplartest.check_sanitizer(err)
        return p.returncode, out, err

    def test_session(self):
        code, out, err = self.run_inetd(b"USER alice\r\nPASS secret\r\n"
                                        b"STAT\r\nQUIT\r\n")
        lines = out.split(b"\r\n")
        self.assertEqual(lines[-1], b"", out)
        lines = lines[:-1]
        self.assertEqual(len(lines), 5, out)
        for line in lines:
            self.assertTrue(line.startswith(b"+OK"), (out, err))
        size = 2 * len(poplartest.wire_form(MESSAGE)) + len(b"more\r\n")
        self.assertEqual(lines[3], b"+OK 2 %d" % size)
        self.assertEqual(code, 0, err)

    def test_dele_quit(self):
        before = self.server.maildir_files("bob")
        code, out, err = self.run_inetd(b"USER bob\r\nPASS secret\r\n"
                                        b"DELE 1\r\nQUIT\r\n")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.server.maildir_files("bob")),
                         len(before) - 1, (out, err))

    def test_eof_without_quit_keeps_mail(self):
        before = self.server.maildir_files("bob")
        code, out, err = self.run_inetd(b"USER bob\r\nPASS secret\r\n"
                                        b"DELE 1\r\n")
        self.assertTrue(out.startswith(b"+OK"), (out, err))
        self.assertEqual(self.server.maildir_files("bob"), before)

    def test_wrong_password(self):
        code, out, err = self.run_inetd(b"USER alice\r\nPASS nope\r\n"
                                        b"QUIT\r\n")
        lines = out.split(b"\r\n")
        self.assertTrue(lines[2].startswith(b"-ERR [AUTH]"), out)
        self.assertTrue(lines[3].startswith(b"+OK"), out)

    def test_unknown_listener(self):
        code, out, err = self.run_inetd(b"QUIT\r\n", listener="nosuch")
        self.assertNotEqual(code, 0)
        self.assertFalse(out.startswith(b"+OK"), out)
        self.assertIn(b"nosuch", err)


def group_with_member():
    """(member name, gid) of a group in /etc/group that lists a member,
    or None."""
    try:
        with open("/etc/group") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) == 4 and parts[3] and parts[2].isdigit():
                    return parts[3].split(",")[0], int(parts[2])
    except OSError:
        pass
    return None


def session_credentials(server):
    """(uid set, gid set, supplementary groups) of the one live session
    process of server, read from /proc."""
    kids = server.live_children()
    if len(kids) != 1:
        raise AssertionError("expected one session process, got %r" % kids)
    fields = {}
    with open("/proc/%d/status" % kids[0]) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return (set(int(x) for x in fields["Uid"]),
            set(int(x) for x in fields["Gid"]),
            sorted(int(x) for x in fields["Groups"]))


MAIL_GID = 8


SCAN_CHUNK = 1 << 20     # bytes of another process's memory read at once


def mem_total():
    """Bytes of RAM (MemTotal of /proc/meminfo)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def readable_mappings(pid):
    """(start, end, name, VmFlags) of each readable mapping of process pid,
    from /proc/PID/smaps."""
    out = []
    current = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                name = head[5].strip() if len(head) > 5 else ""
                current = [lo, hi, name, set()] if "r" in head[1] else None
                if current is not None:
                    out.append(current)
            elif line.startswith("VmFlags:") and current is not None:
                current[3] = set(line.split()[1:])
    return [tuple(m) for m in out]


def memory_contains(pid, needle):
    """(found, bytes scanned): whether needle is in any readable private
    or shared mapping of process pid.

    Skipped: the kernel's [vvar] pages, and readable anonymous mappings
    that are both larger than the machine's RAM and reserved without swap
    (MAP_NORESERVE, "nr" in VmFlags).  Such a mapping is a sparse
    reservation that cannot be read whole: AddressSanitizer's shadow
    memory is one (terabytes, where it notes which bytes are addressable,
    never a copy of the program's data).  poplard maps nothing that way:
    in a normal build only [vvar] is skipped."""
    scanned = 0
    ram = mem_total()
    keep = len(needle) - 1
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for lo, hi, name, flags in readable_mappings(pid):
            if name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            if not name and "nr" in flags and hi - lo > ram:
                continue
            # Read in chunks, each starting with the end of the one
            # before, so that a needle across two chunks is found.
            tail = b""
            for off in range(lo, hi, SCAN_CHUNK):
                try:
                    mem.seek(off)
                    data = mem.read(min(SCAN_CHUNK, hi - off))
                except (OSError, ValueError, OverflowError):
                    break
                scanned += len(data)
                if needle in tail + data:
                    return True, scanned
                tail = data[-keep:] if keep else b""
    return False, scanned


@unittest.skipUnless(os.geteuid() == 0, "privilege drop needs root")
class PrivilegeDropTests(unittest.TestCase):
    """After login a session runs as the user: uid, gid and the
    supplementary groups that [userdb] supplementary_groups asks for."""

    def run_session(self, name="alice", userdb_opts=None,
                    maildrop_opts=None):
        server = PoplarServer(userdb_opts=userdb_opts,
                              maildrop_opts=maildrop_opts)
        try:
            server.add_user(name, "secret")
            server.add_message(name, MESSAGE)
            server.start()
            with server.login(name) as c:
                self.assertTrue(c.cmd("STAT").startswith("+OK"))
                creds = session_credentials(server)
                c.quit()
            return creds
        finally:
            server.stop()
            server.cleanup()

    def test_passwd_file_user_has_only_its_gid(self):
        uids, gids, groups = self.run_session()
        self.assertEqual(uids, {poplartest.NOBODY})
        self.assertEqual(gids, {poplartest.NOBODY})
        self.assertEqual(groups, [poplartest.NOBODY])

    def test_mail_group_is_added(self):
        uids, gids, groups = self.run_session(
            maildrop_opts={"mail_group": str(MAIL_GID)})
        self.assertEqual(gids, {poplartest.NOBODY})
        self.assertEqual(groups, sorted([poplartest.NOBODY, MAIL_GID]))

    def test_session_holds_no_other_users_hash(self):
        # A process running as alice must not hold bob's password hash:
        # search every readable mapping of alice's session process.
        server = PoplarServer()
        try:
            server.add_user("alice", "secret")
            server.add_user("bob", "another-secret")
            server.start()
            bob_hash = poplartest.hash_password("another-secret").encode()
            with open(server.userdb, "rb") as f:
                self.assertIn(bob_hash, f.read())
            with server.login("alice") as c:
                self.assertTrue(c.cmd("STAT").startswith("+OK"))
                kids = server.live_children()
                self.assertEqual(len(kids), 1)
                found, scanned = memory_contains(kids[0], bob_hash)
                c.quit()
            self.assertGreater(scanned, 0)
            self.assertFalse(found, "bob's hash in alice's session")
            # The master still has it (a check that the search works).
            found, _ = memory_contains(server.pid, bob_hash)
            self.assertTrue(found, "bob's hash not found in the master")
        finally:
            server.stop()
            server.cleanup()

    def test_supplementary_groups_from_group_database(self):
        member = group_with_member()
        if member is None:
            self.skipTest("no group in /etc/group lists a member")
        name, gid = member
        _, _, without = self.run_session(name=name)
        self.assertNotIn(gid, without)
        _, gids, groups = self.run_session(
            name=name, userdb_opts={"supplementary_groups": "yes"})
        self.assertEqual(gids, {poplartest.NOBODY})
        self.assertIn(gid, groups)
        self.assertIn(poplartest.NOBODY, groups)


if __name__ == "__main__":
    poplartest.run_tests()
