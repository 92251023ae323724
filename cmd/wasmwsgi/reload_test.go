package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// reloadApp is a WSGI app answering body.
func reloadApp(body string) string {
	return fmt.Sprintf(`def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [%q.encode()]
`, body)
}

// eventually polls check every 50ms until it returns "" or 30s have passed; it then
// fails with check's last complaint.
func eventually(t *testing.T, s *testkit.Server, check func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		if why = check(); why == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("still %s after 30s; server log:\n%s", why, s.Log())
}

func TestServeReloadsEditedApp(t *testing.T) {
	apps := t.TempDir()
	testkit.WriteFile(t, filepath.Join(apps, "hot", "app.py"), reloadApp(fmt.Sprintf("v1 %d", time.Now().UnixNano())))
	s := testkit.Start(t, apps)
	if r := get(t, s.Base+"/hot/"); r.status != 200 || !strings.HasPrefix(r.body, "v1") {
		t.Fatalf("before the edit: %d %q", r.status, r.body)
	}
	s.WaitLog(t, "watching the apps folder")

	testkit.WriteFile(t, filepath.Join(apps, "hot", "app.py"), reloadApp("v2"))
	eventually(t, s, func() string {
		if r := get(t, s.Base+"/hot/"); r.status != 200 || r.body != "v2" {
			return fmt.Sprintf("GET /hot/ = %d %q, want 200 \"v2\"", r.status, r.body)
		}
		return ""
	})

	// A new app folder is mounted, a removed one unmounted.
	testkit.WriteFile(t, filepath.Join(apps, "fresh", "app.py"), reloadApp("fresh"))
	eventually(t, s, func() string {
		if r := get(t, s.Base+"/fresh/"); r.status != 200 || r.body != "fresh" {
			return fmt.Sprintf("GET /fresh/ = %d %q, want 200 \"fresh\"", r.status, r.body)
		}
		return ""
	})
	if err := os.RemoveAll(filepath.Join(apps, "hot")); err != nil {
		t.Fatal(err)
	}
	eventually(t, s, func() string {
		if r := get(t, s.Base+"/hot/"); r.status != http.StatusNotFound {
			return fmt.Sprintf("GET /hot/ = %d after its folder was removed, want 404", r.status)
		}
		return ""
	})
}

func TestServeSIGHUPAppliesNewConfig(t *testing.T) {
	apps := t.TempDir()
	testkit.WriteFile(t, filepath.Join(apps, "hot", "app.py"), reloadApp("hot"))
	config := filepath.Join(t.TempDir(), "wasmwsgi.toml")
	testkit.WriteFile(t, config, "[limits]\nmax_body = \"1MiB\"\n")
	s := testkit.Start(t, apps, "--config", config, "--watch=false")
	if strings.Contains(s.Log(), "watching the apps folder") {
		t.Errorf("--watch=false still watches:\n%s", s.Log())
	}
	post := func() int {
		resp, err := http.Post(s.Base+"/hot/", "text/plain", strings.NewReader(strings.Repeat("x", 100)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != 200 {
		t.Fatalf("100-byte body under max_body = 1MiB: %d", code)
	}

	// An unusable file changes nothing.
	testkit.WriteFile(t, config, "[limits]\nmax_body = \"lots\"\n")
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, s, func() string {
		if !strings.Contains(s.Log(), "the configuration is unusable") || !strings.Contains(s.Log(), "limits.max_body") {
			return "no error about the unusable limits.max_body in the log"
		}
		return ""
	})
	if code := post(); code != 200 {
		t.Fatalf("after a SIGHUP with an unusable config: %d, want the old limits", code)
	}

	// A new limit applies; a new cache folder needs a restart.
	testkit.WriteFile(t, config, fmt.Sprintf("cache_dir = %q\n[limits]\nmax_body = \"10B\"\n", t.TempDir()))
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, s, func() string {
		if code := post(); code != http.StatusRequestEntityTooLarge {
			return fmt.Sprintf("a 100-byte body answered %d after max_body became 10B, want 413", code)
		}
		return ""
	})
	log := s.Log()
	for _, want := range []string{
		`msg="SIGHUP: setting changed" key=limits.max_body from="\"1MiB\"" to="\"10B\""`,
		`needs a restart; not applied" key=cache_dir`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if r := get(t, s.Base+"/hot/"); r.status != 200 || r.body != "hot" {
		t.Errorf("GET after the reload: %d %q", r.status, r.body)
	}
}

// SIGHUP reads the operator's grants again and applies them: a ceiling granted lets an
// app that asks for more load, a prefix granted moves an app, and once the grant is
// taken back the app fails again instead of running on with what it lost.
func TestServeSIGHUPAppliesGrants(t *testing.T) {
	apps := t.TempDir()
	testkit.WriteFile(t, filepath.Join(apps, "big", "app.py"), reloadApp("big"))
	testkit.WriteFile(t, filepath.Join(apps, "big", "wasmwsgi.toml"), "[limits]\nmemory = \"256MiB\"\n")
	testkit.WriteFile(t, filepath.Join(apps, "small", "app.py"), reloadApp("small"))
	config := filepath.Join(t.TempDir(), "server.toml")
	testkit.WriteFile(t, config, "")
	s := testkit.Start(t, apps, "--config", config, "--watch=false")
	hangup := func(content string) {
		t.Helper()
		testkit.WriteFile(t, config, content)
		if err := s.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	answers := func(path string, status int, body string) func() string {
		return func() string {
			if r := get(t, s.Base+path); r.status != status || (body != "" && r.body != body) {
				return fmt.Sprintf("GET %s = %d %q, want %d %q", path, r.status, r.body, status, body)
			}
			return ""
		}
	}
	if st := readyStates(t, s.Base)["big"]; st.State != "failed" || !strings.Contains(st.Error, "above this app's ceiling of 128MiB") {
		t.Fatalf("big before its grant: %+v", st)
	}

	hangup("[apps.big.limits]\nmemory = \"256MiB\"\n\n[apps.small]\nprefix = \"/little\"\n")
	eventually(t, s, answers("/big/", 200, "big"))
	eventually(t, s, answers("/little/", 200, "small"))
	if r := get(t, s.Base+"/small/"); r.status != http.StatusNotFound {
		t.Errorf("GET /small/ after the app moved: %d", r.status)
	}
	s.WaitLog(t, `msg="SIGHUP: setting changed" key=apps.big.limits.memory from=(unset) to="\"256MiB\""`)

	hangup("")
	eventually(t, s, answers("/big/", http.StatusServiceUnavailable, ""))
	eventually(t, s, answers("/small/", 200, "small"))
	if st := readyStates(t, s.Base)["big"]; st.State != "failed" || !strings.Contains(st.Error, "ceiling of 128MiB") {
		t.Errorf("big after its grant was taken back: %+v", st)
	}
}
