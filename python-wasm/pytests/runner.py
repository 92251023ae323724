"""Runs one module of CPython's regression tests (Lib/test) and reports it as JSON.

The same file runs on both sides of `make pytests` (see README.md beside it):

    GET /?module=test_gc              inside the sandbox, as the WSGI app `application`
    python3 runner.py test_gc         natively, with the host's CPython 3.11

It must sit next to the `test` package taken from the pinned CPython tarball, so that
both sides import the same files. A module runs the way regrtest runs it: through its
test_main() when it has one, else through unittest's loader; resources that regrtest
leaves off by default (network, cpu, ...) stay off.
"""
import importlib
import json
import sys
import time
import traceback
import unittest


class Counts(unittest.TestResult):
    """Counts outcomes, and keeps a one-line cause for each failure and error."""

    def __init__(self):
        super().__init__()
        self.passed = 0
        self.problems = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def _problem(self, kind, test, err):
        last = traceback.format_exception_only(err[0], err[1])[-1].strip().splitlines()
        text = str(err[1])
        if "Traceback (most recent call last)" in text:  # a module the loader could not import
            last = text.strip().splitlines()[-1:]
        self.problems.append(f"{kind} {test.id()}: {last[0][:200] if last else err[0].__name__}")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problem("FAIL", test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._problem("ERROR", test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._problem("FAIL" if issubclass(err[0], test.failureException) else "ERROR", subtest, err)

    def add_doctests(self, name, failed, tried):
        self.testsRun += tried
        self.passed += tried - failed
        self.failures += [(name, "")] * failed
        if failed:
            self.problems.append(f"FAIL {name}: {failed} of {tried} doctests failed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.problems.append(f"UNEXPECTED-SUCCESS {test.id()}")


# Modules that skip themselves whole at import for a reason this sandbox does not have,
# or that holds for one of their tests only, imported with the test.support flag they
# read set as it would be natively; the flag is put back before any test runs, so the
# tests that need what the sandbox lacks run and fail there (expected.txt names them).
# - test_selectors and test_urllib_response say WASI cannot make a socket pair or a
#   socket: the shim makes both (socket.socketpair is the in-memory pair asyncio uses).
IMPORT_FLAGS = {
    "test_selectors": {"is_wasi": False},
    "test_urllib_response": {"is_wasi": False},
}


def import_test_module(name, support):
    flags = IMPORT_FLAGS.get(name, {})
    saved = {flag: getattr(support, flag) for flag in flags}
    for flag, value in flags.items():
        setattr(support, flag, value)
    try:
        return importlib.import_module("test." + name)
    finally:
        for flag, value in saved.items():
            setattr(support, flag, value)


def run_module(name):
    """Runs test.<name> and returns its report (a dict)."""
    report = {"module": name, "run": 0, "passed": 0, "failures": 0, "errors": 0, "skipped": 0,
              "problems": [], "seconds": 0.0}
    start = time.monotonic()
    counts = Counts()
    workdir = None
    try:
        import doctest
        import os
        import tempfile
        from test import support
        from test.support import socket_helper
        support.use_resources = []  # regrtest's default: no optional resources
        # test.support decides socket support from the platform name: on WASI
        # has_socket_support is False, so requires_working_socket() skips whole modules
        # (test_asyncio, test_asyncgen, test_contextlib_async, ...), and has_gethostname
        # is False, which skips test_mailbox, test_urllib and test_smtpd. This sandbox's
        # socket module is the shim's: an in-memory socketpair (asyncio's self-pipe),
        # client connections the host brokers, and gethostname() (it answers
        # "localhost"). So the modules run, as they do natively, and what the sandbox
        # lacks (bind and listen, signals) fails where a test uses it, named in
        # expected.txt. Set before the test module is imported: its decorators read
        # the flags then. Natively both are already true.
        support.has_socket_support = True
        socket_helper.has_gethostname = True
        # Likewise has_subprocess_support is False on WASI, which skips every test that
        # runs `python` (test.support.script_helper's, subprocess's, ...). The server
        # grants the runner's app child processes (limits.processes, run.py): a python
        # command line runs in a new instance of the sandbox's interpreter, so those
        # tests run, and the ones that need another program, fork or a child running
        # beside its parent fail, named in expected.txt.
        support.has_subprocess_support = True
        support.verbose = 0
        # test_main() modules run their suites through support._run_suite and their
        # doctests through support.run_doctest.
        support._run_suite = lambda suite: suite.run(counts)

        def run_doctest(module, verbosity=None, optionflags=0):
            failed, tried = doctest.testmod(module, verbose=False, optionflags=optionflags)
            counts.add_doctests(module.__name__, failed, tried)
            return failed, tried
        support.run_doctest = run_doctest
        # Like regrtest, in a fresh working folder: tests create files in the cwd.
        workdir = tempfile.mkdtemp(prefix="pytests-")
        os.chdir(workdir)
        module = import_test_module(name, support)
        if hasattr(module, "test_main"):
            module.test_main()
        else:
            unittest.defaultTestLoader.loadTestsFromModule(module).run(counts)
    except unittest.SkipTest as e:
        report["module_skipped"] = str(e)[:200]
    except BaseException as e:  # a module that cannot even load is the finding
        last = traceback.format_exception_only(type(e), e)[-1].strip().splitlines()
        report["module_error"] = (last[0] if last else type(e).__name__)[:300]
    finally:
        # Natively the folder is in the host's /tmp: leave nothing behind there.
        if workdir is not None:
            import os
            import shutil
            os.chdir(os.path.dirname(workdir))
            shutil.rmtree(workdir, ignore_errors=True)
    report.update(run=counts.testsRun, passed=counts.passed, failures=len(counts.failures),
                  errors=len(counts.errors), skipped=len(counts.skipped),
                  problems=counts.problems[:2000],
                  seconds=round(time.monotonic() - start, 3))
    return report


def application(environ, start_response):
    from urllib.parse import parse_qs
    name = parse_qs(environ.get("QUERY_STRING", "")).get("module", [""])[0]
    if not name.startswith("test_") or not name.replace("_", "").isalnum():
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"ask for ?module=test_NAME\n"]
    body = json.dumps(run_module(name)).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    report = run_module(sys.argv[1])
    sys.stdout.flush()
    # The report goes to a descriptor of its own: tests print to stdout freely.
    with open(sys.argv[2], "w") if len(sys.argv) > 2 else sys.__stdout__ as out:
        out.write(json.dumps(report) + "\n")
