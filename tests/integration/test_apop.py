"""The apop module: APOP (RFC 1939 section 7) against poplard.

Covers: poplib apop() and fetchmail `protocol APOP` (right and wrong
secret), the greeting timestamp (format, one per connection, none where
APOP is not offered), every kind of failure answered by the same line
after the same delay (wrong secret, digest of the wrong length or not
hex, unknown user, user without an APOP secret), a replayed APOP line,
deny_pass = yes, APOP after STLS, the secrets file rules of `poplard -t`
(mode, owner) and its warnings, and the APOP row of `poplard --policy`.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import poplib
import ssl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import (PoplarServer, ServerTestCase, free_port,  # noqa: E402
                        poplard_path, wire_form, NET_TIMEOUT, IS_ROOT,
                        NOBODY)

CMD_TIMEOUT = 30
FAILED = "-ERR [AUTH] authentication failed"
TIMESTAMP_RE = re.compile(r"^\+OK .*(<[^<>@\s]+@localhost>)$")

# APOP secrets (the userdb passwords are different on purpose).
APOP_SECRETS = {"alice": "apop-Secret 1", "erin": "erin's apop"}
PASSWORDS = {"alice": "secret", "carol": "carolpw", "erin": "erinpw"}

MESSAGE = b"From: bob@example.org\nSubject: apop\n\nhello\n.dot\n"


def digest(timestamp, secret):
    return hashlib.md5((timestamp + secret).encode()).hexdigest()


def timestamp_of(greeting):
    m = TIMESTAMP_RE.match(greeting or "")
    if m is None:
        raise AssertionError("no APOP timestamp in %r" % greeting)
    return m.group(1)


def run(argv, env=None, timeout=CMD_TIMEOUT):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=timeout)
    poplartest.check_sanitizer(r.stderr, os.path.basename(argv[0]))
    return r


def write_secrets(path, secrets=None, mode=0o600):
    with open(path, "w") as f:
        f.write("# name:secret\n")
        for name, secret in (secrets or APOP_SECRETS).items():
            f.write("%s:%s\n" % (name, secret))
    os.chmod(path, mode)
    return path


class Certificate:
    """A test CA and a server certificate for localhost (made with the
    openssl command), for APOP after STLS."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="poplar-apop-tls-")
        d = self.dir
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        csr = os.path.join(d, "server.csr")
        ext = os.path.join(d, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
        for argv in (
                ["req", "-x509"] + ec + ["-keyout", os.path.join(d, "ca.key"),
                                         "-out", self.ca, "-days", "365",
                                         "-subj", "/CN=Poplar APOP Test CA"],
                ["req"] + ec + ["-keyout", self.key, "-out", csr,
                                "-subj", "/CN=localhost"],
                ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                 os.path.join(d, "ca.key"), "-CAcreateserial", "-out",
                 self.cert, "-days", "365", "-extfile", ext]):
            run(["openssl"] + argv).check_returncode()

    def config(self):
        return "[tls]\ncertificate = %s\nkey = %s\n" % (self.cert, self.key)

    def context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


CERT = None


def setUpModule():
    global CERT
    CERT = Certificate()


def tearDownModule():
    if CERT is not None:
        CERT.cleanup()


def apop_server(deny_pass=None, server_opts=None, listener_opts=None,
                listeners=None, secrets_mode=0o600, tls=False):
    """A server whose first listener offers apop and pass (no TLS,
    plaintext_auth = always unless listener_opts says otherwise)."""
    opts = {"auth": "apop pass"}
    opts.update(listener_opts or {})
    s = PoplarServer(server_opts=server_opts, listener_opts=opts,
                     listeners=listeners)
    s.secrets = write_secrets(os.path.join(s.tmp, "apop-secrets"),
                              mode=secrets_mode)
    extra = "[module apop]\nsecrets = %s\n" % s.secrets
    if deny_pass is not None:
        extra += "deny_pass = %s\n" % deny_pass
    if tls:
        extra += CERT.config()
    s.extra_config = extra
    for name, password in PASSWORDS.items():
        s.add_user(name, password)
    s.add_message("alice", MESSAGE)
    return s


class ApopTests(ServerTestCase):

    @classmethod
    def make_server(cls):
        cls.passonly = free_port()
        return apop_server(listeners=[("passonly", {
            "address": "127.0.0.1:%d" % cls.passonly, "tls": "none",
            "auth": "pass", "plaintext_auth": "always"})])

    def apop(self, user, secret=None, conn=None, digest_text=None):
        """APOP in a new connection (or conn); returns the reply."""
        c = conn or self.server.connect()
        try:
            ts = timestamp_of(c.greeting)
            if digest_text is None:
                digest_text = digest(ts, secret)
            return c.cmd("APOP %s %s" % (user, digest_text))
        finally:
            if conn is None:
                c.close()

    def test_poplib_apop(self):
        p = self.server.poplib()
        try:
            self.assertTrue(p.apop("alice", APOP_SECRETS["alice"])
                            .startswith(b"+OK"))
            self.assertEqual(p.stat(), (1, len(wire_form(MESSAGE))))
            _, lines, _ = p.retr(1)
            self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                             wire_form(MESSAGE))
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            p.close()
        lines = self.server.wait_log("login", "user=alice", "method=apop")
        self.assertTrue(lines, self.server.log()[-2000:])

    def test_timestamp_unique_per_connection(self):
        stamps = []
        for _ in range(20):
            with self.server.connect() as c:
                stamps.append(timestamp_of(c.greeting))
                c.quit()
        self.assertEqual(len(set(stamps)), 20, stamps)
        self.assertLessEqual(max(len(s) for s in stamps), 200)

    def test_failures_look_the_same(self):
        log_start = len(self.server.log())
        cases = {}
        with self.server.connect() as c:
            ts = timestamp_of(c.greeting)
            good = digest(ts, APOP_SECRETS["alice"])
            cases["wrong secret"] = c.cmd("APOP alice %s"
                                          % digest(ts, "wrong"))
            # The userdb password is not the APOP secret.
            cases["userdb password"] = c.cmd(
                "APOP alice %s" % digest(ts, PASSWORDS["alice"]))
        for name, text in (("short digest", good[:31]),
                           ("long digest", good + "0"),
                           ("64 hex digits", good + good),
                           ("not hex", "g" * 32),
                           ("not hex, right prefix", good[:31] + "z"),
                           ("empty-ish", "-")):
            cases[name] = self.apop("alice", digest_text=text)
        cases["unknown user"] = self.apop("nosuchuser",
                                          APOP_SECRETS["alice"])
        cases["user without APOP secret"] = self.apop("carol",
                                                      PASSWORDS["carol"])
        cases["secret of another user"] = self.apop("alice",
                                                    APOP_SECRETS["erin"])
        for name, reply in cases.items():
            with self.subTest(case=name):
                self.assertEqual(reply, FAILED)
        self.server.wait_children(0)
        new = self.server.log()[log_start:]
        self.assertNotIn(" login ", new)
        self.assertEqual(new.count(" auth-fail "), len(cases), new)

    def test_failure_then_success(self):
        with self.server.connect() as c:
            ts = timestamp_of(c.greeting)
            self.assertEqual(c.cmd("APOP alice %s" % digest(ts, "nope")),
                             FAILED)
            reply = c.cmd("APOP alice %s" % digest(ts, APOP_SECRETS["alice"]))
            self.assertTrue(reply.startswith("+OK"), reply)
            self.assertTrue(c.quit().startswith("+OK"))

    def test_syntax(self):
        with self.server.connect() as c:
            for line in ("APOP", "APOP alice", "APOP alice a b"):
                with self.subTest(line=line):
                    reply = c.cmd(line)
                    self.assertTrue(reply.startswith("-ERR"), reply)

    def test_replay_fails(self):
        with self.server.connect() as c:
            line = "APOP alice %s" % digest(timestamp_of(c.greeting),
                                            APOP_SECRETS["alice"])
            self.assertTrue(c.cmd(line).startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
        self.server.wait_children(0)
        with self.server.connect() as c:
            self.assertEqual(c.cmd(line), FAILED)

    def test_apop_in_transaction(self):
        with self.server.login("alice") as c:
            reply = c.cmd("APOP alice %s" % ("0" * 32))
            self.assertTrue(reply.startswith("-ERR"), reply)
            self.assertTrue(c.quit().startswith("+OK"))

    def test_pass_still_works(self):
        """deny_pass defaults to no: alice may also use USER/PASS."""
        with self.server.login("alice") as c:
            self.assertTrue(c.quit().startswith("+OK"))

    def test_listener_without_apop(self):
        with self.server.connect(port=self.passonly) as c:
            self.assertNotIn("<", c.greeting)
            reply = c.cmd("APOP alice %s" % ("0" * 32))
            self.assertTrue(reply.startswith("-ERR"), reply)
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def fetchmail(self, secret, extra=""):
        home = tempfile.mkdtemp(prefix="poplar-fetchmail-")
        try:
            rc = os.path.join(home, "fetchmailrc")
            with open(rc, "w") as f:
                f.write("poll 127.0.0.1 service %d protocol APOP "
                        "user alice password \"%s\" %s\n"
                        % (self.server.port, secret,
                           extra or "sslproto ''"))
            os.chmod(rc, 0o600)
            # Its own lock file: as root fetchmail would share
            # /var/run/fetchmail.pid with every other run (make -j check).
            env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
            return run(["fetchmail", "-N", "-d0", "-c", "-v", "-f", rc,
                        "--pidfile", os.path.join(home, "fetchmail.pid")],
                       env=env)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def test_fetchmail_apop(self):
        if shutil.which("fetchmail") is None:
            self.skipTest("fetchmail is not installed")
        r = self.fetchmail(APOP_SECRETS["alice"])
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertIn(r.returncode, (0, 1), out)
        self.assertIn("APOP alice", out)
        self.assertTrue(self.server.wait_log("login", "user=alice",
                                             "method=apop"))

    def test_fetchmail_wrong_secret(self):
        if shutil.which("fetchmail") is None:
            self.skipTest("fetchmail is not installed")
        r = self.fetchmail("not the secret")
        self.assertEqual(r.returncode, 3,
                         (r.stdout + r.stderr).decode(errors="replace"))


class DelayTests(ServerTestCase):
    """Every kind of failure waits auth_fail_delay before its answer."""

    @classmethod
    def make_server(cls):
        return apop_server(server_opts={"auth_fail_delay": "1"})

    def test_same_delay(self):
        for name, user, text in (
                ("wrong secret", "alice", None),
                ("short digest", "alice", "0" * 31),
                ("not hex", "alice", "x" * 32),
                ("unknown user", "nosuchuser", None)):
            with self.subTest(case=name), self.server.connect() as c:
                ts = timestamp_of(c.greeting)
                t0 = time.monotonic()
                reply = c.cmd("APOP %s %s" % (user, text or
                                              digest(ts, "wrong")))
                elapsed = time.monotonic() - t0
                self.assertEqual(reply, FAILED)
                self.assertGreaterEqual(elapsed, 0.9)
                self.assertLess(elapsed, 5)


class DenyPassTests(ServerTestCase):
    """deny_pass = yes: users with an APOP secret may not use USER/PASS."""

    @classmethod
    def make_server(cls):
        return apop_server(deny_pass="yes")

    def test_user_with_secret_refused(self):
        with self.server.connect() as c:
            # USER does not tell whether alice has an APOP secret.
            self.assertTrue(c.cmd("USER alice").startswith("+OK"))
            self.assertEqual(c.cmd("PASS secret"), FAILED)
        with self.server.connect() as c:
            self.assertTrue(c.cmd("USER alice").startswith("+OK"))
            self.assertEqual(c.cmd("PASS wrong"), FAILED)
        self.assertTrue(self.server.wait_log("auth-fail", "user=alice",
                                             "method=pass"))

    def test_user_without_secret_allowed(self):
        with self.server.login("carol") as c:
            self.assertTrue(c.quit().startswith("+OK"))

    def test_apop_still_works(self):
        p = self.server.poplib()
        try:
            self.assertTrue(p.apop("alice", APOP_SECRETS["alice"])
                            .startswith(b"+OK"))
            p.quit()
        finally:
            p.close()


class ApopAfterStlsTests(ServerTestCase):
    """A starttls listener offering APOP: the timestamp of the greeting
    stays valid after STLS (clients compute the digest from it), as
    --policy says (APOP after-TLS: yes).  Only USER/PASS is forgotten."""

    @classmethod
    def make_server(cls):
        return apop_server(tls=True, listener_opts={
            "tls": "starttls", "plaintext_auth": "after-tls"})

    def test_poplib_stls_then_apop(self):
        p = self.server.poplib()
        try:
            p.stls(CERT.context())
            reply = p._shortcmd("APOP alice %s" % digest(
                timestamp_of(p.getwelcome().decode()),
                APOP_SECRETS["alice"]))
            self.assertTrue(reply.startswith(b"+OK"), reply)
            self.assertEqual(p.stat(), (1, len(wire_form(MESSAGE))))
            p.quit()
        finally:
            p.close()

    def test_stls_forgets_user_not_timestamp(self):
        with self.server.connect() as c:
            ts = timestamp_of(c.greeting)
            self.assertTrue(c.cmd("STLS").startswith("+OK"))
            c.sock = CERT.context().wrap_socket(c.sock,
                                                server_hostname="localhost")
            self.assertTrue(c.cmd("USER alice").startswith("+OK"))
            stale = c.cmd("APOP alice %s" % digest(ts, "wrong"))
            self.assertEqual(stale, FAILED)
            reply = c.cmd("APOP alice %s" % digest(ts, APOP_SECRETS["alice"]))
            self.assertTrue(reply.startswith("+OK"), reply)
            self.assertTrue(c.quit().startswith("+OK"))

    def test_replay_across_stls_fails(self):
        """A digest for the timestamp of one connection is refused in
        another, with or without TLS."""
        with self.server.connect() as c:
            line = "APOP alice %s" % digest(timestamp_of(c.greeting),
                                            APOP_SECRETS["alice"])
        p = self.server.poplib()
        try:
            p.stls(CERT.context())
            with self.assertRaises(poplib.error_proto) as cm:
                p._shortcmd(line)
            self.assertEqual(cm.exception.args[0].decode(), FAILED)
        finally:
            p.close()

    def test_apop_before_stls(self):
        """Before TLS APOP is offered (and -t warns about it)."""
        p = self.server.poplib()
        try:
            self.assertTrue(p.apop("alice", APOP_SECRETS["alice"])
                            .startswith(b"+OK"))
            p.quit()
        finally:
            p.close()


class NoApopTests(ServerTestCase):
    """The module is configured but no listener offers it."""

    @classmethod
    def make_server(cls):
        return apop_server(listener_opts={"auth": "pass"})

    def test_greeting_without_timestamp(self):
        for _ in range(3):
            with self.server.connect() as c:
                self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
                self.assertNotIn("<", c.greeting)
                reply = c.cmd("APOP alice %s" % ("0" * 32))
                self.assertTrue(reply.startswith("-ERR"), reply)


class ConfigCheckTests(unittest.TestCase):
    """poplard -t and --policy with the apop module."""

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()

    def poplard(self, option="-t", **kw):
        s = apop_server(**kw)
        self.servers.append(s)
        r = run([poplard_path(), option, "-c", s.write_config()])
        r.text = (r.stdout + r.stderr).decode(errors="replace")
        r.server = s
        return r

    def test_good_secrets_file(self):
        r = self.poplard()
        self.assertEqual(r.returncode, 0, r.text)

    def test_secrets_readable_by_others(self):
        for mode in (0o644, 0o640, 0o604, 0o620):
            with self.subTest(mode=oct(mode)):
                r = self.poplard(secrets_mode=mode)
                self.assertEqual(r.returncode, 1, r.text)
                self.assertIn(r.server.secrets, r.text)

    def test_secrets_owned_by_another_user(self):
        if not IS_ROOT:
            self.skipTest("only root can give a file away")
        s = apop_server()
        self.servers.append(s)
        os.chown(s.secrets, NOBODY, NOBODY)
        r = run([poplard_path(), "-t", "-c", s.write_config()])
        text = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 1, text)
        self.assertIn(s.secrets, text)
        self.assertIn("owned by another user", text)

    def test_missing_secrets_file(self):
        s = apop_server()
        self.servers.append(s)
        os.unlink(s.secrets)
        r = run([poplard_path(), "-t", "-c", s.write_config()])
        text = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 1, text)
        self.assertIn(s.secrets, text)

    def test_warns_apop_without_tls(self):
        r = self.poplard()
        self.assertEqual(r.returncode, 0, r.text)
        self.assertTrue(any(l.startswith("warning:") and "APOP" in l and
                            "'pop3'" in l and "TLS" in l
                            for l in r.text.splitlines()), r.text)

    def test_warns_apop_before_stls(self):
        r = self.poplard(tls=True, listener_opts={
            "tls": "starttls", "plaintext_auth": "after-tls"})
        self.assertEqual(r.returncode, 0, r.text)
        self.assertTrue(any(l.startswith("warning:") and "APOP" in l
                            for l in r.text.splitlines()), r.text)

    def test_no_warning_on_implicit_tls(self):
        r = self.poplard(tls=True, listener_opts={"tls": "implicit"})
        self.assertEqual(r.returncode, 0, r.text)
        self.assertNotIn("warning:", r.text)

    def test_policy_row(self):
        r = self.poplard("--policy")
        self.assertEqual(r.returncode, 0, r.text)
        rows = [l.split() for l in r.stdout.decode().splitlines()
                if l.strip().startswith("APOP")]
        self.assertEqual(len(rows), 1, r.text)
        # before-TLS yes, no after-TLS phase, guessable, replay-safe.
        self.assertEqual(rows[0][1:5], ["yes", "-", "guessable", "yes"],
                         r.text)

    def test_policy_row_starttls(self):
        r = self.poplard("--policy", tls=True, listener_opts={
            "tls": "starttls", "plaintext_auth": "after-tls"})
        self.assertEqual(r.returncode, 0, r.text)
        rows = {l.split()[0]: l.split()[1:] for l in
                r.stdout.decode().splitlines() if l.startswith("  ")
                and len(l.split()) == 6}
        self.assertEqual(rows["APOP"][:3], ["yes", "yes", "guessable"],
                         r.text)
        self.assertEqual(rows["USER/PASS"][:3], ["no", "yes", "no"], r.text)


if __name__ == "__main__":
    poplartest.require_environment()
    if not os.path.exists(os.path.join(poplartest.module_build_dir(),
                                       "apop.so")):
        print("SKIP: POPLAR_MODULE_BUILD_DIR does not hold apop.so")
        sys.exit(poplartest.SKIP)
    poplartest.run_tests()
