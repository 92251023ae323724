"""Runs CPython's own regression tests inside the sandbox and natively, side by side.

    python3 python-wasm/pytests/run.py [--modules test_gc,test_dict] [--out DIR]

Lib/test comes from the pinned CPython tarball the python.wasm recipe builds from. It is
placed, with runner.py as the app, in an app folder that bin/wasmwsgi serves; each test
module is one request. The same module runs natively with Debian's CPython 3.11
(/usr/bin/python3) on the same files, in a process of its own. The summary (per module:
run, passed, failed, errors, skipped on each side; modules that fail only in the
sandbox, grouped by cause; every non-200 answer) is printed and written to
OUT/summary.md, with the raw reports in OUT/reports.json.

expected.txt lists the modules that may fail in the sandbox, each with its reason, and
those that are not run there at all. The run fails on a module that fails only in the
sandbox and is not listed, and on any answer other than 200.
"""
import argparse
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NATIVE = "/usr/bin/python3"
MODULE_TIMEOUT = 600  # seconds, on each side


def read_env(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v.strip('"')
    return env


def read_expected(path):
    """expected.txt: `test_module fail|skip reason...` lines, and `cause REGEX reason...`
    lines for failures that are platform limits wherever they occur. Returns the modules
    ({name: (verdict, reason)}) and the causes ([(compiled regex, reason)])."""
    modules, causes = {}, []
    for n, line in enumerate(open(path), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "cause":
            causes.append((re.compile(parts[1]), parts[2]))
        elif len(parts) == 3 and parts[1] in ("fail", "skip"):
            modules[parts[0]] = (parts[1], parts[2])
        else:
            sys.exit(f"{path}:{n}: want `test_module fail|skip reason` or `cause REGEX reason`, got {line!r}")
    return modules, causes


def tarball():
    """The pinned CPython source tarball, fetched like build.sh does when missing."""
    v = read_env(os.path.join(ROOT, "python-wasm", "versions.env"))
    cache = os.environ.get("WASMWSGI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wasmwsgi")
    src = os.path.join(cache, "src")
    path = os.path.join(src, v["PY_ORIG"])
    if not os.path.exists(path):
        subprocess.run(["bash", os.path.join(ROOT, "python-wasm", "fetch-source.sh"), v["PY_DEB_PACKAGE"],
                        v["PY_DEB_VERSION"], v["PY_ORIG"], v["PY_SHA256"], src], check=True)
    return path, v["PY_SHA256"]


def prepare(out):
    """Fills OUT/apps/pytests with runner.py (as app.py) and Lib/test; returns the app folder."""
    path, sha = tarball()
    app = os.path.join(out, "apps", "pytests")
    stamp = os.path.join(out, "test-from")
    if not (os.path.exists(stamp) and open(stamp).read() == sha):
        shutil.rmtree(app, ignore_errors=True)
        os.makedirs(app)
        with tarfile.open(path) as tf:
            members = []
            for m in tf.getmembers():
                parts = m.name.split("/", 3)
                if len(parts) >= 3 and parts[1] == "Lib" and parts[2] == "test":
                    m.name = "/".join(parts[2:])
                    members.append(m)
            tf.extractall(app, members=members)
        with open(stamp, "w") as f:
            f.write(sha)
    shutil.copy(os.path.join(HERE, "runner.py"), os.path.join(app, "app.py"))
    return app


def all_modules(app):
    test = os.path.join(app, "test")
    names = []
    for entry in sorted(os.listdir(test)):
        if not entry.startswith("test_"):
            continue
        if entry.endswith(".py"):
            names.append(entry[:-3])
        elif os.path.isfile(os.path.join(test, entry, "__init__.py")):
            names.append(entry)
    return names


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(out, binary):
    port = free_port()
    config = os.path.join(out, "server.toml")
    with open(config, "w") as f:
        f.write('[limits]\nmemory = "1GiB"\ntimeout = "%ds"\nconcurrency = 1\n'
                'app_files = "512MiB"\nscratch = "256MiB"\nmax_response = "16MiB"\n' % MODULE_TIMEOUT)
        # Tests that serve nothing still connect to, or resolve, the local machine (smtpd's
        # and smtplib's simulated servers resolve localhost, urllib opens file://localhost/,
        # imaplib expects a refused connection). Loopback is granted by name and address,
        # as an operator would grant a local service; nothing else is reachable.
        f.write('[apps.pytests]\noutbound = ["tcp://localhost:*", "tcp://127.0.0.1:*"]\n')
        # The tests that run `python` (script_helper's assert_python_ok, subprocess's)
        # start it as a child process: a new instance of the sandbox's interpreter.
        f.write('[apps.pytests.limits]\nprocesses = 100000\n')
    log = open(os.path.join(out, "server.log"), "w")
    proc = subprocess.Popen([binary, "serve", os.path.join(out, "apps"), "--addr", f"127.0.0.1:{port}",
                             "--config", config, "--watch=false"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"wasmwsgi serve exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(base + "/_wasmwsgi/ready", timeout=5) as r:
                if r.status == 200:
                    return proc, base
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    proc.kill()
    sys.exit(f"wasmwsgi serve did not become ready in 300 s; see {log.name}")


def run_sandbox(base, out, name):
    try:
        with urllib.request.urlopen(f"{base}/pytests/?module={name}", timeout=MODULE_TIMEOUT + 30) as r:
            report = json.load(r)
    except urllib.error.HTTPError as e:
        report = {"module": name, "status": e.code, "body": e.read(300).decode("latin-1")}
    except (urllib.error.URLError, OSError) as e:
        report = {"module": name, "status": 0, "body": str(e)}
    os.makedirs(os.path.join(out, "sandbox"), exist_ok=True)
    with open(os.path.join(out, "sandbox", name + ".json"), "w") as f:
        json.dump(report, f)
    return report


def run_native(app, out, name):
    report = os.path.join(out, "native", name + ".json")
    os.makedirs(os.path.dirname(report), exist_ok=True)
    try:
        subprocess.run([NATIVE, "app.py", name, report], cwd=app, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=MODULE_TIMEOUT)
        with open(report) as f:
            return json.load(f)
    except subprocess.TimeoutExpired:
        return {"module": name, "status": "timeout"}
    except (OSError, ValueError) as e:
        return {"module": name, "status": f"no report ({e})"}


def problem_id(problem):
    """The test a problem line is about ("FAIL test.x.Y.test_z: ..." -> the id)."""
    return problem.split(": ", 1)[0].split(" ", 1)[-1]


def sandbox_only(s, n, causes):
    """The sandbox's failures that no platform cause explains and that do not fail
    natively too; None when the module did not answer."""
    if "run" not in s:
        return None
    found = list(s["problems"]) + (["IMPORT module: " + s["module_error"]] if "module_error" in s else [])
    native = {problem_id(p) for p in n.get("problems", [])}
    if "module_error" in n:
        native.add("module")
    return [p for p in found if not any(c.search(p) for c, _ in causes) and problem_id(p) not in native]


def cause(problem):
    """A failure line without its test id and numbers, to group failures by cause."""
    text = problem.split(": ", 1)[1] if ": " in problem else problem
    return re.sub(r"0x[0-9a-f]+|\d+", "N", text)[:120]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", help="comma-separated modules (default: every test_* module)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bin", "pytests"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "bin", "wasmwsgi"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    expected, platform = read_expected(os.path.join(HERE, "expected.txt"))
    app = prepare(out)
    modules = args.modules.split(",") if args.modules else all_modules(app)
    unknown = [m for m in modules if not os.path.exists(os.path.join(app, "test", m)) and
               not os.path.exists(os.path.join(app, "test", m + ".py"))]
    if unknown:
        sys.exit(f"no such test modules: {', '.join(unknown)}")
    for m in expected:
        if m not in all_modules(app):
            sys.exit(f"expected.txt names {m}, which Lib/test does not have")
    run = [m for m in modules if expected.get(m, ("",))[0] != "skip"]

    proc, base = start_server(out, args.binary)
    results = {m: {} for m in run}
    started = time.monotonic()
    sandbox_secs = [0.0]

    def sandbox_side():
        for m in run:
            t = time.monotonic()
            results[m]["sandbox"] = run_sandbox(base, out, m)
            sandbox_secs[0] += time.monotonic() - t
            s = results[m]["sandbox"]
            print(f"  sandbox {m}: " + (f"{s['passed']}/{s['run']} passed" if "run" in s else
                                        f"status {s.get('status')}"), flush=True)

    # Natively the slowest modules mostly wait (subprocesses, sleeps): two at a time.
    native_todo = list(run)
    native_lock = threading.Lock()

    def native_side():
        while True:
            with native_lock:
                if not native_todo:
                    return
                m = native_todo.pop(0)
            results[m]["native"] = run_native(app, out, m)

    try:
        threads = [threading.Thread(target=f) for f in (sandbox_side, native_side, native_side)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(30)

    # ---- compare ----
    totals = collections.Counter()
    non200, only_sandbox, unlisted, fixed = [], [], [], []
    causes = collections.Counter()
    rows = []
    for m in run:
        s, n = results[m]["sandbox"], results[m]["native"]
        for side, r in (("sandbox", s), ("native", n)):
            for k in ("run", "passed", "failures", "errors", "skipped"):
                totals[side, k] += r.get(k, 0)
        if "run" not in s:
            non200.append(f"{m}: {s.get('status')} {s.get('body', '')[:200]!r}")
        own = sandbox_only(s, n, platform)
        fails_only_here = own is None or bool(own)
        if fails_only_here:
            only_sandbox.append(m)
            for p in own or []:
                causes[cause(p)] += 1
            if m not in expected:
                unlisted.append(m)
        elif m in expected:
            fixed.append(m)

        def cell(r):
            if "run" not in r:
                return str(r.get("status"))
            extra = " import-error" if "module_error" in r else ""
            return f"{r['run']} {r['passed']} {r['failures']} {r['errors']} {r['skipped']}{extra}"
        rows.append(f"| {m} | {cell(s)} | {cell(n)} | {'yes' if fails_only_here else ''} |")

    lines = [
        "# CPython's regression tests: sandbox and native",
        "",
        f"{len(run)} modules ({len(modules) - len(run)} not run in the sandbox, see expected.txt); "
        f"wall time {time.monotonic() - started:.0f} s, sandbox time {sandbox_secs[0]:.0f} s.",
        "",
        "| side | run | passed | failures | errors | skipped |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for side in ("sandbox", "native"):
        lines.append(f"| {side} | " + " | ".join(str(totals[side, k]) for k in
                                                ("run", "passed", "failures", "errors", "skipped")) + " |")
    lines += ["", f"Non-200 answers: {len(non200)}"] + [f"- {x}" for x in non200]
    lines += ["", f"Modules that fail only in the sandbox: {len(only_sandbox)} "
              f"({len(unlisted)} not in expected.txt: {', '.join(unlisted) or 'none'})"]
    for m in only_sandbox:
        lines.append(f"- {m}: {expected.get(m, ('', 'NOT EXPECTED'))[1]}")
    lines += ["", "Causes of the sandbox-only failures (most frequent first):"]
    lines += [f"- {n} x {c}" for c, n in causes.most_common(40)]
    if fixed:
        lines += ["", "Listed in expected.txt but passing now (remove them): " + ", ".join(fixed)]
    lines += ["", "Per module (run passed failures errors skipped):", "",
              "| module | sandbox | native | fails only in the sandbox |", "|---|---|---|---|"] + rows
    summary = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary)
    with open(os.path.join(out, "reports.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n".join(lines[:lines.index("Per module (run passed failures errors skipped):")]))
    print(f"full summary: {os.path.join(out, 'summary.md')}")
    if non200 or unlisted:
        sys.exit(1)


if __name__ == "__main__":
    main()
