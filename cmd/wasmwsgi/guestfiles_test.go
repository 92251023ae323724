package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// guestFilesApp answers with what Python sees of the file system outside the app's own
// folder: each probe is the value it returned or the exception it raised, with its
// errno name.
const guestFilesApp = `import datetime, errno, json, os, sys


def probe(fn):
    try:
        return fn()
    except OSError as e:
        return "%s %s" % (type(e).__name__, errno.errorcode.get(e.errno, e.errno))


def write(path, mode="w"):
    with open(path, mode) as f:
        f.write("x")
    return "written"


def devnull():
    with open(os.devnull, "w") as f:
        f.write("discarded")
    with open(os.devnull) as f:
        return f.read()


def devices():
    with open("/dev/zero", "rb") as f:
        zeros = f.read(4)
    with open("/dev/urandom", "rb") as f:
        a, b = f.read(16), f.read(16)
    with open("/dev/random", "rb") as f:
        c = f.read(16)
    with open("/dev/urandom", "wb") as f:
        f.write(b"mixed in")
    return [sorted(os.listdir("/dev")), zeros.hex(), len(a), len(c), len({a, b, c})]


def chdir_root():
    os.chdir("/")
    try:
        return [os.getcwd(), sorted(os.listdir("."))]
    finally:
        os.chdir("/app")


def zones():
    import zoneinfo
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    summer = datetime.datetime(2026, 7, 1, 12, tzinfo=paris)
    winter = datetime.datetime(2026, 1, 1, 12, tzinfo=paris)
    return [str(summer.utcoffset()), summer.tzname(), str(winter.utcoffset()), winter.tzname(),
            "America/New_York" in zoneinfo.available_timezones()]


def pytz_zones():
    sys.path.insert(0, "/app/vendor")
    import pytz
    tz = pytz.timezone("Asia/Tokyo")
    return [tz.localize(datetime.datetime(2026, 7, 1, 12)).isoformat(), "Europe/Paris" in pytz.all_timezones]


def terminal():
    import getpass, termios, tty
    try:
        termios.tcgetattr(0)
    except termios.error as e:
        return ["%s.%s" % (type(e).__module__, type(e).__name__), errno.errorcode[e.args[0]],
                tty.tcgetattr is termios.tcgetattr, callable(getpass.getpass)]
    return "a terminal"


def pth_files():
    import extramod
    return [extramod.VALUE, os.environ.get("PTH_RAN"), sys.path.index("/app/site-packages/more") > sys.path.index("/app/site-packages")]


def stdlib_files():
    import codecs, posixpath
    return [os.__file__, codecs.__file__, posixpath.__file__, sys._stdlib_dir, os.path.isfile(os.__file__)]


def bytecode():
    # An import from /tmp caches its bytecode there, as CPython's does, unless the
    # environment says PYTHONDONTWRITEBYTECODE.
    os.makedirs("/tmp/mods", exist_ok=True)
    with open("/tmp/mods/cachedmod.py", "w") as f:
        f.write("X = 1\n")
    sys.path.insert(0, "/tmp/mods")
    try:
        import cachedmod
    finally:
        sys.path.remove("/tmp/mods")
    return [sys.dont_write_bytecode, sorted(os.listdir("/tmp/mods")),
            sorted(os.listdir("/tmp/mods/__pycache__")) if os.path.isdir("/tmp/mods/__pycache__") else None]


def modes():
    import io, stat, tarfile
    def mode(p, follow=True):
        return oct(stat.S_IMODE(os.stat(p, follow_symlinks=follow).st_mode))
    def err(f, *args):
        try:
            f(*args)
            return "ok"
        except OSError as e:
            return "%s %s" % (type(e).__name__, errno.errorcode[e.errno])
    os.makedirs("/tmp/m", exist_ok=True)
    with open("/tmp/m/f", "w") as f:
        f.write("x")
    os.symlink("f", "/tmp/m/link")
    out = [mode("/tmp/m"), mode("/tmp/m/f"), mode("/tmp/m/link", False), mode(os.devnull), mode("/app/app.py"),
           mode("/usr/local/lib/python3.11")]
    os.chmod("/tmp/m/f", 0o751)
    os.chown("/tmp/m/f", 1000, 1001)
    st = os.stat("/tmp/m/f")
    entry = [e for e in os.scandir("/tmp/m") if e.name == "f"][0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add("/tmp/m/f", "f")
    buf.seek(0)
    member = tarfile.open(fileobj=buf).getmember("f")
    out += [oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, oct(stat.S_IMODE(entry.stat().st_mode)),
            oct(member.mode), member.uid, stat.filemode(os.stat("/tmp/m/f").st_mode)]
    out += [err(os.chmod, "/app/app.py", 0o600), err(os.chown, "/app/app.py", 0, 0), err(os.chmod, "/tmp/nothing", 0o600)]
    import tempfile
    out += [os.getuid(), mode(tempfile.mkstemp()[1]), mode(tempfile.mkdtemp()), oct(os.umask(0o077))]
    os.mkdir("/tmp/private")
    out.append(mode("/tmp/private"))
    if os.path.isdir("/data"):
        with open("/data/f", "w") as f:
            f.write("x")
        os.chmod("/data/f", 0o600)
        out += [mode("/data/f"), err(os.chown, "/data/f", 1000, 1000), err(os.chown, "/data/f", -1, -1)]
    return out


def application(environ, start_response):
    seen = {
        "list_root": probe(lambda: sorted(os.listdir("/"))),
        "chdir_root": probe(chdir_root),
        "stat_missing": probe(lambda: os.stat("/nonexistent/x")),
        "open_missing": probe(lambda: open("/usr/share/doc/x")),
        "write_root": probe(lambda: write("/x")),
        "mkdir_root": probe(lambda: os.mkdir("/newdir")),
        "devnull": probe(devnull),
        "devnull_is_char_device": probe(lambda: __import__("stat").S_ISCHR(os.stat(os.devnull).st_mode)),
        "devices": probe(devices),
        "app_open_to_write": probe(lambda: open("/app/app.py", "w") and "opened"),
        "app_overwrite": probe(lambda: write("/app/app.py")),
        "app_append": probe(lambda: write("/app/app.py", "a")),
        "app_create": probe(lambda: write("/app/new.txt")),
        "app_create_in_missing_folder": probe(lambda: write("/app/nofolder/new.txt")),
        "app_remove": probe(lambda: os.remove("/app/app.py")),
        "app_rename": probe(lambda: os.rename("/app/app.py", "/app/moved.py")),
        "app_mkdir": probe(lambda: os.mkdir("/app/sub")),
        "app_rmdir": probe(lambda: os.rmdir("/app/vendor")),
        "app_open_missing": probe(lambda: open("/app/missing.txt")),
        "stdlib_write": probe(lambda: write("/usr/local/lib/python3.11/os.py")),
        "stdlib_create_pyc": probe(lambda: write("/usr/local/lib/python3.11/__pycache__/x.pyc", "wb")),
        "zoneinfo": probe(zones),
        "pytz": probe(pytz_zones),
        "termios": probe(terminal),
        "pth": probe(pth_files),
        "stdlib_files": probe(stdlib_files),
        "bytecode": probe(bytecode),
        "modes": probe(modes),
        # As root on Linux: no writing on a read-only mount, executing needs an x bit.
        "access": probe(lambda: [[os.access(p, m) for m in (os.R_OK, os.W_OK, os.X_OK)]
                                 for p in ("/app/app.py", "/app", "/tmp", os.devnull, "/nonexistent")]),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
`

// TestGuestFiles checks, through the real server, that the file system outside the
// app's own folder answers as CPython code on Linux expects: a root to list and to
// change to, ENOENT for what is not there, EROFS for changes to the read-only trees,
// a working /dev/null, the time zone database that zoneinfo and Debian's pytz read, and
// a termios for which no descriptor is a terminal.
func TestGuestFiles(t *testing.T) {
	pytz := filepath.Join(testkit.RootOf(t), "apps", "django", "site-packages", "pytz")
	apps := testkit.WriteTree(t, map[string]string{
		"files/app.py": guestFilesApp, "files/wasmwsgi.toml": "warmup = []\n",
		// A .pth file naming a folder, and one with an import line, as pip leaves them.
		"files/site-packages/extra.pth":        "more\n# a comment\nmissing-folder\n",
		"files/site-packages/zz-run.pth":       "import os; os.environ['PTH_RAN'] = 'yes'\n",
		"files/site-packages/more/extramod.py": "VALUE = 'from a .pth folder'\n",
		"data/site-packages/extra.pth":         "more\n",
		"data/site-packages/zz-run.pth":        "import os; os.environ['PTH_RAN'] = 'yes'\n",
		"data/site-packages/more/extramod.py":  "VALUE = 'from a .pth folder'\n",
		"data/app.py":                          guestFilesApp,
		"data/wasmwsgi.toml":                   "warmup = []\n[env]\nPYTHONDONTWRITEBYTECODE = \"1\"\n",
	})
	for _, app := range []string{"files", "data"} {
		if err := os.CopyFS(filepath.Join(apps, app, "vendor", "pytz"), os.DirFS(pytz)); err != nil {
			t.Skipf("Debian's pytz is not vendored (run make vendor-apps): %v", err)
		}
	}
	conf := testkit.ConfigFile(t, fmt.Sprintf("data_root = %q\n[apps.data]\ndata_dir = true\n", t.TempDir()))
	s := testkit.Start(t, apps, "--config", conf)

	guestRoot := []any{"app", "dev", "etc", "tmp", "usr"}
	want := map[string]any{
		"list_root":                    guestRoot,
		"chdir_root":                   []any{"/", guestRoot},
		"stat_missing":                 "FileNotFoundError ENOENT",
		"open_missing":                 "FileNotFoundError ENOENT",
		"write_root":                   "OSError EROFS",
		"mkdir_root":                   "OSError EROFS",
		"devnull":                      "",
		"devnull_is_char_device":       true,
		"devices":                      []any{[]any{"null", "random", "urandom", "zero"}, "00000000", 16.0, 16.0, 3.0},
		"app_open_to_write":            "OSError EROFS",
		"app_overwrite":                "OSError EROFS",
		"app_append":                   "OSError EROFS",
		"app_create":                   "OSError EROFS",
		"app_create_in_missing_folder": "FileNotFoundError ENOENT",
		"app_remove":                   "OSError EROFS",
		"app_rename":                   "OSError EROFS",
		"app_mkdir":                    "OSError EROFS",
		"app_rmdir":                    "OSError EROFS",
		"app_open_missing":             "FileNotFoundError ENOENT",
		"stdlib_write":                 "OSError EROFS",
		"stdlib_create_pyc":            "OSError EROFS",
		"zoneinfo":                     []any{"2:00:00", "CEST", "1:00:00", "CET", true},
		"pytz":                         []any{"2026-07-01T12:00:00+09:00", true},
		"termios":                      []any{"termios.error", "ENOTTY", true, true},
		"pth":                          []any{"from a .pth folder", "yes", true},
		// The frozen modules' files are the stdlib's own, as natively.
		"stdlib_files": []any{"/usr/local/lib/python3.11/os.py", "/usr/local/lib/python3.11/codecs.py",
			"/usr/local/lib/python3.11/posixpath.py", "/usr/local/lib/python3.11", true},
		"bytecode": []any{false, []any{"__pycache__", "cachedmod.py"}, []any{"cachedmod.cpython-311.pyc"}},
		// Linux's usual bits by type; in /tmp chmod and chown are kept, and seen by
		// scandir and tarfile; the read-only trees refuse them.
		"modes": []any{"0o755", "0o644", "0o777", "0o666", "0o644", "0o755",
			"0o751", 1000.0, 1001.0, "0o751", "0o751", 1000.0, "-rwxr-x--x",
			"OSError EROFS", "OSError EROFS", "FileNotFoundError ENOENT", 0.0, "0o600", "0o700", "0o22", "0o700"},
		"access": []any{[]any{true, false, false}, []any{true, false, true}, []any{true, true, true},
			[]any{true, true, false}, []any{false, false, false}},
	}
	var seen map[string]any
	r := get(t, s.Base+"/files/")
	if r.status != 200 {
		t.Fatalf("GET /files/: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &seen); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if got, _ := json.Marshal(seen[k]); string(got) != mustJSON(t, w) {
			t.Errorf("%s: %s, want %s", k, got, mustJSON(t, w))
		}
	}

	// An app granted a data folder also finds /data in the root.
	r = get(t, s.Base+"/data/")
	if err := json.Unmarshal([]byte(r.body), &seen); err != nil {
		t.Fatalf("GET /data/: %d %s", r.status, r.body)
	}
	withData := []any{"app", "data", "dev", "etc", "tmp", "usr"}
	if got, _ := json.Marshal(seen["list_root"]); string(got) != mustJSON(t, withData) {
		t.Errorf("with a data folder, / lists %s, want %s", got, mustJSON(t, withData))
	}
	// In the data folder chmod is accepted and changes nothing; chown to another
	// owner is refused.
	dataModes := append(slices.Clone(want["modes"].([]any)), "0o644", "PermissionError EPERM", "ok")
	if got, _ := json.Marshal(seen["modes"]); string(got) != mustJSON(t, dataModes) {
		t.Errorf("with a data folder, modes: %s\nwant %s", got, mustJSON(t, dataModes))
	}
	// Its [env] sets PYTHONDONTWRITEBYTECODE: no bytecode is written.
	noBytecode := []any{true, []any{"cachedmod.py"}, nil}
	if got, _ := json.Marshal(seen["bytecode"]); string(got) != mustJSON(t, noBytecode) {
		t.Errorf("with PYTHONDONTWRITEBYTECODE, bytecode: %s, want %s", got, mustJSON(t, noBytecode))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
