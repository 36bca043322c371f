"""poplard's command line without a running server: -t (check the
configuration), -V, --list-modules, and how configuration and module
errors are reported ("file:line: message", exit status 1).
"""

import grp
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poplartest  # noqa: E402
from poplartest import PoplarServer, mapped_files  # noqa: E402


def run_poplard(*args, timeout=30):
    p = subprocess.run([poplartest.poplard_path()] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    poplartest.check_sanitizer(p.stderr)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


class ConfigCheckTests(unittest.TestCase):

    def setUp(self):
        self.server = PoplarServer()
        self.server.add_user("alice", "secret")
        self.good = self.server.config_text()
        self.server.write_config()
        self.n = 0

    def tearDown(self):
        self.server.cleanup()

    def write(self, text, name=None):
        self.n += 1
        path = os.path.join(self.server.tmp, name or "c%d.conf" % self.n)
        with open(path, "w") as f:
            f.write(text)
        return path

    @staticmethod
    def line_of(text, needle, nth=1):
        """1-based number of the nth line of text that equals needle."""
        seen = 0
        for i, line in enumerate(text.split("\n"), 1):
            if line.strip() == needle:
                seen += 1
                if seen == nth:
                    return i
        raise AssertionError("%r not in config" % needle)

    def check(self, text):
        path = self.write(text)
        code, out, err = run_poplard("-t", "-c", path)
        return path, code, out, err

    def assert_error_at(self, text, needle, nth=1, extra=None):
        path, code, out, err = self.check(text)
        line = self.line_of(text, needle, nth)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("%s:%d:" % (path, line), err)
        if extra:
            self.assertIn(extra, err)
        return err

    # ---- good files ------------------------------------------------------
    def test_good(self):
        code, out, err = run_poplard("-t", "-c", self.server.config_path)
        self.assertEqual(code, 0, err)
        self.assertIn("[server]", out)
        self.assertIn("[listen pop3]", out)
        self.assertIn("idle_timeout = 600", out)
        self.assertIn("127.0.0.1:%d" % self.server.port, out)

    def test_defaults_printed(self):
        text = self.good.replace("idle_timeout = 600\n", "")
        self.assertNotIn("idle_timeout", text)
        path, code, out, err = self.check(text)
        self.assertEqual(code, 0, err)
        self.assertIn("idle_timeout = 600", out)

    def test_values_printed(self):
        text = self.good.replace("idle_timeout = 600", "idle_timeout = 31")
        path, code, out, err = self.check(text)
        self.assertEqual(code, 0, err)
        self.assertIn("idle_timeout = 31", out)

    def test_comments_and_blank_lines(self):
        text = "# a comment\n\n" + self.good.replace(
            "[userdb]", "# another\n   \n[userdb]")
        path, code, out, err = self.check(text)
        self.assertEqual(code, 0, err)

    # ---- bad files -------------------------------------------------------
    def test_unknown_section(self):
        text = self.good + "\n[bogus]\nkey = value\n"
        self.assert_error_at(text, "[bogus]")

    def test_unknown_key(self):
        text = self.good.replace("[server]\n", "[server]\ncolour = blue\n")
        self.assert_error_at(text, "colour = blue")

    def test_unknown_key_in_listener(self):
        text = self.good.replace("tls = none\n", "tls = none\nspeed = 9\n")
        self.assert_error_at(text, "speed = 9")

    def test_bad_numbers(self):
        for bad in ("abc", "-5", "12x", "", "99999999999999999999"):
            with self.subTest(value=bad):
                line = ("idle_timeout = %s" % bad).strip()
                text = self.good.replace("idle_timeout = 600", line)
                self.assert_error_at(text, line)

    def test_bad_enum(self):
        text = self.good.replace("tls = none", "tls = sometimes")
        self.assert_error_at(text, "tls = sometimes")
        text = self.good.replace("plaintext_auth = always",
                                 "plaintext_auth = maybe")
        self.assert_error_at(text, "plaintext_auth = maybe")

    def test_bad_address(self):
        text = self.good.replace("address = 127.0.0.1:%d" % self.server.port,
                                 "address = 127.0.0.1")
        self.assert_error_at(text, "address = 127.0.0.1")

    def test_line_without_equals(self):
        text = self.good.replace("[server]\n", "[server]\njust words\n")
        self.assert_error_at(text, "just words")

    def test_duplicate_listener(self):
        port2 = poplartest.free_port()
        text = self.good + ("\n[listen pop3]\naddress = 127.0.0.1:%d\n"
                            "tls = none\nauth = pass\n"
                            "plaintext_auth = always\n" % port2)
        self.assert_error_at(text, "[listen pop3]", nth=2)

    def test_nonexistent_file(self):
        path = os.path.join(self.server.tmp, "does-not-exist.conf")
        code, out, err = run_poplard("-t", "-c", path)
        self.assertEqual(code, 1, (out, err))
        self.assertIn(path + ":", err)

    def test_directory_as_file(self):
        path = os.path.join(self.server.tmp, "home")
        code, out, err = run_poplard("-t", "-c", path)
        self.assertEqual(code, 1, (out, err))
        self.assertIn(path + ":", err)

    @unittest.skipIf(poplartest.IS_ROOT, "root reads files of any mode")
    def test_unreadable_file(self):
        path = self.write(self.good)
        os.chmod(path, 0)
        code, out, err = run_poplard("-t", "-c", path)
        self.assertEqual(code, 1, (out, err))
        self.assertIn(path + ":", err)

    def test_module_file_missing(self):
        text = self.good + "\n[module nosuchmod]\nkey = value\n"
        path, code, out, err = self.check(text)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("nosuchmod.so", err)

    def test_listener_module_without_section(self):
        text = self.good.replace("auth = pass", "auth = pass othermod")
        path, code, out, err = self.check(text)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("othermod", err)
        lines = (self.line_of(text, "auth = pass othermod"),
                 self.line_of(text, "[listen pop3]"))
        self.assertTrue(any("%s:%d:" % (path, l) in err for l in lines), err)

    # ---- listeners and modules that speak before the greeting ----------
    def kpop_config(self, listener):
        if not os.path.exists(os.path.join(
                poplartest.module_build_dir() or "", "kpop.so")):
            self.skipTest("kpop.so not built")
        return (self.good + "\n[listen k]\naddress = 127.0.0.1:%d\n%s\n"
                "[module kpop]\n" % (poplartest.free_port(), listener))

    def test_kpop_module_on_a_pop3_listener(self):
        text = self.kpop_config("protocol = kpop\nauth = kpop")
        text = text.replace("auth = pass\n", "auth = pass kpop\n", 1)
        err = self.assert_error_at(text, "auth = pass kpop",
                                   extra="only a listener with protocol "
                                   "= kpop may offer it")
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_kpop_listener_offering_pass(self):
        text = self.kpop_config("protocol = kpop\nauth = kpop pass")
        self.assert_error_at(text, "auth = kpop pass",
                             extra="protocol = kpop but offers 'pass'")

    def test_kpop_listener_with_tls(self):
        text = self.kpop_config("protocol = kpop\nauth = kpop\n"
                                "tls = implicit")
        text += "[tls]\ncertificate = /nonexistent.pem\n" \
                "key = /nonexistent.key\n"
        self.assert_error_at(text, "tls = implicit", extra="set tls = none")

    def test_kpop_listener_as_documented(self):
        text = self.kpop_config("protocol = kpop\nauth = kpop\ntls = none")
        path, code, out, err = self.check(text)
        # Without a keytab the module's own check may still complain;
        # the listener itself is accepted.
        self.assertNotIn("before the greeting", err)
        self.assertNotIn("has no TLS", err)
        errors = [l for l in err.splitlines()
                  if l.startswith("%s:" % path) and
                  not l.startswith("%s: module checks failed" % path)]
        self.assertEqual(errors, [], err)

    def test_no_listener(self):
        start = self.good.index("[listen pop3]")
        end = self.good.index("[userdb]")
        text = self.good[:start] + self.good[end:]
        path, code, out, err = self.check(text)
        self.assertEqual(code, 1, (out, err))
        self.assertIn(path + ":", err)

    # ---- other options ---------------------------------------------------
    def test_version(self):
        code, out, err = run_poplard("-V")
        self.assertEqual(code, 0, err)
        self.assertRegex(out + err, r"[0-9]+\.[0-9]+")

    def test_list_modules(self):
        code, out, err = run_poplard("--list-modules", "-c",
                                     self.server.config_path)
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"\bpass\b")

    def test_bad_option(self):
        code, out, err = run_poplard("--no-such-option")
        self.assertNotEqual(code, 0)
        self.assertTrue(err)


class UserFileTests(unittest.TestCase):
    """The passwd-file userdb: errors with file:line, and look-ups in a
    large file whose order is not the sorted order."""

    def setUp(self):
        self.server = PoplarServer()
        self.server.add_user("alice", "secret")
        self.server.write_config()

    def tearDown(self):
        self.server.stop()
        self.server.cleanup()

    def write_users(self, names):
        h = poplartest.hash_password("secret")
        ids = ("65534", "65534") if poplartest.IS_ROOT else ("", "")
        home = self.server.users["alice"].home
        with open(self.server.userdb, "w") as f:
            for n in names:
                f.write("%s:%s:%s:%s:%s\n" % (n, h, ids[0], ids[1], home))

    def test_duplicate_user_at_the_first_repeating_line(self):
        self.write_users(["zed", "bob", "carol", "carol", "bob"])
        with open(self.server.config_path, "w") as f:
            f.write(self.server.config_text())
        code, out, err = run_poplard("-t", "-c", self.server.config_path)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("%s:4: duplicate user 'carol'" % self.server.userdb,
                      err)

    def test_lookups_in_a_large_file(self):
        names = ["u%05d" % ((i * 7919) % 20000) for i in range(20000)]
        self.write_users(names)
        self.server.write_config = lambda: self.server.config_path
        with open(self.server.config_path, "w") as f:
            f.write(self.server.config_text())
        self.server.start()
        for name in (names[0], names[-1], names[10000], "u00000",
                     "u19999"):
            with self.server.connect() as c:
                c.cmd("USER %s" % name)
                self.assertTrue(c.cmd("PASS secret").startswith("+OK"),
                                name)
                c.quit()
        for name in ("u20000", "u0000", "alice", "u00000x"):
            with self.server.connect() as c:
                c.cmd("USER %s" % name)
                self.assertTrue(c.cmd("PASS secret").startswith("-ERR"),
                                name)
                c.quit()


def modules_in(server, mdir, names=("pass.so",)):
    """Make mdir (mode 0755) with copies (0755) of the built modules
    names that exist, point server's module_dir at it, give it a user and
    write its configuration; returns the configuration's path."""
    os.makedirs(mdir)
    os.chmod(mdir, 0o755)
    for name in names:
        src = os.path.join(poplartest.module_build_dir(), name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(mdir, name))
            os.chmod(os.path.join(mdir, name), 0o755)
    server.server_opts["module_dir"] = mdir
    server.add_user("alice", "secret")
    return server.write_config()


@unittest.skipUnless(poplartest.module_build_dir() and os.path.exists(
    os.path.join(poplartest.module_build_dir() or "", "pass.so")),
    "the modules are not built (POPLAR_MODULE_BUILD_DIR)")
class PassBackendTests(unittest.TestCase):
    """The pass module's krb5 and PAM backends are shared objects of their
    own (pass-krb5.so, pass-pam.so), loaded only when configured."""

    def test_userdb_backend_maps_no_kerberos_or_pam(self):
        server = PoplarServer()
        try:
            server.add_user("alice", "secret")
            server.start()
            with server.login("alice") as c:
                self.assertTrue(c.cmd("STAT").startswith("+OK"))
                c.quit()
            libs = [os.path.basename(p) for p in mapped_files(server.pid)]
            self.assertIn("pass.so", libs)
            for bad in ("libkrb5", "libpam", "pass-krb5", "pass-pam"):
                self.assertFalse([n for n in libs if n.startswith(bad)],
                                 "%s mapped: %s" % (bad, sorted(libs)))
        finally:
            server.stop()
            server.cleanup()

    def test_missing_backend_is_a_clear_error(self):
        # A module directory holding pass.so without its backends.
        server = PoplarServer()
        try:
            mdir = os.path.join(server.tmp, "modules")
            os.mkdir(mdir)
            shutil.copy(os.path.join(poplartest.module_build_dir(),
                                     "pass.so"), mdir)
            server.server_opts["module_dir"] = mdir
            server.add_user("alice", "secret")
            server.write_config()
            for backend in ("krb5", "pam"):
                text = server.config_text().replace(
                    "backend = userdb", "backend = %s" % backend)
                path = os.path.join(server.tmp, backend + ".conf")
                with open(path, "w") as f:
                    f.write(text)
                code, out, err = run_poplard("-t", "-c", path)
                self.assertEqual(code, 1, (out, err))
                self.assertIn("backend %s is not available" % backend, err)
                self.assertIn("pass-%s.so" % backend, err)
                line = text.split("\n").index("backend = %s" % backend) + 1
                self.assertIn("%s:%d:" % (path, line), err)
        finally:
            server.cleanup()


    def test_module_others_may_write_is_not_loaded(self):
        # A module directory, then a module, that another user could
        # replace: refused by -t and at start-up, the file named.
        server = PoplarServer()
        try:
            mdir = os.path.join(server.tmp, "modules")
            path = modules_in(server, mdir)
            so = os.path.join(mdir, "pass.so")
            code, out, err = run_poplard("-t", "-c", path)
            self.assertEqual(code, 0, (out, err))
            for target, mode, what in ((so, 0o666, "it is writable by "
                                        "everyone (mode 0666)"),
                                       (mdir, 0o777, "its directory %s is "
                                        "writable by everyone (mode 0777)"
                                        % mdir)):
                os.chmod(target, mode)
                code, out, err = run_poplard("-t", "-c", path)
                self.assertEqual(code, 1, (out, err))
                self.assertIn("%s: not loaded: %s" % (so, what), err)
                # Start-up (a daemon that started anyway would be
                # killed by run_poplard's timeout, failing the test).
                code, out, err = run_poplard("-F", "-c", path, timeout=20)
                self.assertEqual(code, 1, (out, err))
                self.assertIn("not loaded: " + what, err)
                os.chmod(target, 0o755)
        finally:
            server.cleanup()

    def test_untrusted_module_with_a_long_path_is_named_whole(self):
        # A module directory path of 1,200 characters: the refusal names
        # the module and its directory in full (errors were cut at 1
        # and 2 KiB), for pass.so and for a pass backend.
        server = PoplarServer()
        try:
            mdir = server.tmp
            for _ in range(6):
                mdir = os.path.join(mdir, "d" * 200)
            path = modules_in(server, mdir, ("pass.so", "pass-krb5.so"))
            so = os.path.join(mdir, "pass.so")
            os.chmod(mdir, 0o777)
            code, out, err = run_poplard("-t", "-c", path)
            self.assertEqual(code, 1, (out, err))
            self.assertIn("%s: not loaded: its directory %s is writable "
                          "by everyone (mode 0777)" % (so, mdir), err)
            os.chmod(mdir, 0o755)
            be = os.path.join(mdir, "pass-krb5.so")
            if not os.path.exists(be):
                return
            with open(path, "w") as f:
                f.write(server.config_text().replace("backend = userdb",
                                                     "backend = krb5"))
            os.chmod(be, 0o777)
            code, out, err = run_poplard("-t", "-c", path)
            self.assertEqual(code, 1, (out, err))
            self.assertIn("%s: not loaded: it is writable by everyone "
                          "(mode 0777)" % be, err)
        finally:
            server.cleanup()

    def test_module_group_or_owner_not_trusted(self):
        # Group write is allowed only through the owner's private group
        # (root's own group); a shared group (nogroup) or another owner
        # is refused, the file and the reason named.
        try:
            shared_gid = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            self.skipTest("no group nogroup")
        euid = os.geteuid()
        server = PoplarServer()
        try:
            mdir = os.path.join(server.tmp, "modules")
            path = modules_in(server, mdir)
            so = os.path.join(mdir, "pass.so")

            def refused(what):
                code, out, err = run_poplard("-t", "-c", path)
                self.assertEqual(code, 1, (out, err))
                self.assertIn("%s: not loaded: %s" % (so, what), err)

            os.chown(so, euid, shared_gid)
            os.chmod(so, 0o775)
            refused("it is writable by group %d (mode 0775)" % shared_gid)
            os.chmod(so, 0o755)
            code, out, err = run_poplard("-t", "-c", path)
            self.assertEqual(code, 0, (out, err))
            if euid == 0:
                # Root's private group may write; another owner may not.
                os.chown(so, 0, 0)
                os.chmod(so, 0o775)
                code, out, err = run_poplard("-t", "-c", path)
                self.assertEqual(code, 0, (out, err))
                os.chmod(so, 0o755)
                os.chown(so, 65534, 0)
                refused("it belongs to uid 65534, not to root or to "
                        "poplard's user (uid 0)")
                os.chown(mdir, 65534, 0)
                os.chown(so, 0, 0)
                refused("its directory %s belongs to uid 65534, not to "
                        "root or to poplard's user (uid 0)" % mdir)
        finally:
            server.cleanup()


@unittest.skipUnless(poplartest.testmod_dir() and os.path.exists(
    os.path.join(poplartest.testmod_dir() or "", "testgood.so")),
    "the test modules are not built (POPLAR_TESTMOD_DIR)")
class TestModuleTests(unittest.TestCase):
    """The loader's refusals, with the modules built from
    tests/modules/testmod.c."""

    def setUp(self):
        self.server = PoplarServer(
            server_opts={"module_dir": poplartest.testmod_dir()})
        self.server.add_user("alice", "secret")
        self.server.write_config()

    def tearDown(self):
        self.server.cleanup()

    def config_with(self, module):
        """A configuration whose only module is `module`, offered by the
        listener."""
        text = self.server.config_text()
        text = text.replace("auth = pass", "auth = " + module)
        text = text.replace("[module pass]\nbackend = userdb\n",
                            "[module %s]\n" % module)
        path = os.path.join(self.server.tmp, module + ".conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def check_module(self, module):
        return run_poplard("-t", "-c", self.config_with(module))

    def test_good_module(self):
        code, out, err = self.check_module("testgood")
        self.assertEqual(code, 0, err)

    def test_wrong_abi(self):
        code, out, err = self.check_module("testabi")
        self.assertEqual(code, 1, (out, err))
        self.assertIn("ABI", err)
        self.assertIn("testabi", err)

    def test_missing_symbol(self):
        code, out, err = self.check_module("testnosym")
        self.assertEqual(code, 1, (out, err))
        self.assertIn("poplar_module", err)
        self.assertIn("testnosym", err)

    def test_init_fails(self):
        code, out, err = self.check_module("testinitfail")
        self.assertEqual(code, 1, (out, err))
        self.assertIn("init", err)
        self.assertIn("testinitfail", err)

    def test_error_is_one_line(self):
        code, out, err = self.check_module("testabi")
        lines = [l for l in err.splitlines() if "testabi" in l]
        self.assertEqual(len(lines), 1, err)

    def test_list_modules(self):
        code, out, err = run_poplard("--list-modules", "-c",
                                     self.config_with("testgood"))
        self.assertIn("testgood", out)


if __name__ == "__main__":
    poplartest.run_tests()
