"""The guest side of wasmwsgi: a WSGI server that runs inside the sandbox.

The host (Go) calls two entry points through the builtin module _wasmwsgi:

    init()    imports the app named by the host's app_info; 0 on success, 1 on failure.
              When app_info carries "argv" (wasmwsgi run) it runs that command line
              instead and ends the instance with its exit status (see _run).
    handle()  serves the request the host holds; 0 on success, 1 on failure

Everything crosses the sandbox through the host functions documented in
hostfuncs/doc.go. This module holds the PEP 3333 rules: the environ, wsgi.input,
wsgi.errors, start_response with its exc_info rules and write() callable, lazy headers
(held until the first non-empty chunk), Content-Length bounds, and close().
"""

import os
import re
import sys

import _wasmwsgi

_app = None
_info = {}

# Sent with the first body bytes, or alone when the body is empty.
LEVEL_ERROR = 3


# The host's pairs encoding (hostfuncs/doc.go) is decoded and encoded in C, bytes read as
# latin-1: _wasmwsgi.decode_pairs(bytes) -> dict, _wasmwsgi.encode_pairs(list) -> bytes.


# ---- loading the app --------------------------------------------------------------


def init():
    global _app, _info
    try:
        _info = _wasmwsgi.decode_pairs(_wasmwsgi.app_info())
        _install_stdlib_files()
        _install_file_calls()
        _install_thread_waits()
        _install_signals()
        sys.meta_path.append(_TermiosFinder())
        try:
            _install_network()
        except Exception:
            # The app still loads; only its outbound sockets are missing.
            sys.stderr.write("wasmwsgi: outbound sockets are unavailable:\n")
            _print_exception()
        sys.meta_path.insert(0, _SeededRandom())
        _wasmwsgi.begin_app_code()
        app_dir = _info["app_dir"]
        # The working folder is the app's, as for an app started from its folder:
        # relative paths name its files.
        os.chdir(app_dir)
        sys.path.insert(0, app_dir)
        if "site_packages" in _info:
            sys.path.insert(1, _info["site_packages"])
            # Its .pth files, as site.addsitedir reads them natively (the guest starts
            # without the site import): the folders they name join sys.path, after
            # the stdlib, and their `import` lines run (namespace packages, pip's
            # *-nspkg.pth and distutils-precedence.pth).
            import site

            site.addsitedir(_info["site_packages"])
        if "argv" in _info:
            _exit(_run(_info["argv"], app_dir))
        if _info.get("main") == "1":
            _setup_child(app_dir)
            return 0
        _app = _load(_info["entrypoint"], app_dir)
        if _info.get("validate") == "1":
            import warnings
            from wsgiref.validate import validator

            warnings.simplefilter("always")
            _app = validator(_app)
    except LoadError as e:
        if e.__cause__ is None:
            sys.stderr.write("wasmwsgi: %s\n" % e)
        else:
            _print_exception()
        return 1
    except BaseException:
        _print_exception()
        return 1
    finally:
        _flush_stdio()
    return 0


class LoadError(Exception):
    """An app that cannot be found as its entrypoint or its folder says: the message
    says what was looked for, where, and what to write instead. init prints it alone,
    without the shim's traceback."""


# What a module is searched for when the entrypoint names no callable: Flask's order
# (`flask run` without --app), the factories called without arguments.
DEFAULT_NAMES = ("application", "app")
DEFAULT_FACTORIES = ("create_app", "make_app")


def _load(entrypoint, app_dir):
    if not entrypoint and _info.get("django_settings"):
        return _load_django(_info["django_settings"], app_dir)
    target, colon, spec = entrypoint.partition(":")
    # The callable's part is parsed before anything is imported: a spec that is not a
    # name, a dotted path or a call with literal arguments runs none of the app's code.
    lookup = _parse_spec(entrypoint, spec) if colon else None
    if target.endswith((".wsgi", ".py")) and ("/" in target or target.endswith(".wsgi")):
        namespace = _exec_file(app_dir + "/" + target)
        where = target
    else:
        if not all(part.isidentifier() for part in target.split(".")):
            raise LoadError(
                "entrypoint = %s: %s is not a module name; write \"module:callable\" (module is "
                "a dotted name such as mysite.wsgi), \"module:factory()\" or \"file.wsgi\""
                % (_q(entrypoint), _q(target)))
        import importlib

        module = importlib.import_module(target)
        namespace = vars(module)
        where = _where(module, target)
    if lookup is not None:
        return _resolve(namespace, lookup, where, entrypoint)
    for name in DEFAULT_NAMES:
        obj = namespace.get(name)
        if obj is not None:
            return _callable(obj, "%s: %s" % (where, name))
    for name in DEFAULT_FACTORIES:
        factory = namespace.get(name)
        if factory is not None:
            return _call_factory(factory, (), {}, "%s: %s()" % (where, name))
    raise LoadError(
        "%s defines none of %s, %s: name the WSGI callable `application`, or set "
        "entrypoint = \"%s:NAME\" (or \"%s:FACTORY()\", \"%s:FACTORY('arg')\") in wasmwsgi.toml" % (
            where, ", ".join(DEFAULT_NAMES), ", ".join(n + "()" for n in DEFAULT_FACTORIES),
            target, target, target))


def _q(s):
    """s as a TOML string, the way wasmwsgi.toml writes it."""
    import json

    return json.dumps(s, ensure_ascii=False)


def _where(module, name):
    """The app-relative file of module, or "module NAME" for one elsewhere."""
    path = getattr(module, "__file__", None) or ""
    app_dir = _info["app_dir"].rstrip("/") + "/"
    if path.startswith(app_dir):
        return path[len(app_dir):]
    return "module " + name


def _parse_spec(entrypoint, spec):
    """Parses the part after the colon the way gunicorn does (ast, and
    ast.literal_eval for a call's arguments), with dotted paths as well: returns
    (path, args, kwargs), args None when it is not a call. Nothing is evaluated."""
    import ast

    forms = ("write it as \"module:name\", \"module:name.attr\", \"module:factory()\" or "
             "\"module:factory('literal', key=1)\" (arguments are Python literals only)")
    try:
        expr = ast.parse(spec.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        raise LoadError("entrypoint = %s: %s is not a name, a dotted path or a call: %s"
                        % (_q(entrypoint), _q(spec), forms)) from None
    call = isinstance(expr, ast.Call)
    path = _dotted(expr.func if call else expr)
    if path is None:
        raise LoadError("entrypoint = %s: %s is not a name, a dotted path or a call of one: %s"
                        % (_q(entrypoint), _q(spec), forms))
    if not call:
        return path, None, None
    try:
        args = [ast.literal_eval(a) for a in expr.args]
        kwargs = {}
        for kw in expr.keywords:
            if kw.arg is None:
                raise ValueError("**")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
    except Exception:
        raise LoadError("entrypoint = %s: the arguments of %s() are not all Python literals (strings, "
                        "numbers, True/False/None, tuples, lists, dicts, sets of them): nothing else is "
                        "evaluated; %s" % (_q(entrypoint), ".".join(path), forms)) from None
    return path, args, kwargs


def _dotted(node):
    """["a", "b", "c"] for the expression a.b.c, None for anything else."""
    import ast

    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.append(node.id)
    return names[::-1]


def _resolve(namespace, lookup, where, entrypoint):
    path, args, kwargs = lookup
    if path[0] not in namespace:
        raise LoadError("entrypoint = %s: %s defines no %s" % (_q(entrypoint), where, path[0]))
    obj = namespace[path[0]]
    for i, attr in enumerate(path[1:], 1):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise LoadError("entrypoint = %s: %s in %s has no attribute %s"
                            % (_q(entrypoint), ".".join(path[:i]), where, attr)) from None
    name = "%s: %s" % (where, ".".join(path))
    if args is None:
        return _callable(obj, name)
    return _call_factory(obj, args, kwargs, name + "()")


def _call_factory(factory, args, kwargs, name):
    if not callable(factory):
        raise LoadError("%s is not callable (it is %s), so it is not a factory"
                        % (name, type(factory).__name__))
    return _callable(factory(*args, **kwargs), "what %s returned" % name)


def _callable(obj, name):
    if not callable(obj):
        raise LoadError("%s is not a WSGI callable (it is %s)" % (name, type(obj).__name__))
    return obj


def _load_django(settings_module, app_dir):
    """Loads a Django project folder the way manage.py runserver does: manage.py's
    DJANGO_SETTINGS_MODULE (the host read it from manage.py; [env] wins, as with
    os.environ.setdefault), django.setup(), then the WSGI_APPLICATION setting."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    name = os.environ["DJANGO_SETTINGS_MODULE"]
    source = "manage.py" if name == settings_module else "[env]"
    import importlib.util

    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        fix = ("the os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", ...) line of manage.py"
               if source == "manage.py" else "DJANGO_SETTINGS_MODULE in [env]")
        raise LoadError(
            "DJANGO_SETTINGS_MODULE = %r (from %s) names no module in the app folder: add %s.py, "
            "or correct %s" % (name, source, name.replace(".", "/"), fix))
    try:
        import django
    except ImportError:
        raise LoadError(
            "manage.py makes this app a Django project, but Django is not in its site-packages "
            "folder: vendor it there (apps/README.md says how)") from None
    django.setup(set_prefix=False)
    from django.conf import settings
    from django.core.servers.basehttp import get_internal_wsgi_application

    where = importlib.util.find_spec(name).origin or name
    if where.startswith(app_dir.rstrip("/") + "/"):
        where = where[len(app_dir.rstrip("/")) + 1:]
    if not getattr(settings, "WSGI_APPLICATION", None):
        raise LoadError(
            "%s sets no WSGI_APPLICATION, which names the project's WSGI callable: add "
            "WSGI_APPLICATION = \"PROJECT.wsgi.application\" (django-admin startproject writes "
            "it, with PROJECT/wsgi.py), or set entrypoint = \"PROJECT.wsgi:application\" in "
            "wasmwsgi.toml" % where)
    name = "%s: WSGI_APPLICATION = %r" % (where, settings.WSGI_APPLICATION)
    from django.core.exceptions import ImproperlyConfigured

    try:
        app = get_internal_wsgi_application()
    except ImproperlyConfigured as e:
        if not isinstance(e.__cause__, ImportError):
            raise
        raise LoadError("%s cannot be imported (%s): correct the setting, or add what it names "
                        "(django-admin startproject writes PROJECT/wsgi.py)" % (name, e.__cause__)) from e
    return _callable(app, name)


def _exec_file(path):
    import types

    with open(path, "rb") as f:
        source = f.read()
    module = types.ModuleType("__wsgi__")
    module.__file__ = path
    sys.modules["__wsgi__"] = module
    exec(compile(source, path, "exec"), module.__dict__)
    return module.__dict__


# ---- running a command line (wasmwsgi run) ------------------------------------------


def _host_text(s):
    """A string of app_info, whose UTF-8 bytes arrive read as latin-1, as Python decodes
    a path or an argument (undecodable bytes kept as surrogates)."""
    return s.encode("latin-1").decode("utf-8", "surrogateescape")


def _setup_child(app_dir):
    """A child process's start (app_info "main"): python's own main runs its command line
    once init returns, in the working folder its parent asked for (wasmwsgi_main changed
    to it before python started). The folders of PYTHONPATH come before the app's on
    sys.path, as before the stdlib natively (the interpreter's search path is fixed at
    the stdlib here)."""
    cwd = _info.get("cwd")
    os.chdir(_host_text(cwd) if cwd else app_dir)
    extra = os.environ.get("PYTHONPATH") if not sys.flags.ignore_environment else None
    if extra:
        sys.path[0:0] = [p for p in extra.split(os.pathsep) if p]


def _run(argv, app_dir):
    """Runs python's arguments as python would, in this interpreter, and returns the exit
    status: 0, SystemExit's code, 1 after an uncaught exception, 2 for a usage error.

    argv is app_info's: each argument followed by NUL, UTF-8 read as latin-1. The app
    folder is the working directory (init) and stays first on sys.path, as for requests.
    """
    args = [_host_text(a) for a in argv.split("\0")[:-1]]
    args, status, isolated = _interpreter_options(args)
    if status is not None:
        return status
    if not isolated and args and args[0] in ("-c", "-m"):
        # As python's: the working folder comes first on sys.path (-I leaves it out).
        sys.path.insert(0, "" if args[0] == "-c" else os.getcwd())
    main = sys.modules["__main__"]
    try:
        import site

        site.setquit()  # exit() and quit(), which python's own start-up gives a prompt
    except Exception:
        pass
    try:
        if not args:
            sys.argv = [""]
            _interact(main)
        elif args[0] == "-c":
            if len(args) < 2:
                return _usage("-c needs the code to run: -c CODE")
            sys.argv = ["-c"] + args[2:]
            exec(compile(args[1], "<string>", "exec"), vars(main))
        elif args[0] == "-m":
            if len(args) < 2:
                return _usage("-m needs a module name: -m MODULE")
            import importlib.util
            import runpy

            try:
                found = importlib.util.find_spec(args[1]) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                sys.stderr.write("wasmwsgi run: no module named %r on sys.path (the app folder, its "
                                 "site-packages, the stdlib)\n" % args[1])
                return 1
            # What python -m does: argv[0] becomes the module's file once it is found.
            sys.argv = ["-m"] + args[2:]
            runpy._run_module_as_main(args[1])
        elif args[0] == "-":
            sys.argv = ["-"] + args[1:]
            exec(compile(sys.stdin.read(), "<stdin>", "exec"), vars(main))
        elif args[0].startswith("-"):
            return _usage("unknown option %s" % args[0])
        else:
            status = _run_script(main, args, app_dir)
            if status:
                return status
    except SystemExit as e:
        return _exit_code(e.code)
    except BaseException:
        etype, value, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # the traceback starts in the user's code, as python's does
        sys.excepthook(etype, value.with_traceback(tb), tb)
        return 1
    return 0


# The options python takes before -c, -m or a script that change nothing here, and
# those this interpreter cannot honour once started (sys.flags is fixed at start-up),
# with what each would set.
_NO_EFFECT = "sSuq"  # no user site, site is the shim's, stdio is not buffered, no banner to quiet
_FIXED_AT_START = {"O": "the optimization level", "b": "bytes warnings", "d": "parser debugging",
                   "v": "verbose imports", "x": "skipping the first line", "i": "inspecting after the command",
                   "R": "hash randomization"}


def _interpreter_options(args):
    """Takes python's own options off the front of args, as python's command line does
    (-B, -E, -I, -s, -S, -u, -q, -W ARG, -X OPT, and letters joined: -Bu, -Werror,
    -Bc CODE), and applies them to the running interpreter. Returns the rest, starting
    at -c, -m, the script or -, an exit status when the command should not run (-V,
    -h, or an option this interpreter cannot honour), and whether -I was given."""
    ignore_env = no_bytecode = isolated = False
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg == "--":
            break
        if arg in ("-V", "--version"):
            sys.stdout.write("Python %s\n" % sys.version.split()[0])
            return args, 0, isolated
        if arg in ("-h", "-?", "--help"):
            sys.stdout.write("python options wasmwsgi run takes, before -c CODE, -m MODULE, a script or -:\n"
                             "  -B  write no bytecode    -W ARG  a warnings filter    -X OPT  into sys._xoptions\n"
                             "  -E, -I, -s, -S, -u, -q   accepted (no environment, user site or buffering to change)\n"
                             "  -V  the version\n")
            return args, 0, isolated
        if arg.startswith("--"):
            return args, _usage("unknown option %s" % arg), isolated
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in "cm":
                # The rest of the word, or the next argument, is its value.
                value = letters or (args.pop(0) if args else None)
                args[:0] = ["-" + letter] + ([value] if value is not None else [])
                letters = None
                break
            if letter in "WX":
                value = letters or (args.pop(0) if args else None)
                if value is None:
                    return args, _usage("-%s needs an argument" % letter), isolated
                if letter == "W":
                    import warnings

                    sys.warnoptions.append(value)
                    warnings._processoptions([value])
                else:
                    name, eq, val = value.partition("=")
                    sys._xoptions[name] = val if eq else True
                letters = ""
            elif letter == "B":
                no_bytecode = True
            elif letter in "EI":
                ignore_env = True
                isolated = isolated or letter == "I"
            elif letter in _NO_EFFECT:
                pass
            elif letter in _FIXED_AT_START:
                return args, _usage("-%s (%s) is fixed when the sandbox's interpreter starts" %
                                    (letter, _FIXED_AT_START[letter])), isolated
            else:
                return args, _usage("unknown option -%s" % letter), isolated
        if letters is None:
            break
    if no_bytecode:
        sys.dont_write_bytecode = True
    elif ignore_env:
        # -E and -I: PYTHONDONTWRITEBYTECODE, the one variable read, no longer counts.
        sys.dont_write_bytecode = False
    return args, None, isolated


def _run_script(main, args, app_dir):
    path = os.path.join(app_dir, args[0])
    if os.path.isdir(path):
        import runpy

        sys.argv = list(args)
        runpy.run_path(path, run_name="__main__")
        return
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write("wasmwsgi run: can't open file %r (%s): %s; a script's path is relative to "
                         "the app folder\n" % (args[0], path, e.strerror or e))
        return 2
    sys.argv = list(args)
    sys.path.insert(0, os.path.dirname(path))
    main.__file__ = path
    main.__cached__ = None
    exec(compile(source, path, "exec", dont_inherit=True), vars(main))
    return 0


def _interact(main):
    import code

    banner = "Python %s on %s, in the sandbox of app %s (the app folder is %s)" % (
        sys.version.split()[0], sys.platform, _info.get("name", "?"), _info.get("app_dir", "?"))

    class Console(code.InteractiveConsole):
        # Prompts go to stderr, as python's own prompt does, so that stdout carries only
        # what the code printed.
        def raw_input(self, prompt=""):
            sys.stderr.write(prompt)
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line.rstrip("\n")

    sys.ps1, sys.ps2 = ">>> ", "... "
    Console(vars(main)).interact(banner=banner, exitmsg="")


def _usage(msg):
    sys.stderr.write("wasmwsgi run: %s; give -c CODE, -m MODULE, a script's path or nothing "
                     "(an interactive prompt) after --\n" % msg)
    return 2


def _exit_code(code):
    # As python: None is 0, an int is itself, anything else is printed and is 1.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def _exit(status):
    import atexit

    atexit._run_exitfuncs()
    _flush_stdio()
    os._exit(status & 0xFF)


# ---- wsgi.input and wsgi.errors ---------------------------------------------------


class Input:
    """wsgi.input: reads the request body from the host in chunks, as it arrives. The
    host never returns bytes past CONTENT_LENGTH; an exhausted stream returns b''."""

    CHUNK = 64 * 1024

    def __init__(self):
        self._buf = b""
        self._eof = False

    def _fill(self, want):
        """Reads from the host until the buffer holds `want` bytes or the body ends."""
        while not self._eof and len(self._buf) < want:
            data = _wasmwsgi.read(max(self.CHUNK, want - len(self._buf)))
            if not data:
                self._eof = True
            else:
                self._buf += data

    def _take(self, n):
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read(self, size=-1):
        if size is None or size < 0:
            while not self._eof:
                self._fill(len(self._buf) + self.CHUNK)
            return self._take(len(self._buf))
        self._fill(size)
        return self._take(size)

    def readline(self, size=-1):
        limit = size if size is not None and size >= 0 else None
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                end = i + 1
                break
            if limit is not None and len(self._buf) >= limit:
                end = limit
                break
            if self._eof:
                end = len(self._buf)
                break
            start = len(self._buf)
            self._fill(len(self._buf) + 1)
        if limit is not None:
            end = min(end, limit)
        return self._take(end)

    def readlines(self, hint=-1):
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass


class Errors:
    """wsgi.errors: a text stream to the server log, one record per line, tagged by the
    host with the app and the request id."""

    def __init__(self):
        self._buf = ""

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("wsgi.errors.write() takes str, not %s" % type(s).__name__)
        self._buf += s
        if "\n" in self._buf:
            lines, _, self._buf = self._buf.rpartition("\n")
            _wasmwsgi.log(LEVEL_ERROR, lines.encode("utf-8", "backslashreplace"))
        return len(s)

    def writelines(self, seq):
        for s in seq:
            self.write(s)

    def flush(self):
        if self._buf:
            _wasmwsgi.log(LEVEL_ERROR, self._buf.encode("utf-8", "backslashreplace"))
            self._buf = ""

    def close(self):
        self.flush()


class FileWrapper:
    """wsgi.file_wrapper: iterates a file-like object in blocks and closes it."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


# ---- one request ------------------------------------------------------------------


class _Response:
    """The state of one response: headers held until the first body bytes."""

    def __init__(self, single_chunk):
        self.status = None
        self.headers = None
        self.sent = False
        self.remaining = None  # bytes still allowed by the app's Content-Length
        self.single_chunk = single_chunk
        self.done = False  # the app's Content-Length was reached

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # avoid a reference cycle
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        _check_status(status)
        _check_headers(headers)
        self.status = status
        self.headers = list(headers)
        return self.write

    def _send_headers(self, first_chunk):
        if self.status is None:
            raise AssertionError("the app wrote body bytes before calling start_response")
        headers = self.headers
        length = None
        for name, value in headers:
            if name.lower() == "content-length":
                length = int(value)
        if length is None and self.single_chunk and first_chunk is not None:
            # One-item iterable and no Content-Length: the length is known (PEP 3333).
            length = len(first_chunk)
            headers = headers + [("Content-Length", str(length))]
        if length is not None:
            self.remaining = length
        _wasmwsgi.start_response(self.status.encode("latin-1"), _wasmwsgi.encode_pairs(headers))
        self.sent = True

    def write(self, data):
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError("WSGI body chunks must be bytes, not %s" % type(data).__name__)
        if not self.sent:
            if not data:
                return
            self._send_headers(data)
        if not data or self.done:
            return
        if self.remaining is not None:
            data = data[:self.remaining]
            self.remaining -= len(data)
            if self.remaining <= 0:
                self.done = True
            if not data:
                return
        accepted = _wasmwsgi.write(data)
        if accepted < len(data):
            self.done = True

    def finish(self):
        if not self.sent:
            self._send_headers(b"" if self.single_chunk else None)


def _check_status(status):
    if type(status) is not str:
        raise TypeError("status must be str, not %s" % type(status).__name__)
    if len(status) < 4 or not status[:3].isdigit() or status[3] != " ":
        raise ValueError("status %r must look like '200 OK'" % (status,))
    _check_text("status", status)


def _check_headers(headers):
    if type(headers) is not list:
        raise TypeError("headers must be a list, not %s" % type(headers).__name__)
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError("each header must be a (name, value) tuple, not %r" % (item,))
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise TypeError("header name and value must be str: %r" % (item,))
        _check_text("header %r" % name, name)
        _check_text("header %r" % name, value)


# Any character a status or header may not hold: controls other than tab, and
# everything past latin-1.
_BAD_TEXT = re.compile("[^\t\x20-\x7e\x80-\xff]")


def _check_text(what, s):
    bad = _BAD_TEXT.search(s)
    if bad is None:
        return
    if bad.group() > "\xff":
        raise ValueError("%s is not latin-1 encodable: %r" % (what, s))
    raise ValueError("%s contains control character %r" % (what, bad.group()))


def _environ():
    environ = _wasmwsgi.decode_pairs(_wasmwsgi.environ())
    environ["wsgi.version"] = (1, 0)
    environ["wsgi.input"] = Input()
    environ["wsgi.errors"] = Errors()
    # Each request runs in a fresh instance: one thread, one process, one request.
    environ["wsgi.multithread"] = False
    environ["wsgi.multiprocess"] = True
    # In request isolation every request starts from the snapshot, so the app runs
    # once in its interpreter; in instance isolation the interpreter serves many.
    environ["wsgi.run_once"] = _info.get("isolation") != "instance"
    environ["wsgi.input_terminated"] = True
    environ["wsgi.file_wrapper"] = FileWrapper
    return environ


def handle():
    environ = _environ()
    # Every request starts from the same snapshot of this interpreter: give `random`
    # fresh entropy so no two requests share a sequence (os.urandom is the host's). 256
    # bits are plenty for a Mersenne Twister and cost a tenth of seed()'s 2,496 bytes.
    # A warm-up request, which runs before the snapshot, goes on with the sequence
    # seeded at init: it reads no entropy, so that copies of the app may share their
    # import (hostfuncs/doc.go, begin_app_code).
    if environ.pop("wasmwsgi.warmup", None) is None and "random" in sys.modules:
        sys.modules["random"].seed(int.from_bytes(os.urandom(32), "little"))
    errors = environ["wsgi.errors"]
    try:
        result = None
        response = _Response(False)
        changed = _check_warmup(environ.pop("wasmwsgi.auto_warmup", None))
        if changed:
            response.start_response("500 Internal Server Error", [("Wasmwsgi-State-Changed", changed)])
            response.finish()
            return 0
        result = _app(environ, response.start_response)
        try:
            try:
                response.single_chunk = len(result) == 1
            except Exception:
                pass
            for data in result:
                response.write(data)
                if response.done:
                    break
            response.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except BaseException:
        _print_exception(errors)
        return 1
    finally:
        errors.flush()
        _flush_stdio()
    return 0


_warmup_state = None


def _check_warmup(step):
    """The automatic warm-up (runtime.autoWarmUp) sends step "first" with its first
    request and "last" with its last one. Returns "" while the app's own modules (those
    in the app folder but not in site-packages) have the globals they had before the
    first: no name rebound, added or removed, no list, dict, set or bytearray grown or
    shrunk; otherwise the first global that changed."""
    global _warmup_state
    if step == "first":
        _warmup_state = _app_state()
    elif step == "last" and _warmup_state is not None:
        now = _app_state()
        for key, value in _warmup_state.items():
            if now.get(key) != value:
                return key
        modules = {k.rpartition(".")[0] for k in _warmup_state}
        for key in now:
            if key not in _warmup_state and key.rpartition(".")[0] in modules:
                return key
    return ""


def _app_state():
    app_dir = _info["app_dir"].rstrip("/") + "/"
    vendored = _info.get("site_packages", "\0").rstrip("/") + "/"
    state = {}
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None) or ""
        if not path.startswith(app_dir) or path.startswith(vendored):
            continue
        for key, value in list(vars(mod).items()):
            size = len(value) if isinstance(value, (list, dict, set, bytearray)) else -1
            state[name + "." + key] = (id(value), size)
    return state


def _print_exception(stream=None):
    import traceback

    text = traceback.format_exc()
    if stream is not None:
        stream.write(text)
        stream.flush()
    else:
        sys.stderr.write(text)


def _flush_stdio():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


# ---- outbound sockets, brokered by the host -------------------------------------
#
# The standard library's `socket` runs on a `_socket` written here on top of the
# host's net_* functions (hostfuncs/doc.go, "Network"): the host resolves names, checks
# every destination against the operator's grants, connects, and carries the bytes.
# `select.select`, `select.poll` (hence `selectors`) see these sockets' readiness, and
# `ssl` makes a connection TLS with the handshake done by the host. A socket listening on
# loopback, and the connections made to it, stay in guest memory (_Listener).

# ---- the stdlib's files, and bytecode written as CPython writes it ------------------

STDLIB_DIR = "/usr/local/lib/python3.11"


def _install_stdlib_files():
    """What CPython's start-up gives a program, and this interpreter's config does not.

    - sys._stdlib_dir, and the __file__ of the frozen stdlib modules. The interpreter
      starts with a fixed module search path and a home, so its path calculation leaves
      the stdlib folder unset; the frozen modules imported at start-up (os, codecs, io,
      stat, posixpath, ...) then had no __file__, and frozen modules imported later
      none either. Code finds the stdlib with os.path.dirname(os.__file__), and
      inspect, linecache and traceback read a frozen module's source through it. The
      files are those of the stdlib the sandbox serves, which the frozen modules were
      built from; the fix-up is importlib's own (FrozenImporter._resolve_filename) for
      the modules that predate it.
    - sys.dont_write_bytecode is False, as CPython's default is, unless the app's
      environment sets PYTHONDONTWRITEBYTECODE: imports from /tmp and /data cache their
      bytecode in __pycache__ beside the source. Imports from the read-only app folder
      and stdlib try and are refused (EROFS), which importlib ignores, as it does on any
      read-only folder.
    """
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    if getattr(sys, "_stdlib_dir", None):
        return
    sys._stdlib_dir = STDLIB_DIR
    from importlib.machinery import FrozenImporter

    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        state = getattr(spec, "loader_state", None)
        if spec is None or spec.loader is not FrozenImporter or state is None:
            continue
        if getattr(state, "filename", None) or not getattr(state, "origname", None):
            continue
        ispkg = spec.submodule_search_locations is not None
        filename, pkgdir = FrozenImporter._resolve_filename(state.origname, spec.name, ispkg)
        state.filename = filename
        if filename:
            module.__file__ = filename
        if ispkg and pkgdir and pkgdir not in spec.submodule_search_locations:
            spec.submodule_search_locations.insert(0, pkgdir)
            if module.__path__ is not spec.submodule_search_locations:
                module.__path__.insert(0, pkgdir)


# ---- file calls that the sandbox's libc or host answer unlike Linux ------------------


def _install_file_calls():
    """Two answers of the layers below os differ from Linux's; os gets wrappers that
    give Linux's, and takes them into its supports_* sets in place of the originals.

    - os.utime(path) with no times: wasi-libc (2022) reads the times from a null
      pointer instead of asking for "now", so the file got the time 0. The wrapper
      passes the current time. With follow_symlinks=False, wazero follows a symbolic
      link all the same, so a link's own times cannot be set: os.utime leaves
      supports_follow_symlinks (shutil then leaves them alone, as on platforms without
      lutimes) and raises NotImplementedError for follow_symlinks=False, as CPython
      does there.
    - os.link, os.rename and os.replace between two file systems (/tmp and /app, say):
      wazero answers ENOSYS, where Linux answers EXDEV, which is what shutil.move and
      others test for. ENOSYS from these calls means nothing else in the sandbox (each
      file system implements them), so the wrappers raise EXDEV instead.
    """
    import errno
    import functools
    import time

    def wrap(name, fix):
        original = getattr(os, name)
        wrapper = functools.wraps(original)(fix(original))
        setattr(os, name, wrapper)
        for support in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks,
                        os.supports_effective_ids):
            if original in support:
                support.discard(original)
                support.add(wrapper)

    def utime(original):
        def utime(path, times=None, *, ns=None, dir_fd=None, follow_symlinks=True):
            if times is None and ns is None:
                now = time.time_ns()
                ns = (now, now)
            if not follow_symlinks:
                raise NotImplementedError("utime: follow_symlinks unavailable on this platform")
            if ns is None:
                return original(path, times, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
            return original(path, times, ns=ns, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        return utime

    def cross_device(original):
        def call(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), e.filename, None, e.filename2) from None
        return call

    wrap("utime", utime)
    os.supports_follow_symlinks.discard(os.utime)
    for name in ("link", "rename", "replace"):
        wrap(name, cross_device)
    if hasattr(_wasmwsgi, "set_file_mode"):
        _install_modes(wrap)


def _install_modes(wrap):
    """Mode bits and owners, as far as the sandbox has them.

    WASI has neither: CPython's os.chmod did nothing, and there was no os.chown. A
    stat now shows Linux's usual permission bits for the file's type (posixmodule.c
    asks _wasmwsgi.c, see file-modes.patch), and:

    - in the private /tmp, os.chmod, os.fchmod, os.chown, os.lchown and os.fchown set
      what stat reports for the file for as long as the file lives. The sandbox's user
      is uid 0 (os.getuid, os.geteuid, os.getgid and os.getegid, which WASI lacks, say
      so, and files show owner 0): it may give its /tmp files to anyone, and
      permissions are not enforced on it, as on root;
    - in the read-only trees (the app folder, the stdlib) they fail with EROFS, as on
      a read-only mount;
    - in the data folder the files are the host's: os.chmod is accepted and changes
      nothing, as before, so that shutil.copy into it still works; os.chown fails with
      EPERM unless it changes nothing;
    - os.access answers as Linux does for root: writing is refused in the read-only
      trees (EROFS there, so False), executing needs an x bit on a file, and the
      rest is allowed (the C library's answer was true for anything that exists);
    - a file or folder that os.open or os.mkdir creates in /tmp gets the mode asked
      for, less the umask (os.umask, 0o022 to begin with, as Linux's usual), as
      tempfile's 0o600 files and 0o700 folders do. open() creates with 0o666, which
      less 0o022 is the usual 0o644 already; a file open() creates after the umask
      changed still shows 0o644 (it does not go through os.open).

    A /tmp file is one whose st_dev is 0 and st_ino is not: the read-only trees
    answer st_ino 0, the data folder the host's device.
    """
    import errno
    import stat

    def where(st):
        if st.st_ino == 0:
            return "readonly"
        return "scratch" if st.st_dev == 0 else "data"

    def file_stat(path, dir_fd, follow_symlinks):
        if isinstance(path, int):
            return os.fstat(path)
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    def read_only(path):
        return OSError(errno.EROFS, os.strerror(errno.EROFS), None if isinstance(path, int) else path)

    def chmod(original):
        def chmod(path, mode, *, dir_fd=None, follow_symlinks=True):
            if not isinstance(mode, int):
                raise TypeError("'%s' object cannot be interpreted as an integer" % type(mode).__name__)
            st = file_stat(path, dir_fd, follow_symlinks)
            if not follow_symlinks and stat.S_ISLNK(st.st_mode):
                # Linux has no lchmod, and its fchmodat cannot change a link's mode.
                raise NotImplementedError("chmod: follow_symlinks unavailable on this platform")
            kind = where(st)
            if kind == "readonly":
                raise read_only(path)
            if kind == "scratch":
                _wasmwsgi.set_file_mode(st.st_ino, mode & 0o7777, -1, -1)
        return chmod

    def chown(path, uid, gid, *, dir_fd=None, follow_symlinks=True):
        for v in (uid, gid):
            if not isinstance(v, int):
                raise TypeError("uid and gid must be integers, not %s" % type(v).__name__)
        st = file_stat(path, dir_fd, follow_symlinks)
        kind = where(st)
        if kind == "readonly":
            raise read_only(path)
        if kind == "scratch":
            _wasmwsgi.set_file_mode(st.st_ino, -1, uid, gid)
        elif uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), None if isinstance(path, int) else path)

    def lchown(path, uid, gid):
        return chown(path, uid, gid, follow_symlinks=False)

    def fchmod(fd, mode):
        return os.chmod(fd, mode)

    def fchown(fd, uid, gid):
        return chown(fd, uid, gid)

    umask_now = [0o022]

    def umask(mask):
        old, umask_now[0] = umask_now[0], mask & 0o777
        return old

    def created(st, mode):
        # st, just made, shows the bits its type gets by default.
        mode &= ~umask_now[0] & 0o7777
        if where(st) == "scratch" and mode != stat.S_IMODE(st.st_mode):
            _wasmwsgi.set_file_mode(st.st_ino, mode, -1, -1)

    def open_(original):
        def open(path, flags, mode=0o777, *, dir_fd=None):
            new = False
            if flags & os.O_CREAT:
                try:
                    os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    new = True
                except OSError:
                    pass
            fd = original(path, flags, mode, dir_fd=dir_fd)
            if new:
                created(os.fstat(fd), mode)
            return fd
        return open

    def mkdir(original):
        def mkdir(path, mode=0o777, *, dir_fd=None):
            original(path, mode, dir_fd=dir_fd)
            created(os.stat(path, dir_fd=dir_fd), mode)
        return mkdir

    def access(original):
        def access(path, mode, *, dir_fd=None, effective_ids=False, follow_symlinks=True):
            # The C library's answer first: it checks the arguments as CPython does (a
            # path, never a descriptor) and says whether the file exists.
            if not original(path, mode, dir_fd=dir_fd, effective_ids=effective_ids,
                            follow_symlinks=follow_symlinks):
                return False
            try:
                st = file_stat(path, dir_fd, follow_symlinks)
            except OSError:
                return False
            if mode & os.W_OK and where(st) == "readonly" and not stat.S_ISCHR(st.st_mode):  # devices take writes
                return False
            if mode & os.X_OK and not stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o111:
                return False
            return True
        return access

    import posix

    wrap("access", access)
    wrap("chmod", chmod)
    wrap("open", open_)
    wrap("mkdir", mkdir)
    def getuid():
        return 0

    def geteuid():
        return 0

    def getgid():
        return 0

    def getegid():
        return 0

    for f in (chown, lchown, fchmod, fchown, umask, getuid, geteuid, getgid, getegid):
        f.__module__ = "posix"
        if not hasattr(os, f.__name__):
            setattr(os, f.__name__, f)
    # Code that calls posix directly (as CPython's tests do) gets the same functions.
    for name in ("access", "chmod", "chown", "lchown", "fchmod", "fchown", "umask", "open", "mkdir", "getuid",
                 "geteuid", "getgid", "getegid"):
        setattr(posix, name, getattr(os, name))
    os.supports_fd.update((os.chmod, os.chown))
    os.supports_dir_fd.update((os.chmod, os.chown))
    os.supports_follow_symlinks.update((os.chmod, os.chown))


# ---- threads that only wait for their own work -------------------------------------
#
# python.wasm has one thread: threading.Thread.start raises RuntimeError. A
# ThreadPoolExecutor's worker and asgiref's CurrentThreadExecutor, though, only run
# work whose result their caller then waits for, so here that work runs at once, in the
# calling thread, when it is submitted. It runs as a worker thread would see it: with no
# asyncio event loop running (a running loop is per thread).


def _run_at_once(future, fn, args, kwargs):
    if not future.set_running_or_notify_cancel():
        return future
    events = sys.modules.get("asyncio.events")
    loop = events._get_running_loop() if events else None
    if loop is not None:
        events._set_running_loop(None)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
    finally:
        if loop is not None:
            events._set_running_loop(loop)
    return future


def _patch_thread_pool(mod):
    from concurrent.futures import _base

    def submit(self, fn, /, *args, **kwargs):
        with self._shutdown_lock:
            if self._broken:
                raise mod.BrokenThreadPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if mod._shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        return _run_at_once(_base.Future(), fn, args, kwargs)

    submit.__doc__ = mod.ThreadPoolExecutor.submit.__doc__
    mod.ThreadPoolExecutor.submit = submit


def _patch_current_thread_executor(mod):
    cls = getattr(mod, "CurrentThreadExecutor", None)
    if cls is None or not hasattr(cls, "run_until_future"):
        return
    import threading
    from concurrent.futures import Future

    submit, run_until_future = cls.submit, cls.run_until_future

    def submit_here(self, fn, *args, **kwargs):
        # Work for the thread that waits in run_until_future: with one thread, the
        # submitter runs below that wait on the same stack, so it runs now.
        if threading.current_thread() is getattr(self, "_work_thread", None) and not self._broken:
            return _run_at_once(Future(), fn, args, kwargs)
        return submit(self, fn, *args, **kwargs)

    def run_until_future_here(self, future):
        queue = getattr(self, "_work_queue", None)
        if not future.done() and queue is not None and not queue.qsize():
            raise RuntimeError(
                "this would wait forever: the sandbox has one thread, and the future it waits for "
                "needs another (an async_to_sync inside sync_to_async inside async_to_sync)")
        return run_until_future(self, future)

    cls.submit, cls.run_until_future = submit_here, run_until_future_here


def _patch_event_loop(mod):
    async def shutdown_default_executor(self):
        # asyncio starts a thread only to wait for the executor's shutdown; its work
        # has all run already.
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        try:
            self._default_executor.shutdown(wait=True)
        finally:
            self._default_executor = None

    mod.BaseEventLoop.shutdown_default_executor = shutdown_default_executor


def _patch_condition(mod):
    wait = mod.Condition.wait

    def wait_here(self, timeout=None):
        # Only another thread could notify: without a timeout this wait never ends.
        if timeout is None:
            raise RuntimeError(
                "this would wait forever: the sandbox has one thread, so nothing can complete what this waits "
                "for (a Future, Event, Queue or Condition that another thread would have completed)")
        return wait(self, timeout)

    wait_here.__doc__ = wait.__doc__
    mod.Condition.wait = wait_here


# ---- child processes: subprocess.Popen of this interpreter ----------------------------
#
# A command line of python (sys.executable, or python, python3, python3.11 looked up on
# PATH) runs in a new instance of the app's interpreter through proc_run
# (hostfuncs/doc.go, "Processes"), when the operator's limits.processes grants it. The
# parent waits in the call while the child runs to its end: the child starts when the
# parent first waits on it, polls it, reads its output or communicates with it (or when
# its Popen is collected), with everything written to its stdin pipe before that as
# its whole input. kill(), terminate() and send_signal() before that end it unstarted.
# A timeout that passes stops it, as kill() would: TimeoutExpired carries what it wrote,
# and the next wait() returns -9. Any other program is not found (FileNotFoundError),
# as on a machine without it; preexec_fn, pass_fds, user, group and extra_groups,
# which act on a process the sandbox does not make, raise OSError(ENOTSUP).

_PYTHON_NAMES = ("python", "python3", "python3.%d" % sys.version_info[1])
_next_pid = [os.getpid() + 1]


def _is_python(program, cwd):
    if "/" not in program:
        return program in _PYTHON_NAMES
    # A path is the child's: relative to the folder it starts in, links followed.
    return os.path.realpath(os.path.join(cwd, program)) == sys.executable


def _patch_subprocess(mod):
    import errno
    import io
    import signal

    mod._can_fork_exec = True  # Popen.__init__ refuses before anything else without it
    Popen = mod.Popen
    PIPE, STDOUT, DEVNULL = mod.PIPE, mod.STDOUT, mod.DEVNULL
    SIGKILL = getattr(signal, "SIGKILL", 9)

    class ChildInput(io.RawIOBase):
        """The parent's end of a child's stdin pipe: what is written is the child's input."""

        def __init__(self, popen):
            self._popen = popen

        def writable(self):
            return True

        def write(self, b):
            if self._popen._ww_ran:
                raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
            self._popen._ww_input += bytes(b)
            return len(b)

    class ChildOutput(io.RawIOBase):
        """The parent's end of a child's stdout or stderr pipe: reading starts the child."""

        def __init__(self, popen, which):
            self._popen, self._which, self._at = popen, which, 0

        def readable(self):
            return True

        def readinto(self, b):
            p = self._popen
            if not p._ww_ran:
                p._ww_run(None)
            data = p._ww_output[self._which]
            n = min(len(b), len(data) - self._at)
            b[:n] = data[self._at:self._at + n]
            self._at += n
            return n

    def _get_handles(self, stdin, stdout, stderr):
        # No descriptors: __init__ wraps none, and _execute_child makes the pipes' ends.
        self._ww_modes = (stdin, stdout, stderr)
        return (-1,) * 6

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                       creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                       restore_signals, gid, gids, uid, umask, start_new_session, process_group):
        if isinstance(args, (str, bytes)):
            args = [args]
        elif isinstance(args, os.PathLike):
            if shell:
                raise TypeError("path-like args is not allowed when shell is true")
            args = [args]
        else:
            args = list(args)
        if shell:
            args = ["/bin/sh", "-c"] + args
        args = [os.fsdecode(a) for a in args]
        program = os.fsdecode(executable) if executable is not None else args[0]
        for given, what in ((preexec_fn is not None, "preexec_fn"), (pass_fds, "pass_fds"),
                            (uid is not None, "user"), (gid is not None, "group"), (gids is not None, "extra_groups")):
            if given:
                raise OSError(errno.ENOTSUP, "%s acts on a process of the system; a child here is an instance "
                              "of the sandbox's interpreter" % what)
        # As the child of a fork would: it changes to cwd, then looks for the program.
        if cwd is None:
            cwd = os.getcwd()  # the child starts where its parent is, as a child inherits it
        else:
            cwd = os.path.abspath(os.fsdecode(cwd))
            if not os.path.isdir(cwd):
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
        if not _is_python(program, cwd):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if env is None:
            env = os.environ
        self._ww_env = []
        for k, v in env.items():
            k, v = os.fsdecode(k), os.fsdecode(v)
            if not k or "=" in k:
                raise ValueError("illegal environment variable name")
            self._ww_env.append(k + "=" + v)
        if any("\0" in a for a in args + self._ww_env):
            raise ValueError("embedded null byte")
        self._ww_argv, self._ww_cwd = args, cwd
        self._ww_input, self._ww_output, self._ww_ran, self._ww_signal, self._ww_status = (
            b"", {1: b"", 2: b""}, False, None, None)
        self.pid = _next_pid[0]
        _next_pid[0] += 1
        self._child_created = True
        stdin, stdout, stderr = self._ww_modes

        def wrap(raw, writing):
            # As io.open(fd, mode, bufsize) in Popen.__init__: bufsize 0 is the raw
            # stream, 1 line-buffered text.
            if self._ww_bufsize == 0 and not self.text_mode:
                return raw
            stream = io.BufferedWriter(raw) if writing else io.BufferedReader(raw)
            if self.text_mode:
                stream = io.TextIOWrapper(stream, write_through=writing, encoding=self.encoding, errors=self.errors,
                                          line_buffering=writing and self._ww_bufsize == 1)
            return stream

        if stdin == PIPE:
            self.stdin = wrap(ChildInput(self), True)
        if stdout == PIPE:
            self.stdout = wrap(ChildOutput(self, 1), False)
        if stderr == PIPE:
            self.stderr = wrap(ChildOutput(self, 2), False)

    def _ww_stdin(self):
        mode = self._ww_modes[0]
        if mode == PIPE:
            if self.stdin is not None and not self.stdin.closed:
                self.stdin.flush()
            return self._ww_input
        if mode is None or mode == DEVNULL:
            return b""
        fd = mode if isinstance(mode, int) else mode.fileno()
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _ww_deliver(self, mode, data, which):
        if mode == PIPE:
            self._ww_output[which] = data
        elif mode != DEVNULL and mode != STDOUT:
            if mode is None:  # the parent's own descriptor, as a child inherits it
                fd = which
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
            else:
                fd = mode if isinstance(mode, int) else mode.fileno()
            while data:
                data = data[os.write(fd, data):]

    def _ww_run(self, timeout):
        """Runs the child to its end, or until timeout seconds pass (TimeoutExpired)."""
        if self._ww_ran:
            return
        if self._ww_signal is not None:
            self._ww_ran, self.returncode = True, -self._ww_signal
            self._ww_status = self.returncode
            return
        stdin_mode, stdout_mode, stderr_mode = self._ww_modes
        pairs = [("argv", "".join(a + "\0" for a in self._ww_argv)), ("env", "".join(kv + "\0" for kv in self._ww_env)),
                 ("stdin", _ww_stdin(self))]
        pairs.append(("cwd", self._ww_cwd))
        if stderr_mode == STDOUT:
            pairs.append(("stderr", "stdout"))
        spec = _wasmwsgi.encode_pairs([(k, v.decode("latin-1") if isinstance(v, bytes)
                                        else v.encode("utf-8", "surrogateescape").decode("latin-1")) for k, v in pairs])
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        self._ww_ran = True
        status = _wasmwsgi.proc_run(spec, ms)
        if status in (-7, -6, -3):
            self._ww_ran = False
            if status == -7:
                raise PermissionError(errno.EPERM, "starting a process is not granted to this app: the server's "
                                      "operator grants it with limits.processes")
            if status == -6:
                raise BlockingIOError(errno.EAGAIN, "this request started as many processes as limits.processes allows")
            raise OSError(errno.EINVAL, "the host refused the command line")
        if status < 0 and status != -8:
            raise OSError(errno.EIO, "the child process could not run (host error %d)" % status)
        out, err = _wasmwsgi.proc_output(1), _wasmwsgi.proc_output(2)
        _ww_deliver(self, stdout_mode, out, 1)
        _ww_deliver(self, stderr_mode, err, 2)
        if status == -8:
            self._ww_signal = SIGKILL
            raise mod.TimeoutExpired(self.args, timeout, output=out if stdout_mode == PIPE else None,
                                     stderr=err if stderr_mode == PIPE else None)
        self.returncode = self._ww_status = status if status < 256 else -(status - 256)

    def _finish(self):
        # The status a wait reports, also after code set returncode back to None: the
        # child's, or the signal's that ended it.
        if self.returncode is None and self._ww_ran:
            self.returncode = self._ww_status if self._ww_status is not None else -(self._ww_signal or SIGKILL)

    def _wait(self, timeout):
        if not self._ww_ran:
            self._ww_run(timeout)
        _finish(self)
        return self.returncode

    def _internal_poll(self, _deadstate=None, *args, **kwargs):
        if not self._ww_ran:
            try:
                self._ww_run(None)
            except OSError:
                if _deadstate is None:
                    raise
                self.returncode = _deadstate
        _finish(self)
        return self.returncode

    def _communicate(self, input, endtime, orig_timeout):
        if self.stdin is not None and not self._communication_started:
            if input:
                self.stdin.write(input)
            try:
                self.stdin.close()
            except BrokenPipeError:
                pass
        self._communication_started = True
        if not self._ww_ran:
            self._ww_run(self._remaining_time(endtime))
        out = self.stdout.read() if self.stdout is not None else None
        err = self.stderr.read() if self.stderr is not None else None
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        return out, err

    def send_signal(self, sig):
        if self.returncode is None and not self._ww_ran and self._ww_signal is None and sig != 0:
            self._ww_signal = sig

    def terminate(self):
        self.send_signal(getattr(signal, "SIGTERM", 15))

    def kill(self):
        self.send_signal(SIGKILL)

    init = Popen.__init__

    def __init__(self, args, bufsize=-1, *rest, **kwargs):
        self._ww_bufsize = bufsize
        init(self, args, bufsize, *rest, **kwargs)

    __init__.__doc__ = init.__doc__
    for f in (__init__, _get_handles, _execute_child, _ww_run, _wait, _internal_poll, _communicate, send_signal,
              terminate, kill):
        f.__qualname__ = "Popen." + f.__name__
        setattr(Popen, f.__name__, f)


def _patch_unix_events(mod):
    """asyncio's subprocesses run beside the event loop, which then waits for them to
    exit: a child here runs only while its parent waits in Popen, so the loop would
    wait forever. They fail at once instead."""
    import errno

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=None,
                                         **kwargs):
        raise OSError(errno.ENOTSUP, "asyncio's subprocesses run beside the event loop, and a child process "
                      "here runs only while its parent waits: use subprocess.run")

    mod._UnixSelectorEventLoop._make_subprocess_transport = _make_subprocess_transport


_import_patches = {"threading": _patch_condition, "concurrent.futures.thread": _patch_thread_pool,
                   "asyncio.base_events": _patch_event_loop, "asyncio.unix_events": _patch_unix_events,
                   "asgiref.current_thread_executor": _patch_current_thread_executor,
                   "subprocess": _patch_subprocess}


class _PatchOnImport:
    """A meta path finder that lets the normal finders find the modules above, then
    patches each once it has run."""

    def find_spec(self, name, path, target=None):
        if name not in _import_patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        spec.loader = _PatchingLoader(spec.loader, _import_patches[name])
        return spec


class _PatchingLoader:
    def __init__(self, loader, patch):
        self._loader, self._patch = loader, patch

    def __getattr__(self, name):  # get_source, get_code, is_package, ...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)


def _install_thread_waits():
    for name, patch in _import_patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchOnImport())


def _install_signals():
    """What signal lacks on WASI, for code that sets up handlers: valid_signals (CPython
    builds it only where the C library has signal sets), siginterrupt, and a wakeup
    descriptor that may be one of the sandbox's own sockets. No signal is ever
    delivered from outside, so a handler is registered and never runs, as in a process
    that is sent none; asyncio's add_signal_handler, which needs all three, works."""
    import _signal
    import signal

    if hasattr(_signal, "valid_signals"):
        return

    def valid_signals():
        """Return a set of valid signal numbers on this platform."""
        return {signal._int_to_enum(n, signal.Signals) for n in range(1, _signal.NSIG)}

    def siginterrupt(signalnum, flag):
        """Change system call restart behaviour. No signal interrupts a call here."""
        if not 1 <= signalnum < _signal.NSIG:
            raise ValueError("signal number out of range")

    c_set_wakeup_fd = _signal.set_wakeup_fd
    wakeup = [-1]  # a socket of the sandbox's, set as the wakeup descriptor

    def set_wakeup_fd(fd, /, *, warn_on_full_buffer=True):
        """Sets the fd to be written to (with the signal number) when a signal comes in."""
        sock = _sockets_by_fd.get(fd) if isinstance(fd, int) else None
        if sock is not None:
            if sock._timeout != 0.0:
                raise ValueError("the fd %d must be in non-blocking mode" % fd)
            old = c_set_wakeup_fd(-1)
        else:
            old = c_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
        if wakeup[0] != -1:
            old = wakeup[0]
        wakeup[0] = fd if sock is not None else -1
        return old

    set_wakeup_fd.__doc__ = c_set_wakeup_fd.__doc__
    for fn in (valid_signals, siginterrupt, set_wakeup_fd):
        fn.__module__ = "signal"
    for mod in (_signal, signal):
        mod.valid_signals = valid_signals
        mod.siginterrupt = siginterrupt
        mod.set_wakeup_fd = set_wakeup_fd


# Linux's values, which code passes back and forth without looking at them.
_TERMIOS_CONSTANTS = dict(
    TCSANOW=0, TCSADRAIN=1, TCSAFLUSH=2, TCIFLUSH=0, TCOFLUSH=1, TCIOFLUSH=2, TCOOFF=0, TCOON=1, TCIOFF=2, TCION=3,
    IGNBRK=1, BRKINT=2, IGNPAR=4, PARMRK=8, INPCK=16, ISTRIP=32, INLCR=64, IGNCR=128, ICRNL=256, IXON=1024,
    IXANY=2048, IXOFF=4096, IMAXBEL=8192, OPOST=1, ONLCR=4, CSIZE=48, CS5=0, CS6=16, CS7=32, CS8=48, CSTOPB=64,
    CREAD=128, PARENB=256, PARODD=512, HUPCL=1024, CLOCAL=2048, ISIG=1, ICANON=2, ECHO=8, ECHOE=16, ECHOK=32,
    ECHONL=64, NOFLSH=128, TOSTOP=256, IEXTEN=32768, VINTR=0, VQUIT=1, VERASE=2, VKILL=3, VEOF=4, VTIME=5, VMIN=6,
    VSTART=8, VSTOP=9, VSUSP=10, VEOL=11, NCCS=32, B0=0, B9600=13, B38400=15, B115200=4098, TIOCGWINSZ=21523,
    TIOCSWINSZ=21524)


class _SeededRandom:
    """`random`, which seeds itself when it is imported: imported by the shim while
    sys.path holds the stdlib alone, before the app's own code runs, so that its seed is
    the shim's entropy (begin_app_code, hostfuncs/doc.go); from then on, entropy the app
    reads is its own. It is kept out of sys.modules until something imports it, which
    gets this module, as imported from its file: handle() reseeds `random` before each
    request only once it is in sys.modules, and a request pays for no reseeding of a
    `random` nobody uses."""

    def __init__(self):
        import random

        self.module = sys.modules.pop("random")
        self.spec = random.__spec__

    def find_spec(self, name, path, target=None):
        if name != "random":
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        # Its own spec and loader again: it was imported from its file.
        module.__spec__, module.__loader__ = self.spec, self.spec.loader
        sys.meta_path.remove(self)


class _TermiosFinder:
    """`termios`, which WASI has no calls for: no descriptor in the sandbox is a terminal,
    so every call fails as Linux's do on a descriptor that is not one (termios.error,
    ENOTTY). `tty`, `getpass` and the libraries that import them at import time load."""

    def find_spec(self, name, path, target=None):
        if name != "termios":
            return None
        import importlib.machinery
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import errno

        class error(Exception):
            pass

        error.__module__ = "termios"

        def not_a_terminal(*args):
            raise error(errno.ENOTTY, "Inappropriate ioctl for device")

        module.error = error
        for name in ("tcgetattr", "tcsetattr", "tcsendbreak", "tcdrain", "tcflush", "tcflow", "tcgetwinsize",
                     "tcsetwinsize"):
            module.__dict__[name] = not_a_terminal
        module.__dict__.update(_TERMIOS_CONSTANTS)


_NET_ERRORS = {}  # host error code -> (exception class or None for gaierror, errno name)
_sockets_by_fd = {}  # fileno -> socket, for select and poll
_detached_ends = {}  # fileno -> _PairEnd of a socket pair end between detach() and socket(fileno=)
_next_fd = [1 << 20]


class _PairEnd:
    """One end of a socket pair held in guest memory: the bytes sent to it, and whether
    its peer can still send. Its readiness is known without the host."""

    LIMIT = 1 << 18  # bytes an end holds before a send would block

    def __init__(self):
        self.data = bytearray()
        self.peer = None
        self.closed = False
        self.eof = False  # the peer closed or shut down writing: data is all there is

    def readable(self):
        return bool(self.data) or self.eof or self.closed

    def writable(self):
        return self.peer.closed or self.peer.eof or len(self.peer.data) < self.LIMIT


class _Listener:
    """A TCP socket listening on loopback inside this instance. A connection this same
    instance makes to its port is a socket pair: the client gets one end at once, and
    the other waits in the queue for accept. Nothing outside the instance reaches it:
    the host opens no port, so other requests, other apps and the network never see it.
    """

    def __init__(self, backlog):
        self.queue = []  # the server's ends of connections not yet accepted
        self.backlog = backlog
        self.closed = False

    def readable(self):
        return bool(self.queue) or self.closed

    def writable(self):
        return False


def _install_network():
    import errno
    import types

    if not hasattr(_wasmwsgi, "net_connect"):
        return
    m = types.ModuleType("_socket")
    m.__doc__ = ("Sockets brokered by the wasmwsgi host (outbound TCP), and loopback listeners inside the "
                 "instance.")
    consts = dict(
        AF_UNSPEC=0, AF_UNIX=1, AF_INET=2, AF_INET6=10, SOCK_STREAM=1, SOCK_DGRAM=2, SOCK_RAW=3,
        SOCK_NONBLOCK=0o4000, SOCK_CLOEXEC=0o2000000,
        IPPROTO_IP=0, IPPROTO_TCP=6, IPPROTO_UDP=17, IPPROTO_IPV6=41, SOL_SOCKET=1, SOL_TCP=6,
        SO_REUSEADDR=2, SO_TYPE=3, SO_ERROR=4, SO_BROADCAST=6, SO_SNDBUF=7, SO_RCVBUF=8,
        SO_KEEPALIVE=9, SO_LINGER=13, SO_REUSEPORT=15, TCP_NODELAY=1, TCP_MAXSEG=2, TCP_KEEPIDLE=4,
        TCP_KEEPINTVL=5, TCP_KEEPCNT=6, TCP_USER_TIMEOUT=18, IPV6_V6ONLY=26,
        SHUT_RD=0, SHUT_WR=1, SHUT_RDWR=2, MSG_PEEK=2, MSG_WAITALL=0x100, MSG_DONTWAIT=0x40,
        MSG_NOSIGNAL=0x4000, AI_PASSIVE=1, AI_CANONNAME=2, AI_NUMERICHOST=4, AI_V4MAPPED=8,
        AI_ALL=0x10, AI_ADDRCONFIG=0x20, AI_NUMERICSERV=0x400, NI_NUMERICHOST=1, NI_NUMERICSERV=2,
        NI_NOFQDN=4, NI_NAMEREQD=8, NI_DGRAM=16, EAI_AGAIN=-3, EAI_FAIL=-4, EAI_FAMILY=-6,
        EAI_NONAME=-2, EAI_SERVICE=-8, SOMAXCONN=128, INADDR_ANY=0, INADDR_LOOPBACK=0x7F000001,
    )
    vars(m).update(consts)
    m.has_ipv6 = True
    m.error = OSError
    m.timeout = TimeoutError

    class gaierror(OSError):
        pass

    class herror(OSError):
        pass

    gaierror.__module__ = herror.__module__ = "socket"
    m.gaierror, m.herror = gaierror, herror

    codes = {
        -5: (OSError, errno.EIO), -6: (OSError, errno.ENOBUFS), -7: (PermissionError, errno.EACCES),
        -8: (TimeoutError, errno.ETIMEDOUT), -9: (BlockingIOError, errno.EAGAIN),
        -10: (ConnectionRefusedError, errno.ECONNREFUSED), -11: (gaierror, consts["EAI_NONAME"]),
        -12: (ConnectionResetError, errno.ECONNRESET), -13: (OSError, errno.EBADF),
    }

    def fail(code, resolving=False):
        msg = _wasmwsgi.net_error().decode("utf-8", "replace") or "host error %d" % code
        cls, num = codes.get(code, (OSError, errno.EIO))
        if resolving and cls is not gaierror:
            cls, num = gaierror, consts["EAI_FAIL"] if code != -7 else consts["EAI_NONAME"]
        return cls(num, msg)

    default_timeout = [None]

    def to_ms(t):
        if t is None:
            return -1
        return max(1, int(t * 1000)) if t > 0 else 0

    def check_timeout(t):
        if t is None:
            return None
        t = float(t)
        if t < 0:
            raise ValueError("Timeout value out of range")
        return t

    # Options apps commonly set; the host's connections use its own settings.
    accepted_options = {(1, 9), (1, 2), (1, 15), (1, 7), (1, 8), (1, 13), (6, 1), (6, 4), (6, 5), (6, 6), (6, 18),
                        (41, 26)}

    class socket:
        """A TCP client socket whose connection the host makes and carries."""

        # socket.socket adds __weakref__ in its own __slots__: this class must not
        # have one, and keeps a __dict__ for what ssl sets on a wrapped socket.
        __slots__ = ("_family", "_type", "_proto", "_h", "_shut", "_timeout", "_opts", "_fd", "_tls", "_pair",
                     "_bound", "_lsn", "__dict__")

        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            self._pair = self._bound = self._lsn = None
            if fileno is not None:
                # Only a socket pair's end, detached by socket.socketpair to wrap it, or
                # a connection accept() took from a loopback listener.
                end = _detached_ends.pop(fileno, None) if isinstance(fileno, int) else None
                if end is None:
                    raise OSError(errno.EBADF, "sockets cannot be made from file descriptors in this sandbox")
                self._adopt(end, fileno, consts["AF_UNIX"] if family == -1 else family)
                return
            family = consts["AF_INET"] if family == -1 else family
            type = consts["SOCK_STREAM"] if type == -1 else type
            if family not in (0, 1, 2, 10):
                raise OSError(errno.EAFNOSUPPORT, "only AF_INET, AF_INET6 and AF_UNIX sockets are available in this "
                                                  "sandbox")
            if type & 0xF != consts["SOCK_STREAM"]:
                raise OSError(errno.EPROTONOSUPPORT,
                              "only TCP (SOCK_STREAM) client sockets are available: the server brokers outbound TCP")
            # An AF_UNIX socket can be made, as on Linux, but it reaches no one: there are
            # no socket files here, so connect and bind refuse (EACCES), as a denied
            # path does. socketpair's ends are the AF_UNIX sockets that work.
            unix = family == consts["AF_UNIX"]
            self._family, self._type = family, type & 0xF
            self._proto = 0 if unix else 6 if proto in (-1, 0) else proto
            self._h = None
            self._shut = False
            self._timeout = default_timeout[0]
            self._opts = {}
            self._fd = _next_fd[0]
            _next_fd[0] += 1
            self._tls = None

        def _adopt(self, end, fd, family):
            self._family, self._type = family, consts["SOCK_STREAM"]
            self._proto = 0 if family == consts["AF_UNIX"] else 6
            self._bound = self._lsn = None
            self._h = None
            self._shut = False
            self._timeout = default_timeout[0]
            self._opts = {}
            self._tls = None
            self._pair = end
            self._fd = fd
            _sockets_by_fd[fd] = self

        family = property(lambda self: self._family)
        type = property(lambda self: self._type)
        proto = property(lambda self: self._proto)
        timeout = property(lambda self: self._timeout)

        def fileno(self):
            return self._fd

        def settimeout(self, value):
            self._timeout = check_timeout(value)

        def gettimeout(self):
            return self._timeout

        def setblocking(self, flag):
            self._timeout = None if flag else 0.0

        def getblocking(self):
            return self._timeout != 0.0

        def _handle(self):
            if self._h is None:
                if self._fd == -1:
                    raise OSError(errno.EBADF, "Bad file descriptor")
                raise OSError(errno.ENOTCONN, "Socket is not connected")
            return self._h

        def connect(self, address):
            if self._fd == -1:
                raise OSError(errno.EBADF, "Bad file descriptor")
            if self._h is not None or self._pair is not None:
                raise OSError(errno.EISCONN, "Socket is already connected")
            if self._family == consts["AF_UNIX"]:
                raise OSError(errno.EACCES, "AF_UNIX sockets reach nothing in this sandbox: there are no socket "
                                            "files; apps connect to TCP destinations they are granted")
            if not isinstance(address, tuple) or len(address) < 2:
                raise TypeError("%s address must be a tuple (host, port)" % ("AF_INET6" if self._family == 10 else "AF_INET"))
            host, port = address[0], address[1]
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise OverflowError("connect(): port must be 0-65535.")
            if self._lsn is not None:
                raise OSError(errno.EISCONN, "Transport endpoint is already connected")
            name = bytes(host).decode("ascii", "replace") if isinstance(host, (bytes, bytearray)) else host
            owner = ports.get((self._family, port)) if is_loopback(name) else None
            if owner is not None and owner._lsn is not None:
                return self._connect_here(owner, name, port)
            if isinstance(host, str):
                host = name_bytes(host)
            timeout = self._timeout
            h = _wasmwsgi.net_connect(bytes(host), port, -1 if timeout is None or timeout == 0 else to_ms(timeout))
            if h < 0:
                raise fail(h)
            self._h = h
            _sockets_by_fd[self._fd] = self

        def _connect_here(self, owner, host, port):
            lsn = owner._lsn
            if len(lsn.queue) >= lsn.backlog:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "the listener's queue on port %d is full" % port)
            mine, theirs = _PairEnd(), _PairEnd()
            mine.peer, theirs.peer = theirs, mine
            here = self._bound or (("::1", 0, 0, 0) if self._family == 10 else ("127.0.0.1", 0))
            if here[1] == 0:
                here = (here[0], free_port(self._family)) + here[2:]
                ports[self._family, here[1]] = self
            if host in ("localhost", "0.0.0.0", "::"):
                host = "::1" if self._family == 10 else "127.0.0.1"
            peer = (host, port, 0, 0) if self._family == 10 else (host, port)
            mine.local, mine.remote = here, peer
            theirs.local, theirs.remote = peer, here
            lsn.queue.append(theirs)
            self._bound, self._pair = here, mine
            _sockets_by_fd[self._fd] = self

        def connect_ex(self, address):
            try:
                self.connect(address)
            except OSError as e:
                return e.errno or errno.EIO
            return 0

        def _pair_wait(self, what):
            # Only this thread could make the pair ready, and it is here: a wait never ends.
            if self._timeout == 0.0 or flags_dontwait[0]:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            if self._timeout is not None:
                host_sleep(self._timeout)
                raise TimeoutError("timed out")
            raise OSError(errno.EDEADLK, "%s on a socket pair would wait forever: the sandbox has one thread, "
                                         "so nothing else can make it ready (make the socket non-blocking)" % what)

        def _pair_end(self):
            if self._fd == -1 or self._pair.closed:
                raise OSError(errno.EBADF, "Bad file descriptor")
            return self._pair

        def send(self, data, flags=0):
            if self._pair is not None:
                end = self._pair_end()
                peer = end.peer
                if self._shut or peer.closed:
                    raise BrokenPipeError(errno.EPIPE, "Broken pipe")
                data = memoryview(data).cast("B")
                room = _PairEnd.LIMIT - len(peer.data)
                if room <= 0:
                    flags_dontwait[0] = bool(flags & consts["MSG_DONTWAIT"])
                    self._pair_wait("send()")
                peer.data += data[:room]
                return min(len(data), room)
            n = _wasmwsgi.net_send(self._handle(), data, to_ms(self._timeout))
            if n < 0:
                raise fail(n)
            return n

        def sendall(self, data, flags=0):
            view = memoryview(data).cast("B")
            while view:
                n = self.send(view, flags)
                view = view[n:]

        def sendto(self, data, flags_or_addr, addr=None):
            raise OSError(errno.EISCONN, "sendto() is for datagram sockets; use send()")

        def recv_into(self, buffer, nbytes=0, flags=0):
            if flags & consts["MSG_PEEK"]:
                raise OSError(errno.EOPNOTSUPP, "MSG_PEEK is not supported in this sandbox")
            if self._pair is not None:
                end = self._pair_end()
                if not end.data and not end.eof:
                    flags_dontwait[0] = bool(flags & consts["MSG_DONTWAIT"])
                    self._pair_wait("recv()")
                n = min(len(end.data), nbytes if nbytes > 0 else len(buffer))
                memoryview(buffer).cast("B")[:n] = end.data[:n]
                del end.data[:n]
                return n
            timeout = 0 if flags & consts["MSG_DONTWAIT"] else to_ms(self._timeout)
            # nbytes 0 is the whole buffer (the C wrapper reads a negative count so).
            n = _wasmwsgi.net_recv_into(self._handle(), buffer, nbytes if nbytes > 0 else -1, timeout)
            if n < 0:
                raise fail(n)
            return n

        def recv(self, bufsize, flags=0):
            if bufsize < 0:
                raise ValueError("negative buffersize in recv")
            buf = bytearray(bufsize)
            n = self.recv_into(buf, bufsize, flags)
            return bytes(buf[:n])

        def recvfrom(self, bufsize, flags=0):
            return self.recv(bufsize, flags), self.getpeername()

        def recvfrom_into(self, buffer, nbytes=0, flags=0):
            return self.recv_into(buffer, nbytes, flags), self.getpeername()

        def shutdown(self, how):
            if self._pair is not None:
                end = self._pair_end()
                if how not in (0, 1, 2):
                    raise OSError(errno.EINVAL, "Invalid argument")
                if how != 0:
                    self._shut = True
                    end.peer.eof = True
                return
            rc = _wasmwsgi.net_shutdown(self._handle(), how)
            if rc < 0:
                raise fail(rc)

        def close(self):
            if self._pair is not None and self._fd != -1:
                self._pair.closed = True
                self._pair.peer.eof = True
            if self._bound is not None and ports.get((self._family, self._bound[1])) is self:
                del ports[self._family, self._bound[1]]
            if self._lsn is not None:
                # Connections never accepted end: their clients read the end of stream.
                for end in self._lsn.queue:
                    end.closed = True
                    end.peer.eof = True
                self._lsn.queue.clear()
                self._lsn.closed = True
            h, self._h = self._h, None
            _sockets_by_fd.pop(self._fd, None)
            self._fd = -1
            if h is not None:
                _wasmwsgi.net_close(h)

        def __del__(self):
            try:
                self.close()
            except Exception:
                pass

        def detach(self):
            if self._pair is not None and self._fd != -1:
                fd, self._fd = self._fd, -1
                _sockets_by_fd.pop(fd, None)
                _detached_ends[fd] = self._pair
                return fd
            raise OSError(errno.EOPNOTSUPP, "sockets cannot be detached in this sandbox")

        def _addr(self, which):
            if self._pair is not None:
                end = self._pair_end()
                return getattr(end, "remote" if which == 0 else "local", "")
            res = _wasmwsgi.net_addr(self._handle(), which)
            if isinstance(res, int):
                raise fail(res)
            host, _, port = res.decode().rpartition(" ")
            if ":" in host:
                return host, int(port), 0, 0
            return host, int(port)

        def getpeername(self):
            if self._lsn is not None:
                raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
            return self._addr(0)

        def getsockname(self):
            if self._h is None and self._pair is None:
                if self._bound is not None:
                    return self._bound
                if self._family == consts["AF_UNIX"]:
                    return ""
                return ("::", 0, 0, 0) if self._family == 10 else ("0.0.0.0", 0)
            return self._addr(1)

        def setsockopt(self, level, option, value, optlen=None):
            if (level, option) not in accepted_options:
                raise OSError(errno.ENOPROTOOPT, "socket option (%d, %d) is not available in this sandbox" % (level, option))
            self._opts[level, option] = value

        def getsockopt(self, level, option, buflen=None):
            if (level, option) == (1, 4):  # SO_ERROR
                return 0
            if (level, option) == (1, 3):  # SO_TYPE
                return self._type
            if (level, option) not in accepted_options:
                raise OSError(errno.ENOPROTOOPT, "socket option (%d, %d) is not available in this sandbox" % (level, option))
            value = self._opts.get((level, option), 0)
            if buflen:
                return value if isinstance(value, bytes) else int(value).to_bytes(4, "little")
            return value

        def bind(self, address):
            # TCP on loopback binds inside this instance only (see _Listener); the host
            # opens no port. AF_UNIX has no socket files to bind.
            if self._fd == -1:
                raise OSError(errno.EBADF, "Bad file descriptor")
            if self._family == consts["AF_UNIX"]:
                raise OSError(errno.EACCES, "binding an AF_UNIX socket is not available in this sandbox: there are "
                                            "no socket files")
            v6 = self._family == 10
            if not isinstance(address, tuple) or len(address) < 2:
                raise TypeError("%s address must be a tuple (host, port)" % ("AF_INET6" if v6 else "AF_INET"))
            host, port = address[0], address[1]
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise OverflowError("bind(): port must be 0-65535.")
            if self._bound is not None or self._h is not None or self._pair is not None:
                raise OSError(errno.EINVAL, "Invalid argument")
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if host in ("", "localhost"):
                host = ("::" if v6 else "0.0.0.0") if host == "" else ("::1" if v6 else "127.0.0.1")
            if not is_loopback(host):
                raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address: in this sandbox a socket "
                                                   "binds to loopback only, inside the app's own instance")
            if port == 0:
                port = free_port(self._family)
            elif (self._family, port) in ports:
                raise OSError(errno.EADDRINUSE, "Address already in use")
            self._bound = (host, port, 0, 0) if v6 else (host, port)
            ports[self._family, port] = self

        def listen(self, backlog=128):
            if self._fd == -1:
                raise OSError(errno.EBADF, "Bad file descriptor")
            if self._h is not None or self._pair is not None or self._family == consts["AF_UNIX"]:
                raise OSError(errno.EINVAL, "Invalid argument")
            if self._bound is None:
                self.bind(("", 0))  # Linux binds an unbound socket to a free port
            backlog = min(max(backlog, 0), consts["SOMAXCONN"]) + 1
            if self._lsn is None:
                self._lsn = _Listener(backlog)
                _sockets_by_fd[self._fd] = self
            self._lsn.backlog = backlog

        def _accept(self):
            if self._lsn is None:
                raise OSError(errno.EINVAL, "Invalid argument")
            if not self._lsn.queue:
                self._pair_wait("accept()")
            end = self._lsn.queue.pop(0)
            fd = _next_fd[0]
            _next_fd[0] += 1
            _detached_ends[fd] = end
            return fd, end.remote

        def dup(self):
            raise OSError(errno.EOPNOTSUPP, "sockets cannot be duplicated in this sandbox")

        def __repr__(self):
            return "<_socket.socket fd=%d, host handle=%s>" % (self._fd, self._h)

    socket.__module__ = "_socket"
    m.socket = m.SocketType = socket
    flags_dontwait = [False]
    ports = {}  # (family, port) -> the socket bound to it in this instance (listening when its _lsn is set)
    next_port = [32768]  # Linux's first ephemeral port

    def free_port(family):
        for _ in range(28232):
            port = next_port[0]
            next_port[0] = port + 1 if port < 60999 else 32768
            if (family, port) not in ports:
                return port
        raise OSError(errno.EADDRINUSE, "Address already in use: no free port")

    def is_loopback(host):
        # A loopback or wildcard address, or localhost: what a socket here binds to.
        if not isinstance(host, str):
            return False
        if host in ("localhost", "::1", "0.0.0.0", "::"):
            return True
        packed = ipv4_packed(host)
        return packed is not None and packed[0] == 127

    def socketpair(family=None, type=None, proto=0):
        """Two connected stream sockets held in guest memory (asyncio's self-pipe)."""
        family = consts["AF_UNIX"] if family is None else family
        type = consts["SOCK_STREAM"] if type is None else type
        if family != consts["AF_UNIX"] or type & 0xF != consts["SOCK_STREAM"] or proto not in (0,):
            raise OSError(errno.EOPNOTSUPP, "only AF_UNIX SOCK_STREAM socket pairs are available in this sandbox")
        a, b = _PairEnd(), _PairEnd()
        a.peer, b.peer = b, a
        out = []
        for end in (a, b):
            s = socket.__new__(socket)
            s._adopt(end, _next_fd[0], consts["AF_UNIX"])
            _next_fd[0] += 1
            out.append(s)
        return tuple(out)

    def host_sleep(seconds):
        # net_poll with nothing to poll waits its timeout in the host (or until the
        # request ends).
        if seconds > 0:
            _wasmwsgi.net_poll(b"", to_ms(seconds))

    def getdefaulttimeout():
        return default_timeout[0]

    def setdefaulttimeout(t):
        default_timeout[0] = check_timeout(t)

    services = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "mysql": 3306, "redis": 6379,
                "smtp": 25, "submission": 587, "imaps": 993, "ftp": 21, "domain": 53}

    def getservbyname(name, proto=None):
        if name not in services:
            raise OSError("service/proto not found")
        return services[name]

    def name_bytes(host):
        # An ASCII name as it is, as CPython's socket.connect passes it; only other
        # names go through the idna codec. Its import (unicodedata with it) would
        # otherwise cost every request in request isolation, where no import lasts.
        return host.encode("ascii") if host.isascii() else host.encode("idna")

    def is_address(host):
        try:
            inet_pton(10 if ":" in host else 2, host.partition("%")[0])
            return True
        except (OSError, ValueError):
            return False

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if isinstance(host, bytes):
            host = host.decode("ascii") if host.isascii() else host.decode("idna")
        if isinstance(port, bytes):
            port = port.decode()
        if port is None:
            port = 0
        elif isinstance(port, str):
            if port.isdigit():
                port = int(port)
            elif port in services:
                port = services[port]
            else:
                raise gaierror(consts["EAI_SERVICE"], "Servname not supported for ai_socktype")
        if host is None or host == "":
            host = "0.0.0.0" if flags & 1 else "127.0.0.1"
        if is_address(host):
            addrs = [host]
        elif flags & consts["AI_NUMERICHOST"]:
            raise gaierror(consts["EAI_NONAME"], "Name or service not known")
        else:
            if host.lower() == "localhost" and (port == 0 or any(p == port for _, p in ports)):
                # A port this instance binds (or 0, to bind one): localhost is
                # loopback, as /etc/hosts says on Linux, and the host is not asked.
                res = b"127.0.0.1\n::1\n"
            else:
                res = _wasmwsgi.net_resolve(name_bytes(host))
            if isinstance(res, int):
                raise fail(res, resolving=True)
            addrs = res.decode().split()
        out = []
        for a in addrs:
            af = 10 if ":" in a else 2
            if family not in (0, af):
                continue
            sa = (a, port, 0, 0) if af == 10 else (a, port)
            out.append((af, type or 1, proto or 6, "", sa))
        if not out:
            raise gaierror(consts["EAI_FAMILY"], "Address family for hostname not supported")
        return out

    def gethostbyname(name):
        for af, _, _, _, sa in getaddrinfo(name, 0, 2):
            return sa[0]

    def gethostbyname_ex(name):
        return name, [], [sa[0] for _, _, _, _, sa in getaddrinfo(name, 0, 2)]

    def gethostbyaddr(ip):
        raise herror(1, "Unknown host: reverse lookups are not available in this sandbox")

    def gethostname():
        return "localhost"

    def getnameinfo(sockaddr, flags):
        return sockaddr[0], str(sockaddr[1])

    def ipv4_packed(s):
        # The four bytes of a dotted-quad address, or None; as inet_pton, no leading
        # zeros and no shorter forms.
        parts = s.split(".")
        if len(parts) != 4:
            return None
        out = bytearray()
        for p in parts:
            if not (p.isascii() and p.isdigit()) or len(p) > 3 or len(p) > 1 and p[0] == "0" or int(p) > 255:
                return None
            out.append(int(p))
        return bytes(out)

    def inet_pton(af, s):
        if af == 2:
            packed = ipv4_packed(s) if isinstance(s, str) else None
            if packed is None:
                raise OSError("illegal IP address string passed to inet_pton")
            return packed
        import ipaddress

        try:
            return (ipaddress.IPv6Address if af == 10 else ipaddress.IPv4Address)(s).packed
        except ValueError:
            raise OSError("illegal IP address string passed to inet_pton") from None

    def inet_ntop(af, b):
        if af == 2:
            b = bytes(b)
            if len(b) != 4:
                raise ValueError("invalid length of packed IP address string")
            return "%d.%d.%d.%d" % tuple(b)
        import ipaddress

        return str((ipaddress.IPv6Address if af == 10 else ipaddress.IPv4Address)(bytes(b)))

    def inet_aton(s):
        return inet_pton(2, s)

    def inet_ntoa(b):
        return inet_ntop(2, b)

    def close(fd):
        sock = _sockets_by_fd.get(fd)
        if sock is not None:
            sock.close()

    def dup(fd):
        raise OSError(errno.EOPNOTSUPP, "sockets cannot be duplicated in this sandbox")

    def htons(x):
        return ((x & 0xFF) << 8) | ((x >> 8) & 0xFF)

    def htonl(x):
        return int.from_bytes((x & 0xFFFFFFFF).to_bytes(4, "big"), "little")

    for f in (socketpair, getdefaulttimeout, setdefaulttimeout, getservbyname, getaddrinfo, gethostbyname, gethostbyname_ex,
              gethostbyaddr, gethostname, getnameinfo, inet_pton, inet_ntop, inet_aton, inet_ntoa, close, dup,
              htons, htonl):
        setattr(m, f.__name__, f)
    m.ntohs, m.ntohl = htons, htonl

    # select and poll over these sockets.
    import select

    real_select = select.select
    POLLIN, POLLPRI, POLLOUT = getattr(select, "POLLIN", 1), getattr(select, "POLLPRI", 2), getattr(select, "POLLOUT", 4)
    POLLERR, POLLHUP, POLLNVAL = getattr(select, "POLLERR", 8), getattr(select, "POLLHUP", 16), getattr(select, "POLLNVAL", 32)

    def fileno_of(obj):
        fd = obj if isinstance(obj, int) else obj.fileno()
        if not isinstance(fd, int) or fd < 0:
            raise ValueError("file descriptor cannot be a negative integer (%r)" % (fd,))
        return fd

    def host_poll(wanted, timeout_ms):
        """wanted: list of (fd, events: 1 read | 2 write); returns {fd: ready events}."""
        import struct

        ready = {}
        items = []
        for fd, ev in wanted:
            sock = _sockets_by_fd.get(fd)
            end = None if sock is None else sock._pair if sock._pair is not None else sock._lsn
            if end is not None:
                now = (1 if ev & 1 and end.readable() else 0) | (2 if ev & 2 and end.writable() else 0)
                if now:
                    ready[fd] = ready.get(fd, 0) | now
            elif sock is None or sock._h is None:
                ready[fd] = ready.get(fd, 0) | ev  # not connected: report it, the call will fail
            else:
                items.append((fd, sock._h, ev))
        if ready:
            timeout_ms = 0
        if items or timeout_ms != 0:
            # With nothing but socket pairs to wait for, the host's poll of no
            # connection still waits the timeout for real.
            res = _wasmwsgi.net_poll(b"".join(struct.pack("<II", h, ev) for _, h, ev in items), timeout_ms)
            if isinstance(res, int):
                raise fail(res)
            for i, (fd, _, _) in enumerate(items):
                ev = struct.unpack_from("<I", res, 8 * i + 4)[0]
                if ev:
                    ready[fd] = ready.get(fd, 0) | (ev & 3 or 3)
        return ready

    def select_(rlist, wlist, xlist, timeout=None):
        rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
        fds = [fileno_of(o) for o in rlist + wlist + xlist]
        if not any(fd in _sockets_by_fd or fd >= (1 << 20) for fd in fds):
            return real_select(rlist, wlist, xlist, timeout)
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be non-negative")
        wanted = [(fileno_of(o), 1) for o in rlist] + [(fileno_of(o), 2) for o in wlist]
        ready = host_poll(wanted, to_ms(timeout) if timeout is not None else -1)
        return ([o for o in rlist if ready.get(fileno_of(o), 0) & 1],
                [o for o in wlist if ready.get(fileno_of(o), 0) & 2], [])

    class poll:
        def __init__(self):
            self._fds = {}

        def register(self, fd, eventmask=POLLIN | POLLPRI | POLLOUT):
            self._fds[fileno_of(fd)] = eventmask

        def modify(self, fd, eventmask):
            fd = fileno_of(fd)
            if fd not in self._fds:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory")
            self._fds[fd] = eventmask

        def unregister(self, fd):
            del self._fds[fileno_of(fd)]

        def poll(self, timeout=None):
            if timeout is None or timeout < 0:
                ms = -1
            else:
                ms = int(timeout)
            wanted = [(fd, (1 if mask & (POLLIN | POLLPRI) else 0) | (2 if mask & POLLOUT else 0))
                      for fd, mask in self._fds.items()]
            ready = host_poll(wanted, ms)
            out = []
            for fd, ev in ready.items():
                mask = self._fds[fd]
                r = (POLLIN & mask if ev & 1 else 0) | (POLLOUT & mask if ev & 2 else 0)
                if r:
                    out.append((fd, r))
            return out

    # A staticmethod (callable since 3.10) does not bind: selectors.SelectSelector keeps
    # select.select as a class attribute, as it would the C function.
    select.select = staticmethod(select_)
    select.poll = poll
    for name, value in (("POLLIN", POLLIN), ("POLLPRI", POLLPRI), ("POLLOUT", POLLOUT), ("POLLERR", POLLERR),
                        ("POLLHUP", POLLHUP), ("POLLNVAL", POLLNVAL)):
        setattr(select, name, value)
    for name in ("epoll", "kqueue", "devpoll"):
        if hasattr(select, name):
            delattr(select, name)

    sys.modules["_socket"] = m
    for name in ("socket", "selectors", "ssl"):
        sys.modules.pop(name, None)
    import socket as _  # noqa: F401  (the stdlib's, now on the host's sockets)
    import selectors as _  # noqa: F401,F811
    sys.modules["ssl"] = _ssl_module(m, fail)


def _ssl_module(sockmod, fail):
    """An `ssl` whose handshake and records are done by the host (Go's crypto/tls): it
    verifies the server against the system's roots, the operator's outbound.ca_file and
    the context's own CAs, unless the context asks for CERT_NONE or no name check, as
    with _ssl. Where the app may connect is the grants' decision either way."""
    import base64
    import enum

    HOST_ROOTS = "/etc/ssl/certs/ca-certificates.crt"  # runtime.GuestCerts
    import types

    m = types.ModuleType("ssl")
    m.__doc__ = "TLS client connections, the handshake and records done by the wasmwsgi host."
    import socket as socket_mod

    class SSLError(OSError):
        pass

    class SSLZeroReturnError(SSLError):
        pass

    class SSLWantReadError(SSLError):
        pass

    class SSLWantWriteError(SSLError):
        pass

    class SSLSyscallError(SSLError):
        pass

    class SSLEOFError(SSLError):
        pass

    class SSLCertVerificationError(SSLError, ValueError):
        pass

    class TLSVersion(enum.IntEnum):
        MINIMUM_SUPPORTED = -2
        SSLv3 = 768
        TLSv1 = 769
        TLSv1_1 = 770
        TLSv1_2 = 771
        TLSv1_3 = 772
        MAXIMUM_SUPPORTED = -1

    class VerifyMode(enum.IntEnum):
        CERT_NONE = 0
        CERT_OPTIONAL = 1
        CERT_REQUIRED = 2

    class Purpose(enum.Enum):
        SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
        CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"

    consts = dict(
        PROTOCOL_TLS=2, PROTOCOL_SSLv23=2, PROTOCOL_TLS_CLIENT=16, PROTOCOL_TLS_SERVER=17,
        OP_ALL=0x80000054, OP_NO_SSLv2=0, OP_NO_SSLv3=0x02000000, OP_NO_TLSv1=0x04000000,
        OP_NO_TLSv1_1=0x10000000, OP_NO_TLSv1_2=0x08000000, OP_NO_TLSv1_3=0x20000000,
        OP_NO_COMPRESSION=0x20000, OP_NO_TICKET=0x4000, OP_CIPHER_SERVER_PREFERENCE=0x400000,
        OP_SINGLE_DH_USE=0, OP_SINGLE_ECDH_USE=0, OP_NO_RENEGOTIATION=0x40000000,
        VERIFY_DEFAULT=0, VERIFY_X509_STRICT=0x20, VERIFY_X509_PARTIAL_CHAIN=0x80000,
        VERIFY_CRL_CHECK_LEAF=4, VERIFY_CRL_CHECK_CHAIN=12,
        HAS_SNI=True, HAS_ALPN=True, HAS_ECDH=True, HAS_NPN=False, HAS_TLSv1_3=True, HAS_NEVER_CHECK_COMMON_NAME=True,
        OPENSSL_VERSION="Go crypto/tls (wasmwsgi host)", OPENSSL_VERSION_NUMBER=0x30000000,
        OPENSSL_VERSION_INFO=(3, 0, 0, 0, 0), CHANNEL_BINDING_TYPES=[],
    )
    vars(m).update(consts)
    for cls in (SSLError, SSLZeroReturnError, SSLWantReadError, SSLWantWriteError, SSLSyscallError, SSLEOFError,
                SSLCertVerificationError, TLSVersion, VerifyMode, Purpose):
        cls.__module__ = "ssl"
        setattr(m, cls.__name__, cls)
    m.CertificateError = SSLCertVerificationError
    m.CERT_NONE, m.CERT_OPTIONAL, m.CERT_REQUIRED = VerifyMode
    m.socket_error = OSError

    class SSLSocket(socket_mod.socket):
        """A connected socket after the host's TLS handshake: send and recv carry
        plaintext, the host encrypts."""

        __slots__ = ()  # the layout of socket.socket, so that wrap_socket can switch class

        def selected_alpn_protocol(self):
            return self._tls_info[0] or None

        def version(self):
            return self._tls_info[1].replace("TLS 1.", "TLSv1.")

        def cipher(self):
            return self._tls_info[2], self.version(), None

        def shared_ciphers(self):
            return [self.cipher()]

        def compression(self):
            return None

        def pending(self):
            return 0

        def getpeercert(self, binary_form=False):
            # The fields of the certificate the host verified, as _ssl gives them; as
            # with _ssl, an unverified certificate gives an empty dict.
            if not binary_form and self.context.verify_mode == VerifyMode.CERT_NONE:
                return {}
            res = _wasmwsgi.net_addr(self._handle(), 4 if binary_form else 3)
            if isinstance(res, int):
                raise fail(res)
            if binary_form:
                return res
            cert = {"subject": [], "issuer": [], "subjectAltName": [], "version": 3}
            for line in res.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("\t")
                part, _, name = key.partition(".")
                if part in ("subject", "issuer"):
                    if value:
                        cert[part].append(((name, value),))
                elif key in ("DNS", "IP Address"):
                    cert["subjectAltName"].append((key, value))
                else:
                    cert[key] = value
            for k in ("subject", "issuer", "subjectAltName"):
                cert[k] = tuple(cert[k])
            return cert

        def do_handshake(self, block=False):
            pass

        def unwrap(self):
            raise SSLError("unwrapping TLS is not supported in this sandbox")

        def get_channel_binding(self, cb_type="tls-unique"):
            return None

        def selected_npn_protocol(self):
            return None

    class SSLContext:
        sslsocket_class = SSLSocket

        def __init__(self, protocol=None, *args, **kwargs):
            self.protocol = consts["PROTOCOL_TLS"] if protocol is None else protocol
            client = self.protocol == consts["PROTOCOL_TLS_CLIENT"]
            self._check_hostname = client
            self._verify_mode = VerifyMode.CERT_REQUIRED if client else VerifyMode.CERT_NONE
            self.options = consts["OP_ALL"]
            self.verify_flags = 0
            self.minimum_version = TLSVersion.TLSv1_2
            self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
            self.post_handshake_auth = None
            self.hostname_checks_common_name = False
            self.keylog_filename = None
            self.security_level = 2
            self._alpn = []
            self._cas = []

        # The rules of _ssl: check_hostname needs verification, and turning it on
        # turns verification on.
        @property
        def verify_mode(self):
            return self._verify_mode

        @verify_mode.setter
        def verify_mode(self, value):
            value = VerifyMode(value)
            if value == VerifyMode.CERT_NONE and self._check_hostname:
                raise ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.")
            self._verify_mode = value

        @property
        def check_hostname(self):
            return self._check_hostname

        @check_hostname.setter
        def check_hostname(self, value):
            if value and self._verify_mode == VerifyMode.CERT_NONE:
                self._verify_mode = VerifyMode.CERT_REQUIRED
            self._check_hostname = bool(value)

        def load_default_certs(self, purpose=None):
            pass  # the host's roots: the system's plus outbound.ca_file

        def set_default_verify_paths(self):
            pass

        def load_verify_locations(self, cafile=None, capath=None, cadata=None):
            # Trusted besides the host's roots, for this context's connections only.
            if cafile is None and capath is None and cadata is None:
                raise TypeError("cafile, capath and cadata cannot be all omitted")
            if cafile is not None:
                with open(cafile, "rb") as f:
                    # The host's own bundle (certifi's answer here) adds nothing the
                    # host does not trust already.
                    if os.path.realpath(cafile) != HOST_ROOTS:
                        self._add_pem(f.read(), cafile)
            if capath is not None:
                for entry in sorted(os.listdir(capath)):
                    path = os.path.join(capath, entry)
                    if os.path.isfile(path):
                        with open(path, "rb") as f:
                            data = f.read()
                        if b"-----BEGIN CERTIFICATE-----" in data:
                            self._cas.append(data)
            if cadata is not None:
                if isinstance(cadata, str):
                    self._add_pem(cadata.encode("ascii"), "cadata")
                else:
                    self._cas.append(DER_cert_to_PEM_cert(bytes(cadata)).encode("ascii"))

        def _add_pem(self, data, where):
            if b"-----BEGIN CERTIFICATE-----" not in data:
                raise SSLError(0, "no certificate found in %s" % where)
            self._cas.append(data)

        def load_cert_chain(self, certfile, keyfile=None, password=None):
            raise SSLError("client certificates are not supported in this sandbox")

        def set_ciphers(self, ciphers):
            pass

        def get_ciphers(self):
            return []

        def set_alpn_protocols(self, protocols):
            self._alpn = list(protocols)

        def set_npn_protocols(self, protocols):
            pass

        def set_ecdh_curve(self, name):
            pass

        def get_ca_certs(self, binary_form=False):
            return []

        def cert_store_stats(self):
            return {"x509_ca": 0, "crl": 0, "x509": 0}

        def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                        server_hostname=None, session=None):
            if server_side:
                raise SSLError("apps cannot serve TLS in this sandbox")
            name = server_hostname or ""
            if isinstance(name, str):
                name = name.encode("ascii") if name.isascii() else name.encode("idna")
            flags = 0
            if self._verify_mode == VerifyMode.CERT_NONE:
                flags |= 1
            elif not self._check_hostname:
                flags |= 2
            rc = _wasmwsgi.net_tls(sock._handle(), name, "\n".join(self._alpn).encode(), b"\n".join(self._cas), flags)
            if rc < 0:
                err = fail(rc)
                raise SSLCertVerificationError(err.errno, err.strerror) if "certificate" in str(err) \
                    else SSLError(err.errno, err.strerror)
            info = _wasmwsgi.net_addr(sock._h, 2)
            sock.__class__ = SSLSocket
            sock._tls_info = (info.decode().split("\n") + ["", "", ""])[:3] if isinstance(info, bytes) else ["", "", ""]
            sock.context = self
            sock.server_hostname = server_hostname
            sock.server_side = False
            return sock

        def wrap_bio(self, *args, **kwargs):
            raise SSLError("TLS over memory BIOs (SSLContext.wrap_bio, which asyncio's and anyio's TLS "
                           "streams use) is not available in this sandbox: the host does TLS on connected "
                           "sockets (SSLContext.wrap_socket)")

    def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
        if purpose == Purpose.SERVER_AUTH:
            ctx = SSLContext(consts["PROTOCOL_TLS_CLIENT"])
        else:
            ctx = SSLContext(consts["PROTOCOL_TLS_SERVER"])
        if cafile or capath or cadata:
            ctx.load_verify_locations(cafile, capath, cadata)
        return ctx

    def _create_unverified_context(protocol=None, *, cert_reqs=VerifyMode.CERT_NONE, check_hostname=False,
                                   purpose=Purpose.SERVER_AUTH, certfile=None, keyfile=None, cafile=None,
                                   capath=None, cadata=None):
        ctx = SSLContext(consts["PROTOCOL_TLS_CLIENT"] if protocol is None else protocol)
        ctx.check_hostname = check_hostname
        ctx.verify_mode = cert_reqs
        if certfile or keyfile:
            ctx.load_cert_chain(certfile, keyfile)
        if cafile or capath or cadata:
            ctx.load_verify_locations(cafile, capath, cadata)
        return ctx

    def wrap_socket(sock, keyfile=None, certfile=None, server_side=False, cert_reqs=VerifyMode.CERT_NONE,
                    ssl_version=None, ca_certs=None, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                    ciphers=None, server_hostname=None):
        ctx = SSLContext(ssl_version)
        ctx.verify_mode = cert_reqs
        if ca_certs:
            ctx.load_verify_locations(ca_certs)
        return ctx.wrap_socket(sock, server_side=server_side, server_hostname=server_hostname)

    def match_hostname(cert, hostname):
        pass  # the host checked the name during the handshake

    def DER_cert_to_PEM_cert(der):
        body = base64.standard_b64encode(der).decode("ascii")
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"

    def PEM_cert_to_DER_cert(pem):
        head, tail = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
        pem = pem.strip()
        if not pem.startswith(head) or not pem.endswith(tail):
            raise ValueError("Invalid PEM encoding; must start with %s and end with %s" % (head, tail))
        return base64.decodebytes(pem[len(head):-len(tail)].encode("ascii"))

    class MemoryBIO:
        """_ssl's memory buffer, for code that names it at import (anyio's TLS stream
        does). Only TLS over such buffers (SSLContext.wrap_bio) is missing."""

        def __init__(self):
            self._buf, self._eof = bytearray(), False

        @property
        def pending(self):
            return len(self._buf)

        @property
        def eof(self):
            return self._eof and not self._buf

        def read(self, size=-1):
            n = len(self._buf) if size < 0 else min(size, len(self._buf))
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out

        def write(self, data):
            if self._eof:
                raise SSLError("cannot write() after write_eof()")
            data = memoryview(data)
            self._buf += data
            return data.nbytes

        def write_eof(self):
            self._eof = True

    MemoryBIO.__module__ = "ssl"
    m.SSLSocket, m.SSLContext, m.MemoryBIO = SSLSocket, SSLContext, MemoryBIO
    m.SSLObject = SSLSocket
    m.create_default_context = create_default_context
    m._create_default_https_context = create_default_context
    m._create_unverified_context = _create_unverified_context
    m.wrap_socket, m.match_hostname = wrap_socket, match_hostname
    m.get_default_verify_paths = lambda: None
    m.DER_cert_to_PEM_cert, m.PEM_cert_to_DER_cert = DER_cert_to_PEM_cert, PEM_cert_to_DER_cert
    m.RAND_bytes = lambda n: os.urandom(n)
    m.RAND_status = lambda: True
    return m
