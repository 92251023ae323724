package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// gcApp checks, inside a request, that objects created at import (and so frozen into
// the app's snapshot) survive the cycle collector whatever the request does to them.
// It answers "ok <requests this instance served>" or the problems it found.
const gcApp = `import gc, sys, weakref

# Room in the snapshot's heap for the checks' big lists: an instance whose memory grows
# is not reused (README, "In both modes"), and this test needs one instance to serve
# every request of the instance isolation run.
_room = bytearray(8 << 20)
del _room

D = {"k": 1, "name": "import-time dict"}
NESTED = {"outer": {"inner": {"v": 1}}}

class Box:
    pass

BOX = Box()
BOX.a = 1
BOX.b = "x"

FINALIZED = []

class Finalized:
    def __del__(self):
        FINALIZED.append(self)  # would resurrect it; must never run for a live object

KEEP = Finalized()

class Target:
    pass

TARGET = Target()
CALLBACKS = []
REF = weakref.ref(TARGET, lambda r: CALLBACKS.append(r))
CYCLE = []
CYCLE.append(CYCLE)  # a live cycle, held by the module
SERVED = [0]
gc.collect()  # D, NESTED's dicts and BOX's __dict__ hold only atomic values: untracked


def check():
    problems = []
    # A container gained by an untracked import-time dict re-tracks it.
    D["x"] = []
    gc.collect()
    if D != {"k": 1, "name": "import-time dict", "x": []}:
        problems.append("D = %r" % (D,))
    NESTED["outer"]["inner"]["l"] = [1]
    gc.collect()
    if NESTED != {"outer": {"inner": {"v": 1, "l": [1]}}}:
        problems.append("NESTED = %r" % (NESTED,))
    BOX.c = {"list": []}
    gc.collect()
    if vars(BOX) != {"a": 1, "b": "x", "c": {"list": []}}:
        problems.append("vars(BOX) = %r" % (vars(BOX),))
    if REF() is not TARGET or CALLBACKS:
        problems.append("weakref to TARGET: %r, callbacks %r" % (REF(), CALLBACKS))
    if FINALIZED:
        problems.append("__del__ ran on a live import-time object")
    if CYCLE[0] is not CYCLE:
        problems.append("CYCLE = %r" % (CYCLE,))
    if not any(r is globals() for r in gc.get_referrers(D)):
        problems.append("gc.get_referrers(D) misses the module's globals")
    # Everything frozen at snapshot time goes back to the collector's generations.
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if "abc".partition("b") != ("a", "b", "c") or not hasattr(str, "partition"):
        problems.append("str lost its methods")
    if "gc" not in sys.modules or sys.modules["gc"] is not gc or D.get("k") != 1:
        problems.append("sys.modules or D lost entries after gc.unfreeze()")
    # List and tuple repetition add many references at once.
    big = [D] * 100000 + list((BOX,) * 1000)
    del big
    gc.collect()
    if D.get("name") != "import-time dict" or vars(BOX).get("a") != 1:
        problems.append("repetition broke D or BOX")
    return problems


def application(environ, start_response):
    SERVED[0] += 1
    problems = check()
    start_response("200 OK", [("Content-Type", "text/plain")])
    if problems:
        return [("\n".join(problems)).encode()]
    return [b"ok %d" % SERVED[0]]
`

// TestCollectorKeepsImportTimeObjects runs gcApp under both isolation modes; in
// instance isolation one instance serves many requests, so each repeats the checks on
// an interpreter the earlier ones have changed.
func TestCollectorKeepsImportTimeObjects(t *testing.T) {
	apps := t.TempDir()
	testkit.WriteFile(t, filepath.Join(apps, "gcrequest", "app.py"), gcApp)
	testkit.WriteFile(t, filepath.Join(apps, "gcinstance", "app.py"), gcApp)
	testkit.WriteFile(t, filepath.Join(apps, "gcinstance", "wasmwsgi.toml"),
		"isolation = \"instance\"\nmax_requests = 1000\nprewarm = 1\n[limits]\nconcurrency = 1\n")
	s := testkit.Start(t, apps)
	for i := 1; i <= 3; i++ {
		if r := get(t, s.Base+"/gcrequest/"); r.status != 200 || r.body != "ok 1" {
			t.Errorf("request isolation, request %d: %d %q", i, r.status, r.body)
		}
	}
	// An instance is retired after a random number of requests in [max_requests/2,
	// max_requests], so 40 requests stay on one instance.
	for i := 1; i <= 40; i++ {
		r := get(t, s.Base+"/gcinstance/")
		if r.status != 200 || r.body != fmt.Sprintf("ok %d", i) {
			t.Fatalf("instance isolation, request %d: %d %q", i, r.status, r.body)
		}
	}
	if strings.Contains(s.Log(), "level=ERROR") {
		t.Errorf("the server logged an error:\n%s", s.Log())
	}
}
