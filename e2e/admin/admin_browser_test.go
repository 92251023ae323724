// Package admin drives the admin page in a real browser. It lives in the e2e module
// because of its browser driver (chromedp).
package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// These tests drive the admin page in a real browser: Debian's chromium, headless,
// through the DevTools protocol (chromedp). They skip when chromium is not installed
// (apt-get install chromium; .ci/run installs it).

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

const adminTestToken = "admin-browser-test-token-5d2e9"

// chromium returns the browser to drive, or "" when none is installed.
func chromium() string {
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserTab starts a headless chromium for the test and returns a context of its one
// tab. The browser is ended when the test ends.
func browserTab(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("chromium is not installed (apt-get install chromium): the admin page's browser test needs it")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		// The defaults already run headless (no display needed), without first-run
		// dialogs, extensions or background networking, and keep shared memory in /tmp
		// (disable-dev-shm-usage) because /dev/shm is small in containers.
		chromedp.ExecPath(path),
		// Chromium will not start its sandbox as root, and the tests run as root in CI.
		// The browser only loads this test's own local server.
		chromedp.NoSandbox,
		// No GPU on the test machines: draw in software.
		chromedp.Flag("disable-gpu", true),
		// A fixed window, so the screenshot has the same size on every machine.
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancel()
	})
	// Start the browser now, so a browser that cannot start fails here and not in the
	// middle of the test.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return tab
}

// adminConfig writes a config file that turns the admin page on, followed by extra.
func adminConfig(t *testing.T, extra string) string {
	return testkit.ConfigFile(t, fmt.Sprintf("[admin]\nenabled = true\ntoken = %q\n", adminTestToken)+extra)
}

// field is a JavaScript expression for the text of one cell of the admin page ("" when
// the app or the cell is not there).
func field(app, name string) string {
	return fmt.Sprintf(`(document.querySelector('tbody[data-app=%q] [data-field=%q]')?.textContent ?? "")`, app, name)
}

// waitPage waits until the JavaScript expression cond is true on the page, or fails
// the test with what the page shows.
func waitPage(t *testing.T, tab context.Context, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(tab, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		text, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, text)
	}
}

func pageText(t *testing.T, tab context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

// screenshot saves the whole page as a PNG into the test's temporary folder and, when
// extra is set, into that file too.
func screenshot(t *testing.T, tab context.Context, extra string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	paths := []string{filepath.Join(t.TempDir(), "admin.png")}
	if extra != "" {
		paths = append(paths, extra)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatalf("writing the screenshot: %v", err)
		}
		t.Logf("screenshot of the admin page: %s", p)
	}
}

func fetch(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const browserTestApp = `
import socket


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/net":
        # Four bytes to the test's echo server and back, then a destination not granted.
        port = int(environ["QUERY_STRING"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                got += s.recv(4 - len(got))
        try:
            socket.create_connection(("127.0.0.2", port), timeout=5)
        except PermissionError:
            pass
    if environ.get("PATH_INFO") == "/boom":
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"boom"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
`

func TestAdminPageInBrowser(t *testing.T) {
	tab := browserTab(t, 1200, 500)
	apps := testkit.WriteTree(t, map[string]string{
		"hello/app.py":  browserTestApp,
		"broken/app.py": "import no_such_module_here\n",
	})
	echo := testkit.StartTCP(t, testkit.Echo).Port
	s := testkit.Start(t, apps, "--config", adminConfig(t, fmt.Sprintf("[apps.hello]\noutbound = [\"tcp://127.0.0.1:%d\"]\n", echo)))

	// ?token= signs the browser in and leads to the page's clean address.
	if err := chromedp.Do(tab, chromedp.Navigate(s.Base+"/_wasmwsgi/?token="+adminTestToken)); err != nil {
		t.Fatal(err)
	}
	if u := pageText(t, tab, `location.href`); u != s.Base+"/_wasmwsgi/" {
		t.Errorf("after signing in the page is at %s, want %s/_wasmwsgi/", u, s.Base)
	}
	// The cookie is HttpOnly: the page's script cannot read it.
	if c := pageText(t, tab, `document.cookie`); c != "" {
		t.Errorf("document.cookie = %q, want the session cookie hidden from scripts", c)
	}

	waitPage(t, tab, "the apps and their states appear",
		field("hello", "state")+` === "ready" && `+field("broken", "state")+` === "failed"`)
	waitPage(t, tab, "the broken app shows its load error",
		field("broken", "error")+`.includes("ModuleNotFoundError") && `+
			field("broken", "error")+`.includes("no_such_module_here") && `+
			`!document.querySelector('tbody[data-app="broken"] tr.error').hidden`)
	if got := pageText(t, tab, field("hello", "requests")); got != "0" {
		t.Fatalf("hello shows %q requests before any, want 0", got)
	}
	if got := pageText(t, tab, field("hello", "p50")); got != "\u2013" {
		t.Errorf("hello p50 before any request = %q, want a dash", got)
	}
	if pageText(t, tab, `document.querySelector('tbody[data-app="hello"] tr.error').hidden ? "hidden" : "shown"`) != "hidden" {
		t.Errorf("the ready app shows an error row")
	}

	// A request to the app shows up in its counters.
	if code := fetch(t, s.Base+"/hello/"); code != http.StatusOK {
		t.Fatalf("GET /hello/: status %d", code)
	}
	waitPage(t, tab, "hello's request counter goes up to 1", field("hello", "requests")+` === "1"`)
	if got := pageText(t, tab, field("hello", "p50")); !strings.HasSuffix(got, " ms") {
		t.Errorf("hello p50 after a request = %q, want a latency in ms", got)
	}
	if got := pageText(t, tab, field("hello", "memory")); !strings.HasSuffix(got, " MiB") {
		t.Errorf("hello peak memory after a request = %q, want MiB", got)
	}
	if code := fetch(t, s.Base+"/hello/boom"); code != http.StatusInternalServerError {
		t.Fatalf("GET /hello/boom: status %d, want 500", code)
	}
	waitPage(t, tab, "hello's 5xx counter goes up to 1",
		field("hello", "requests")+` === "2" && `+field("hello", "errors")+` === "1"`)
	// The sparkline draws the requests' second once it is over.
	waitPage(t, tab, "hello's latency sparkline draws a point",
		`(document.querySelector('tbody[data-app="hello"] svg.spark path')?.getAttribute("d") ?? "").startsWith("M")`)
	if got := pageText(t, tab, field("hello", "instances")); got != "0 / 0" {
		t.Errorf("hello running / queued when idle = %q, want 0 / 0", got)
	}

	// Outbound: a dash until the app connects, then its connection, bytes and denial.
	if got := pageText(t, tab, field("hello", "outbound")); got != "\u2013" {
		t.Errorf("hello outbound before any connection = %q, want a dash", got)
	}
	if code := fetch(t, s.Base+"/hello/net?"+strconv.Itoa(echo)); code != http.StatusOK {
		t.Fatalf("GET /hello/net: status %d", code)
	}
	waitPage(t, tab, "hello's outbound cell shows its connection",
		field("hello", "outbound")+` === "1 conn, 4 B in, 4 B out, 1 denied"`)
	if got := pageText(t, tab, `document.querySelector('tbody[data-app="hello"] [data-field="outbound"]').className`); got != "denied" {
		t.Errorf("the outbound cell of an app with a denial has class %q, want denied", got)
	}
	screenshot(t, tab, "")
}

// TestAdminPageBundledApps draws the admin page of the bundled apps/ after some
// traffic, into the file ADMIN_PAGE_SCREENSHOT names (docs/admin.png is made so:
// ADMIN_PAGE_SCREENSHOT=$PWD/../docs/admin.png go test -run TestAdminPageBundledApps
// ./admin/, in e2e/). It loads every bundled app, so it runs only when asked. (The
// variable does not start with WASMWSGI_: the server would read it as configuration.)
func TestAdminPageBundledApps(t *testing.T) {
	out := os.Getenv("ADMIN_PAGE_SCREENSHOT")
	if out == "" {
		t.Skip("set ADMIN_PAGE_SCREENSHOT=file.png to draw the admin page of the bundled apps")
	}
	out, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	tab := browserTab(t, 1280, 560)
	bundled, grants := testkit.BundledApps(t, fmt.Sprintf("[admin]\nenabled = true\ntoken = %q\n", adminTestToken))
	testkit.MigrateDjango(t, bundled, grants...)
	s := testkit.Start(t, bundled, grants...)
	if err := chromedp.Do(tab, chromedp.Navigate(s.Base+"/_wasmwsgi/?token="+adminTestToken)); err != nil {
		t.Fatal(err)
	}

	// Twenty seconds of uneven traffic, so the rates and sparklines have something to show.
	traffic := []struct {
		app   string
		paths []string
		every int // rounds between bursts
	}{
		{"hello", []string{"/", "/info", "/counter"}, 1},
		{"flask", []string{"/", "/api/info", "/missing"}, 1},
		{"bottle", []string{"/"}, 2},
		{"falcon", []string{"/"}, 3},
		{"pyramid", []string{"/"}, 4},
		{"django", []string{"/"}, 5},
	}
	sent := map[string]int{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for round := range 80 {
		<-tick.C
		for _, tr := range traffic {
			if round%tr.every != 0 {
				continue
			}
			for range 1 + (round/10+len(tr.app))%3 {
				for _, p := range tr.paths {
					fetch(t, s.Base+"/"+tr.app+p)
					sent[tr.app]++
				}
			}
		}
	}
	var conds []string
	for app, n := range sent {
		conds = append(conds, field(app, "requests")+` === "`+strconv.Itoa(n)+`"`)
	}
	waitPage(t, tab, "every app shows the requests sent to it", strings.Join(conds, " && "))
	waitPage(t, tab, "every bundled app is ready",
		`[...document.querySelectorAll('[data-field="state"]')].every(e => e.textContent === "ready")`)
	screenshot(t, tab, out)
}
