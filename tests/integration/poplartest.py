"""poplartest: shared harness of Poplar's integration tests.

Each test script builds one or more throw-away servers with PoplarServer:
a temporary directory holding a passwd-file user database, a Maildir per
user, a configuration file and the captured stderr of `poplard -F`.  The
daemon under test is named by the environment (set by `make check`):

  POPLARD                  the built daemon
  POPLAR_MODULE_BUILD_DIR  directory holding the built pass.so
  POPLAR_TESTMOD_DIR       directory holding the loader's test modules
  POPLAR_SRCDIR            top of the source tree (unused here)
  POPLAR_KEEP_TMP          when set, keep each server's directory (its
                           configuration, Maildirs and log) for a look

Rules every test keeps: every network operation has a timeout, every wait
is bounded, only loopback addresses are used, and only processes started
here are signalled (through their Popen objects or pids read from /proc as
children of such a process).  In a sanitizer build, a report in poplard's
output or log fails the test that ran it (check_sanitizer), whatever the
exit status: the session processes' reports are only in the log.

Only the Python standard library and the `openssl` and `curl` commands are
used.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import poplib

SKIP = 77               # automake's exit code for "skipped"
NET_TIMEOUT = 10.0      # seconds for any single network operation
START_TIMEOUT = 10.0    # seconds for the daemon to accept connections
STOP_TIMEOUT = 10.0     # seconds for the daemon to exit on SIGTERM

IS_ROOT = os.geteuid() == 0
# poplard drops to this uid/gid for the test users when run as root.
NOBODY = 65534


def env_path(name):
    """The environment variable name, or None when unset or empty."""
    value = os.environ.get(name, "")
    return value or None


def poplard_path():
    return env_path("POPLARD")


def module_build_dir():
    return env_path("POPLAR_MODULE_BUILD_DIR")


def testmod_dir():
    return env_path("POPLAR_TESTMOD_DIR")


def require_environment():
    """Exit with SKIP when the daemon or openssl is not available."""
    daemon = poplard_path()
    if not daemon or not os.access(daemon, os.X_OK):
        print("SKIP: POPLARD is not set to an executable poplard")
        sys.exit(SKIP)
    mdir = module_build_dir()
    if not mdir or not os.path.exists(os.path.join(mdir, "pass.so")):
        print("SKIP: POPLAR_MODULE_BUILD_DIR does not hold pass.so")
        sys.exit(SKIP)
    if shutil.which("openssl") is None:
        print("SKIP: the openssl command is needed to hash passwords")
        sys.exit(SKIP)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port that was free a moment ago on host."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


_hash_cache = {}


def hash_password(password):
    """A SHA-512 crypt(3) hash from `openssl passwd -6`."""
    if password not in _hash_cache:
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                             input=password.encode() + b"\n",
                             stdout=subprocess.PIPE, check=True,
                             timeout=30).stdout
        _hash_cache[password] = out.decode().strip()
    return _hash_cache[password]


def wire_form(raw):
    """The octets RETR sends for a stored message, before byte-stuffing:
    LF not preceded by CR becomes CRLF, and a last line without a line end
    gets CRLF."""
    out = bytearray()
    prev = None
    for b in raw:
        if b == 0x0A and prev != 0x0D:
            out += b"\r"
        out.append(b)
        prev = b
    if raw and not raw.endswith(b"\n"):
        out += b"\r\n"
    return bytes(out)


def unstuff(lines):
    """Join multi-line response lines (CRLF removed) the way a client
    reads them: a leading ".." becomes ".", each line gets CRLF."""
    out = bytearray()
    for line in lines:
        if line.startswith(b".."):
            line = line[1:]
        out += line + b"\r\n"
    return bytes(out)


# Log lines are "key=value" pairs; a value is plain or a double-quoted
# string with backslash escapes.
_KV_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_log_fields(line):
    """Dict of key=value fields of one log line (quoted values unquoted,
    escapes left as written except \\" and \\\\)."""
    fields = {}
    for key, value in _KV_RE.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r'\\(["\\])', r"\1", value[1:-1])
        fields[key] = value
    return fields


def proc_children(pid):
    """Pids (and their state letters) of the processes whose parent is pid."""
    children = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return children
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after
        # the last ")".
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) >= 2 and rest[1] == str(pid):
            children[int(name)] = rest[0]
    return children


def pid_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def count_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# The first line of a report of AddressSanitizer or LeakSanitizer
# ("==PID==ERROR: AddressSanitizer: ...") and of UndefinedBehaviorSanitizer
# ("FILE:LINE:COL: runtime error: ...").  poplard's own log lines start
# with "poplard[PID]:", so neither can be mistaken for one of them.
_SANITIZER_RE = re.compile(r"==\d+==ERROR: \w+Sanitizer|"
                           r"^[^\s:]+:\d+:\d+: runtime error: ", re.M)


def sanitizer_report(output):
    """The output (str or bytes) of a poplard run from the start of its
    first sanitizer report, or None when it holds none.  Only a build with
    -fsanitize=... writes such reports."""
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    m = _SANITIZER_RE.search(output)
    return None if m is None else output[m.start():]


def check_sanitizer(output, what="poplard"):
    """Raise AssertionError when output holds a sanitizer report: a test
    that expects poplard to fail (exit 1) would not notice one otherwise."""
    report = sanitizer_report(output)
    if report is not None:
        raise AssertionError("sanitizer report from %s:\n%s"
                             % (what, report[:8000]))


def mapped_files(pid):
    """Paths of the files mapped into process pid."""
    paths = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                paths.add(parts[5].strip())
    return paths


class Connection:
    """A raw POP3 connection: send bytes, read CRLF lines with a deadline."""

    def __init__(self, host, port, timeout=NET_TIMEOUT, family=None,
                 source=None):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no data before the deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def readline(self, timeout=None):
        """One line without its CRLF, or None at end of stream."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if self.eof:
                return None
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, line, timeout=None):
        """Send one command, return the status line (str)."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        reply = self.readline(timeout)
        if reply is None:
            raise EOFError("connection closed after %r" % line)
        return reply.decode("utf-8", "replace")

    def read_multiline(self, timeout=None):
        """Lines of a multi-line response up to the "." line (excluded)."""
        lines = []
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            line = self.readline(max(0.01, deadline - time.monotonic()))
            if line is None:
                raise EOFError("connection closed inside a multi-line reply")
            if line == b".":
                return lines
            lines.append(line)

    def multi(self, line, timeout=None):
        """Send a command with a multi-line answer: (status, lines).
        lines is None when the status is -ERR."""
        status = self.cmd(line, timeout)
        if not status.startswith("+OK"):
            return status, None
        return status, self.read_multiline(timeout)

    def wait_closed(self, timeout=NET_TIMEOUT):
        """Read until the server closes; return the lines read meanwhile
        (raises socket.timeout if it stays open)."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.01, deadline - time.monotonic()))
            if line is None:
                return lines
            lines.append(line)

    def quit(self):
        """QUIT, then wait until the server closes; returns the reply."""
        reply = self.cmd("QUIT")
        self.wait_closed()
        return reply

    def login(self, user, password):
        """USER + PASS; returns the reply to PASS (or to USER on -ERR)."""
        reply = self.cmd("USER " + user)
        if not reply.startswith("+OK"):
            return reply
        return self.cmd("PASS " + password)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class User:
    def __init__(self, name, password, home):
        self.name = name
        self.password = password
        self.home = home
        self.maildir = os.path.join(home, "Maildir")
        self.counter = 0


class PoplarServer:
    """One poplard instance in its own temporary directory.

    Use: s = PoplarServer(); s.add_user("alice", "secret");
    s.add_message("alice", b"..."); s.start(); ...; s.stop(); s.cleanup().
    server_opts / listener_opts add or override keys of [server] and of
    the first listener, userdb_opts / maildrop_opts add keys to [userdb]
    and [maildrop]; extra_config is appended verbatim.
    """

    def __init__(self, server_opts=None, listener_opts=None,
                 extra_config="", listeners=None, userdb_opts=None,
                 maildrop_opts=None):
        self.tmp = tempfile.mkdtemp(prefix="poplar-test-")
        # poplard's session processes run as nobody when we are root:
        # they must be able to reach the homes below.
        os.chmod(self.tmp, 0o755)
        self.users = {}
        self.server_opts = {
            "hostname": "localhost",
            "log": "stderr",
            "auth_fail_delay": "0",
            "idle_timeout": "600",
            "module_dir": module_build_dir() or "",
        }
        self.server_opts.update(server_opts or {})
        self.port = free_port()
        self.listener_opts = {
            "address": "127.0.0.1:%d" % self.port,
            "tls": "none",
            "auth": "pass",
            "plaintext_auth": "always",
        }
        self.listener_opts.update(listener_opts or {})
        # Further listeners: list of (name, {key: value}).
        self.extra_listeners = list(listeners or [])
        self.extra_config = extra_config
        self.userdb_opts = dict(userdb_opts or {})
        self.maildrop_opts = dict(maildrop_opts or {})
        self.userdb = os.path.join(self.tmp, "users")
        self.config_path = os.path.join(self.tmp, "poplar.conf")
        self.log_path = os.path.join(self.tmp, "poplard.log")
        self.proc = None
        self.logfile = None
        self.msg_serial = 0

    # ---- users and messages ----------------------------------------------
    def add_user(self, name, password, uid=None, gid=None):
        home = os.path.join(self.tmp, "home", name)
        user = User(name, password, home)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(user.maildir, sub), exist_ok=True)
        self.users[name] = user
        self._own(os.path.join(self.tmp, "home"), recursive=False)
        self._own(home)
        return user

    def _own(self, path, recursive=True):
        if not IS_ROOT:
            return
        os.chown(path, NOBODY, NOBODY)
        if recursive:
            for top, dirs, files in os.walk(path):
                for n in dirs + files:
                    os.chown(os.path.join(top, n), NOBODY, NOBODY)

    def add_message(self, username, data, where="new", flags=":2,"):
        """Store data as one message of username in new/ or cur/; returns
        (path, base name).  The base name is the message's UIDL."""
        user = self.users[username]
        self.msg_serial += 1
        base = "1700000000.M%dP%d.test" % (self.msg_serial, os.getpid())
        name = base + (flags if where == "cur" else "")
        tmp_path = os.path.join(user.maildir, "tmp", name)
        path = os.path.join(user.maildir, where, name)
        with open(tmp_path, "wb") as f:
            f.write(data)
        os.rename(tmp_path, path)
        if IS_ROOT:
            os.chown(path, NOBODY, NOBODY)
        return path, base

    def maildir_files(self, username):
        """Base names (the part before ":", i.e. the UIDLs) of the
        messages in new/ and cur/ of username's Maildir.  Whether the
        server moved a message from new/ to cur/ does not matter."""
        user = self.users[username]
        names = []
        for sub in ("new", "cur"):
            names += [n.split(":")[0] for n in
                      os.listdir(os.path.join(user.maildir, sub))]
        return sorted(names)

    # ---- configuration ---------------------------------------------------
    def write_userdb(self):
        lines = []
        for u in self.users.values():
            ids = (str(NOBODY), str(NOBODY)) if IS_ROOT else ("", "")
            lines.append("%s:%s:%s:%s:%s\n" % (u.name,
                                               hash_password(u.password),
                                               ids[0], ids[1], u.home))
        with open(self.userdb, "w") as f:
            f.writelines(lines)

    def config_text(self):
        out = ["[server]"]
        out += ["%s = %s" % kv for kv in self.server_opts.items()]
        out += ["", "[listen pop3]"]
        out += ["%s = %s" % kv for kv in self.listener_opts.items()]
        for name, opts in self.extra_listeners:
            out += ["", "[listen %s]" % name]
            out += ["%s = %s" % kv for kv in opts.items()]
        out += ["", "[userdb]", "driver = passwd-file",
                "file = %s" % self.userdb]
        out += ["%s = %s" % kv for kv in self.userdb_opts.items()]
        out += ["", "[maildrop]", "location = maildir:%h/Maildir"]
        out += ["%s = %s" % kv for kv in self.maildrop_opts.items()]
        out += ["", "[module pass]", "backend = userdb", ""]
        text = "\n".join(out)
        if self.extra_config:
            text += "\n" + self.extra_config
        return text

    def write_config(self):
        self.write_userdb()
        with open(self.config_path, "w") as f:
            f.write(self.config_text())
        return self.config_path

    # ---- process ---------------------------------------------------------
    def start(self, wait_host="127.0.0.1", wait_port=None):
        self.write_config()
        self.logfile = open(self.log_path, "wb")
        self.proc = subprocess.Popen([poplard_path(), "-F", "-c",
                                      self.config_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logfile,
                                     stderr=self.logfile)
        port = wait_port or self.port
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("poplard exited with %d at start:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                probe = socket.create_connection((wait_host, port),
                                                 timeout=1.0)
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError("poplard did not accept on port %d:\n%s"
                                       % (port, self.log()))
                time.sleep(0.05)
                continue
            # Read the greeting so the probe is a complete (short) session.
            try:
                probe.settimeout(NET_TIMEOUT)
                probe.recv(512)
            except OSError:
                pass
            probe.close()
            break
        self.wait_children(0)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def children(self):
        return proc_children(self.proc.pid)

    def live_children(self):
        return [p for p, st in self.children().items() if st not in "ZX"]

    def wait_children(self, n, timeout=5.0):
        """Wait until the master has at most n children (any state);
        returns the count seen last."""
        deadline = time.monotonic() + timeout
        while True:
            count = len(self.children())
            if count <= n or time.monotonic() > deadline:
                return count
            time.sleep(0.02)

    def fd_count(self):
        return count_fds(self.proc.pid)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self, *needles):
        return [l for l in self.log().splitlines()
                if all(n in l for n in needles)]

    def wait_log(self, *needles, timeout=5.0):
        """Log lines holding every needle, once at least one is there."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(*needles)
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def connect(self, timeout=NET_TIMEOUT, host="127.0.0.1", port=None,
                greeting=True, source=None):
        """A Connection; its greeting (str) is in .greeting when read."""
        c = Connection(host, port or self.port, timeout=timeout,
                       source=source)
        c.greeting = None
        if greeting:
            line = c.readline()
            c.greeting = None if line is None else line.decode("utf-8",
                                                              "replace")
        return c

    def login(self, user="alice", password=None, **kw):
        """A Connection in TRANSACTION state (asserts the login worked)."""
        c = self.connect(**kw)
        if password is None:
            password = self.users[user].password
        reply = c.login(user, password)
        if not reply.startswith("+OK"):
            c.close()
            raise AssertionError("login of %s failed: %s" % (user, reply))
        return c

    def poplib(self, timeout=NET_TIMEOUT):
        return poplib.POP3("127.0.0.1", self.port, timeout=timeout)

    def stop(self):
        """SIGTERM the master; returns (exit code, pids of children that
        were still running when it was signalled and are alive after)."""
        if self.proc is None or self.proc.poll() is not None:
            return (None if self.proc is None else self.proc.returncode), []
        before = list(self.children())
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return "timeout", before
        # Children may take a moment to finish after the master.
        deadline = time.monotonic() + 3.0
        left = [p for p in before if pid_alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = [p for p in before if pid_alive(p)]
        return code, left

    def kill(self):
        """Last resort: SIGKILL the master and its children we know of."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in self.children():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.kill()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

    def cleanup(self):
        """Kill what is left, remove the directory, and raise when the
        log holds a sanitizer report (of the master or of a session)."""
        self.kill()
        if self.logfile is not None:
            self.logfile.close()
            self.logfile = None
        log = self.log()
        shutil.rmtree(self.tmp, ignore_errors=True)
        check_sanitizer(log, "poplard (its log)")


class ServerTestCase(unittest.TestCase):
    """Base class: one server per test class, stopped (and checked) in
    tearDownClass.  Subclasses set up users in make_server()."""

    server = None

    @classmethod
    def make_server(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.server = cls.make_server()
        try:
            cls.server.start()
        except Exception:
            cls.server.cleanup()
            raise

    def setUp(self):
        # Start each test on a quiet server: sessions of the previous test
        # have ended (and released their maildrop locks).
        self.server.wait_children(0)

    @classmethod
    def tearDownClass(cls):
        server = cls.server
        try:
            code, left = server.stop()
            if code != 0 or left:
                raise AssertionError(
                    "poplard stop: exit %r, children left %r\n%s"
                    % (code, left, server.log()[-4000:]))
        finally:
            if os.environ.get("POPLAR_KEEP_TMP"):
                server.kill()
                print("kept", server.tmp, file=sys.stderr)
            else:
                server.cleanup()


def run_tests(module_name="__main__"):
    """Run the module's tests verbosely, print "N passed, N failed" and
    exit with 0 (all passed), 1 (a failure) or 77 (everything skipped)."""
    require_environment()
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[module_name])
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout)
    result = runner.run(suite)
    # A test with failing subtests appears once per subtest; an error in
    # setUpClass appears as a placeholder that is not a TestCase.
    failed_ids = set()
    failed_ran = set()
    for test, _ in (result.failures + result.errors +
                    [(t, None) for t in result.unexpectedSuccesses]):
        test = getattr(test, "test_case", test)
        failed_ids.add(test.id())
        if isinstance(test, unittest.TestCase):
            failed_ran.add(test.id())
    failed = len(failed_ids)
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - len(failed_ran) - skipped)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.stdout.flush()
    if failed:
        sys.exit(1)
    if result.testsRun and skipped == result.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
