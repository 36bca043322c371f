#!/usr/bin/env python3
"""Kerberos tests with a real MIT KDC and real fetchmail: the kpop module
(KPOP before the greeting), the pass module's krb5 and pam backends, and
`poplard -t` / `--check-kerberos`.

The KDC runs in a throw-away realm on 127.0.0.1 (kdctest.TestKDC).
fetchmail reaches the KPOP listener through --plugin: a small connector
joins its stdin/stdout to the test port (and can record what the client
sent, for the replay test), because fetchmail only speaks KPOP with the
service name "kpop", which Debian's /etc/services does not list.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kdctest  # noqa: E402
import poplartest  # noqa: E402
from poplartest import IS_ROOT, PoplarServer, run_tests  # noqa: E402

FETCHMAIL_TIMEOUT = 60
KPOP_TIMEOUT = 3        # the kpop module's pre-greeting timeout here
SENDAUTH = b"\x00\x00\x00\x13KRB5_SENDAUTH_V1.0\x00"
APPL = b"\x00\x00\x00\x09KPOPV1.0\x00"

CONNECTOR = r'''
import os, select, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
cap = open(sys.argv[2], "ab") if len(sys.argv) > 2 else None
inputs = [0, s]
while inputs:
    r, _, _ = select.select(inputs, [], [], 30)
    if not r:
        break
    if 0 in r:
        d = os.read(0, 65536)
        if d:
            s.sendall(d)
            if cap:
                cap.write(d)
                cap.flush()
        else:
            inputs.remove(0)
            s.shutdown(socket.SHUT_WR)
    if s in r:
        d = s.recv(65536)
        if not d:
            break
        os.write(1, d)
'''

KDC = None
MESSAGE = b"From: bob@example.org\nSubject: kpop test\n\nHello over KPOP.\n"


def setUpModule():
    global KDC
    missing = kdctest.missing_tools()
    if missing or not os.path.exists(
            os.path.join(poplartest.module_build_dir() or "", "kpop.so")):
        # run_tests exits 77 when every test is skipped.
        raise unittest.SkipTest("needs krb5-kdc, krb5-admin-server, "
                                "krb5-user and kpop.so (missing: %s)"
                                % (", ".join(missing) or "kpop.so"))
    KDC = kdctest.TestKDC().start()
    KDC.add_principal("alice", "alice-pw")
    KDC.add_principal("bob", "bob-pw")
    KDC.add_service("pop/localhost")
    KDC.add_service("imap/localhost")


def tearDownModule():
    if KDC is not None:
        KDC.stop()


def kpop_server(module_opts=None, **kw):
    """A server with a plain pop3 listener (probed at start) and a kpop
    listener on another port (server.kport)."""
    kport = poplartest.free_port()
    opts = {"keytab": KDC.keytab, "timeout": str(KPOP_TIMEOUT)}
    opts.update(module_opts or {})
    extra = "[module kpop]\n" + "".join("%s = %s\n" % kv
                                        for kv in opts.items())
    s = PoplarServer(listeners=[("kpop", {
        "address": "127.0.0.1:%d" % kport, "protocol": "kpop",
        "auth": "kpop", "tls": "none"})], extra_config=extra, **kw)
    s.kport = kport
    s.add_user("alice", "unused")
    s.add_user("bob", "unused")
    return s


def fetchmail(server, user="alice", capture=None, keep=False,
              clock_offset=None):
    """Run fetchmail over KPOP; returns (exit code, output, bsmtp text).
    clock_offset (e.g. "+10m") runs it under faketime: its clock is off."""
    tmp = server.tmp
    conn = os.path.join(tmp, "connector.py")
    with open(conn, "w") as f:
        f.write(CONNECTOR)
    rc = os.path.join(tmp, "fetchmailrc")
    with open(rc, "w") as f:
        f.write("")
    os.chmod(rc, 0o600)
    out = os.path.join(tmp, "out.bsmtp")
    if os.path.exists(out):
        os.unlink(out)
    plugin = "%s %s %d" % (sys.executable, conn, server.kport)
    if capture:
        plugin += " " + capture
    # The lock file in tmp: as root fetchmail's default is
    # /var/run/fetchmail.pid, shared with every other fetchmail run.
    argv = ["fetchmail", "-N", "-d0", "-v", "-f", rc, "-p", "KPOP",
            "--plugin", plugin, "--sslproto", "", "-u", user,
            "--bsmtp", out, "--pidfile", os.path.join(tmp, "fetchmail.pid"),
            "localhost"]
    if keep:
        argv.insert(1, "-k")
    if clock_offset:
        argv = ["faketime", "-f", clock_offset] + argv
    env = dict(os.environ, HOME=tmp, FETCHMAILHOME=tmp)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, env=env,
                       timeout=FETCHMAIL_TIMEOUT)
    text = ""
    if os.path.exists(out):
        with open(out, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    return p.returncode, p.stdout.decode("utf-8", "replace"), text


def raw_kpop(server, data, read_timeout=KPOP_TIMEOUT + 5):
    """Send data to the kpop port, then read until the server closes;
    returns (bytes received, seconds until the close)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.kport),
                                  timeout=read_timeout) as s:
        if data:
            s.sendall(data)
        got = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            got += d
    return got, time.monotonic() - t0


def split_sendauth(captured):
    """The client's sendauth messages (through the AP-REQ) from a capture."""
    off = 0
    for _ in range(3):
        n = int.from_bytes(captured[off:off + 4], "big")
        off += 4 + n
    return captured[:off]


class KpopTests(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = kpop_server()
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        code, left = cls.server.stop()
        cls.server.cleanup()
        if code != 0 or left:
            raise AssertionError("poplard stop: %r %r" % (code, left))

    def setUp(self):
        self.server.wait_children(0)
        KDC.kdestroy()

    def test_fetchmail_retrieves_and_deletes(self):
        self.server.add_message("alice", MESSAGE)
        KDC.kinit("alice", "alice-pw")
        code, out, mail = fetchmail(self.server)
        self.assertEqual(code, 0, out + self.server.log())
        self.assertIn("PASS krb_ticket", out)
        self.assertIn("Hello over KPOP.", mail)
        self.assertEqual(self.server.maildir_files("alice"), [])
        auth = self.server.wait_log("kpop-auth", "principal=alice@POPLAR.TEST")
        self.assertTrue(auth, self.server.log())
        f = poplartest.parse_log_fields(auth[-1])
        self.assertEqual(f["user"], "alice")
        self.assertEqual(f["rule"], "auth_to_local")
        self.assertEqual(f["realm"], "POPLAR.TEST")
        login = self.server.wait_log(" login ", "method=kpop")
        self.assertTrue(login, self.server.log())
        self.assertIn("principal=alice@POPLAR.TEST", login[-1])

    def test_capa_after_kpop(self):
        KDC.kinit("alice", "alice-pw")
        code, out, _ = fetchmail(self.server, keep=True)
        self.assertIn(code, (0, 1), out)
        self.assertIn("POP3< USER", out)
        self.assertIn("POP3< IMPLEMENTATION Poplar", out)

    def test_no_ticket(self):
        code, out, _ = fetchmail(self.server)
        self.assertNotIn(code, (0, 1), out)
        lines = self.server.wait_log("kpop-fail")
        self.assertTrue(lines, self.server.log())
        self.assertIn("plain POP3 client", lines[-1])

    def test_wrong_user(self):
        KDC.kinit("alice", "alice-pw")
        code, out, _ = fetchmail(self.server, user="bob")
        self.assertNotIn(code, (0, 1), out)
        lines = self.server.wait_log("auth-fail", "user=bob", "method=kpop")
        self.assertTrue(lines, self.server.log())
        self.assertIn("principal alice@POPLAR.TEST", lines[-1])

    def test_replayed_apreq(self):
        cap = os.path.join(self.server.tmp, "capture.bin")
        KDC.kinit("alice", "alice-pw")
        code, out, _ = fetchmail(self.server, capture=cap, keep=True)
        self.assertIn(code, (0, 1), out)
        with open(cap, "rb") as f:
            exchange = split_sendauth(f.read())
        self.assertTrue(exchange.startswith(SENDAUTH + APPL))
        got, _ = raw_kpop(self.server, exchange)
        # status byte 0, then a KRB-ERROR (non-zero length), then close
        self.assertEqual(got[:1], b"\x00")
        self.assertNotEqual(got[1:5], b"\x00\x00\x00\x00")
        self.assertNotIn(b"+OK", got)
        lines = self.server.wait_log("kpop-fail", "replayed request")
        self.assertTrue(lines, self.server.log())

    def test_clock_skew(self):
        if shutil.which("faketime") is None:
            self.skipTest("needs faketime (package faketime)")
        self.server.add_message("alice", MESSAGE)
        KDC.kinit("alice", "alice-pw")
        # The service ticket is fetched with the right time (the KDC
        # would refuse a skewed request itself); the client's clock then
        # runs ten minutes ahead, twice the allowed skew.
        KDC.run([kdctest.tool("kvno"), "pop/localhost@" + KDC.realm])
        logins = len(self.server.log_lines(" login "))
        code, out, mail = fetchmail(self.server, clock_offset="+10m")
        self.assertNotEqual(code, 0, out)
        self.assertNotIn("Hello over KPOP.", mail)
        lines = self.server.wait_log("kpop-fail", "clock skew")
        self.assertTrue(lines, self.server.log())
        self.assertEqual(len(self.server.maildir_files("alice")), 1)
        self.assertEqual(len(self.server.log_lines(" login ")), logins)

    def test_plain_pop3_client(self):
        got, took = raw_kpop(self.server, b"CAPA\r\n")
        self.assertTrue(got.startswith(b"-ERR"), got)
        self.assertLess(took, KPOP_TIMEOUT)
        self.assertTrue(self.server.wait_log("kpop-fail",
                                             "plain POP3 client", "CAPA"))

    def test_krb4_client(self):
        got, took = raw_kpop(self.server, b"AUTHV0.1KPOPV0.1\x00\x00\x00\x00")
        self.assertEqual(got, b"")
        self.assertLess(took, KPOP_TIMEOUT)
        self.assertTrue(self.server.wait_log("kpop-fail", "Kerberos 4"))

    def test_garbage(self):
        got, _ = raw_kpop(self.server, b"\x00\x00\x00\x05hello")
        self.assertEqual(got, b"")
        self.assertTrue(self.server.wait_log(
            "kpop-fail", "not a Kerberos sendauth exchange"))

    def test_oversized_first_length(self):
        got, took = raw_kpop(self.server, b"\xff\xff\xff\xff" + b"x" * 100)
        self.assertEqual(got, b"")
        self.assertLess(took, KPOP_TIMEOUT)
        self.assertTrue(self.server.wait_log("kpop-fail", "oversized length"))

    def test_oversized_apreq_length(self):
        got, took = raw_kpop(self.server,
                             SENDAUTH + APPL + b"\x7f\xff\xff\xff")
        self.assertEqual(got, b"\x00")
        self.assertLess(took, KPOP_TIMEOUT)
        self.assertTrue(self.server.wait_log(
            "kpop-fail", "AP-REQ length out of bounds"))

    def test_bad_application_version(self):
        got, _ = raw_kpop(self.server,
                          SENDAUTH + b"\x00\x00\x00\x09KPOPV0.1\x00")
        self.assertEqual(got, b"\x02")
        self.assertTrue(self.server.wait_log(
            "kpop-fail", "bad application version"))

    def test_bad_apreq(self):
        got, _ = raw_kpop(self.server, SENDAUTH + APPL +
                          b"\x00\x00\x00\x10" + b"\x01" * 16)
        self.assertEqual(got[:1], b"\x00")
        self.assertGreater(len(got), 5)     # a KRB-ERROR message
        self.assertTrue(self.server.wait_log("kpop-fail", "AP-REQ refused"))

    def test_stall_before_anything(self):
        got, took = raw_kpop(self.server, b"")
        self.assertEqual(got, b"")
        self.assertGreaterEqual(took, KPOP_TIMEOUT - 0.5)
        self.assertLess(took, KPOP_TIMEOUT + 3)
        self.assertTrue(self.server.wait_log(
            "kpop-fail", "timed out while reading the sendauth version"))

    def test_stall_inside_apreq(self):
        got, took = raw_kpop(self.server, SENDAUTH + APPL +
                             b"\x00\x00\x04\x00" + b"\x01" * 10)
        self.assertEqual(got, b"\x00")
        self.assertLess(took, KPOP_TIMEOUT + 3)
        self.assertTrue(self.server.wait_log(
            "kpop-fail", "timed out while reading the AP-REQ"))

    def test_server_survives(self):
        for data in (b"\xff" * 4, b"QUIT\r\n", b"\x00" * 8):
            raw_kpop(self.server, data)
        self.server.wait_children(0)
        self.assertIsNone(self.server.proc.poll())
        c = self.server.connect()
        self.assertTrue(c.greeting.startswith("+OK"))
        c.quit()


class KpopPolicyTests(unittest.TestCase):
    """Servers whose policy refuses the client's ticket."""

    def setUp(self):
        KDC.kdestroy()
        KDC.kinit("alice", "alice-pw")

    def run_refused(self, module_opts, needle):
        s = kpop_server(module_opts)
        try:
            s.start()
            code, out, _ = fetchmail(s)
            self.assertNotIn(code, (0, 1), out)
            lines = s.wait_log("kpop-fail", needle)
            self.assertTrue(lines, s.log())
            return out
        finally:
            s.stop()
            s.cleanup()

    def test_realm_not_allowed(self):
        self.run_refused({"realms": "OTHER.REALM"}, "realm not allowed")

    def test_ticket_for_another_service(self):
        self.run_refused({"service": "imap"}, "ticket for another service")

    def test_map_file(self):
        path = os.path.join(KDC.tmp, "kpop.map")
        with open(path, "w") as f:
            f.write("alice@POPLAR.TEST bob\n")
        s = kpop_server({"principal_map": "file:" + path})
        try:
            s.start()
            s.add_message("bob", MESSAGE)
            code, out, mail = fetchmail(s, user="bob")
            self.assertEqual(code, 0, out + s.log())
            self.assertIn("Hello over KPOP.", mail)
            self.assertTrue(s.wait_log("kpop-auth", "user=bob",
                                       "rule=map_file:1"))
        finally:
            s.stop()
            s.cleanup()


def poplard(*args, env=None):
    p = subprocess.run([poplartest.poplard_path()] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30, env=env)
    poplartest.check_sanitizer(p.stdout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class CheckKerberosTests(unittest.TestCase):
    def setUp(self):
        self.server = kpop_server()
        self.conf = self.server.write_config()

    def tearDown(self):
        self.server.cleanup()

    def test_check_kerberos_ok(self):
        code, out = poplard("--check-kerberos", "-c", self.conf)
        self.assertEqual(code, 0, out)
        self.assertIn("default realm: POPLAR.TEST", out)
        self.assertIn("pop/localhost@POPLAR.TEST kvno", out)
        self.assertIn(KDC.keytab, out)
        self.assertIn("replay cache: " + KDC.rcache_dir, out)
        self.assertIn("Kerberos set-up OK", out)
        code, out = poplard("-t", "-c", self.conf)
        self.assertEqual(code, 0, out)

    def test_missing_rcache_dir(self):
        env = dict(os.environ, KRB5RCACHEDIR=os.path.join(KDC.tmp, "none"))
        code, out = poplard("-t", "-c", self.conf, env=env)
        self.assertEqual(code, 1, out)
        self.assertIn("replay cache directory", out)
        code, out = poplard("--check-kerberos", "-c", self.conf, env=env)
        self.assertEqual(code, 1, out)
        self.assertIn("advice:", out)

    def test_missing_keytab(self):
        self.server.extra_config = self.server.extra_config.replace(
            KDC.keytab, KDC.keytab + ".missing")
        conf = self.server.write_config()
        code, out = poplard("-t", "-c", conf)
        self.assertEqual(code, 1, out)
        self.assertIn("cannot be read", out)

    def test_no_key_for_host(self):
        self.server.extra_config += "host = mail.example.org\n"
        conf = self.server.write_config()
        code, out = poplard("--check-kerberos", "-c", conf)
        self.assertEqual(code, 1, out)
        self.assertIn("no key for pop/mail.example.org", out)

    def test_bad_keys(self):
        for line, needle in (("timeout = 0", "timeout"),
                             ("principal_map = ldap", "principal_map"),
                             ("colour = blue", "unknown key")):
            self.server.extra_config = ("[module kpop]\nkeytab = %s\n%s\n"
                                        % (KDC.keytab, line))
            conf = self.server.write_config()
            code, out = poplard("-t", "-c", conf)
            self.assertEqual(code, 1, out)
            self.assertIn(needle, out)
            self.assertIn("poplar.conf:", out)


class PassServer(PoplarServer):
    """A server whose pass module uses another backend."""

    def __init__(self, pass_opts, **kw):
        super().__init__(**kw)
        self.pass_opts = pass_opts

    def config_text(self):
        section = "[module pass]\n" + "".join(
            "%s = %s\n" % kv for kv in self.pass_opts.items())
        return super().config_text().replace(
            "[module pass]\nbackend = userdb\n", section)


class Krb5PasswordTests(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = PassServer({"backend": "krb5", "keytab": KDC.keytab})
        cls.server.add_user("alice", "not-this-one")
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.cleanup()

    def setUp(self):
        self.server.wait_children(0)

    def test_right_password(self):
        c = self.server.connect()
        self.assertTrue(c.login("alice", "alice-pw").startswith("+OK"))
        c.quit()
        lines = self.server.wait_log(" login ", "method=pass",
                                     "principal=alice@POPLAR.TEST")
        self.assertTrue(lines, self.server.log())
        self.assertIn("rule=auth_to_local", lines[-1])

    def test_principal_with_realm(self):
        c = self.server.connect()
        self.assertTrue(c.login("alice@POPLAR.TEST",
                                "alice-pw").startswith("+OK"))
        c.quit()

    def test_wrong_password(self):
        c = self.server.connect()
        self.assertEqual(c.login("alice", "not-this-one"),
                         "-ERR [AUTH] authentication failed")
        c.close()
        self.assertTrue(self.server.wait_log("auth-fail", "user=alice",
                                             "KDC refused"))

    def test_unknown_principal(self):
        c = self.server.connect()
        self.assertEqual(c.login("carol", "whatever"),
                         "-ERR [AUTH] authentication failed")
        c.close()

    def test_other_realm_not_asked(self):
        c = self.server.connect()
        self.assertEqual(c.login("alice@OTHER.REALM", "alice-pw"),
                         "-ERR [AUTH] authentication failed")
        c.close()
        self.assertTrue(self.server.wait_log("auth-fail",
                                             "realm not allowed"))

    def test_bob_has_no_mailbox(self):
        # bob's password is right, but the userdb has no bob.
        c = self.server.connect()
        self.assertEqual(c.login("bob", "bob-pw"),
                         "-ERR [AUTH] authentication failed")
        c.close()

    def test_kdc_down(self):
        # A second server whose krb5.conf names a KDC port nobody serves.
        dead = os.path.join(KDC.tmp, "krb5-dead.conf")
        with open(dead, "w") as f:
            f.write(KDC.krb5_conf_text(kdc_port=poplartest.free_port()))
        s = PassServer({"backend": "krb5", "keytab": KDC.keytab})
        s.add_user("alice", "unused")
        saved = os.environ["KRB5_CONFIG"]
        os.environ["KRB5_CONFIG"] = dead
        try:
            s.start()
        finally:
            os.environ["KRB5_CONFIG"] = saved
        try:
            c = s.connect()
            reply = c.login("alice", "alice-pw")
            self.assertTrue(reply.startswith("-ERR [SYS/TEMP]"), reply)
            c.close()
            self.assertTrue(s.wait_log("auth-tempfail", "KDC unavailable"))
        finally:
            s.stop()
            s.cleanup()


PAM_USER = "poplart%d" % (os.getpid() % 100000)


@unittest.skipUnless(IS_ROOT, "the PAM backend tests need root (a test "
                     "account and a file in /etc/pam.d)")
class PamTests(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.service = "poplar-test-%d" % os.getpid()
        cls.pam_file = os.path.join("/etc/pam.d", cls.service)
        cls.made_user = False
        if subprocess.run(["getent", "passwd", PAM_USER],
                          stdout=subprocess.DEVNULL).returncode == 0:
            raise unittest.SkipTest("account %s exists already" % PAM_USER)
        subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin",
                        PAM_USER], check=True, timeout=30)
        cls.made_user = True
        subprocess.run(["chpasswd"], input=("%s:pam-pw\n" % PAM_USER).encode(),
                       check=True, timeout=30)
        with open(cls.pam_file, "w") as f:
            f.write("auth required pam_unix.so\n"
                    "account required pam_unix.so\n")
        cls.server = PassServer({"backend": "pam",
                                 "pam_service": cls.service})
        cls.server.add_user(PAM_USER, "unused")
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server is not None:
                cls.server.stop()
                cls.server.cleanup()
        finally:
            if os.path.exists(cls.pam_file):
                os.unlink(cls.pam_file)
            if cls.made_user:
                subprocess.run(["userdel", PAM_USER], timeout=30)

    def setUp(self):
        self.server.wait_children(0)

    def test_right_password(self):
        c = self.server.connect()
        self.assertTrue(c.login(PAM_USER, "pam-pw").startswith("+OK"),
                        self.server.log())
        c.quit()
        self.assertTrue(self.server.wait_log(" login ", "user=" + PAM_USER,
                                             "backend=pam"))

    def test_wrong_password(self):
        c = self.server.connect()
        self.assertEqual(c.login(PAM_USER, "nope"),
                         "-ERR [AUTH] authentication failed")
        c.close()
        self.assertTrue(self.server.wait_log("auth-fail",
                                             "pam_authenticate"))

    def test_unknown_user(self):
        c = self.server.connect()
        self.assertEqual(c.login("nosuchuser%d" % os.getpid(), "pam-pw"),
                         "-ERR [AUTH] authentication failed")
        c.close()

    def test_expired_account(self):
        subprocess.run(["usermod", "-e", "1970-01-02", PAM_USER],
                       check=True, timeout=30)
        try:
            c = self.server.connect()
            self.assertEqual(c.login(PAM_USER, "pam-pw"),
                             "-ERR [AUTH] authentication failed")
            c.close()
            self.assertTrue(self.server.wait_log("auth-fail",
                                                 "pam_acct_mgmt"))
        finally:
            subprocess.run(["usermod", "-e", "", PAM_USER], check=True,
                           timeout=30)


if __name__ == "__main__":
    poplartest.require_environment()
    if kdctest.missing_tools() or not os.path.exists(os.path.join(
            poplartest.module_build_dir(), "kpop.so")):
        print("SKIP: Kerberos tests need krb5-kdc, krb5-admin-server, "
              "krb5-user and a build with MIT krb5 (kpop.so)")
        sys.exit(poplartest.SKIP)
    if not IS_ROOT:
        print("SKIP: PAM backend tests (not root)")
    run_tests()
