package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// attack is one hostile request and what must come of it.
type attack struct {
	name   string
	path   string // under /hostile/
	status int    // expected status; 0 means "the connection is aborted mid-body"
	check  func(t *testing.T, body string)
}

// blockedAll checks a JSON object whose values all start with "blocked".
func blockedAll(t *testing.T, body string) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	for k, v := range m {
		if !strings.HasPrefix(v, "blocked") {
			t.Errorf("%s: %s", k, v)
		}
	}
}

var attacks = []attack{
	{"infinite loop in Python", "spin", 504, nil},
	{"infinite loop in C (regex backtracking)", "regex", 504, nil},
	{"time.sleep past the limit", "sleep", 504, nil},
	{"1 GiB allocation", "memory-bomb", 500, nil},
	{"memory creep", "memory-creep", 500, nil},
	{"512 MiB string", "string-bomb", 500, nil},
	{"recursion", "recursion", 500, nil},
	{"deep recursion past the wasm stack", "deep-recursion", 500, nil},
	{"C stack overflow (repr of a list nested 300,000 deep)", "c-stack-overflow", 500, nil},
	{"deeply nested JSON", "nested-json", 500, nil},
	{"endless response stream", "huge-stream", 0, nil},
	{"2 MiB chunk over max_response", "huge-chunk", 0, nil},
	{"sys.exit", "sys-exit", 500, nil},
	{"os._exit", "os-exit", 500, nil},
	{"exception inside close()", "close-raises", 0, nil},
	{"threads", "threads", 500, nil},
	{"Py_FatalError through the test-only C API module", "test-capi-fatal", 500, nil},
	{"CRLF in a header value", "header-injection", 500, nil},
	{"CRLF in the status", "status-injection", 500, nil},
	{"hop-by-hop header", "hop-by-hop", 500, nil},
	{"non-latin-1 header", "non-latin1", 500, nil},
	{"fd exhaustion", "fd-exhaustion", 200, func(t *testing.T, body string) {
		var n int
		if err := json.Unmarshal([]byte(body), &n); err != nil || n > 32 || n < 16 {
			t.Errorf("held %s files open; limits.open_files is 32", body)
		}
	}},
	{"host files and traversal", "host-files", 200, blockedAll},
	{"listing outside the app", "list-root", 200, func(t *testing.T, body string) {
		// The guest's own root tree, nothing of the host's; /app/.. is refused by the
		// guest's C library, which resolves paths below their mount.
		want := `{"/": "allowed: ['app', 'dev', 'etc', 'tmp', 'usr']", "/etc": "allowed: ['ssl']", ` +
			`"/app/..": "blocked: PermissionError"}`
		if body != want {
			t.Errorf("listing: %s\nwant     %s", body, want)
		}
	}},
	{"host environment", "environment", 200, func(t *testing.T, body string) {
		if body != `{"GREETING": "hello"}` {
			t.Errorf("guest environment %s; want only [env]", body)
		}
	}},
	{"writes outside /tmp", "write-files", 200, blockedAll},
	{"private /tmp", "scratch", 200, func(t *testing.T, body string) {
		want := `{"initial": [], "read_back": "kept for this request only", "tempfile_size": 1000, ` +
			`"listing": ["sub"], "link": "allowed: None", "read_through_link": "blocked: FileNotFoundError", ` +
			`"climb_through_link": "blocked: FileNotFoundError", "fill_past_limit": "blocked: OSError"}`
		if body != want {
			t.Errorf("scratch: %s\nwant     %s", body, want)
		}
	}},
	{"sockets", "sockets", 200, blockedAll},
	// Outbound connections, to loopback servers the test starts ({echo}, {sink} and
	// {stream} are their ports), under the default limits and 4 MiB byte caps.
	{"connection flood", "conn-flood?port={echo}", 200, func(t *testing.T, body string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if m["at_once"] != 6.0 || !strings.Contains(fmt.Sprint(m["at_once_error"]), "(outbound.max_open)") ||
			m["in_all"] != 50.0 || !strings.Contains(fmt.Sprint(m["in_all_error"]), "(outbound.max_conns)") {
			t.Errorf("flood: %v; want 6 at once (max_open), 50 in all (max_conns)", m)
		}
	}},
	{"slowloris toward the echo server", "slowloris?port={echo}", 504, nil},
	{"endless read, kept", "endless-read?port={stream}", 200, func(t *testing.T, body string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if n, _ := m["read"].(float64); n > 4<<20 || !strings.Contains(fmt.Sprint(m["error"]), "(outbound.max_bytes_in)") {
			t.Errorf("endless read: %v; want at most 4 MiB, then max_bytes_in", m)
		}
	}},
	{"endless write", "endless-write?port={sink}", 200, func(t *testing.T, body string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if n, _ := m["sent"].(float64); n > 4<<20 || !strings.Contains(fmt.Sprint(m["error"]), "(outbound.max_bytes_out)") {
			t.Errorf("endless write: %v; want at most 4 MiB, then max_bytes_out", m)
		}
	}},
	{"subprocess, system, fork", "subprocesses", 200, blockedAll},
	{"garbage pointers into every host function", "raw-calls", 200, func(t *testing.T, body string) {
		var m map[string]int
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"body_write_before_headers": -4}
		for k, v := range m {
			w, ok := want[k]
			if !ok {
				w = -2 // ErrBounds
			}
			if v != w {
				t.Errorf("%s returned %d, want %d", k, v, w)
			}
		}
	}},
}

func hostileApps(t *testing.T) string {
	dir, err := filepath.Abs("testdata/hostile-apps")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// netServers starts the loopback servers the hostile tenant's outbound attacks and the
// netvictim tenant connect to, and returns them with the server configuration that
// grants them, and the replacer that puts their ports into attack paths.
func netServers(t *testing.T) (echo, sink, stream *testkit.TCPServer, conf string, ports *strings.Replacer) {
	echo, sink, stream = testkit.StartTCP(t, testkit.Echo), testkit.StartTCP(t, testkit.Sink), testkit.StartTCP(t, testkit.Stream)
	grants, ports := testkit.HostileNetGrants(echo, sink, stream)
	conf = testkit.ConfigFile(t, grants)
	return echo, sink, stream, conf, ports
}

// serverLoad reads the server's open fds (/proc) and goroutines (its metrics).
func serverLoad(t *testing.T, s *testkit.Server) (fds, goroutines int) {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Pid()))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // its connection must not count
	resp, err := c.Get(s.Base + "/_wasmwsgi/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			fmt.Sscan(v, &goroutines)
		}
	}
	return len(entries), goroutines
}

// TestHostileTenant runs every attack against the real server while two other tenants
// are served side by side, one of them through its own outbound connection to the echo
// server the attacks flood. Every attack must get its status, every request of the
// other tenants must succeed, and once the attacks are over the host has closed every
// connection they opened and the server is back to the fds and goroutines it had.
func TestHostileTenant(t *testing.T) {
	echo, sink, stream, conf, ports := netServers(t)
	s := testkit.Start(t, hostileApps(t), "--config", conf)

	victim := func(n int) []time.Duration {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			r := get(t, s.Base+"/victim/")
			if r.status != 200 || r.body != "fine" {
				t.Errorf("other tenant: %d %q", r.status, r.body)
			}
			ds = append(ds, time.Since(start))
			if r := get(t, fmt.Sprintf("%s/netvictim/?port=%d", s.Base, echo.Port)); r.status != 200 || r.body != "fine" {
				t.Errorf("the tenant using its outbound grant: %d %q", r.status, r.body)
			}
		}
		return ds
	}
	baseline := median(victim(10))
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond) // for the server to see those connections closed
	fdsBefore, goroutinesBefore := serverLoad(t, s)

	var wg sync.WaitGroup
	var under []time.Duration
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				under = append(under, victim(1)...)
			}
		}
	}()

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			resp, err := http.Get(s.Base + "/hostile/" + ports.Replace(a.path))
			if err != nil {
				t.Fatal(err)
			}
			body, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if a.status == 0 {
				if resp.StatusCode != 200 || readErr == nil {
					t.Errorf("status %d, read error %v: want 200 and a connection aborted mid-body", resp.StatusCode, readErr)
				}
				return
			}
			if resp.StatusCode != a.status {
				t.Errorf("status %d, want %d (body %.200q)", resp.StatusCode, a.status, body)
			}
			if a.status >= 500 && string(body) != http.StatusText(a.status)+"\n" {
				t.Errorf("error body %.200q leaks app output", body)
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Error("an injected header reached the client")
			}
			if a.check != nil {
				a.check(t, string(body))
			}
		})
	}
	close(stop)
	wg.Wait()
	t.Logf("other tenant: median %v alone, %v during the attacks (%d requests, ratio %.2f)",
		baseline, median(under), len(under), float64(median(under))/float64(baseline))

	waitFor(t, "the host closed every outbound connection", func() bool {
		return echo.Open() == 0 && sink.Open() == 0 && stream.Open() == 0
	})
	http.DefaultClient.CloseIdleConnections()
	var fds, goroutines int
	eventually(t, s, func() string {
		if fds, goroutines = serverLoad(t, s); fds > fdsBefore || goroutines > goroutinesBefore {
			return fmt.Sprintf("the server holds %d fds and %d goroutines, %d and %d before the attacks",
				fds, goroutines, fdsBefore, goroutinesBefore)
		}
		return ""
	})
	t.Logf("server: %d fds and %d goroutines before the attacks, %d and %d after", fdsBefore, goroutinesBefore, fds, goroutines)

	log := s.Log()
	for _, want := range []string{"limits.timeout", "limits.memory", "limits.max_response"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log never names %s", want)
		}
	}
	// The C stack overflow is an access out of bounds: a trap, with or without guard
	// pages, never the server's crash.
	if !regexp.MustCompile(`out of bounds memory access.* path=/hostile/c-stack-overflow`).MatchString(log) {
		t.Error("the log has no out-of-bounds trap of /hostile/c-stack-overflow")
	}
	// The attacks show up in the metrics, by app and limit; the other tenant's are clean.
	metrics := get(t, s.Base+"/_wasmwsgi/metrics").body
	for _, want := range []string{
		`wasmwsgi_timeouts_total{app="hostile"} [3-9]`,
		`wasmwsgi_limit_hits_total{app="hostile",limit="memory"} [1-9]`,
		`wasmwsgi_limit_hits_total{app="hostile",limit="max_response"} [1-9]`,
		`wasmwsgi_traps_total{app="hostile"} [1-9]`,
		`wasmwsgi_instances_recycled_total{app="hostile"} [1-9]`,
		`wasmwsgi_timeouts_total{app="victim"} 0\n`,
		`wasmwsgi_limit_hits_total{app="victim",limit="memory"} 0\n`,
		`wasmwsgi_traps_total{app="victim"} 0\n`,
	} {
		if !regexp.MustCompile(want).MatchString(metrics) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestHostileRequests sends malformed, oversized and slow requests.
func TestHostileRequests(t *testing.T) {
	s := testkit.Start(t, hostileApps(t))
	addr := strings.TrimPrefix(s.Base, "http://")

	raw := func(t *testing.T, req string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line)
	}
	statusOf := func(line string) int {
		var code int
		fmt.Sscanf(line, "HTTP/1.1 %d", &code)
		return code
	}

	cases := []struct {
		name string
		req  string
		want int
	}{
		{"body over max_body (Content-Length)", "POST /hostile/read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n", 413},
		{"chunked body over max_body", "POST /hostile/read-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("a", 64<<10)), 20) + "0\r\n\r\n", 413},
		{"URL too long", "GET /hostile/" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"too many headers", "GET /victim/ HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: 1\r\n", 150) + "\r\n", 431},
		{"headers too large", "GET /victim/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n", 431},
		{"bad chunk size", "POST /hostile/read-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"two Content-Lengths", "POST /hostile/read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"malformed request line", "GET /victim/ HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line := raw(t, c.req)
			if got := statusOf(line); got != c.want {
				t.Errorf("got %q, want %d", line, c.want)
			}
		})
	}

	t.Run("Content-Length with Transfer-Encoding frames by the chunks", func(t *testing.T) {
		// Go's parser follows RFC 9112 section 6.3: Transfer-Encoding wins and
		// Content-Length is dropped. What must never happen is the two framings
		// disagreeing: the "smuggled" bytes after the empty chunk are the next request.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /hostile/read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"+
			"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /victim/ HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		var bodies []string
		for i := 0; i < 2; i++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies = append(bodies, fmt.Sprintf("%d %s", resp.StatusCode, b))
		}
		if len(bodies) == 2 && bodies[0] != "200 0" {
			t.Errorf("responses %q: the chunked body was not read as empty", bodies)
		}
		if len(bodies) == 2 && bodies[1] != "200 fine" {
			t.Errorf("responses %q: the pipelined request was not parsed on its own", bodies)
		}
	})

	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		io.WriteString(c, "POST /hostile/read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
		start := time.Now()
		line, _ := bufio.NewReader(c).ReadString('\n')
		if code := statusOf(line); code != 408 {
			t.Errorf("got %q, want 408", line)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("slow body held for %v with a 2s limit", d)
		}
	})

	t.Run("concurrency limit", func(t *testing.T) {
		// concurrency 2 + queue 2 with a 1s queue timeout: of 6 requests sleeping past the
		// limit, some must be refused with 503 and Retry-After.
		var mu sync.Mutex
		codes := map[int]int{}
		retryAfter := true
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(s.Base + "/hostile/sleep")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
					retryAfter = false
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if codes[503] == 0 || codes[504] == 0 || codes[503]+codes[504] != 6 {
			t.Errorf("status counts %v; want some 503 (refused) and some 504 (ran to the limit)", codes)
		}
		if !retryAfter {
			t.Error("a 503 came without Retry-After")
		}
	})

	t.Run("client disconnect frees the instance", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /hostile/spin HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
		// Both slots were taken by spinning instances whose clients left; they must be
		// stopped within the disconnect grace, not run to the 2s limit, so the queue drains.
		time.Sleep(1500 * time.Millisecond)
		start := time.Now()
		resp, err := http.Get(s.Base + "/hostile/read-body")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("after disconnects: status %d", resp.StatusCode)
		}
		t.Logf("request after 4 abandoned spins answered in %v", time.Since(start))
	})
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// greedyApp shows what its tenant got if it were ever served: the operator's secret
// from /data, a file planted there, and 600 MiB of memory.
const greedyApp = `
def application(environ, start_response):
    out = []
    try:
        with open("/data/secret.txt") as f:
            out.append("read " + f.read())
    except Exception as e:
        out.append("no secret: " + type(e).__name__)
    try:
        with open("/data/planted.txt", "w") as f:
            f.write("planted")
        out.append("planted")
    except Exception as e:
        out.append("not planted: " + type(e).__name__)
    try:
        big = bytearray(600 << 20)
        out.append("allocated 600 MiB")
    except MemoryError:
        out.append("no 600 MiB")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(out).encode()]
`

// grantedApp uses what the operator granted it: /data, 300 MiB (above the server's
// 128 MiB) and the operator's DATABASE_URL.
const grantedApp = `
import json, os

def application(environ, start_response):
    with open("/data/visits", "a") as f:
        f.write("x")
    big = bytearray(300 << 20)
    with open("/data/visits") as f:
        visits = len(f.read())
    body = {"DATABASE_URL": os.environ.get("DATABASE_URL"), "GREETING": os.environ.get("GREETING"),
            "allocated_mib": len(big) >> 20, "visits": visits, "script_name": environ["SCRIPT_NAME"]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
`

// TestTenantEscalations serves, next to well-behaved apps, one tenant per way a
// wasmwsgi.toml could ask for more than the operator grants: a host folder (by an
// absolute path, by "..", by a symlink out of the app folder), each limit above its
// ceiling, another app's prefix or virtual host (attackers sorting before and after
// their target), a default mount that another app was granted, and a widening made
// through hot reload. Each one is refused, naming the file, the key and the operator
// key that would grant it; nothing it asked for happens; every other app serves on.
// The operator's own grants work: a data folder under data_root, a ceiling above the
// server's, hosts, a prefix and environment variables.
func TestTenantEscalations(t *testing.T) {
	const adminTestToken = "escalations-test-admin-token"
	tmp := t.TempDir()
	apps := filepath.Join(tmp, "apps")
	host := filepath.Join(tmp, "operator") // a host folder no tenant is granted
	testkit.WriteFile(t, filepath.Join(host, "secret.txt"), "the operator's secret\n")
	app := func(name, source, toml string) {
		testkit.WriteFile(t, filepath.Join(apps, name, "app.py"), source)
		if toml != "" {
			testkit.WriteFile(t, filepath.Join(apps, name, "wasmwsgi.toml"), toml)
		}
	}
	victim, err := os.ReadFile("testdata/hostile-apps/victim/app.py")
	if err != nil {
		t.Fatal(err)
	}
	app("victim", string(victim), "")
	app("shop", reloadApp("the shop"), "")
	app("vshop", reloadApp("the shop by host"), "")
	app("store", reloadApp("the store"), "")
	app("abc", reloadApp("abc"), "")
	app("granted", grantedApp, "[limits]\nmemory = \"384MiB\"\n[env]\nDATABASE_URL = \"the tenant's\"\nGREETING = \"hi\"\n")
	app("grow", reloadApp("grow v1"), "[limits]\nmemory = \"64MiB\"\n")

	refused := map[string]string{} // attacker -> what its error must say
	app("abs-data", greedyApp, fmt.Sprintf("data_dir = %q\n", host))
	app("dotdot-data", greedyApp, "data_dir = \"../../operator\"\n")
	app("link-data", greedyApp, "data_dir = \"out\"\n")
	if err := os.Symlink(host, filepath.Join(apps, "link-data", "out")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"abs-data", "dotdot-data", "link-data"} {
		refused[name] = filepath.Join(apps, name, "wasmwsgi.toml") + ", line 1: data_dir is the server operator's to set, " +
			"not the app's: remove it; the operator grants the app a data folder, <data_root>/" + name +
			" at /data, with [apps." + name + "] data_dir = true in the server configuration"
	}
	above := map[string]struct{ value, ceiling string }{
		"timeout": {`"120s"`, "30s"}, "memory": {`"2GiB"`, "128MiB"}, "max_body": {`"1GiB"`, "16MiB"},
		"max_response": {`"1GiB"`, "256MiB"}, "concurrency": {"100", "8"}, "queue": {"1000", "64"},
		"queue_timeout": {`"300s"`, "10s"}, "open_files": {"10000", "256"}, "scratch": {`"1GiB"`, "16MiB"},
	}
	for key, v := range above {
		name := "raise-" + strings.ReplaceAll(key, "_", "-")
		app(name, greedyApp, "[limits]\n"+key+" = "+v.value+"\n")
		refused[name] = fmt.Sprintf("%s, line 2: limits.%s = %s is above this app's ceiling of %s (limits.%s, the server's): "+
			"lower it, or have the server's operator raise the ceiling with [apps.%s.limits] %s = %s in the server configuration",
			filepath.Join(apps, name, "wasmwsgi.toml"), key, v.value, v.ceiling, key, name, key, v.value)
	}
	for _, name := range []string{"aaa-prefix", "zzz-prefix"} {
		app(name, greedyApp, "prefix = \"/shop\"\n")
		refused[name] = filepath.Join(apps, name, "wasmwsgi.toml") + ", line 1: prefix is the server operator's to set"
	}
	for _, name := range []string{"aaa-hosts", "zzz-hosts"} {
		app(name, greedyApp, "hosts = [\"shop.example.com\"]\n")
		refused[name] = filepath.Join(apps, name, "wasmwsgi.toml") + ", line 1: hosts is the server operator's to set"
	}
	// Folders named after a mount the operator granted to another app, found before
	// (mall < store) and after (xyz > abc) the app it belongs to.
	app("mall", greedyApp, "")
	refused["mall"] = "app mall: its mount /mall belongs to app store, which the server configuration mounts there"
	app("xyz", greedyApp, "")
	refused["xyz"] = "app xyz: its mount /xyz belongs to app abc, which the server configuration mounts there"
	// Loads that must end and leave the app serving: a warm-up path that spins once the
	// warm-up rounds are over (the extra request that learns the snapshot's hot pages),
	// and a folder holding a FIFO and folders nested far past any import path.
	app("spin-probe", fmt.Sprintf(`calls = 0

def application(environ, start_response):
    global calls
    calls += 1
    if environ["PATH_INFO"] == "/warm" and calls > %d:
        while True:
            pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"loaded"]
# %s: new each run, so that the app is imported, not restored from a cached snapshot
`, runtime.WarmupRounds, time.Now()), "warmup = [\"/warm\"]\n[limits]\ntimeout = \"2s\"\n")
	app("odd-files", "def application(environ, start_response):\n"+
		"    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n    return [b\"loaded\"]\n", "")
	if err := syscall.Mkfifo(filepath.Join(apps, "odd-files", "data.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(apps, "odd-files")
	for i := range 100 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	testkit.WriteFile(t, filepath.Join(deep, "lost.py"), "x = 1\n")

	data := filepath.Join(tmp, "data")
	conf := filepath.Join(tmp, "server.toml")
	testkit.WriteFile(t, conf, fmt.Sprintf(`data_root = %q

[admin]
enabled = true
token = %q

[apps.shop]
prefix = "/shop"

[apps.vshop]
hosts = ["shop.example.com"]

[apps.store]
prefix = "/mall"

[apps.abc]
prefix = "/xyz"

[apps.granted]
prefix = "/with-grants"
data_dir = true
[apps.granted.limits]
memory = "512MiB"
[apps.granted.env]
DATABASE_URL = "postgres://db/granted"
`, data, adminTestToken))
	s := testkit.Start(t, apps, "--config", conf)

	// serving checks that the well-behaved apps answer as they should.
	serving := func(t *testing.T) {
		t.Helper()
		for path, want := range map[string]string{"/victim/": "fine", "/shop/": "the shop", "/mall/": "the store",
			"/xyz/": "abc", "/grow/": "grow v1"} {
			if r := get(t, s.Base+path); r.status != 200 || r.body != want {
				t.Errorf("GET %s: %d %q, want %q", path, r.status, r.body, want)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, s.Base+"/", nil)
		req.Host = "shop.example.com"
		if r := do(t, req); r.status != 200 || r.body != "the shop by host" {
			t.Errorf("GET / for shop.example.com: %d %q", r.status, r.body)
		}
	}
	states := readyStates(t, s.Base)
	for _, name := range []string{"spin-probe", "odd-files"} {
		t.Run("loads "+name, func(t *testing.T) {
			if st := states[name]; st.State != "ready" {
				t.Errorf("state %q: %s", st.State, st.Error)
			}
			if r := get(t, s.Base+"/"+name+"/other"); r.status != 200 || r.body != "loaded" {
				t.Errorf("GET /%s/other: %d %q", name, r.status, r.body)
			}
			serving(t)
		})
	}
	for name, want := range refused {
		t.Run("refused "+name, func(t *testing.T) {
			if st := states[name]; st.State != "failed" || !strings.Contains(st.Error, want) {
				t.Errorf("state %q, error:\n%s\nwant one containing:\n%s", st.State, st.Error, want)
			}
			// It answers 503 at its own mount, unless that mount belongs to another
			// app (serving checks the owner answers there).
			if r := get(t, s.Base+"/"+name+"/"); r.status != http.StatusServiceUnavailable && name != "mall" && name != "xyz" {
				t.Errorf("GET /%s/: %d %q", name, r.status, r.body)
			}
			serving(t)
		})
	}
	t.Run("the host folder is untouched", func(t *testing.T) {
		entries, _ := os.ReadDir(host)
		if len(entries) != 1 {
			t.Errorf("the operator's folder holds %d entries, want only secret.txt", len(entries))
		}
		if _, err := os.Stat(filepath.Join(apps, "link-data", "out", "planted.txt")); err == nil {
			t.Error("a file was planted through the symlink")
		}
	})

	t.Run("the operator's grants", func(t *testing.T) {
		m := echoOf(t, get(t, s.Base+"/with-grants/"))
		want := map[string]any{"DATABASE_URL": "postgres://db/granted", "GREETING": "hi", "allocated_mib": 300.0,
			"visits": 1.0, "script_name": "/with-grants"}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		st, err := os.Stat(filepath.Join(data, "granted"))
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("the granted data folder: %v, %v", st, err)
		}
		if b, _ := os.ReadFile(filepath.Join(data, "granted", "visits")); string(b) != "x" {
			t.Errorf("the granted data folder holds %q", b)
		}
		if entries, _ := os.ReadDir(data); len(entries) != 1 {
			t.Errorf("data_root holds %d folders, want only the granted app's", len(entries))
		}
	})

	t.Run("widening through hot reload", func(t *testing.T) {
		s.WaitLog(t, "watching the apps folder")
		testkit.WriteFile(t, filepath.Join(apps, "grow", "wasmwsgi.toml"),
			fmt.Sprintf("data_dir = %q\n[limits]\nmemory = \"2GiB\"\n", host))
		testkit.WriteFile(t, filepath.Join(apps, "grow", "app.py"), greedyApp)
		var reloadError string
		eventually(t, s, func() string {
			var ready struct {
				Apps map[string]struct {
					State       string `json:"state"`
					ReloadError string `json:"reload_error"`
				} `json:"apps"`
			}
			if err := json.Unmarshal([]byte(get(t, s.Base+"/_wasmwsgi/ready").body), &ready); err != nil {
				return err.Error()
			}
			reloadError = ready.Apps["grow"].ReloadError
			if reloadError == "" || ready.Apps["grow"].State != "ready" {
				return fmt.Sprintf("grow is %+v, want ready with a reload_error", ready.Apps["grow"])
			}
			return ""
		})
		for _, want := range []string{filepath.Join(apps, "grow", "wasmwsgi.toml"), "limits.memory", "ceiling", "[apps.grow.limits]"} {
			if !strings.Contains(reloadError, want) {
				t.Errorf("reload_error %q lacks %q", reloadError, want)
			}
		}
		serving(t) // grow still answers "grow v1"
		req, _ := http.NewRequest(http.MethodGet, s.Base+"/_wasmwsgi/api/apps", nil)
		req.Header.Set("Authorization", "Bearer "+adminTestToken)
		var admin struct {
			Apps []struct {
				Name        string `json:"name"`
				ReloadError string `json:"reload_error"`
			} `json:"apps"`
		}
		if err := json.Unmarshal([]byte(do(t, req).body), &admin); err != nil {
			t.Fatal(err)
		}
		shown := false
		for _, a := range admin.Apps {
			shown = shown || a.Name == "grow" && a.ReloadError == reloadError
		}
		if !shown {
			t.Errorf("the admin page does not show grow's reload error: %+v", admin.Apps)
		}
		if m := get(t, s.Base+"/_wasmwsgi/metrics").body; !strings.Contains(m, `wasmwsgi_reload_failures_total{app="grow"} 1`) {
			t.Error(`metrics lack wasmwsgi_reload_failures_total{app="grow"} 1`)
		}
		if entries, _ := os.ReadDir(host); len(entries) != 1 {
			t.Errorf("the operator's folder holds %d entries after the reload", len(entries))
		}
	})

	t.Run("check shows every refusal", func(t *testing.T) {
		out, _, code := runBinary(t, "check", apps, "--config", conf)
		if code != 1 {
			t.Errorf("check exited %d, want 1", code)
		}
		for name, want := range refused {
			if !strings.Contains(out, want) {
				t.Errorf("check does not show why %s failed:\n%s", name, out)
			}
		}
	})
}

// TestTrustAppConfig: with trust_app_config, for a server that hosts only its
// operator's own apps, wasmwsgi.toml sets what the operator sets otherwise: a prefix,
// a data_dir path and limits above the server's. A data_dir that overlaps an app
// folder is still refused.
func TestTrustAppConfig(t *testing.T) {
	apps := filepath.Join(t.TempDir(), "apps")
	testkit.WriteFile(t, filepath.Join(apps, "mine", "app.py"), grantedApp)
	testkit.WriteFile(t, filepath.Join(apps, "mine", "wasmwsgi.toml"), "prefix = \"/with-grants\"\ndata_dir = \"../.data/mine\"\n"+
		"[limits]\nmemory = \"512MiB\"\n[env]\nDATABASE_URL = \"mine\"\nGREETING = \"hi\"\n")
	testkit.WriteFile(t, filepath.Join(apps, "inside", "app.py"), greedyApp)
	testkit.WriteFile(t, filepath.Join(apps, "inside", "wasmwsgi.toml"), "data_dir = \"db\"\n")
	s := testkit.Start(t, apps, "--trust-app-config")
	m := echoOf(t, get(t, s.Base+"/with-grants/"))
	if m["DATABASE_URL"] != "mine" || m["allocated_mib"] != 300.0 || m["visits"] != 1.0 {
		t.Errorf("the trusted app: %v", m)
	}
	if b, err := os.ReadFile(filepath.Join(apps, ".data", "mine", "visits")); err != nil || string(b) != "x" {
		t.Errorf("the trusted app's data_dir: %q, %v", b, err)
	}
	if st := readyStates(t, s.Base)["inside"]; st.State != "failed" || !strings.Contains(st.Error, "overlaps the app folder") {
		t.Errorf("a data_dir inside the app folder: %+v", st)
	}
}
