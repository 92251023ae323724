package main

import (
	"encoding/json"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// tmpLinksApp does, in a fresh folder of its private /tmp, what code does with links,
// times and trailing slashes, and answers each call's result or errno name.
const tmpLinksApp = `import errno, json, os, shutil, stat, tarfile, time


def probe(fn):
    try:
        return fn()
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)


def read(path):
    with open(path) as f:
        return f.read()


def application(environ, start_response):
    os.chdir("/tmp")
    os.mkdir("t")
    os.chdir("t")
    with open("f", "w") as f:
        f.write("hi")
    os.mkdir("d")
    seen = {}
    seen["open_new_slash_w"] = probe(lambda: open("new/", "w") and "opened")
    seen["new_exists"] = os.path.exists("new")
    seen["open_file_slash"] = probe(lambda: open("f/") and "opened")
    seen["stat_file_slash"] = probe(lambda: os.stat("f/") and "stat")
    seen["link"] = probe(lambda: os.link("f", "g"))
    seen["link_again"] = probe(lambda: os.link("f", "g"))
    seen["link_dir"] = probe(lambda: os.link("d", "dl"))
    seen["link_missing"] = probe(lambda: os.link("nope", "h"))
    seen["nlink_same_ino"] = [os.stat("f").st_nlink, os.stat("f").st_ino == os.stat("g").st_ino]
    seen["symlink"] = probe(lambda: os.symlink("f", "s"))
    seen["symlink_again"] = probe(lambda: os.symlink("f", "s"))
    seen["readlink"] = probe(lambda: os.readlink("s"))
    seen["readlink_file"] = probe(lambda: os.readlink("f"))
    seen["lstat_is_link"] = stat.S_ISLNK(os.lstat("s").st_mode)
    seen["read_through_link"] = probe(lambda: read("s"))
    os.symlink("l2", "l1")
    os.symlink("l1", "l2")
    seen["open_loop"] = probe(lambda: read("l1"))
    seen["open_nofollow"] = probe(lambda: os.open("s", os.O_RDONLY | os.O_NOFOLLOW))
    os.symlink("d", "sd")
    seen["mkdir_through_link"] = probe(lambda: os.mkdir("sd/x") or os.path.isdir("d/x"))
    seen["rmdir_link"] = probe(lambda: os.rmdir("sd"))
    seen["rename_file_over_dir"] = probe(lambda: os.rename("g", "d"))
    os.unlink("f")
    seen["after_unlink"] = [read("g"), os.stat("g").st_nlink, probe(lambda: read("s"))]
    # Out of /tmp a link sees what the guest sees, never the host's files.
    os.symlink("/usr/share/zoneinfo", "zones")
    seen["link_to_zoneinfo"] = probe(lambda: open("zones/Europe/Paris", "rb").read(4).decode())
    os.symlink("/app", "app")
    seen["link_to_app"] = probe(lambda: "application" in read("app/app.py"))
    seen["write_through_link_to_app"] = probe(lambda: open("app/app.py", "w") and "opened")
    os.symlink("../../../../etc/passwd", "passwd")
    seen["link_to_host_passwd"] = probe(lambda: read("passwd"))
    seen["realpath"] = os.path.realpath("sd/x")
    # Between two file systems: EXDEV, as for two mounts on Linux.
    seen["rename_to_app"] = probe(lambda: os.rename("g", "/app/g"))
    seen["link_from_app"] = probe(lambda: os.link("/app/app.py", "mine"))
    seen["shutil_move_to_app"] = probe(lambda: shutil.move("g", "/app/g"))
    # Times: "now" is now, and the access time is its own.
    os.utime("g", (5, 7))
    seen["utime_5_7"] = [os.stat("g").st_atime, os.stat("g").st_mtime]
    os.utime("g")
    seen["utime_now"] = [abs(os.stat("g").st_atime - time.time()) < 60, abs(os.stat("g").st_mtime - time.time()) < 60]
    # What tarfile and shutil do with links.
    shutil.copytree("/tmp/t", "/tmp/copy", symlinks=True)
    seen["copytree_keeps_links"] = [os.readlink("/tmp/copy/s"), os.readlink("/tmp/copy/zones")]
    os.mkdir("/tmp/src")
    with open("/tmp/src/a", "w") as f:
        f.write("content")
    os.link("/tmp/src/a", "/tmp/src/hard")
    os.symlink("a", "/tmp/src/soft")
    with tarfile.open("/tmp/t.tar", "w") as tar:
        tar.add("/tmp/src", arcname="src")
    with tarfile.open("/tmp/t.tar") as tar:
        seen["tar_members"] = sorted((m.name, m.type.decode()) for m in tar.getmembers())
        tar.extractall("/tmp/out")
    seen["tar_extracted"] = [read("/tmp/out/src/hard"), os.stat("/tmp/out/src/hard").st_nlink,
                             os.readlink("/tmp/out/src/soft")]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
`

// TestTmpLinks checks, through the real server, that the private /tmp has hard and
// symbolic links and times as Linux does: each expected answer is what python3 on
// Linux answers in an empty folder of its /tmp (with /app a read-only mount).
func TestTmpLinks(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{"links/app.py": tmpLinksApp, "links/wasmwsgi.toml": "warmup = []\n"})
	s := testkit.Start(t, apps)
	want := map[string]any{
		"open_new_slash_w":          "EISDIR",
		"new_exists":                false,
		"open_file_slash":           "ENOTDIR",
		"stat_file_slash":           "ENOTDIR",
		"link":                      nil,
		"link_again":                "EEXIST",
		"link_dir":                  "EPERM",
		"link_missing":              "ENOENT",
		"nlink_same_ino":            []any{2, true},
		"symlink":                   nil,
		"symlink_again":             "EEXIST",
		"readlink":                  "f",
		"readlink_file":             "EINVAL",
		"lstat_is_link":             true,
		"read_through_link":         "hi",
		"open_loop":                 "ELOOP",
		"open_nofollow":             "ELOOP",
		"mkdir_through_link":        true,
		"rmdir_link":                "ENOTDIR",
		"rename_file_over_dir":      "EISDIR",
		"after_unlink":              []any{"hi", 1, "ENOENT"},
		"link_to_zoneinfo":          "TZif",
		"link_to_app":               true,
		"write_through_link_to_app": "EROFS",
		"link_to_host_passwd":       "ENOENT",
		"realpath":                  "/tmp/t/d/x",
		"rename_to_app":             "EXDEV",
		"link_from_app":             "EXDEV",
		"shutil_move_to_app":        "EROFS",
		"utime_5_7":                 []any{5, 7},
		"utime_now":                 []any{true, true},
		"copytree_keeps_links":      []any{"f", "/usr/share/zoneinfo"},
		"tar_members":               []any{[]any{"src", "5"}, []any{"src/a", "0"}, []any{"src/hard", "1"}, []any{"src/soft", "2"}},
		"tar_extracted":             []any{"content", 2, "a"},
	}
	expectLinux(t, s.Base+"/links/", want)
}

// tmpTimesApp does in its private /tmp what mailbox.Maildir relies on to notice new
// mail: a folder's modification time changes when an entry is added or removed, and
// only then. Each folder's times are put five seconds back first, as test_mailbox's
// test_reread does, and each probe answers whether they moved forward.
const tmpTimesApp = `import json, os, time


def times(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ctime_ns


def moved(op, *paths):
    for p in paths:
        os.utime(p, (time.time() - 5,) * 2)
    time.sleep(0.02)  # Linux stamps with a clock that ticks every few milliseconds
    before = [times(p) for p in paths]
    op()
    after = [times(p) for p in paths]
    return [[a[0] > b[0], a[1] > b[1], a[0] == a[1]] for b, a in zip(before, after)]


def create(path):
    with open(path, "w") as f:
        f.write("mail")


def application(environ, start_response):
    os.mkdir("/tmp/cur")
    os.mkdir("/tmp/new")
    seen = {
        "create": moved(lambda: create("/tmp/new/1"), "/tmp/new"),
        "listdir": moved(lambda: os.listdir("/tmp/new"), "/tmp/new"),
        "rename": moved(lambda: os.rename("/tmp/new/1", "/tmp/cur/1"), "/tmp/new", "/tmp/cur"),
        "unlink": moved(lambda: os.unlink("/tmp/cur/1"), "/tmp/cur"),
        "mkdir": moved(lambda: os.mkdir("/tmp/cur/sub"), "/tmp/cur"),
        "rmdir": moved(lambda: os.rmdir("/tmp/cur/sub"), "/tmp/cur"),
    }
    create("/tmp/f")
    # A file's own status change time moves when it gets a new name, its modification
    # time does not.
    seen["link_file"] = moved(lambda: os.link("/tmp/f", "/tmp/g"), "/tmp/f")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
`

// TestTmpFolderTimes checks, through the real server, that a folder of the private
// /tmp has its modification and change times moved forward, to the same instant, when
// an entry is added to it or removed from it, and not when it is read: each expected
// answer is python3's on Linux (ext4, tmpfs) running the app.
func TestTmpFolderTimes(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{"times/app.py": tmpTimesApp, "times/wasmwsgi.toml": "warmup = []\n"})
	s := testkit.Start(t, apps)
	now := []any{true, true, true}     // mtime and ctime moved forward, to one instant
	same := []any{false, false, false} // neither moved
	want := map[string]any{
		"create":    []any{now},
		"listdir":   []any{same},
		"rename":    []any{now, now},
		"unlink":    []any{now},
		"mkdir":     []any{now},
		"rmdir":     []any{now},
		"link_file": []any{[]any{false, true, false}},
	}
	expectLinux(t, s.Base+"/times/", want)
}

// expectLinux GETs url, a JSON object of what the guest saw, and compares each key of
// want (what Linux gives) with it.
func expectLinux(t *testing.T, url string, want map[string]any) {
	t.Helper()
	r := get(t, url)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", url, r.status, r.body)
	}
	var seen map[string]any
	if err := json.Unmarshal([]byte(r.body), &seen); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if got, _ := json.Marshal(seen[k]); string(got) != mustJSON(t, w) {
			t.Errorf("%s: %s, Linux gives %s", k, got, mustJSON(t, w))
		}
	}
}
