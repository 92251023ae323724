"""Packs CPython's Lib/ into the stdlib bundle that wasmwsgi serves read-only.

Run with the native build python of the same CPython version, so that the
bytecode it writes has the magic number python.wasm expects:

    build/python bundle_stdlib.py SRC/Lib SYSCONFIGDATA OUT.zip

Each module is stored as source plus __pycache__/*.pyc compiled with the
unchecked-hash invalidation mode: the interpreter loads the bytecode without
stat-ing the source, and tracebacks still show source lines. Paths inside the
bytecode are the guest paths (/usr/local/lib/python3.11/...).
"""
import importlib.util
import os
import sys
import zipfile

GUEST_ROOT = "/usr/local/lib/python3.11"

# Packages that cannot work inside the sandbox or only serve CPython's own tests.
EXCLUDE_DIRS = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "venv",
    "lib2to3", "pydoc_data", "site-packages", "__pycache__", "msilib",
}
EXCLUDE_FILES = {"turtle.py", "_bootsubprocess.py", "this.py", "antigravity.py"}


def put(zf, name, data):
    # A fixed timestamp keeps the bundle byte-identical from build to build.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED if name.endswith("/") else zipfile.ZIP_DEFLATED
    info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
    zf.writestr(info, data, compresslevel=9)


def add_module(zf, path, rel):
    with open(path, "rb") as f:
        source = f.read()
    put(zf, rel, source)
    if not rel.endswith(".py"):
        return
    try:
        code = compile(source, f"{GUEST_ROOT}/{rel}", "exec", dont_inherit=True, optimize=0)
    except SyntaxError:
        return  # a few files are templates and not meant to compile
    data = importlib._bootstrap_external._code_to_hash_pyc(
        code, importlib.util.source_hash(source), checked=False)
    head, name = os.path.split(rel)
    pyc = os.path.join(head, "__pycache__", name[:-3] + "." + sys.implementation.cache_tag + ".pyc")
    put(zf, pyc, data)


def main(lib, sysconfigdata, out):
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for root, dirs, files in os.walk(lib):
            dirs[:] = sorted(d for d in dirs if d not in EXCLUDE_DIRS)
            for name in sorted(files):
                if name in EXCLUDE_FILES or name.endswith((".pyc", ".exe", ".whl")):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, lib)
                add_module(zf, path, rel)
        add_module(zf, sysconfigdata, os.path.basename(sysconfigdata))
        # getpath looks for lib-dynload to find exec_prefix; it stays empty (no shared modules).
        put(zf, "lib-dynload/", b"")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bundle_stdlib.py LIB_DIR SYSCONFIGDATA OUT.zip")
    main(*sys.argv[1:])
