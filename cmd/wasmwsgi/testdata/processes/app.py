"""Child processes: python command lines run in new instances of the sandbox."""

import os
import subprocess
import sys
import tempfile

# An import starts no process, whatever the app is granted.
try:
    subprocess.run([sys.executable, "-c", "pass"])
    AT_IMPORT = "ran"
except PermissionError:
    AT_IMPORT = "refused"

SECRET = "only in the parent's memory"


def run(environ):
    work = tempfile.mkdtemp()
    code = ("import os, sys; print(sys.argv[1:], os.getcwd() == %r, os.environ.get('X'), 'SECRET' in globals()); "
            "sys.stderr.write('to stderr'); sys.exit(3)" % work)
    r = subprocess.run([sys.executable, "-c", code, "a", "b"], capture_output=True, env={"X": "42"}, cwd=work)
    return [r.returncode, r.stdout.decode().strip(), r.stderr.decode()]


def files(environ):
    # The child sees the parent's /tmp, and the parent what the child wrote there.
    work = tempfile.mkdtemp()
    with open(os.path.join(work, "script.py"), "w") as f:
        f.write("import sys\nwith open('in.txt') as f, open('out.txt', 'w') as o:\n"
                "    o.write(f.read() * int(sys.argv[1]))\n")
    with open(os.path.join(work, "in.txt"), "w") as f:
        f.write("ab")
    # Without cwd, the child starts in its parent's working folder.
    os.chdir(work)
    status = subprocess.call(["python3", "script.py", "3"])
    with open(os.path.join(work, "out.txt")) as f:
        return [status, f.read()]


def pipes(environ):
    p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read().upper(), end='')"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, err = p.communicate("hello\nworld")
    merged = subprocess.check_output(
        [sys.executable, "-c", "import sys; print('1', flush=True); sys.stderr.write('2\\n'); sys.stderr.flush(); print('3')"],
        stderr=subprocess.STDOUT)
    reader = subprocess.Popen([sys.executable, "-c", "print('line one'); print('line two')"], stdout=subprocess.PIPE)
    first = reader.stdout.readline()
    reader.stdout.close()
    return [out, err, p.returncode, merged.decode().split(), first.decode(), reader.wait()]


def missing(environ):
    found = []
    for args, kw in ((["ls", "-l"], {}), ("echo hi", {"shell": True}), (["/usr/bin/python3", "-c", "pass"], {})):
        try:
            subprocess.run(args, **kw)
            found.append("ran")
        except FileNotFoundError as e:
            found.append(e.filename)
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=lambda: None)
    except OSError as e:
        found.append(e.strerror.split(" acts")[0])
    return found


def timeout(environ):
    p = subprocess.Popen([sys.executable, "-c", "print('started', flush=True)\nwhile True: pass"],
                         stdout=subprocess.PIPE)
    try:
        p.communicate(timeout=0.5)
        return ["no timeout"]
    except subprocess.TimeoutExpired as e:
        caught = e.output
    p.kill()
    out, _ = p.communicate()
    return [caught.decode(), p.returncode, out.decode()]


def killed(environ):
    marker = os.path.join(tempfile.mkdtemp(), "ran")
    p = subprocess.Popen([sys.executable, "-c", "open(%r, 'w').close()" % marker], stdin=subprocess.PIPE)
    p.kill()
    return [p.wait(), os.path.exists(marker)]


def memory(environ):
    # The child's memory is its own limits.memory: its allocation fails there.
    r = subprocess.run([sys.executable, "-c", "x = bytearray(200 << 20)"], capture_output=True)
    return [r.returncode, r.stderr.decode().strip().splitlines()[-1]]


def limit(environ):
    # limits.processes counts the request's children and theirs: with 3, the plain
    # child, the nested one and its own child start, and a fourth is refused.
    nested = ("import subprocess, sys; "
              "print(subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True).stdout.decode().strip())")
    steps = (lambda: subprocess.call([sys.executable, "-c", "pass"]),
             lambda: subprocess.check_output([sys.executable, "-c", nested]).decode().strip(),
             lambda: subprocess.call([sys.executable, "-c", "pass"]))
    got = []
    for step in steps:
        try:
            got.append(step())
        except BlockingIOError as e:
            got.append(e.strerror)
            break
    return got


def aio(environ):
    # asyncio's subprocesses would run beside the loop: they fail at once, not hang.
    import asyncio

    async def main():
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        return await proc.wait()

    try:
        return asyncio.run(main())
    except OSError as e:
        return e.strerror


def app(environ, start_response):
    route = environ["PATH_INFO"].strip("/") or "import"
    try:
        result = AT_IMPORT if route == "import" else globals()[route](environ)
    except Exception as e:
        result = "%s: %s" % (type(e).__name__, e)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(result).encode()]
