package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// timedApp: /big fills 24 MiB before its headers go out, /nap sleeps 100 ms first,
// /own sets a Server-Timing header of its own.
const timedApp = `import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path == "/big":
        block = bytearray(24 << 20)
        block[-1] = 1
    elif path == "/nap":
        time.sleep(0.1)
    elif path == "/own":
        headers.append(("Server-Timing", "db;dur=5"))
    start_response("200 OK", headers)
    return [path.encode()]
`

var serverTimingValue = regexp.MustCompile(`^guest;dur=(\d+\.\d{3}), mem;desc="(\d+) bytes peak"$`)

type serverTiming struct {
	ms    float64
	bytes uint64
}

// timing fetches url and returns its Server-Timing values, the server's one parsed.
func timing(t *testing.T, url string) (values []string, ours *serverTiming) {
	t.Helper()
	r := get(t, url)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %q", url, r.status, r.body)
	}
	values = r.header.Values("Server-Timing")
	for _, v := range values {
		if m := serverTimingValue.FindStringSubmatch(v); m != nil {
			ms, err1 := strconv.ParseFloat(m[1], 64)
			n, err2 := strconv.ParseUint(m[2], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("Server-Timing %q: %v %v", v, err1, err2)
			}
			ours = &serverTiming{ms, n}
		}
	}
	return values, ours
}

func TestServerTiming(t *testing.T) {
	apps := filepath.Join(t.TempDir(), "apps")
	testkit.WriteFile(t, filepath.Join(apps, "timed", "app.py"), timedApp)
	testkit.WriteFile(t, filepath.Join(apps, "optout", "app.py"), timedApp)
	testkit.WriteFile(t, filepath.Join(apps, "optout", "wasmwsgi.toml"), "server_timing = false\n")
	testkit.WriteFile(t, filepath.Join(apps, "optin", "app.py"), timedApp)
	testkit.WriteFile(t, filepath.Join(apps, "optin", "wasmwsgi.toml"), "server_timing = true\n")

	t.Run("on", func(t *testing.T) {
		s := testkit.Start(t, apps, "--server-timing", "--memory", "96MiB")
		values, small := timing(t, s.Base+"/timed/")
		if small == nil || len(values) != 1 {
			t.Fatalf("Server-Timing %q is not `guest;dur=<ms>, mem;desc=\"<n> bytes peak\"`", values)
		}
		_, big := timing(t, s.Base+"/timed/big")
		if big == nil || big.bytes < 24<<20 || big.bytes <= small.bytes || big.bytes > 96<<20 {
			t.Errorf("peak memory: %+v after 24 MiB, %+v without (limit 96 MiB)", big, small)
		}
		if _, nap := timing(t, s.Base+"/timed/nap"); nap == nil || nap.ms < 100 {
			t.Errorf("guest time %+v of a request that slept 100 ms first", nap)
		}
		if values, ours := timing(t, s.Base+"/timed/own"); ours == nil || len(values) != 2 || values[0] != "db;dur=5" {
			t.Errorf("the app's own Server-Timing and the server's: %q", values)
		}
		if values, _ := timing(t, s.Base+"/optout/"); len(values) != 0 {
			t.Errorf("an app with server_timing = false sent %q", values)
		}
	})

	t.Run("off", func(t *testing.T) {
		s := testkit.Start(t, apps)
		if values, _ := timing(t, s.Base+"/timed/big"); len(values) != 0 {
			t.Errorf("Server-Timing %q without --server-timing", values)
		}
		if values, ours := timing(t, s.Base+"/optin/"); ours == nil || len(values) != 1 {
			t.Errorf("an app with server_timing = true sent %q", values)
		}
	})
}
