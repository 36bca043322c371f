"""The sasl module: POP3 AUTH (RFC 5034) through Cyrus SASL, with real
clients.

Covers: PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1 and SCRAM-SHA-256
against a sasldb made with saslpasswd2 (gsasl, bridged to POP3; curl with
--login-options and --sasl-ir; fetchmail `auth cram-md5`); the one
mechanism list (CAPA's SASL line, a bare AUTH, what AUTH accepts); the
plaintext policy before and after STLS; EXTERNAL with a verified TLS
client certificate (gsasl over a TLS bridge, curl --cert, raw lines);
GSSAPI against a real MIT KDC started for the test (gsasl, curl,
fetchmail `auth gssapi`); and the edge cases with raw lines: AUTH PLAIN =,
"*" cancels, invalid base64, unknown mechanisms, an over-long line, AUTH
after login, a different authorization id, a user unknown to the userdb,
and a sasldb that has gone away (-ERR [SYS/TEMP] and a log line).

gsasl's command line frames only IMAP and SMTP: gsasl_pop3() runs
`gsasl --client --imap` on pipes and translates its IMAP lines to POP3
and back; every token still comes from libgsasl.
"""

import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import (PoplarServer, ServerTestCase, module_build_dir,  # noqa: E402
                        NET_TIMEOUT, IS_ROOT, NOBODY)

CMD_TIMEOUT = 30        # seconds for any external command
# The module's bound on one line of an AUTH exchange (SASL_LINE_MAX).
SASL_LINE_MAX = 16 * 1024
# Mechanisms the sasldb can serve.
SASLDB_MECHS = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1",
                "SCRAM-SHA-256"]
MESSAGE = b"From: bob@example.org\nSubject: hello\n\nhello alice\n"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def sasl_available():
    mdir = module_build_dir()
    return bool(mdir) and os.path.exists(os.path.join(mdir, "sasl.so"))


def have(*tools):
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return all(shutil.which(t, path=paths) for t in tools)


def tool(name):
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which(name, path=paths) or name


def run(argv, **kw):
    r = subprocess.run(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=CMD_TIMEOUT, **kw)
    poplartest.check_sanitizer(r.stderr, os.path.basename(argv[0]))
    return r


def fetchmail(home, rc):
    """fetchmail -c with rc; its lock file in home (as root it would be
    /var/run/fetchmail.pid, shared with every other fetchmail run)."""
    return run(["fetchmail", "-N", "-d0", "-c", "-v", "-f", rc,
                "--pidfile", os.path.join(home, "fetchmail.pid")],
               env=dict(os.environ, HOME=home, FETCHMAILHOME=home))


def make_sasldb(path, realm, users):
    """A sasldb at path with users {name: password} in realm."""
    for name, password in users.items():
        p = subprocess.run([tool("saslpasswd2"), "-f", path, "-p", "-c",
                            "-u", realm, name],
                           input=password.encode() + b"\n",
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=CMD_TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError("saslpasswd2: %s" % p.stdout.decode())
    os.chmod(path, 0o600)


def sasl_config(sasldb, mechs, extra=""):
    return ("[module sasl]\n"
            "pwcheck_method = auxprop\n"
            "auxprop_plugin = sasldb\n"
            "sasldb_path = %s\n"
            "mech_list = %s\n%s" % (sasldb, " ".join(mechs), extra))


def gsasl_pop3(sock, mech, args, timeout=CMD_TIMEOUT, greeting=None):
    """Authenticate on sock (a connected POP3 socket, plain or TLS) with
    `gsasl --client --imap -m mech args`, translating IMAP to POP3:
    AUTHENTICATE -> AUTH, "+ x" both ways, +OK/-ERR -> OK/NO.  The
    greeting is read first unless given.  Returns (POP3 reply that ended
    the exchange, gsasl stderr, reader, transcript)."""
    sock.settimeout(timeout)
    f = sock.makefile("rwb")

    def pop_read():
        line = f.readline()
        if not line:
            raise EOFError("server closed the connection")
        return line.rstrip(b"\r\n")

    def pop_write(line):
        f.write(line + b"\r\n")
        f.flush()

    if greeting is None:
        greeting = pop_read()
    elif isinstance(greeting, str):
        greeting = greeting.encode()
    p = subprocess.Popen(["gsasl", "--client", "--imap", "-m", mech,
                          "--service", "pop", "--hostname", "localhost",
                          "--quality-of-protection", "qop-auth",
                          "--no-starttls"] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    transcript = []
    reply = None

    def g_write(line):
        p.stdin.write(line + b"\r\n")
        p.stdin.flush()

    def g_read():
        line = p.stdout.readline()
        if not line:
            raise EOFError("gsasl ended early")
        return line.rstrip(b"\r\n")

    try:
        g_write(b"* OK " + greeting)
        # Bounded: CAPABILITY, then AUTHENTICATE and its steps.
        for _ in range(4):
            line = g_read()
            transcript.append(b"C: " + line)
            tag, _, rest = line.partition(b" ")
            if rest.upper() == b"CAPABILITY":
                g_write(b"* CAPABILITY IMAP4rev1 AUTH=" + mech.encode())
                g_write(tag + b" OK done")
                continue
            if not rest.upper().startswith(b"AUTHENTICATE "):
                raise AssertionError("gsasl sent %r" % line)
            pop_write(b"AUTH " + rest.split(b" ", 1)[1])
            for _ in range(12):
                r = pop_read()
                transcript.append(b"S: " + r)
                if r.startswith(b"+OK") or r.startswith(b"-ERR"):
                    reply = r.decode()
                    g_write(tag + (b" OK " if r.startswith(b"+OK")
                                   else b" NO ") + r)
                    break
                if not r.startswith(b"+ "):
                    raise AssertionError("server sent %r" % r)
                g_write(r)
                c = g_read()
                transcript.append(b"C: " + c)
                pop_write(c)
            break
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
    err = p.stderr.read().decode("utf-8", "replace")
    p.stdout.close()
    p.stderr.close()
    return reply, err, f, b"\n".join(transcript).decode("utf-8", "replace")


class SaslServer(PoplarServer):
    """A PoplarServer whose users also live in a sasldb."""

    def __init__(self, mechs, sasl_extra="", users=None, **kw):
        super().__init__(**kw)
        self.sasldb = os.path.join(self.tmp, "sasldb")
        self.sasl_users = users or {"alice": "secret"}
        make_sasldb(self.sasldb, "localhost", self.sasl_users)
        if IS_ROOT:
            os.chown(self.sasldb, 0, 0)
        self.extra_config += "\n" + sasl_config(self.sasldb, mechs,
                                                sasl_extra)


def capa_sasl(conn):
    status, lines = conn.multi("CAPA")
    assert status.startswith("+OK"), status
    for line in lines:
        words = line.decode().split()
        if words and words[0] == "SASL":
            return words[1:]
    return []


def auth_list(conn):
    status, lines = conn.multi("AUTH")
    assert status.startswith("+OK"), status
    return [l.decode() for l in lines]


@unittest.skipUnless(sasl_available(), "the sasl module was not built")
@unittest.skipUnless(have("saslpasswd2"), "saslpasswd2 (sasl2-bin) missing")
class SaslDbTests(ServerTestCase):
    """Password mechanisms against a sasldb, plaintext allowed."""

    @classmethod
    def make_server(cls):
        s = SaslServer(SASLDB_MECHS + ["EXTERNAL"],
                       users={"alice": "secret", "carol": "carolpw"},
                       listener_opts={"auth": "sasl"})
        s.add_user("alice", "userdb-password")
        s.add_message("alice", MESSAGE)
        return s

    # ---- the mechanism list --------------------------------------------
    def test_one_mechanism_list(self):
        with self.server.connect() as c:
            capa = capa_sasl(c)
            self.assertEqual(auth_list(c), capa)
            # No verified client certificate: EXTERNAL is not offered.
            self.assertEqual(sorted(capa), sorted(SASLDB_MECHS))
            self.assertEqual(capa[0], "CRAM-MD5")
            # Every listed mechanism is accepted; others are not.
            for mech in capa:
                r = c.cmd("AUTH " + mech.lower())
                self.assertTrue(r.startswith("+ "), (mech, r))
                self.assertTrue(c.cmd("*").startswith("-ERR"))
            c.quit()
        # (A new connection: every -ERR counts towards max_bad_commands.)
        with self.server.connect() as c:
            for mech in ("GSSAPI", "EXTERNAL", "ANONYMOUS", "NTLM",
                         "X-NOPE", "SCRAM-SHA-512"):
                r = c.cmd("AUTH " + mech)
                self.assertEqual(r, "-ERR unknown or unavailable SASL "
                                 "mechanism", mech)
            c.quit()

    # ---- gsasl ------------------------------------------------------------
    def gsasl(self, mech, user="alice", password="secret", extra=()):
        with self.server.connect(greeting=False) as c:
            reply, err, f, tr = gsasl_pop3(
                c.sock, mech, ["-a", user, "-p", password, "-r",
                               "localhost"] + list(extra))
            if reply is not None and reply.startswith("+OK"):
                f.write(b"STAT\r\n")
                f.flush()
                stat = f.readline().decode()
                f.write(b"QUIT\r\n")
                f.flush()
                f.readline()
            else:
                stat = None
            return reply, err, tr, stat

    def test_gsasl_each_mechanism(self):
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        for mech in SASLDB_MECHS:
            with self.subTest(mech=mech):
                reply, err, tr, stat = self.gsasl(mech)
                self.assertTrue(reply and reply.startswith("+OK"),
                                "%s\n%s\n%s" % (reply, tr, err))
                self.assertIn("Client authentication finished", err)
                self.assertTrue(stat.startswith("+OK 1 "), stat)
                self.assertTrue(self.server.wait_log(
                    "login", "user=alice", "method=sasl", "mech=" + mech),
                    self.server.log()[-2000:])
                self.server.wait_children(0)

    def test_gsasl_final_server_data(self):
        """DIGEST-MD5's rspauth and SCRAM's v= come as a last "+ "
        challenge, answered by an empty line, then +OK; gsasl checks
        them (mutual authentication)."""
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        for mech, prefix in (("DIGEST-MD5", b"rspauth="),
                             ("SCRAM-SHA-256", b"v=")):
            with self.subTest(mech=mech):
                reply, err, tr, _ = self.gsasl(mech)
                lines = tr.splitlines()
                last_challenge = [l for l in lines if l.startswith("S: + ")][-1]
                data = base64.b64decode(last_challenge[5:])
                self.assertTrue(data.startswith(prefix), tr)
                i = lines.index(last_challenge)
                self.assertEqual(lines[i + 1], "C: ")
                self.assertTrue(lines[i + 2].startswith("S: +OK"), tr)
                self.server.wait_children(0)

    def test_gsasl_wrong_password(self):
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        for mech in SASLDB_MECHS:
            with self.subTest(mech=mech):
                reply, err, tr, _ = self.gsasl(mech, password="wrong")
                self.assertEqual(reply, "-ERR [AUTH] authentication failed",
                                 tr)
                self.server.wait_children(0)

    def test_gsasl_authzid(self):
        """An authorization id equal to the authentication id is fine;
        another one is refused (Cyrus's default proxy policy)."""
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        reply, _, tr, _ = self.gsasl("PLAIN", extra=["-z", "alice"])
        self.assertTrue(reply.startswith("+OK"), tr)
        self.server.wait_children(0)
        reply, _, tr, _ = self.gsasl("PLAIN", user="carol",
                                     password="carolpw",
                                     extra=["-z", "alice"])
        self.assertEqual(reply, "-ERR [AUTH] authentication failed", tr)

    # ---- curl ----------------------------------------------------------------
    def curl(self, mech, password="secret", ir=False):
        argv = ["curl", "-sS", "--max-time", "20",
                "pop3://127.0.0.1:%d/1" % self.server.port,
                "-u", "alice:" + password, "--login-options", "AUTH=" + mech]
        if ir:
            argv.append("--sasl-ir")
        return run(argv)

    def test_curl(self):
        if not have("curl"):
            self.skipTest("curl is not installed")
        for mech, ir in (("PLAIN", False), ("PLAIN", True), ("LOGIN", False),
                         ("LOGIN", True), ("CRAM-MD5", False),
                         ("DIGEST-MD5", False)):
            with self.subTest(mech=mech, ir=ir):
                r = self.curl(mech, ir=ir)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(b"hello alice", r.stdout)
                self.server.wait_children(0)
        r = self.curl("CRAM-MD5", password="wrong")
        self.assertEqual(r.returncode, 67, r.stderr)

    # ---- fetchmail -----------------------------------------------------------
    def test_fetchmail_cram_md5(self):
        if not have("fetchmail"):
            self.skipTest("fetchmail is not installed")
        for password, codes in (("secret", (0, 1)), ("wrong", (3,))):
            home = tempfile.mkdtemp(prefix="poplar-fetchmail-")
            try:
                rc = os.path.join(home, "fetchmailrc")
                with open(rc, "w") as f:
                    f.write("poll localhost service %d protocol POP3 "
                            "auth cram-md5 user alice password \"%s\" "
                            "sslproto ''\n" % (self.server.port, password))
                os.chmod(rc, 0o600)
                r = fetchmail(home, rc)
                out = (r.stdout + r.stderr).decode(errors="replace")
                self.assertIn(r.returncode, codes, out)
                self.assertIn("AUTH CRAM-MD5", out)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            self.server.wait_children(0)

    # ---- edge cases with raw lines ---------------------------------------------
    def test_plain_initial_response(self):
        with self.server.connect() as c:
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            self.assertTrue(c.cmd("STAT").startswith("+OK 1 "))
            # AUTH after login: the core refuses module commands then.
            self.assertTrue(c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
                            .startswith("-ERR"))
            self.assertTrue(c.cmd("AUTH").startswith("-ERR"))
            c.quit()

    def test_plain_continuation(self):
        with self.server.connect() as c:
            self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
            r = c.cmd(b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            c.quit()

    def test_empty_initial_response(self):
        """"=" is an empty initial response: PLAIN cannot work with it."""
        with self.server.connect() as c:
            self.assertEqual(c.cmd("AUTH PLAIN ="),
                             "-ERR [AUTH] authentication failed")
            c.quit()

    def test_cancel(self):
        with self.server.connect() as c:
            self.assertEqual(c.cmd("AUTH LOGIN"), "+ " + b64("Username:"))
            self.assertEqual(c.cmd("*"), "-ERR authentication cancelled")
            self.assertTrue(c.cmd("AUTH CRAM-MD5").startswith("+ "))
            self.assertEqual(c.cmd("*"), "-ERR authentication cancelled")
            # The session goes on.
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            c.quit()

    def test_bad_base64(self):
        with self.server.connect() as c:
            for ir in ("!!!!", "AGFsaWNlAHNlY3JldA", "AGFsaWNlAHNlY3JldA=",
                       "AGFsaWNlAHNlY3JldA===", "AGFsaWNl\tAHNl"):
                self.assertEqual(c.cmd("AUTH PLAIN " + ir),
                                 "-ERR invalid base64 initial response", ir)
            # Base64 has no spaces: a third word is a syntax error.
            self.assertTrue(c.cmd("AUTH PLAIN AGFs aWNl").startswith("-ERR"))
            self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
            self.assertEqual(c.cmd("not base64!"),
                             "-ERR invalid base64 data in AUTH exchange")
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            c.quit()

    def test_unknown_mechanism(self):
        with self.server.connect() as c:
            for mech in ("FOO", "X" * 30, "PLAIN\x01"):
                self.assertTrue(c.cmd("AUTH " + mech).startswith("-ERR"))
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            c.quit()

    def test_long_line_ends_session(self):
        with self.server.connect() as c:
            self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
            # A line just under the bound is read (and is not PLAIN).
            self.assertEqual(c.cmd("A" * (SASL_LINE_MAX - 4) + "===="),
                             "-ERR invalid base64 data in AUTH exchange")
            self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
            c.send(b"QUFB" * (SASL_LINE_MAX // 4 + 1) + b"\r\n")
            self.assertEqual(c.readline(), b"-ERR authentication aborted")
            self.assertEqual(c.wait_closed(), [])

    def test_wrong_password_and_unknown_users(self):
        with self.server.connect() as c:
            for ir in ("\0alice\0wrong", "\0nobody-here\0secret",
                       "\0carol\0carolpw"):
                # carol is in the sasldb but not in the userdb.
                self.assertEqual(c.cmd("AUTH PLAIN " + b64(ir)),
                                 "-ERR [AUTH] authentication failed")
        self.assertTrue(self.server.wait_log("auth-fail", "user=carol"))

    def test_sasldb_gone_is_tempfail(self):
        moved = self.server.sasldb + ".away"
        os.rename(self.server.sasldb, moved)
        try:
            with self.server.connect() as c:
                r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
                self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
                c.quit()
        finally:
            os.rename(moved, self.server.sasldb)
        lines = self.server.wait_log("auth-tempfail", "method=sasl")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertIn("sasldb", "\n".join(self.server.log_lines("sasl:")) +
                      lines[-1])
        with self.server.connect() as c:
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            c.quit()


# ---- TLS: the plaintext policy and EXTERNAL ---------------------------------

def openssl(*args):
    subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   timeout=CMD_TIMEOUT, check=True)


class Certs:
    """A test CA; a server certificate for localhost; client
    certificates for alice (CN=alice) and for a name that is no user."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="poplar-sasl-tls-")
        os.chmod(self.dir, 0o755)
        d = self.dir
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        openssl("req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca,
                "-days", "30", "-subj", "/CN=Poplar SASL Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.cert, self.key = self.issue("server", "/CN=localhost",
                                         "subjectAltName = DNS:localhost, "
                                         "IP:127.0.0.1\nextendedKeyUsage = "
                                         "serverAuth\n")
        self.alice = self.issue("alice", "/O=Poplar/CN=alice",
                                "extendedKeyUsage = clientAuth\n")
        self.stranger = self.issue("stranger", "/CN=stranger",
                                   "extendedKeyUsage = clientAuth\n")
        for name in os.listdir(d):
            os.chmod(os.path.join(d, name), 0o644)

    def issue(self, name, subject, ext_text):
        d = self.dir
        key = os.path.join(d, name + ".key")
        csr = os.path.join(d, name + ".csr")
        cert = os.path.join(d, name + ".pem")
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = CA:FALSE\n" + ext_text)
        openssl("req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                "-out", csr, "-subj", subject)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                self.ca_key, "-CAcreateserial", "-out", cert, "-days", "30",
                "-extfile", ext)
        return cert, key

    def context(self, client=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if client is not None:
            ctx.load_cert_chain(*client)
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def stls(conn, ctx):
    """STLS on a poplartest.Connection; its socket becomes TLS."""
    r = conn.cmd("STLS")
    assert r.startswith("+OK"), r
    assert conn.buf == b""
    conn.sock = ctx.wrap_socket(conn.sock, server_hostname="localhost")


@unittest.skipUnless(sasl_available(), "the sasl module was not built")
@unittest.skipUnless(have("saslpasswd2"), "saslpasswd2 (sasl2-bin) missing")
class SaslTlsTests(ServerTestCase):
    """plaintext_auth = after-tls with STLS, and EXTERNAL with a client
    certificate verified against [tls] client_ca."""

    certs = None

    @classmethod
    def make_server(cls):
        cls.certs = Certs()
        s = SaslServer(SASLDB_MECHS + ["EXTERNAL"],
                       listener_opts={"auth": "sasl", "tls": "starttls",
                                      "plaintext_auth": "after-tls"})
        s.extra_config += ("\n[tls]\ncertificate = %s\nkey = %s\n"
                           "client_ca = %s\n" % (cls.certs.cert,
                                                  cls.certs.key,
                                                  cls.certs.ca))
        s.add_user("alice", "userdb-password")
        s.add_message("alice", MESSAGE)
        return s

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.certs.cleanup()

    def test_plaintext_only_after_stls(self):
        with self.server.connect() as c:
            before = capa_sasl(c)
            self.assertEqual(auth_list(c), before)
            self.assertNotIn("PLAIN", before)
            self.assertNotIn("LOGIN", before)
            self.assertNotIn("EXTERNAL", before)
            self.assertIn("SCRAM-SHA-256", before)
            for mech in ("PLAIN", "LOGIN"):
                self.assertEqual(
                    c.cmd("AUTH %s %s" % (mech, b64("\0alice\0secret"))),
                    "-ERR unknown or unavailable SASL mechanism")
            stls(c, self.certs.context())
            after = capa_sasl(c)
            self.assertEqual(auth_list(c), after)
            self.assertIn("PLAIN", after)
            self.assertIn("LOGIN", after)
            # No client certificate: no EXTERNAL.
            self.assertNotIn("EXTERNAL", after)
            self.assertEqual(c.cmd("AUTH EXTERNAL ="),
                             "-ERR unknown or unavailable SASL mechanism")
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("+OK"), r)
            c.quit()

    def test_external_raw(self):
        for how in ("=", "continuation", "authzid"):
            with self.subTest(how=how):
                with self.server.connect() as c:
                    stls(c, self.certs.context(self.certs.alice))
                    self.assertIn("EXTERNAL", capa_sasl(c))
                    if how == "=":
                        r = c.cmd("AUTH EXTERNAL =")
                    elif how == "continuation":
                        self.assertEqual(c.cmd("AUTH EXTERNAL"), "+ ")
                        r = c.cmd("")
                    else:
                        r = c.cmd("AUTH EXTERNAL " + b64("alice"))
                    self.assertTrue(r.startswith("+OK maildrop has 1 message"), r)
                    c.quit()
                self.assertTrue(self.server.wait_log(
                    "login", "user=alice", "mech=EXTERNAL"))
                self.server.wait_children(0)

    def test_external_refused(self):
        # Another authorization id than the certificate's.
        with self.server.connect() as c:
            stls(c, self.certs.context(self.certs.alice))
            self.assertEqual(c.cmd("AUTH EXTERNAL " + b64("bob")),
                             "-ERR [AUTH] authentication failed")
            c.quit()
        # A verified certificate whose name is no user here.
        with self.server.connect() as c:
            stls(c, self.certs.context(self.certs.stranger))
            self.assertEqual(c.cmd("AUTH EXTERNAL ="),
                             "-ERR [AUTH] authentication failed")
            c.quit()

    def test_gsasl_over_tls(self):
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        for mech, client, args in (
                ("EXTERNAL", self.certs.alice, []),
                ("EXTERNAL", self.certs.alice, ["-z", "alice"]),
                ("PLAIN", None, ["-a", "alice", "-p", "secret"]),
                ("SCRAM-SHA-256", None, ["-a", "alice", "-p", "secret"])):
            with self.subTest(mech=mech, args=args):
                with self.server.connect() as c:
                    stls(c, self.certs.context(client))
                    reply, err, f, tr = gsasl_pop3(
                        c.sock, mech, args, greeting=c.greeting)
                    self.assertTrue(reply and reply.startswith("+OK"),
                                    "%s\n%s\n%s" % (reply, tr, err))
                    f.write(b"QUIT\r\n")
                    f.flush()
                    f.readline()
                self.server.wait_children(0)

    def curl(self, mech, client=None, user="alice:secret", tls=True):
        argv = ["curl", "-sS", "--max-time", "20",
                "pop3://localhost:%d/1" % self.server.port,
                "-u", user, "--login-options", "AUTH=" + mech,
                "--cacert", self.certs.ca]
        if tls:
            argv.append("--ssl-reqd")
        if client is not None:
            argv += ["--cert", client[0], "--key", client[1]]
        return run(argv)

    def test_curl(self):
        if not have("curl"):
            self.skipTest("curl is not installed")
        for mech, client, user in (("EXTERNAL", self.certs.alice, "alice:"),
                                   ("PLAIN", None, "alice:secret"),
                                   ("LOGIN", None, "alice:secret"),
                                   ("CRAM-MD5", None, "alice:secret")):
            with self.subTest(mech=mech):
                r = self.curl(mech, client, user)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(b"hello alice", r.stdout)
                self.server.wait_children(0)
        # PLAIN without TLS is not offered: curl cannot log in.
        r = self.curl("PLAIN", tls=False)
        self.assertNotEqual(r.returncode, 0)


# ---- GSSAPI against a real KDC ------------------------------------------------

try:
    import kdctest  # noqa: E402
except ImportError:
    kdctest = None


def gssapi_skip_reason():
    if kdctest is None:
        return "the KDC fixture (kdctest.py) is not there"
    missing = kdctest.missing_tools()
    if missing:
        return "Kerberos tools missing: " + " ".join(missing)
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/sasl2/libgssapiv2.so") \
            and not any(os.path.exists(os.path.join(d, "libgssapiv2.so"))
                        for d in ("/usr/lib/sasl2", "/usr/lib64/sasl2")):
        return "the Cyrus GSSAPI plugin (libsasl2-modules-gssapi-mit) " \
               "is missing"
    return None


@unittest.skipUnless(sasl_available(), "the sasl module was not built")
@unittest.skipUnless(have("saslpasswd2"), "saslpasswd2 (sasl2-bin) missing")
@unittest.skipIf(gssapi_skip_reason(), gssapi_skip_reason())
class SaslGssapiTests(ServerTestCase):
    """GSSAPI with a ticket from a KDC started for the test, the service
    key pop/localhost in a keytab given as `keytab =`, and principals
    mapped to users by the shared principal policy."""

    kdc = None

    @classmethod
    def make_server(cls):
        cls.kdc = kdctest.TestKDC()
        try:
            cls.kdc.start()
            cls.kdc.add_service("pop/localhost")
            cls.kdc.add_principal("alice", "alice-krb-pw")
            cls.kdc.add_principal("bob", "bob-krb-pw")
            os.chmod(cls.kdc.keytab, 0o600)
            s = SaslServer(["GSSAPI", "CRAM-MD5", "SCRAM-SHA-1"],
                           sasl_extra="keytab = %s\n" % cls.kdc.keytab,
                           listener_opts={"auth": "sasl"})
            if IS_ROOT:
                os.chown(cls.kdc.keytab, 0, 0)
            s.add_user("alice", "userdb-password")
            s.add_message("alice", MESSAGE)
            return s
        except Exception:
            cls.kdc.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.kdc.stop()

    def setUp(self):
        super().setUp()
        self.kdc.kinit("alice", "alice-krb-pw")

    def test_offered_first(self):
        with self.server.connect() as c:
            capa = capa_sasl(c)
            self.assertEqual(capa[:2], ["GSSAPI", "CRAM-MD5"])
            self.assertEqual(auth_list(c), capa)
            c.quit()

    def test_gsasl(self):
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        with self.server.connect(greeting=False) as c:
            reply, err, f, tr = gsasl_pop3(c.sock, "GSSAPI", [])
            self.assertTrue(reply and reply.startswith("+OK maildrop has 1"),
                            "%s\n%s\n%s\n%s" % (reply, tr, err,
                                                 self.server.log()[-2000:]))
            # AUTH GSSAPI without initial response: an empty "+ " first.
            self.assertIn("S: + \n", tr + "\n")
            f.write(b"QUIT\r\n")
            f.flush()
            f.readline()
        lines = self.server.wait_log("login", "user=alice", "mech=GSSAPI")
        self.assertTrue(lines, self.server.log()[-2000:])

    def test_curl(self):
        if not have("curl"):
            self.skipTest("curl is not installed")
        r = run(["curl", "-sS", "--max-time", "20",
                 "pop3://localhost:%d/1" % self.server.port, "-u", ":",
                 "--login-options", "AUTH=GSSAPI"])
        self.assertEqual(r.returncode, 0, r.stderr + self.server.log()[-2000:].encode())
        self.assertIn(b"hello alice", r.stdout)

    def test_fetchmail(self):
        if not have("fetchmail"):
            self.skipTest("fetchmail is not installed")
        home = tempfile.mkdtemp(prefix="poplar-fetchmail-")
        try:
            rc = os.path.join(home, "fetchmailrc")
            with open(rc, "w") as f:
                f.write("poll localhost service %d protocol POP3 auth gssapi "
                        "user alice sslproto ''\n" % self.server.port)
            os.chmod(rc, 0o600)
            r = fetchmail(home, rc)
            out = (r.stdout + r.stderr).decode(errors="replace")
            self.assertIn(r.returncode, (0, 1), out)
            self.assertIn("AUTH GSSAPI", out)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        self.assertTrue(self.server.wait_log("login", "user=alice",
                                             "mech=GSSAPI"))

    def test_principal_without_user(self):
        """bob@REALM has a ticket but no local user: refused."""
        if not have("gsasl"):
            self.skipTest("gsasl is not installed")
        self.kdc.kinit("bob", "bob-krb-pw")
        with self.server.connect(greeting=False) as c:
            reply, err, f, tr = gsasl_pop3(c.sock, "GSSAPI", [])
            self.assertEqual(reply, "-ERR [AUTH] authentication failed", tr)

    def test_garbage_token(self):
        with self.server.connect() as c:
            self.assertEqual(c.cmd("AUTH GSSAPI"), "+ ")
            self.assertEqual(c.cmd(b64("this is no GSS-API token")),
                             "-ERR [AUTH] authentication failed")
            c.quit()


@unittest.skipUnless(sasl_available(), "the sasl module was not built")
@unittest.skipUnless(have("saslpasswd2"), "saslpasswd2 (sasl2-bin) missing")
class SaslauthdDownTests(ServerTestCase):
    """pwcheck_method = saslauthd with no saslauthd listening: a backend
    outage, answered with -ERR [SYS/TEMP] and logged."""

    @classmethod
    def make_server(cls):
        s = SaslServer(["PLAIN"], listener_opts={"auth": "sasl"})
        s.extra_config += ("pwcheck_method = saslauthd\n"
                           "saslauthd_path = %s/no-saslauthd/mux\n" % s.tmp)
        s.add_user("alice", "secret")
        return s

    def test_tempfail(self):
        with self.server.connect() as c:
            r = c.cmd("AUTH PLAIN " + b64("\0alice\0secret"))
            self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
            # Not a failed login: the session goes on.
            self.assertEqual(c.cmd("AUTH X"), "-ERR unknown or unavailable "
                             "SASL mechanism")
            c.quit()
        lines = self.server.wait_log("auth-tempfail", "method=sasl")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertIn("saslauthd", lines[-1])


@unittest.skipUnless(sasl_available(), "the sasl module was not built")
@unittest.skipUnless(have("saslpasswd2"), "saslpasswd2 (sasl2-bin) missing")
class SaslConfigTests(unittest.TestCase):
    """-t, --policy and --list-modules with the sasl module."""

    def poplard(self, *args, extra=""):
        s = SaslServer(SASLDB_MECHS, sasl_extra=extra,
                       listener_opts={"auth": "sasl pass"})
        try:
            s.add_user("alice", "secret")
            s.write_config()
            return run([poplartest.poplard_path(), "-c", s.config_path]
                       + list(args))
        finally:
            s.cleanup()

    def test_policy_rows(self):
        r = self.poplard("--policy")
        out = r.stdout.decode() + r.stderr.decode()
        self.assertEqual(r.returncode, 0, out)
        rows = {l.split()[1]: l for l in out.splitlines()
                if l.strip().startswith("SASL ")}
        self.assertEqual(sorted(rows), sorted(SASLDB_MECHS))
        self.assertIn("YES", rows["PLAIN"])
        self.assertIn("guessable", rows["CRAM-MD5"])
        self.assertNotIn("YES", rows["SCRAM-SHA-256"])

    def test_check_ok_and_bad_keys(self):
        r = self.poplard("-t")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.poplard("-t", extra="Bad-Key = 1\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"module sasl", r.stdout + r.stderr)
        r = self.poplard("-t", extra="service = a/b\n")
        self.assertNotEqual(r.returncode, 0)
        r = self.poplard("-t", extra="mech_list = NO-SUCH-MECH\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"offers no mechanism", r.stdout + r.stderr)


if __name__ == "__main__":
    poplartest.run_tests()
