package runtime

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// poolApp is a WSGI app whose paths probe what one request leaves for the next.
const poolApp = `
import os, random, sys
counter = 0
kept = []

def app(environ, start_response):
    global counter
    counter += 1
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/count":
        body = str(counter)
    elif path == "/remember":
        # The secret lands in a module global, a fresh buffer and a file in /tmp.
        kept.append(query.encode() * 64)
        with open("/tmp/secret", "w") as f:
            f.write(query)
        body = "ok"
    elif path == "/look":
        body = repr((kept, os.path.exists("/tmp/secret")))
    elif path == "/grow":
        kept.append(bytearray(48 << 20))
        body = "grew"
    elif path == "/leave-open":
        kept.append(open("/tmp/open", "w"))
        body = "left open"
    elif path == "/random":
        body = repr(random.random())
    elif path == "/hash":
        body = str(hash("the same string in every app"))
    else:
        body = "?"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
`

func newPoolApp(t *testing.T, e *Engine, name string, iso Isolation, maxRequests int) *App {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(poolApp), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadPrewarmed(t, e.NewApp(AppSpec{Name: name, Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 20,
		Isolation: iso, MaxRequests: maxRequests, Prewarm: 1,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 16,
			QueueTimeout: 10 * time.Second, OpenFiles: 64, Scratch: 1 << 20}}))
}

// loadPrewarmed loads a, an app with Prewarm 1, drains its pool when the test ends, and
// waits for its pre-warmed instance: pre-warming runs in the background, and waiting
// for it makes the pool's order known.
func loadPrewarmed(t *testing.T, a *App) *App {
	t.Helper()
	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.pool.drain)
	for deadline := time.Now().Add(10 * time.Second); a.Idle() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pool was not pre-warmed")
		}
	}
	return a
}

func get(t *testing.T, a *App, target string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	w := httptest.NewRecorder()
	a.Serve(w, &Request{HTTP: r, PathInfo: r.URL.Path})
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", target, w.Code, w.Body)
	}
	return w.Body.String()
}

func TestRequestIsolationRestoresEverything(t *testing.T) {
	a := newPoolApp(t, newTestEngine(t), "iso-request", IsolationRequest, 0)
	for i := 0; i < 5; i++ {
		if got := get(t, a, "/count"); got != "1" {
			t.Fatalf("request %d: module counter %s, want 1 in request isolation", i, got)
		}
	}
	secret := "s3cr3t-7f1b"
	get(t, a, "/remember?"+secret)
	if got := get(t, a, "/look"); got != "([], False)" {
		t.Fatalf("the next request saw %s", got)
	}
	// The instance that served the secret is back in the pool: nothing of it may be
	// left anywhere in its linear memory.
	inst := a.pool.take()
	if inst == nil {
		t.Fatal("no instance went back to the pool")
	}
	if bytes.Contains(inst.mem.Bytes(), []byte(secret)) {
		t.Error("the secret is still in the restored instance's memory")
	}
	a.pool.put(inst)
}

func TestConcurrentRequestsSeeOnlyTheirOwnData(t *testing.T) {
	a := newPoolApp(t, newTestEngine(t), "iso-concurrent", IsolationRequest, 0)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/remember?w%d-%d", w, i), nil)
				rec := httptest.NewRecorder()
				a.Serve(rec, &Request{HTTP: r, PathInfo: "/remember"})
				rec = httptest.NewRecorder()
				a.Serve(rec, &Request{HTTP: httptest.NewRequest(http.MethodGet, "/look", nil), PathInfo: "/look"})
				if body := rec.Body.String(); body != "([], False)" {
					errs <- body
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a request saw another's data: %s", e)
	}
}

func TestInstanceIsolationKeepsStateUpToMaxRequests(t *testing.T) {
	const maxRequests = 6
	a := newPoolApp(t, newTestEngine(t), "iso-instance", IsolationInstance, maxRequests)
	// One request at a time reuses one instance: the counter climbs, then restarts at
	// 1 when the instance reached its drawn bound in [3, 6].
	var counts []string
	for i := 0; i < 3*maxRequests; i++ {
		counts = append(counts, get(t, a, "/count"))
	}
	seq := strings.Join(counts, ",")
	if !strings.HasPrefix(seq, "1,2,3") {
		t.Fatalf("counter sequence %s: an instance was not reused", seq)
	}
	fresh := 0
	for _, c := range counts {
		n, _ := strconv.Atoi(c)
		if n < 1 || n > maxRequests {
			t.Fatalf("counter sequence %s: an instance served more than max_requests", seq)
		}
		if n == 1 {
			fresh++
		}
	}
	// 18 requests with bounds of at most 6 need at least 3 instances.
	if fresh < 3 {
		t.Fatalf("counter sequence %s: instances were not replaced after max_requests", seq)
	}
}

func TestDirtyInstancesAreNotReused(t *testing.T) {
	for _, iso := range []Isolation{IsolationRequest, IsolationInstance} {
		t.Run(string(iso), func(t *testing.T) {
			a := newPoolApp(t, newTestEngine(t), "dirty-"+string(iso), iso, 1000)
			get(t, a, "/count")
			base := a.pool.take()
			if base == nil {
				t.Fatal("no pooled instance")
			}
			a.pool.put(base)
			for _, path := range []string{"/grow", "/leave-open"} {
				get(t, a, path)
				if inst := a.pool.take(); inst == base {
					t.Errorf("%s: the instance went back to the pool", path)
				} else if inst != nil {
					a.pool.put(inst)
				}
				if got := get(t, a, "/look"); got != "([], False)" {
					t.Errorf("after %s the next request saw %s", path, got)
				}
				base = a.pool.take()
				a.pool.put(base)
			}
		})
	}
}

func TestEntropyAfterRestore(t *testing.T) {
	e := newTestEngine(t)
	a := newPoolApp(t, e, "entropy-a", IsolationRequest, 0)
	seen := map[string]bool{}
	for i := 0; i < 8; i++ {
		r := get(t, a, "/random")
		if seen[r] {
			t.Fatalf("random.random() repeated %s across requests", r)
		}
		seen[r] = true
	}
	// Each app's snapshot has its own hash secret; within an app it is fixed.
	b := newPoolApp(t, e, "entropy-b", IsolationRequest, 0)
	ha1, ha2, hb := get(t, a, "/hash"), get(t, a, "/hash"), get(t, b, "/hash")
	if ha1 != ha2 {
		t.Errorf("hash() changed between requests of one app: %s, %s", ha1, ha2)
	}
	if ha1 == hb {
		t.Errorf("two apps share a hash secret: hash() = %s in both", ha1)
	}
}

// An app that gets no request for IdleAfter keeps no instance, its pre-warmed one
// included, and serves its next request from the snapshot as before.
func TestIdleAppKeepsNoInstance(t *testing.T) {
	a := newPoolApp(t, newTestEngine(t), "idle", IsolationRequest, 0)
	a.pool.mu.Lock()
	a.pool.emptyAfter = 200 * time.Millisecond
	a.pool.arm(time.Now())
	a.pool.mu.Unlock()
	waitEmpty := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); a.Idle() > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d instances still idle", what, a.Idle())
			}
		}
	}
	waitEmpty("after the load")
	if got := get(t, a, "/count"); got != "1" {
		t.Fatalf("first request after the pool emptied: module counter %s, want 1", got)
	}
	if a.Idle() != 1 {
		t.Fatalf("the request's instance did not go back to the pool: %d idle", a.Idle())
	}
	waitEmpty("after a request")
}

// TestIdleInstancesAcrossApps: with limits.idle_instances at 2, three apps share two
// idle instances. The one that waited longest is closed when another app's comes back,
// pre-warming stops once the cap is reached, and an app whose instance was closed
// serves its next request from its snapshot, as fresh as ever.
func TestIdleInstancesAcrossApps(t *testing.T) {
	e := newTestEngine(t)
	e.idle.max = 2
	a := newPoolApp(t, e, "a", IsolationRequest, 0)
	b := newPoolApp(t, e, "b", IsolationRequest, 0)
	var c *App
	idle := func(want ...int) {
		t.Helper()
		for i, app := range []*App{a, b, c} {
			if got := app.Idle(); got != want[i] {
				t.Fatalf("app %s holds %d idle instances, want %d", app.Spec.Name, got, want[i])
			}
		}
		if got := e.idle.len(); got != want[0]+want[1]+want[2] {
			t.Fatalf("the server holds %d idle instances, want %d", got, want[0]+want[1]+want[2])
		}
	}

	dir := appFolder(t, "c", poolApp)
	c = e.NewApp(AppSpec{Name: "c", Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 20,
		Isolation: IsolationRequest, Prewarm: 1,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 16,
			QueueTimeout: 10 * time.Second, OpenFiles: 64, Scratch: 1 << 20}})
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.pool.drain)
	// c's pre-warming finds the cap reached.
	time.Sleep(200 * time.Millisecond)
	idle(1, 1, 0)

	// c's instance comes back: a's, the oldest, is closed.
	if got := get(t, c, "/count"); got != "1" {
		t.Fatalf("c: module counter %s, want 1", got)
	}
	idle(0, 1, 1)
	// a restores a new instance from its snapshot; b's is now the oldest.
	get(t, a, "/remember?a-secret")
	if got := get(t, a, "/count"); got != "1" {
		t.Fatalf("a after its instance was closed: module counter %s, want 1", got)
	}
	if got := get(t, a, "/look"); got != "([], False)" {
		t.Fatalf("a's next request sees %s", got)
	}
	idle(1, 0, 1)
}

// TestIdleInstancesAcrossAppsConcurrently: requests to three apps at once, with room
// for two idle instances, each see a fresh app (in request isolation), and afterwards
// the server's count of idle instances is the apps' own counts added up, within the
// cap: no instance in use or closed is counted as idle.
func TestIdleInstancesAcrossAppsConcurrently(t *testing.T) {
	e := newTestEngine(t)
	e.idle.max = 2
	// b's instances are replaced after a request or two, so instances are also closed
	// on their way back, not only put.
	apps := []*App{newPoolApp(t, e, "a", IsolationRequest, 0), newPoolApp(t, e, "b", IsolationInstance, 2)}
	apps = append(apps, e.NewApp(apps[0].Spec))
	apps[2].Spec.Name = "c"
	if err := apps[2].Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(apps[2].pool.drain)
	var wg sync.WaitGroup
	errs := make(chan string, 300)
	slots := make(chan struct{}, 6) // within each app's concurrency and queue
	for i := range 300 {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			a := apps[i%3]
			r := httptest.NewRequest(http.MethodGet, "/count", nil)
			w := httptest.NewRecorder()
			a.Serve(w, &Request{HTTP: r, PathInfo: "/count"})
			if w.Code != http.StatusOK || (a.Spec.Isolation == IsolationRequest && w.Body.String() != "1") {
				errs <- fmt.Sprintf("%s: %d %q", a.Spec.Name, w.Code, w.Body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	sum := 0
	for _, a := range apps {
		sum += a.Idle()
	}
	if n := e.idle.len(); n != sum || n > 2 {
		t.Fatalf("the server holds %d idle instances, the apps %d, the cap 2", n, sum)
	}
}

// TestImportsWaitForACPU: an app imports only while the engine has a CPU's turn free;
// a load whose context ends while it waits fails with that reason, and the same app
// loads once a turn is free.
func TestImportsWaitForACPU(t *testing.T) {
	e := newTestEngine(t)
	// Not in the snapshot cache, so the load imports.
	spec := oneAtATime("waits", appFolder(t, "waits", poolApp+"\n# "+t.Name()+time.Now().String()))
	for range cap(e.imports) {
		e.imports <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := e.NewApp(spec).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "cancelled while it waited to import") {
		t.Fatalf("a load with every import turn taken: %v", err)
	}
	for range cap(e.imports) {
		<-e.imports
	}
	a := e.NewApp(spec)
	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.pool.drain)
	if got := get(t, a, "/count"); got != "1" {
		t.Fatalf("module counter %s, want 1", got)
	}
}

// TestHotPagesKeptWithTheSnapshot: once requests have shown which snapshot pages they
// use, the set is written next to the cached snapshot, and the app loaded again (a
// restart) starts with it, so its first request has them read ahead.
func TestHotPagesKeptWithTheSnapshot(t *testing.T) {
	e := newTestEngine(t)
	if e.pagemap == nil {
		t.Skip("/proc/self/pagemap is not readable")
	}
	spec := oneAtATime("hot", appFolder(t, "hot", poolApp+"\n# "+time.Now().String()))
	a := e.NewApp(spec)
	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.pool.drain)
	hot := hotPagesPath(a.cachePath)
	for i := 0; ; i++ {
		if _, err := os.Stat(hot); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("no hot page set at %s after %d requests", hot, i)
		}
		get(t, a, "/count")
		time.Sleep(10 * time.Millisecond) // it is written in the background
	}

	again := e.NewApp(spec)
	if err := again.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.pool.drain)
	if again.snap.HotPages() == nil {
		t.Fatal("the app loaded from the cache did not take the hot page set")
	}
	if got := get(t, again, "/count"); got != "1" {
		t.Fatalf("module counter %s, want 1", got)
	}

	// An app with warm-up paths learns the set at its import, from its first warm-up
	// request served once more on a restored instance, before any real request; that
	// request leaves nothing behind.
	spec.Name, spec.Warmup = "hotwarm", []string{"/remember?warm-up"}
	warm := e.NewApp(spec)
	if err := warm.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(warm.pool.drain)
	if warm.snap.HotPages() == nil {
		t.Fatal("no hot page set after the import of an app with warm-up paths")
	}
	// The snapshot holds what the warm-up rounds kept, and not one more.
	if got := strings.Count(get(t, warm, "/look"), "b'"); got != WarmupRounds {
		t.Fatalf("the first request after the import sees %d remembered values, want the %d of the warm-up", got, WarmupRounds)
	}
}

// TestHotPageProbeIsBounded: the extra warm-up request that learns the hot pages at
// import runs under the app's time limit. An app whose warm-up path spins once the
// warm-up rounds are over still finishes loading, and serves.
func TestHotPageProbeIsBounded(t *testing.T) {
	e := newTestEngine(t)
	app := fmt.Sprintf(`
calls = 0

def app(environ, start_response):
    global calls
    calls += 1
    if environ["PATH_INFO"] == "/warm" and calls > %d:
        while True:
            pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(calls).encode()]
# %s
`, WarmupRounds, time.Now())
	spec := oneAtATime("spins", appFolder(t, "spins", app))
	spec.Warmup, spec.Limits.Timeout = []string{"/warm"}, 2*time.Second
	a := e.NewApp(spec)
	loaded := make(chan error, 1)
	go func() { loaded <- a.Load(context.Background()) }()
	select {
	case err := <-loaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the load did not end: the probe request was not stopped at limits.timeout")
	}
	t.Cleanup(a.pool.drain)
	if got := get(t, a, "/other"); got != fmt.Sprint(WarmupRounds+1) {
		t.Fatalf("first request after the load: %s, want %d", got, WarmupRounds+1)
	}
}

// TestSnapshotCleanupKeepsOtherApps: writing app foo's new snapshot removes foo's older
// ones, and never those of an app whose name starts with "foo-".
func TestSnapshotCleanupKeepsOtherApps(t *testing.T) {
	e := newTestEngine(t)
	load := func(name, marker string) *App {
		t.Helper()
		a := e.NewApp(oneAtATime(name, appFolder(t, name, poolApp+"\n# "+marker)))
		if err := a.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.pool.drain)
		return a
	}
	stamp := time.Now().String()
	other := load("foo-x", stamp)
	first := load("foo", stamp+" 1")
	second := load("foo", stamp+" 2")
	for _, c := range []struct {
		path string
		kept bool
	}{{other.cachePath, true}, {first.cachePath, false}, {second.cachePath, true}} {
		if _, err := os.Stat(c.path); (err == nil) != c.kept {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(c.path), err == nil, c.kept)
		}
	}
}

// appFolder writes source as app.py of a new folder named name and returns the folder.
func appFolder(t *testing.T, name, source string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// oneAtATime is the spec of an app in dir that runs one request at a time.
func oneAtATime(name, dir string) AppSpec {
	return AppSpec{Name: name, Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 20,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 1, Queue: 1,
			QueueTimeout: time.Second, OpenFiles: 64, Scratch: 1 << 20}}
}

// spareApp keeps what its requests send in module state (in instance isolation it
// stays for the next request) and reads no entropy at import, so that copies of it
// take one import's snapshot file.
const spareApp = `
import os
counter = 0
kept = []

def app(environ, start_response):
    global counter
    counter += 1
    if environ["PATH_INFO"] == "/remember":
        kept.append(environ["QUERY_STRING"].encode() * 64)
        with open("/tmp/secret", "w") as f:
            f.write(environ["QUERY_STRING"])
    body = repr((counter, kept, os.path.exists("/tmp/secret")))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
`

// sharedCopy loads a copy of spareApp whose snapshot is shared: the first copy of an
// engine is imported, the others take its file. It waits for the pre-warmed instance.
func sharedCopy(t *testing.T, e *Engine, name string, iso Isolation) *App {
	t.Helper()
	return loadPrewarmed(t, e.NewApp(AppSpec{Name: name, Dir: appFolder(t, name, spareApp), Entrypoint: "app",
		MaxFileBytes: 1 << 20, Isolation: iso, MaxRequests: 1000, Prewarm: 1, ShareSnapshot: true,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 64,
			QueueTimeout: 30 * time.Second, OpenFiles: 64, Scratch: 1 << 20}}))
}

// sparesEngine returns a test engine that keeps spare memories, or skips the test.
func sparesEngine(t *testing.T) *Engine {
	t.Helper()
	e := newTestEngine(t)
	if e.spares == nil {
		t.Skip("no page map: instances keep no spare memories")
	}
	return e
}

// TestSparesCarryNothingAcrossApps closes an instance that holds an app's state (in
// instance isolation) and has a copy of the app, whose snapshot is the same file, make
// its new instance over that memory (memimage.Spares): the copy must see its own
// snapshot, none of what the first app's requests left.
func TestSparesCarryNothingAcrossApps(t *testing.T) {
	e := sparesEngine(t)
	a := sharedCopy(t, e, "spare-a", IsolationInstance)
	get(t, a, "/remember?a-secret")
	if got := get(t, a, "/"); !strings.Contains(got, "a-secret") || !strings.HasPrefix(got, "(2,") {
		t.Fatalf("a's second request sees %s: instance isolation did not keep its state", got)
	}
	inst := a.pool.take()
	if inst == nil {
		t.Fatal("a's instance did not go back to its pool")
	}
	mem := inst.mem
	a.pool.put(inst)
	a.pool.drain()
	if n := e.spares.Len(); n != 1 {
		t.Fatalf("the engine keeps %d spare memories after a's instance closed, want 1", n)
	}

	// b is a copy of a: its pre-warmed instance takes a's memory.
	b := sharedCopy(t, e, "spare-b", IsolationInstance)
	if n := e.spares.Len(); n != 0 {
		t.Fatalf("the engine keeps %d spare memories after b made an instance, want 0", n)
	}
	inst = b.pool.take()
	if inst == nil || inst.mem != mem {
		t.Fatal("b's instance was not made over a's memory")
	}
	if ev := b.Events(); ev.InstancesOverSpare.Load() != 1 || ev.InstancesMapped.Load() != 0 {
		t.Fatalf("b counts %d instances made over a spare and %d mapped, want 1 and 0",
			ev.InstancesOverSpare.Load(), ev.InstancesMapped.Load())
	}
	b.pool.put(inst)
	if got := get(t, b, "/"); got != "(1, [], False)" {
		t.Fatalf("b's first request, over a's memory, sees %s", got)
	}
}

// TestSparesUnderConcurrentRequests sends requests to four copies of an app at once,
// in instance isolation, with room for one idle instance in the server, so that nearly
// every request makes an instance over the memory of one just closed, holding the
// state of another copy or of its own: a request may see what earlier requests to its
// own copy kept, never what another copy's did.
func TestSparesUnderConcurrentRequests(t *testing.T) {
	e := sparesEngine(t)
	var apps []*App
	for i := range 4 {
		apps = append(apps, sharedCopy(t, e, fmt.Sprintf("spare-c%d", i), IsolationInstance))
	}
	e.idle.max = 1
	var wg sync.WaitGroup
	errs := make(chan string, 8*40)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				a := apps[(g+i)%len(apps)]
				secret := fmt.Sprintf("%s-g%d-i%d.", a.Spec.Name, g, i)
				r := httptest.NewRequest(http.MethodGet, "/remember?"+secret, nil)
				w := httptest.NewRecorder()
				a.Serve(w, &Request{HTTP: r, PathInfo: r.URL.Path})
				body := w.Body.String()
				if w.Code != http.StatusOK || !strings.Contains(body, secret) {
					errs <- fmt.Sprintf("%s: status %d, %.200s", a.Spec.Name, w.Code, body)
					continue
				}
				for _, other := range apps {
					if other != a && strings.Contains(body, other.Spec.Name+"-") {
						errs <- fmt.Sprintf("%s sees a secret of %s: %.300s", a.Spec.Name, other.Spec.Name, body)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
