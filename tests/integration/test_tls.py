"""TLS in poplard: STLS (RFC 2595) and implicit TLS (RFC 8314), the
plaintext-credentials policy, and the checks of `poplard -t` and
`poplard --policy`.

Covers: poplib stls() and POP3_SSL, openssl s_client with -starttls pop3
and on the implicit port (also a pipelining test), curl with pop3s:// and
--ssl-reqd, the STARTTLS injection class (commands sent in the packet of
STLS are never executed inside TLS), what STLS forgets, when CAPA lists
STLS and USER, plaintext_auth = after-tls / always / never and
trusted_networks, TLS 1.1 refused and min_version = TLSv1.3, the TLS
fields of the session-end log line, failed and stalled handshakes,
plaintext on the implicit port, a client that leaves in the middle of a
large RETR, the certificate, key and policy checks of -t / --policy, and
the TLS part (tls-openssl.so): mapped only when TLS is configured, and a
missing part or one of another ABI refused with its file named.

A CA and a server certificate for "localhost" (DNS:localhost and
IP:127.0.0.1) are made with the openssl command in a temporary
directory.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import warnings
import poplib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import (PoplarServer, ServerTestCase, free_port,  # noqa: E402
                        parse_log_fields, poplard_path, wire_form, NET_TIMEOUT,
                        IS_ROOT)

CMD_TIMEOUT = 30        # seconds for any external command

SMALL = (b"From: bob@example.org\nTo: alice@example.org\nSubject: small\n"
         b"\n.leading dot\nline two\n")


def big_message(size=5 * 1024 * 1024):
    """About size bytes of mail: numbered lines, some starting with a dot."""
    out = [b"From: bob@example.org\nSubject: big\n\n"]
    total = 0
    i = 0
    while total < size:
        line = (b"." if i % 17 == 0 else b"") + b"%08d " % i + \
            b"abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"
        out.append(line)
        total += len(line)
        i += 1
    return b"".join(out)


BIG = big_message()


# ---- certificates ----------------------------------------------------------

def openssl(*args, cwd=None, check=True):
    return subprocess.run(["openssl"] + list(args), cwd=cwd,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=CMD_TIMEOUT,
                          check=check)


class Certificates:
    """A test CA, a server certificate and key for localhost, and a few
    broken variants for the -t checks.  All files live in self.dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="poplar-tls-")
        os.chmod(self.dir, 0o755)
        d = self.dir
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        self.other_ca = os.path.join(d, "other-ca.pem")
        self.other_key = os.path.join(d, "other.key")
        self.expired = os.path.join(d, "expired.pem")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca,
                "-days", "365", "-subj", "/CN=Poplar Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-x509", *ec, "-keyout",
                os.path.join(d, "other-ca.key"), "-out", self.other_ca,
                "-days", "365", "-subj", "/CN=Some Other CA")
        csr = os.path.join(d, "server.csr")
        openssl("req", *ec, "-keyout", self.key, "-out", csr,
                "-subj", "/CN=localhost")
        ext = os.path.join(d, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n"
                    "basicConstraints = CA:FALSE\n"
                    "extendedKeyUsage = serverAuth\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                self.ca_key, "-CAcreateserial", "-out", self.cert,
                "-days", "365", "-extfile", ext)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", self.other_key)
        # An expired certificate: `openssl ca` takes explicit dates.
        cadir = os.path.join(d, "ca")
        os.makedirs(os.path.join(cadir, "new"))
        open(os.path.join(cadir, "index.txt"), "w").close()
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("1000\n")
        cnf = os.path.join(cadir, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca = testca\n[testca]\n"
                    "database = %s/index.txt\nnew_certs_dir = %s/new\n"
                    "serial = %s/serial\ndefault_md = sha256\n"
                    "policy = anything\ncopy_extensions = copy\n"
                    "unique_subject = no\n"
                    "[anything]\ncommonName = supplied\n"
                    % (cadir, cadir, cadir))
        openssl("ca", "-batch", "-config", cnf, "-cert", self.ca,
                "-keyfile", self.ca_key, "-in", csr, "-out", self.expired,
                "-startdate", "20200101000000Z", "-enddate",
                "20200102000000Z", "-notext")
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if os.path.isfile(path):
                os.chmod(path, 0o644 if name.endswith(".pem") else 0o600)

    def tls_config(self, cert=None, key=None, **extra):
        lines = ["[tls]", "certificate = %s" % (cert or self.cert),
                 "key = %s" % (key or self.key)]
        lines += ["%s = %s" % kv for kv in extra.items()]
        return "\n".join(lines) + "\n"

    def context(self, cafile=None):
        """A verifying client context (the test CA by default)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile or self.ca)
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


CERTS = None


def setUpModule():
    global CERTS
    CERTS = Certificates()


def tearDownModule():
    if CERTS is not None:
        CERTS.cleanup()


# ---- helpers ---------------------------------------------------------------

def start_tls(conn, ctx=None, hostname="localhost"):
    """Run the TLS handshake on a Connection (nothing may be buffered)."""
    assert conn.buf == b"", "bytes before the handshake: %r" % conn.buf
    conn.sock = (ctx or CERTS.context()).wrap_socket(
        conn.sock, server_hostname=hostname)
    return conn


def stls(conn, ctx=None):
    reply = conn.cmd("STLS")
    if not reply.startswith("+OK"):
        raise AssertionError("STLS refused: %s" % reply)
    return start_tls(conn, ctx)


def capa_names(conn):
    status, lines = conn.multi("CAPA")
    if not status.startswith("+OK"):
        raise AssertionError("CAPA: %s" % status)
    return [l.decode().split()[0].upper() for l in lines if l.strip()]


def stuff(wire):
    """Byte-stuffing of a message in wire form (RFC 1939 section 3)."""
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in wire.split(b"\r\n")[:-1])


def retr_bytes(lines):
    """poplib's RETR lines (already unstuffed) as the wire form."""
    return b"".join(l + b"\r\n" for l in lines)


def run(argv, input_bytes=None, env=None, timeout=CMD_TIMEOUT):
    r = subprocess.run(argv, input=input_bytes,
                       stdin=None if input_bytes is not None
                       else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=timeout)
    poplartest.check_sanitizer(r.stderr, os.path.basename(argv[0]))
    return r


def s_client(port, extra, input_bytes=b""):
    return run(["openssl", "s_client", "-quiet", "-crlf", "-connect",
                "127.0.0.1:%d" % port, "-CAfile", CERTS.ca,
                "-verify_return_error"] + extra, input_bytes)


def s_client_handshake(port, extra):
    """Only a handshake (no -quiet: stdin at EOF ends the client)."""
    return run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-CAfile", CERTS.ca, "-verify_return_error"] + extra, b"")


class TLSServer(PoplarServer):
    """A PoplarServer with the test certificate and more listeners."""

    def __init__(self, listener_opts=None, listeners=None, tls_extra=None,
                 server_opts=None):
        super().__init__(listener_opts=listener_opts, listeners=listeners,
                         server_opts=server_opts,
                         extra_config=CERTS.tls_config(**(tls_extra or {})))


# ---- sessions --------------------------------------------------------------

class TLSSessionTests(ServerTestCase):
    """One server with a listener of each kind:
    pop3      starttls, plaintext_auth = after-tls (the default)
    pops      implicit TLS
    plain     no TLS, plaintext_auth = always
    always    starttls, plaintext_auth = always
    never     starttls, plaintext_auth = never
    trusted   starttls, after-tls, trusted_networks = 127.0.0.0/8
    untrusted starttls, after-tls, trusted_networks = 10.0.0.0/8
    """

    @classmethod
    def make_server(cls):
        cls.ports = {name: free_port() for name in
                     ("pops", "plain", "always", "never", "trusted",
                      "untrusted")}

        def lst(name, **opts):
            opts.setdefault("auth", "pass")
            return (name, dict(address="127.0.0.1:%d" % cls.ports[name],
                               **opts))
        s = TLSServer(
            listener_opts={"tls": "starttls", "plaintext_auth": "after-tls"},
            listeners=[
                lst("pops", tls="implicit"),
                lst("plain", tls="none", plaintext_auth="always"),
                lst("always", tls="starttls", plaintext_auth="always"),
                lst("never", tls="starttls", plaintext_auth="never"),
                lst("trusted", tls="starttls", plaintext_auth="after-tls",
                    trusted_networks="127.0.0.0/8"),
                lst("untrusted", tls="starttls", plaintext_auth="after-tls",
                    trusted_networks="10.0.0.0/8"),
            ])
        s.add_user("alice", "secret")
        s.add_message("alice", SMALL)
        s.add_user("bob", "hunter2")
        s.add_message("bob", BIG)
        cls.ports["pop3"] = s.port
        return s

    def connect(self, listener="pop3", **kw):
        return self.server.connect(port=self.ports[listener], **kw)

    def connect_implicit(self, ctx=None):
        c = self.connect("pops", greeting=False)
        start_tls(c, ctx)
        line = c.readline()
        c.greeting = None if line is None else line.decode()
        return c

    def assert_serving(self):
        """The master still accepts and serves a complete session."""
        with self.connect("plain") as c:
            self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
        self.assertEqual(self.server.wait_children(0), 0)

    # -- real clients --------------------------------------------------------
    def test_poplib_stls(self):
        p = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=NET_TIMEOUT)
        try:
            self.assertTrue(p.stls(CERTS.context()).startswith(b"+OK"))
            self.assertTrue(p.user("alice").startswith(b"+OK"))
            self.assertTrue(p.pass_("secret").startswith(b"+OK"))
            self.assertEqual(p.stat(), (1, len(wire_form(SMALL))))
            _, lines, _ = p.retr(1)
            self.assertEqual(retr_bytes(lines), wire_form(SMALL))
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            p.close()

    def test_poplib_implicit(self):
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pops"],
                            context=CERTS.context(), timeout=NET_TIMEOUT)
        try:
            self.assertTrue(p.getwelcome().startswith(b"+OK"))
            self.assertIn("USER", p.capa())
            self.assertNotIn("STLS", p.capa())
            p.user("alice")
            p.pass_("secret")
            self.assertEqual(p.stat(), (1, len(wire_form(SMALL))))
            _, lines, _ = p.retr(1)
            self.assertEqual(retr_bytes(lines), wire_form(SMALL))
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            p.close()

    def check_s_client_output(self, r, greeting):
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        lines = r.stdout.decode(errors="replace").splitlines()
        if greeting:
            self.assertTrue(lines and lines[0].startswith("+OK"), lines)
            lines = lines[1:]
        # USER, PASS, STAT, QUIT: four replies, in order.
        self.assertEqual(len(lines), 4, lines)
        self.assertTrue(all(l.startswith("+OK") for l in lines), lines)
        self.assertEqual(lines[2], "+OK 1 %d" % len(wire_form(SMALL)))
        self.assertTrue(lines[3].startswith("+OK bye"), lines)

    def test_s_client_starttls_pipelined(self):
        r = s_client(self.ports["pop3"], ["-starttls", "pop3"],
                     b"USER alice\nPASS secret\nSTAT\nQUIT\n")
        self.check_s_client_output(r, greeting=False)

    def test_s_client_implicit_pipelined(self):
        r = s_client(self.ports["pops"], [],
                     b"USER alice\nPASS secret\nSTAT\nQUIT\n")
        self.check_s_client_output(r, greeting=True)

    def curl(self, url, *extra):
        return run(["curl", "-sS", "--fail", "--max-time", "20",
                    "--cacert", CERTS.ca, "-u", "alice:secret", url]
                   + list(extra))

    def test_curl_pop3s(self):
        base = "pop3s://127.0.0.1:%d/" % self.ports["pops"]
        r = self.curl(base)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(),
                         [b"1", b"%d" % len(wire_form(SMALL))])
        r = self.curl(base + "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, wire_form(SMALL))

    def test_curl_ssl_reqd(self):
        base = "pop3://127.0.0.1:%d/" % self.ports["pop3"]
        r = self.curl(base, "--ssl-reqd")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(),
                         [b"1", b"%d" % len(wire_form(SMALL))])
        r = self.curl(base + "1", "--ssl-reqd")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, wire_form(SMALL))

    def test_curl_wrong_ca(self):
        r = run(["curl", "-sS", "--fail", "--max-time", "20", "--cacert",
                 CERTS.other_ca, "-u", "alice:secret",
                 "pop3s://127.0.0.1:%d/" % self.ports["pops"]])
        self.assertEqual(r.returncode, 60, r.stderr)   # peer not verified
        self.assertTrue(self.server.wait_log("tls-fail", "listener=pops"))
        self.assert_serving()

    # -- STLS ----------------------------------------------------------------
    def test_starttls_injection(self):
        """CVE-2021-38084 class: lines sent with STLS are discarded."""
        for listener in ("always", "pop3"):
            with self.subTest(listener=listener), \
                    self.connect(listener) as c:
                c.send(b"STLS\r\nCAPA\r\nUSER alice\r\n")
                self.assertTrue(c.readline().startswith(b"+OK"))
                # Nothing but the STLS reply came in clear.
                self.assertEqual(c.buf, b"")
                start_tls(c)
                # Had USER alice been kept, this would log in; had CAPA
                # run inside TLS, its answer would come first.
                reply = c.cmd("PASS secret")
                self.assertTrue(reply.startswith("-ERR"), reply)
                status, lines = c.multi("CAPA")
                self.assertTrue(status.startswith("+OK"), status)
                self.assertNotIn(b"STLS", lines)
                self.assertTrue(c.quit().startswith("+OK bye"))

    def test_stls_forgets_user(self):
        with self.connect("always") as c:
            self.assertTrue(c.cmd("USER alice").startswith("+OK"))
            stls(c)
            reply = c.cmd("PASS secret")
            self.assertTrue(reply.startswith("-ERR"), reply)
            # A full login inside TLS works.
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_capa_stls_only_before_tls(self):
        with self.connect() as c:
            self.assertIn("STLS", capa_names(c))
            stls(c)
            self.assertNotIn("STLS", capa_names(c))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_stls_twice(self):
        with self.connect() as c:
            stls(c)
            reply = c.cmd("STLS")
            self.assertTrue(reply.startswith("-ERR"), reply)
            # Still a working TLS session.
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_stls_on_plain_listener(self):
        with self.connect("plain") as c:
            self.assertNotIn("STLS", capa_names(c))
            reply = c.cmd("STLS")
            self.assertTrue(reply.startswith("-ERR"), reply)
            # The session is still in clear and usable.
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_stls_on_implicit_listener(self):
        with self.connect_implicit() as c:
            reply = c.cmd("STLS")
            self.assertTrue(reply.startswith("-ERR"), reply)
            self.assertTrue(c.quit().startswith("+OK"))

    def test_stls_in_transaction(self):
        with self.connect("always") as c:
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertNotIn("STLS", capa_names(c))
            reply = c.cmd("STLS")
            self.assertTrue(reply.startswith("-ERR"), reply)
            self.assertEqual(c.cmd("STAT"), "+OK 1 %d" % len(wire_form(SMALL)))
            self.assertTrue(c.quit().startswith("+OK"))

    # -- plaintext_auth ------------------------------------------------------
    def test_after_tls_policy(self):
        with self.connect() as c:
            names = capa_names(c)
            self.assertNotIn("USER", names)
            self.assertIn("STLS", names)
            for cmd in ("USER alice", "PASS secret"):
                reply = c.cmd(cmd)
                self.assertTrue(reply.startswith("-ERR"), reply)
                self.assertIn("TLS", reply)
            stls(c)
            self.assertIn("USER", capa_names(c))
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_never_policy(self):
        with self.connect("never") as c:
            self.assertNotIn("USER", capa_names(c))
            reply = c.cmd("USER alice")
            self.assertTrue(reply.startswith("-ERR"), reply)
            stls(c)
            self.assertNotIn("USER", capa_names(c))
            reply = c.cmd("USER alice")
            self.assertTrue(reply.startswith("-ERR"), reply)
            self.assertTrue(c.quit().startswith("+OK"))

    def test_trusted_network(self):
        with self.connect("trusted") as c:
            self.assertIn("USER", capa_names(c))
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_untrusted_network(self):
        with self.connect("untrusted") as c:
            self.assertNotIn("USER", capa_names(c))
            reply = c.cmd("USER alice")
            self.assertTrue(reply.startswith("-ERR"), reply)
            self.assertIn("TLS", reply)
            stls(c)
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    def test_plain_listener_always(self):
        with self.connect("plain") as c:
            self.assertIn("USER", capa_names(c))
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))

    # -- protocol versions ---------------------------------------------------
    def test_tls11_refused(self):
        """SECLEVEL=0 lets the client offer TLS 1.1: the refusal (and the
        log line saying why) must come from the server."""
        r = s_client_handshake(self.ports["pops"],
                               ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        lines = self.server.wait_log("tls-fail", "listener=pops",
                                     "unsupported protocol")
        self.assertTrue(lines, self.server.log()[-2000:])
        ctx = CERTS.context()
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.connect("pop3") as c:
            self.assertTrue(c.cmd("STLS").startswith("+OK"))
            with self.assertRaises((ssl.SSLError, OSError)):
                start_tls(c, ctx)
        self.assert_serving()

    def test_tls12_accepted(self):
        r = s_client_handshake(self.ports["pops"], ["-tls1_2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"TLSv1.2", r.stdout)

    # -- log -----------------------------------------------------------------
    def test_session_end_log(self):
        with self.connect() as c:
            stls(c)
            version = c.sock.version()
            cipher = c.sock.cipher()[0]
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
        self.server.wait_children(0)
        lines = self.server.wait_log("session-end", "listener=pop3 ",
                                     "user=alice", "tls=TLSv1.")
        self.assertTrue(lines, self.server.log()[-2000:])
        fields = parse_log_fields(lines[-1])
        self.assertEqual(fields["tls"], version)
        self.assertEqual(fields["cipher"], cipher)
        with self.connect_implicit() as c:
            c.quit()
        self.server.wait_children(0)
        lines = self.server.wait_log("session-end", "listener=pops ")
        self.assertTrue(lines)
        self.assertIn(parse_log_fields(lines[-1])["tls"],
                      ("TLSv1.2", "TLSv1.3"))
        with self.connect("plain") as c:
            c.quit()
        self.server.wait_children(0)
        lines = self.server.wait_log("session-end", "listener=plain ")
        fields = parse_log_fields(lines[-1])
        self.assertEqual((fields["tls"], fields["cipher"]), ("-", "-"))

    # -- failures ------------------------------------------------------------
    def test_client_rejects_certificate(self):
        before = len(self.server.log_lines("tls-fail", "listener=pop3 "))
        with self.connect() as c:
            self.assertTrue(c.cmd("STLS").startswith("+OK"))
            with self.assertRaises(ssl.SSLCertVerificationError):
                start_tls(c, CERTS.context(CERTS.other_ca))
        deadline = time.monotonic() + 5
        while (len(self.server.log_lines("tls-fail", "listener=pop3 "))
               <= before and time.monotonic() < deadline):
            time.sleep(0.02)
        self.assertGreater(len(self.server.log_lines("tls-fail",
                                                     "listener=pop3 ")),
                           before, self.server.log()[-2000:])
        self.assert_serving()

    def test_garbage_after_stls(self):
        with self.connect() as c:
            self.assertTrue(c.cmd("STLS").startswith("+OK"))
            c.send(b"this is not a TLS ClientHello\r\n" * 4)
            data = c.wait_closed()
            self.assertFalse(any(l.startswith(b"+OK") for l in data), data)
        lines = self.server.wait_log("tls-fail", "listener=pop3 ",
                                     "handshake failed")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assert_serving()

    def test_plaintext_on_implicit_port(self):
        with self.connect("pops", greeting=False) as c:
            c.send(b"USER alice\r\n")
            got = b""
            deadline = time.monotonic() + NET_TIMEOUT
            while time.monotonic() < deadline:
                c.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = c.sock.recv(4096)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                got += chunk
            else:
                self.fail("the implicit port kept a plaintext client open")
            self.assertNotIn(b"+OK", got)
        lines = self.server.wait_log("tls-fail", "listener=pops",
                                     "handshake failed")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assert_serving()

    def test_full_big_retr_over_tls(self):
        """5 MB over TLS, compared byte for byte."""
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pops"],
                            context=CERTS.context(), timeout=NET_TIMEOUT)
        try:
            p.user("bob")
            p.pass_("hunter2")
            _, lines, octets = p.retr(1)
            self.assertEqual(retr_bytes(lines), wire_form(BIG))
            p.quit()
        finally:
            p.close()

    def test_stalled_reader_pipelined_retrs(self):
        """Six pipelined RETRs of 5 MB while the client does not read for
        a second: more than the socket buffers hold, so the server's TLS
        writes must wait and be retried.  Every byte must arrive."""
        n = 6
        body = stuff(wire_form(BIG))
        with self.connect_implicit() as c:
            self.assertTrue(c.login("bob", "hunter2").startswith("+OK"))
            c.send(b"RETR 1\r\n" * n + b"QUIT\r\n")
            time.sleep(1.0)
            data = bytearray(c.buf)
            c.buf = b""
            deadline = time.monotonic() + 60
            while not data.endswith(b"\r\n") or b"+OK bye" not in \
                    data[-200:]:
                self.assertLess(time.monotonic(), deadline, len(data))
                c.sock.settimeout(NET_TIMEOUT)
                chunk = c.sock.recv(1 << 20)
                self.assertTrue(chunk, "closed after %d bytes" % len(data))
                data += chunk
        pos = 0
        for i in range(n):
            eol = data.index(b"\r\n", pos)
            self.assertTrue(data[pos:eol].startswith(b"+OK"), data[pos:eol])
            end = data.index(b"\r\n.\r\n", eol) + 2
            self.assertTrue(data[eol + 2:end] == body, "RETR %d differs" % i)
            pos = end + 3
        self.assertTrue(data[pos:].startswith(b"+OK bye"), data[pos:pos + 80])

    def test_pipelining_many_commands_over_tls(self):
        """More commands in one write than one TLS record holds: the
        server must read what OpenSSL already decrypted."""
        n = 3000
        with self.connect_implicit() as c:
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            c.send(b"STAT\r\n" * n + b"QUIT\r\n")
            expected = "+OK 1 %d" % len(wire_form(SMALL))
            for i in range(n):
                line = c.readline()
                self.assertEqual(line, expected.encode(), "reply %d" % i)
            self.assertTrue(c.readline().startswith(b"+OK bye"))

    def test_close_mid_retr(self):
        with self.connect_implicit() as c:
            self.assertTrue(c.login("bob", "hunter2").startswith("+OK"))
            c.send(b"RETR 1\r\n")
            got = len(c.buf)
            while got < 200000:
                c.sock.settimeout(NET_TIMEOUT)
                chunk = c.sock.recv(65536)
                self.assertTrue(chunk, "closed before the message ended")
                got += len(chunk)
            c.sock.close()
        lines = self.server.wait_log("session-end", "listener=pops ",
                                     "user=bob", timeout=10)
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertEqual(self.server.wait_children(0, timeout=10), 0,
                         self.server.children())
        self.assert_serving()
        # bob's maildrop was released: he can log in again.
        with self.connect_implicit() as c:
            self.assertTrue(c.login("bob", "hunter2").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))


class HandshakeTimeoutTests(ServerTestCase):
    """idle_timeout = 2 bounds a handshake that never starts."""

    @classmethod
    def make_server(cls):
        cls.pops = free_port()
        s = TLSServer(server_opts={"idle_timeout": "2"},
                      listener_opts={"tls": "starttls"},
                      listeners=[("pops", {"address": "127.0.0.1:%d"
                                           % cls.pops, "tls": "implicit",
                                           "auth": "pass"})])
        s.add_user("alice", "secret")
        return s

    def test_silent_client_on_implicit_port(self):
        t0 = time.monotonic()
        with self.server.connect(port=self.pops, greeting=False,
                                 timeout=15) as c:
            deadline = time.monotonic() + 2
            while (not self.server.live_children() and
                   time.monotonic() < deadline):
                time.sleep(0.01)
            self.assertEqual(len(self.server.live_children()), 1)
            lines = c.wait_closed(timeout=15)
            elapsed = time.monotonic() - t0
        self.assertEqual(lines, [])
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLess(elapsed, 6.5)
        self.assertTrue(self.server.wait_log("tls-fail", "listener=pops",
                                             "handshake timed out"),
                        self.server.log()[-2000:])
        self.assertEqual(self.server.wait_children(0, timeout=3), 0)

    def test_silent_client_after_stls(self):
        t0 = time.monotonic()
        with self.server.connect(timeout=15) as c:
            self.assertTrue(c.cmd("STLS").startswith("+OK"))
            c.wait_closed(timeout=15)
            elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 6.5)
        self.assertTrue(self.server.wait_log("tls-fail", "listener=pop3 ",
                                             "handshake timed out"))
        self.assertEqual(self.server.wait_children(0, timeout=3), 0)


    def test_idle_timeout_inside_tls(self):
        t0 = time.monotonic()
        with self.server.connect(port=self.pops, greeting=False,
                                 timeout=15) as c:
            start_tls(c)
            self.assertTrue(c.readline().startswith(b"+OK"))
            lines = c.wait_closed(timeout=15)
        self.assertLess(time.monotonic() - t0, 6.5)
        self.assertTrue(lines and lines[0].startswith(b"-ERR"), lines)
        self.assertTrue(self.server.wait_log("session-end", "reason=timeout",
                                             "tls=TLSv1.3"))
        self.assertEqual(self.server.wait_children(0, timeout=3), 0)


class MinVersionTests(ServerTestCase):
    """min_version = TLSv1.3 refuses a TLS 1.2-only client."""

    @classmethod
    def make_server(cls):
        cls.pops = free_port()
        s = TLSServer(listener_opts={"tls": "starttls"},
                      tls_extra={"min_version": "TLSv1.3"},
                      listeners=[("pops", {"address": "127.0.0.1:%d"
                                           % cls.pops, "tls": "implicit",
                                           "auth": "pass"})])
        s.add_user("alice", "secret")
        return s

    def test_tls12_client_refused(self):
        r = s_client_handshake(self.pops, ["-tls1_2"])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertTrue(self.server.wait_log("tls-fail",
                                             "unsupported protocol"),
                        self.server.log()[-2000:])
        ctx = CERTS.context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.server.connect() as c:
            self.assertTrue(c.cmd("STLS").startswith("+OK"))
            with self.assertRaises((ssl.SSLError, OSError)):
                start_tls(c, ctx)

    def test_tls13_client_accepted(self):
        with self.server.connect(port=self.pops, greeting=False) as c:
            start_tls(c)
            self.assertEqual(c.sock.version(), "TLSv1.3")
            self.assertTrue(c.readline().startswith(b"+OK"))
            self.assertTrue(c.login("alice", "secret").startswith("+OK"))
            self.assertTrue(c.quit().startswith("+OK"))
        self.server.wait_children(0)
        lines = self.server.wait_log("session-end", "user=alice",
                                     "tls=TLSv1.3")
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertRegex(parse_log_fields(lines[-1])["cipher"], r"^TLS_")


# ---- poplard -t and --policy ----------------------------------------------

class ConfigCheckTests(unittest.TestCase):
    """What -t says about certificates, keys and plaintext listeners."""

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()

    def poplard(self, option, cert=None, key=None, listener_opts=None,
                listeners=None):
        s = PoplarServer(listener_opts=listener_opts, listeners=listeners,
                         extra_config=CERTS.tls_config(cert=cert, key=key))
        self.servers.append(s)
        s.add_user("alice", "secret")
        path = s.write_config()
        r = run([poplard_path(), option, "-c", path])
        r.text = (r.stdout + r.stderr).decode(errors="replace")
        return r

    def check(self, **kw):
        kw.setdefault("listener_opts", {"tls": "starttls",
                                        "plaintext_auth": "after-tls"})
        return self.poplard("-t", **kw)

    def assert_refused(self, r, *needles):
        self.assertEqual(r.returncode, 1, r.text)
        for n in needles:
            self.assertIn(n, r.text)

    def test_good_certificate(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r.text)
        self.assertNotIn("warning:", r.text)

    def test_missing_key(self):
        missing = os.path.join(CERTS.dir, "no-such.key")
        self.assert_refused(self.check(key=missing), missing)

    def test_unreadable_key(self):
        if IS_ROOT:
            self.skipTest("root reads a file of any mode")
        path = os.path.join(CERTS.dir, "unreadable.key")
        shutil.copyfile(CERTS.key, path)
        os.chmod(path, 0)
        self.assert_refused(self.check(key=path), path)

    def test_key_not_pem(self):
        path = os.path.join(CERTS.dir, "garbage.key")
        with open(path, "w") as f:
            f.write("not a key\n")
        self.assert_refused(self.check(key=path), path)

    def test_mismatched_key(self):
        # OpenSSL itself may say "key values mismatch" while loading.
        r = self.check(key=CERTS.other_key)
        self.assert_refused(r, CERTS.other_key)
        self.assertRegex(r.text, r"does not match|mismatch")

    def test_expired_certificate(self):
        self.assert_refused(self.check(cert=CERTS.expired),
                            CERTS.expired, "expired")

    def test_missing_certificate(self):
        missing = os.path.join(CERTS.dir, "no-such.pem")
        self.assert_refused(self.check(cert=missing), missing)

    def test_plaintext_listener_warning(self):
        r = self.check(listener_opts={"tls": "none",
                                      "plaintext_auth": "always"})
        self.assertEqual(r.returncode, 0, r.text)
        warnings = [l for l in r.text.splitlines()
                    if l.startswith("warning:")]
        self.assertTrue(any("'pop3'" in l and "USER/PASS" in l
                            for l in warnings), r.text)

    def test_no_warning_for_tls_listeners(self):
        r = self.check(listeners=[("pops", {
            "address": "127.0.0.1:%d" % free_port(), "tls": "implicit",
            "auth": "pass"})])
        self.assertEqual(r.returncode, 0, r.text)
        self.assertNotIn("warning:", r.text)

    def policy_rows(self, text):
        """{listener: {method: [before, after, clear, replay, mutual]}}"""
        rows, current = {}, None
        for line in text.splitlines():
            m = re.match(r"listener (\S+):", line)
            if m:
                current = rows.setdefault(m.group(1), {})
                continue
            parts = line.split()
            if current is not None and line.startswith("  ") and \
                    len(parts) == 6 and parts[0] != "method":
                current[parts[0]] = parts[1:]
        return rows

    def test_policy_table(self):
        r = self.poplard("--policy", listener_opts={
            "tls": "starttls", "plaintext_auth": "after-tls"}, listeners=[
            ("plain", {"address": "127.0.0.1:%d" % free_port(),
                       "tls": "none", "plaintext_auth": "always",
                       "auth": "pass"}),
            ("pops", {"address": "127.0.0.1:%d" % free_port(),
                      "tls": "implicit", "auth": "pass"}),
            ("lan", {"address": "127.0.0.1:%d" % free_port(),
                     "tls": "starttls", "plaintext_auth": "after-tls",
                     "trusted_networks": "127.0.0.0/8", "auth": "pass"}),
            ("never", {"address": "127.0.0.1:%d" % free_port(),
                       "tls": "starttls", "plaintext_auth": "never",
                       "auth": "pass"})])
        self.assertEqual(r.returncode, 0, r.text)
        rows = self.policy_rows(r.stdout.decode())
        self.assertEqual(rows["pop3"]["USER/PASS"][:3], ["no", "yes", "no"],
                         r.text)
        self.assertEqual(rows["plain"]["USER/PASS"][:3], ["yes", "-", "YES"],
                         r.text)
        self.assertEqual(rows["pops"]["USER/PASS"][:3], ["-", "yes", "no"],
                         r.text)
        self.assertEqual(rows["lan"]["USER/PASS"][0], "trusted-nets", r.text)
        self.assertEqual(rows["never"]["USER/PASS"][:2], ["no", "no"], r.text)


# ---- the TLS part ----------------------------------------------------------

# Mapped by the master only when the configuration uses TLS.  libcrypto
# too, unless a module that uses it (apop) is loaded.
TLS_ONLY_FILES = ("libssl", "tls-openssl")
OPENSSL_FILES = TLS_ONLY_FILES + ("libcrypto",)


class TLSPartTests(unittest.TestCase):
    """OpenSSL's TLS is a part of its own (tls-openssl.so in module_dir),
    loaded by the master only when the configuration uses TLS."""

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
            s.cleanup()

    def server(self, tls=True, extra_config="", **kw):
        """A server with [tls] (certificate and key) unless tls=False."""
        if tls:
            extra_config = CERTS.tls_config() + extra_config
        s = PoplarServer(extra_config=extra_config, **kw)
        self.servers.append(s)
        s.add_user("alice", "secret")
        s.add_message("alice", SMALL)
        return s

    def tls_only_files(self, pid, prefixes=TLS_ONLY_FILES):
        names = [os.path.basename(p) for p in poplartest.mapped_files(pid)]
        return sorted(n for n in names if n.startswith(prefixes))

    def module_dir_without_part(self, server, part=None):
        """A module directory holding pass.so and, when part is given,
        that file as tls-openssl.so."""
        mdir = os.path.join(server.tmp, "modules")
        os.mkdir(mdir)
        shutil.copy(os.path.join(poplartest.module_build_dir(), "pass.so"),
                    mdir)
        if part is not None:
            shutil.copy(part, os.path.join(mdir, "tls-openssl.so"))
        server.server_opts["module_dir"] = mdir
        return os.path.join(mdir, "tls-openssl.so")

    def test_no_tls_maps_no_libssl(self):
        # Two listeners, both tls = none, and the apop module (which
        # uses libcrypto) offered beside pass.
        secrets = os.path.join(tempfile.mkdtemp(prefix="poplar-apop-"),
                               "secrets")
        self.addCleanup(shutil.rmtree, os.path.dirname(secrets), True)
        with open(secrets, "w") as f:
            f.write("alice:apopsecret\n")
        os.chmod(secrets, 0o600)
        s = self.server(tls=False,
                        extra_config="[module apop]\nsecrets = %s\n"
                        % secrets,
                        listener_opts={"auth": "pass apop"},
                        listeners=[("other", {
                            "address": "127.0.0.1:%d" % free_port(),
                            "tls": "none", "auth": "pass"})])
        s.start()
        with s.login("alice") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK"))
            children = list(s.children())
            self.assertEqual(len(children), 1, children)
            for pid in [s.pid] + children:
                self.assertEqual(self.tls_only_files(pid), [],
                                 "pid %d maps TLS files" % pid)
            self.assertIn("apop.so", [os.path.basename(p) for p in
                                      poplartest.mapped_files(s.pid)])
            c.quit()

    def test_no_tls_maps_no_openssl(self):
        # pass alone and tls = none: the master and its sessions map no
        # OpenSSL library at all (fork and exit copy and tear down less).
        s = self.server(tls=False)
        s.start()
        with s.login("alice") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK"))
            children = list(s.children())
            self.assertEqual(len(children), 1, children)
            for pid in [s.pid] + children:
                self.assertEqual(self.tls_only_files(pid, OPENSSL_FILES),
                                 [], "pid %d maps OpenSSL" % pid)
            c.quit()

    def test_tls_maps_libssl_and_stls_works(self):
        s = self.server(listener_opts={"tls": "starttls",
                                       "plaintext_auth": "after-tls"})
        s.start()
        files = self.tls_only_files(s.pid)
        self.assertTrue([n for n in files if n.startswith("libssl")], files)
        self.assertIn("tls-openssl.so", files)
        p = poplib.POP3("127.0.0.1", s.port, timeout=NET_TIMEOUT)
        try:
            self.assertTrue(p.stls(CERTS.context()).startswith(b"+OK"))
            self.assertTrue(p.user("alice").startswith(b"+OK"))
            self.assertTrue(p.pass_("secret").startswith(b"+OK"))
            self.assertEqual(p.stat(), (1, len(wire_form(SMALL))))
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            p.close()

    def test_tls_certificate_alone_loads_the_part(self):
        # No TLS listener, but [tls] is set: -t checks the certificate,
        # through the part.
        s = self.server()
        s.start()
        self.assertIn("tls-openssl.so", self.tls_only_files(s.pid))

    def assert_refused_naming(self, s, path, *needles):
        """-t and a start both fail with one line naming path."""
        config = s.write_config()
        for argv in (["-t", "-c", config], ["-F", "-c", config]):
            r = run([poplard_path()] + argv)
            text = (r.stdout + r.stderr).decode(errors="replace")
            self.assertEqual(r.returncode, 1, (argv, text))
            lines = [l for l in text.splitlines() if path in l]
            self.assertEqual(len(lines), 1, (argv, text))
            for n in needles:
                self.assertIn(n, lines[0], (argv, text))

    def test_missing_part_is_a_clear_error(self):
        s = self.server(listener_opts={"tls": "implicit"})
        path = self.module_dir_without_part(s)
        self.assert_refused_naming(s, path, "cannot load the TLS part",
                                   "No such file")

    def test_part_of_another_abi_is_refused(self):
        other = os.path.join(poplartest.testmod_dir() or "",
                             "testtlsabi.so")
        if not os.path.exists(other):
            self.skipTest("the test modules are not built")
        s = self.server(listener_opts={"tls": "starttls"})
        path = self.module_dir_without_part(s, part=other)
        self.assert_refused_naming(s, path, "TLS part ABI")

    def test_missing_part_does_not_matter_without_tls(self):
        s = self.server(tls=False)
        self.module_dir_without_part(s)
        s.start()
        with s.login("alice") as c:
            self.assertTrue(c.cmd("STAT").startswith("+OK"))
            c.quit()

    def test_list_modules(self):
        s = self.server()
        r = run([poplard_path(), "--list-modules", "-c", s.write_config()])
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(out, r"(?m)^  tls-openssl +part of the core: TLS")


if __name__ == "__main__":
    poplartest.run_tests()
