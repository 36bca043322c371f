"""The module interface as a third party meets it: the example module of
the README ("A small module that accepts `XLOGIN USER PASSWORD`"),
taken from README.md and built with the README's own commands, through
pkg-config and poplar-module.pc, then loaded by poplard:
--list-modules, --policy, CAPA, logins, plaintext_auth.

Under `make check` the header and the pkg-config file are laid out as an
installation would lay them out, in a temporary prefix, from the source
tree (poplar-module.pc.in); under `make installcheck`
(POPLAR_INSTALLCHECK=1) the installed header, pkg-config file, modules
and poplard are used, and the install line is not run (it would leave a
file behind in the installed module directory).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import PoplarServer  # noqa: E402

CMD_TIMEOUT = 120
FAILED = "-ERR [AUTH] authentication failed"
INSTALLCHECK = os.environ.get("POPLAR_INSTALLCHECK") == "1"


def srcdir():
    return poplartest.env_path("POPLAR_SRCDIR") or os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def readme_example(text):
    """(C source, version script name, version script, shell lines) of
    the README's example module."""
    start = text.index("A small module that accepts `XLOGIN")
    c0 = text.index("```c\n", start) + len("```c\n")
    c1 = text.index("```\n", c0)
    m = re.search(r"version\s+script\s+`([\w.-]+\.map)`\s+containing\s+"
                  r"`([^`]+)`", text[c1:])
    if m is None:
        raise AssertionError("README: no version script after the example")
    s0 = text.index("```sh\n", c1) + len("```sh\n")
    s1 = text.index("```\n", s0)
    lines = [l for l in text[s0:s1].splitlines() if l.strip()]
    return text[c0:c1], m.group(1), m.group(2), lines


def substitute_pc(template, prefix, version):
    """poplar-module.pc from its template, the way configure makes it for
    --prefix=prefix (libdir and includedir left at their defaults)."""
    values = {"prefix": prefix, "exec_prefix": "${prefix}",
              "libdir": "${exec_prefix}/lib",
              "includedir": "${prefix}/include", "PACKAGE": "poplar",
              "PACKAGE_VERSION": version}
    out = re.sub(r"@(\w+)@", lambda m: values[m.group(1)], template)
    if "@" in out:
        raise AssertionError("unsubstituted variable in poplar-module.pc")
    return out


def run(argv, cwd=None, env=None, shell=False):
    return subprocess.run(argv, cwd=cwd, env=env, shell=shell,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)


class Example:
    """The example built once: .tmp (a prefix), .moduledir (the
    example's xlogin.so and links to poplard's modules), .build (the
    result of the README's build line), .pc_env (the environment that
    finds poplar-module.pc)."""

    def __init__(self):
        with open(os.path.join(srcdir(), "README.md")) as f:
            source, map_name, map_text, lines = readme_example(f.read())
        self.tmp = tempfile.mkdtemp(prefix="poplar-module-example-")
        os.chmod(self.tmp, 0o755)
        self.pc_env = dict(os.environ)
        if INSTALLCHECK:
            self.pc_env["PKG_CONFIG_PATH"] = os.environ["POPLAR_PKGCONFIG_DIR"]
            installed = run(["pkg-config", "--variable=moduledir",
                             "poplar-module"], env=self.pc_env)
            self.installed_moduledir = installed.stdout.decode().strip()
            self.moduledir = os.path.join(self.tmp, "modules")
            os.mkdir(self.moduledir)
            modules_from = self.installed_moduledir
            lines = [l for l in lines if not l.startswith("install ")]
        else:
            self.make_prefix()
            modules_from = poplartest.module_build_dir()
        for name in os.listdir(modules_from):
            if name.endswith(".so"):
                os.symlink(os.path.join(modules_from, name),
                           os.path.join(self.moduledir, name))
        with open(os.path.join(self.tmp, "xlogin.c"), "w") as f:
            f.write(source)
        with open(os.path.join(self.tmp, map_name), "w") as f:
            f.write(map_text + "\n")
        self.build = []
        for line in lines:
            r = run(line, cwd=self.tmp, env=self.pc_env, shell=True)
            self.build.append((line, r))
            if r.returncode != 0:
                break
        if INSTALLCHECK and os.path.exists(os.path.join(self.tmp,
                                                        "xlogin.so")):
            shutil.copy(os.path.join(self.tmp, "xlogin.so"), self.moduledir)

    def make_prefix(self):
        """The header and poplar-module.pc where `make install
        prefix=TMP` puts them."""
        prefix = self.tmp
        include = os.path.join(prefix, "include", "poplar")
        pcdir = os.path.join(prefix, "lib", "pkgconfig")
        self.moduledir = os.path.join(prefix, "lib", "poplar")
        for d in (include, pcdir, self.moduledir):
            os.makedirs(d)
        shutil.copy(os.path.join(srcdir(), "auth", "poplar-module.h"),
                    include)
        with open(os.path.join(srcdir(), "poplar-module.pc.in")) as f:
            pc = substitute_pc(f.read(), prefix, "0")
        with open(os.path.join(pcdir, "poplar-module.pc"), "w") as f:
            f.write(pc)
        self.pc_env["PKG_CONFIG_PATH"] = pcdir

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


example = None


def setUpModule():
    global example
    example = Example()


def tearDownModule():
    if example is not None:
        example.cleanup()


def xlogin_server(listener_opts=None):
    opts = {"auth": "xlogin"}
    opts.update(listener_opts or {})
    s = PoplarServer(server_opts={"module_dir": example.moduledir},
                     listener_opts=opts, extra_config="[module xlogin]\n")
    s.add_user("alice", "secret")
    s.add_user("bob", "two words")
    s.add_message("alice", b"From: carol@example.org\nSubject: x\n\nhi\n")
    return s


class BuildTests(unittest.TestCase):

    def test_readme_commands_build_it_without_a_warning(self):
        self.assertTrue(example.build)
        for line, r in example.build:
            self.assertEqual(r.returncode, 0, (line, r.stderr.decode()))
            self.assertEqual(r.stderr, b"", line)
        so = os.path.join(example.moduledir, "xlogin.so")
        self.assertTrue(os.path.isfile(so), os.listdir(example.moduledir))

    def test_only_the_descriptor_is_exported(self):
        r = run(["nm", "-D", "--defined-only",
                 os.path.join(example.moduledir, "xlogin.so")])
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [l.split()[-1] for l in r.stdout.decode().splitlines()
                 if l.strip()]
        self.assertEqual(names, ["poplar_module"], names)

    def test_pkg_config_moduledir(self):
        r = run(["pkg-config", "--variable=moduledir", "poplar-module"],
                env=example.pc_env)
        self.assertEqual(r.returncode, 0, r.stderr)
        moduledir = r.stdout.decode().strip()
        if INSTALLCHECK:
            # Where the installed modules really are.
            self.assertTrue(os.path.isfile(os.path.join(moduledir,
                                                        "pass.so")),
                            moduledir)
        else:
            self.assertEqual(moduledir, example.moduledir)


class LoadTests(unittest.TestCase):

    def setUp(self):
        self.server = xlogin_server()
        self.server.write_config()

    def tearDown(self):
        self.server.cleanup()

    def poplard(self, *args):
        r = run([poplartest.poplard_path()] + list(args) +
                ["-c", self.server.config_path])
        poplartest.check_sanitizer(r.stderr)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_list_modules(self):
        code, out, err = self.poplard("--list-modules")
        self.assertEqual(code, 0, err)
        rows = [l for l in out.splitlines() if re.search(r"\bxlogin\b", l)]
        self.assertEqual(len(rows), 1, out)
        self.assertIn("1.0", rows[0])
        self.assertIn("XLOGIN USER PASSWORD (example)", rows[0])

    def test_check_and_policy(self):
        code, out, err = self.poplard("-t")
        self.assertEqual(code, 0, out + err)
        code, out, err = self.poplard("--policy")
        self.assertEqual(code, 0, err)
        rows = [l.split() for l in out.splitlines()
                if l.strip().startswith("XLOGIN")]
        self.assertEqual(len(rows), 1, out)
        # Offered before TLS (plaintext_auth = always, no TLS on this
        # listener), a secret in clear, neither replay-safe nor mutual.
        self.assertEqual(rows[0][1:], ["yes", "-", "YES", "no", "no"], out)


class LoginTests(unittest.TestCase):

    def setUp(self):
        self.server = xlogin_server()
        self.server.start()

    def tearDown(self):
        self.server.stop()
        self.server.cleanup()

    def test_capa_and_login(self):
        with self.server.connect() as c:
            self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
            status, capa = c.multi("CAPA")
            self.assertIn(b"X-LOGIN", capa, status)
            self.assertEqual(c.cmd("XLOGIN alice secret").split()[0], "+OK")
            self.assertEqual(c.cmd("STAT").split()[:2], ["+OK", "1"])
            c.quit()
        lines = self.server.wait_log(": login ", "user=alice")
        self.assertEqual(len(lines), 1, self.server.log())
        self.assertIn("method=xlogin", lines[0])

    def test_password_is_the_rest_of_the_line(self):
        with self.server.connect() as c:
            self.assertTrue(c.cmd("XLOGIN bob two words").startswith("+OK"))
            c.quit()

    def test_failures(self):
        for line in ("XLOGIN alice wrong", "XLOGIN nobody-here secret",
                     "XLOGIN bob two"):
            with self.server.connect() as c:
                self.assertEqual(c.cmd(line), FAILED, line)
                c.quit()
        fails = self.server.log_lines(": auth-fail ")
        self.assertEqual(len(fails), 3, self.server.log())
        self.assertTrue(all("method=xlogin" in l for l in fails), fails)

    def test_too_few_arguments(self):
        with self.server.connect() as c:
            self.assertTrue(c.cmd("XLOGIN alice").startswith("-ERR"))
            self.assertEqual(c.cmd("STAT").split()[0], "-ERR")
            c.quit()


class PlaintextNeverTests(unittest.TestCase):

    def test_hidden_and_refused(self):
        server = xlogin_server({"plaintext_auth": "never"})
        try:
            server.start()
            with server.connect() as c:
                status, capa = c.multi("CAPA")
                self.assertTrue(capa, status)
                self.assertNotIn(b"X-LOGIN", capa)
                reply = c.cmd("XLOGIN alice secret")
                self.assertTrue(reply.startswith("-ERR [AUTH]"), reply)
                self.assertIn("plaintext", reply)
                self.assertEqual(c.cmd("STAT").split()[0], "-ERR")
                c.quit()
        finally:
            server.stop()
            server.cleanup()


if __name__ == "__main__":
    poplartest.require_environment()
    for tool in ("cc", "pkg-config", "nm"):
        if shutil.which(tool) is None:
            print("SKIP: %s is needed to build the example module" % tool)
            sys.exit(poplartest.SKIP)
    poplartest.run_tests()
