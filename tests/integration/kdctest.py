"""kdctest: a real MIT KDC for integration tests.

TestKDC creates a throw-away realm in a temporary directory (krb5kdc,
kdb5_util and kadmin.local from Debian's krb5-kdc and krb5-admin-server),
listening on a free loopback port, with a krb5.conf where every DNS
lookup is off.  It exports KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5RCACHEDIR
and KRB5CCNAME into os.environ so that this process and every process it
starts (poplard, kinit, fetchmail) use the test realm; stop() puts the
previous values back.

Only processes started here are signalled, every wait is bounded, and only
127.0.0.1 is used.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from poplartest import free_port

REALM = "POPLAR.TEST"
TOOL_TIMEOUT = 30       # seconds for kdb5_util, kadmin.local, kinit
KDC_START_TIMEOUT = 10  # seconds for krb5kdc to accept connections

KDC_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kdestroy",
             "klist")
ENV_KEYS = ("KRB5_CONFIG", "KRB5_KDC_PROFILE", "KRB5RCACHEDIR",
            "KRB5CCNAME", "KRB5_KTNAME")


def missing_tools():
    """The KDC and client commands that are not installed."""
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [t for t in KDC_TOOLS if shutil.which(t, path=paths) is None]


def tool(name):
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which(name, path=paths) or name


class TestKDC:
    def __init__(self, realm=REALM):
        self.realm = realm
        self.tmp = tempfile.mkdtemp(prefix="poplar-kdc-")
        os.chmod(self.tmp, 0o755)
        self.port = free_port()
        self.krb5_conf = os.path.join(self.tmp, "krb5.conf")
        self.kdc_conf = os.path.join(self.tmp, "kdc.conf")
        self.keytab = os.path.join(self.tmp, "poplar.keytab")
        self.rcache_dir = os.path.join(self.tmp, "rcache")
        self.ccache = os.path.join(self.tmp, "ccache")
        self.log_path = os.path.join(self.tmp, "kdc.log")
        self.proc = None
        self.saved_env = {}
        os.makedirs(self.rcache_dir)

    # ---- files ---------------------------------------------------------
    def krb5_conf_text(self, kdc_port=None):
        return """[libdefaults]
  default_realm = %(realm)s
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  qualify_shortname = ""
  ignore_acceptor_hostname = false
  udp_preference_limit = 1
  kdc_timeout = 2000
  max_retries = 1
  default_ccache_name = FILE:%(ccache)s

[realms]
  %(realm)s = {
    kdc = 127.0.0.1:%(port)d
  }

[domain_realm]
  localhost = %(realm)s
""" % {"realm": self.realm, "ccache": self.ccache,
       "port": kdc_port or self.port}

    def write_files(self):
        with open(self.krb5_conf, "w") as f:
            f.write(self.krb5_conf_text())
        with open(self.kdc_conf, "w") as f:
            f.write("""[kdcdefaults]
  kdc_listen = 127.0.0.1:%(port)d
  kdc_tcp_listen = 127.0.0.1:%(port)d

[realms]
  %(realm)s = {
    database_name = %(tmp)s/principal
    key_stash_file = %(tmp)s/stash
    acl_file = %(tmp)s/kadm5.acl
    max_life = 1h
    max_renewable_life = 0
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }

[logging]
  kdc = FILE:%(tmp)s/kdc.log
  admin_server = FILE:%(tmp)s/kadmin.log
  default = FILE:%(tmp)s/kdc.log
""" % {"port": self.port, "realm": self.realm, "tmp": self.tmp})
        with open(os.path.join(self.tmp, "kadm5.acl"), "w") as f:
            f.write("")
        # krb5.conf and the keytab must be readable where poplard runs.
        os.chmod(self.krb5_conf, 0o644)

    def export_env(self):
        values = {"KRB5_CONFIG": self.krb5_conf,
                  "KRB5_KDC_PROFILE": self.kdc_conf,
                  "KRB5RCACHEDIR": self.rcache_dir,
                  "KRB5CCNAME": "FILE:" + self.ccache}
        for key in ENV_KEYS:
            self.saved_env[key] = os.environ.get(key)
            os.environ.pop(key, None)
        os.environ.update(values)

    def restore_env(self):
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved_env = {}

    # ---- tools -----------------------------------------------------------
    def run(self, argv, stdin=None, check=True):
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TOOL_TIMEOUT)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (
                " ".join(argv), p.returncode,
                p.stdout.decode("utf-8", "replace")))
        return p

    def kadmin(self, query):
        return self.run([tool("kadmin.local"), "-r", self.realm, "-q",
                         query])

    def add_principal(self, name, password=None):
        if password is None:
            self.kadmin("addprinc -randkey %s" % name)
        else:
            self.kadmin("addprinc -pw %s %s" % (password, name))

    def add_service(self, name, keytab=None):
        """A random-key service principal, its keys added to keytab."""
        self.add_principal(name)
        self.kadmin("ktadd -k %s %s" % (keytab or self.keytab, name))

    def kinit(self, name, password, ccache=None):
        """Get a TGT for name into the default (or given) ccache."""
        argv = [tool("kinit")]
        if ccache:
            argv += ["-c", ccache]
        return self.run(argv + [name], stdin=(password + "\n").encode())

    def kdestroy(self):
        self.run([tool("kdestroy"), "-q"], check=False)

    # ---- process -----------------------------------------------------------
    def start(self):
        self.write_files()
        self.export_env()
        self.run([tool("kdb5_util"), "create", "-s", "-r", self.realm,
                  "-P", "poplar-test-master-key"])
        self.logfile = open(os.path.join(self.tmp, "krb5kdc.out"), "wb")
        self.proc = subprocess.Popen([tool("krb5kdc"), "-n", "-r",
                                      self.realm],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logfile,
                                     stderr=self.logfile)
        deadline = time.monotonic() + KDC_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("krb5kdc exited with %d: %s" % (
                    self.proc.returncode, self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("krb5kdc does not listen: %s"
                                       % self.log())
                time.sleep(0.05)
        return self

    def log(self):
        out = ""
        for name in ("krb5kdc.out", "kdc.log"):
            try:
                with open(os.path.join(self.tmp, name), "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return out

    def stop_kdc(self):
        """Stop krb5kdc (the realm's files stay): the KDC is down."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self):
        self.stop_kdc()
        if getattr(self, "logfile", None) is not None:
            self.logfile.close()
            self.logfile = None
        self.restore_env()
        if os.environ.get("POPLAR_KEEP_TMP"):
            return
        shutil.rmtree(self.tmp, ignore_errors=True)
