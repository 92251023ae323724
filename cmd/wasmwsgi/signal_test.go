package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// napApp logs when a request starts, reads the whole body, sleeps a second and answers
// with a body large enough to take several writes.
const napApp = `import sys
import time


def application(environ, start_response):
    tag = environ["QUERY_STRING"]
    print("started " + tag, file=sys.stderr, flush=True)
    body = environ["wsgi.input"].read()
    time.sleep(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [tag.encode() + b":" + body, b"z" * 200000]
`

func napBody(tag, body string) string { return tag + ":" + body + strings.Repeat("z", 200000) }

// TestSignalDrain sends SIGTERM (then, in a second server, SIGINT) while requests are
// in flight: the listener closes at once, every request in flight still gets its whole
// response, and the process exits 0.
func TestSignalDrain(t *testing.T) {
	apps := filepath.Join(t.TempDir(), "apps")
	testkit.WriteFile(t, filepath.Join(apps, "nap", "app.py"), napApp)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { testSignalDrain(t, apps, sig) })
	}
}

func testSignalDrain(t *testing.T, apps string, sig syscall.Signal) {
	s := testkit.Start(t, apps, "--timeout", "10s")

	// Half of the requests send their whole body at once and are asleep in the app
	// when the signal comes; the other half hold their body back until the listener is
	// known to be closed, so they are certainly in flight then.
	const n = 6
	type result struct {
		status int
		body   string
		err    error
	}
	results := make([]result, n)
	held := make([]*io.PipeWriter, n)
	var wg sync.WaitGroup
	for i := range n {
		tag := fmt.Sprintf("r%d", i)
		var body io.Reader = strings.NewReader("whole body")
		if i%2 == 1 {
			pr, pw := io.Pipe()
			held[i] = pw
			t.Cleanup(func() { pw.Close() })
			body = pr
		}
		req, err := http.NewRequest(http.MethodPost, s.Base+"/nap?"+tag, body)
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
		wg.Go(func() {
			resp, err := client.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results[i] = result{resp.StatusCode, string(b), err}
		})
	}
	for i := range n {
		s.WaitLog(t, fmt.Sprintf("started r%d", i))
	}

	if err := s.Signal(sig); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, "shutting down")
	refused := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dialing after %s: %v, want connection refused", sig, err)
		}
		refused = true
		break
	}
	if !refused {
		t.Errorf("new connections were still accepted 10s after %s", sig)
	}
	select {
	case <-s.Done():
		t.Fatalf("the server exited with requests in flight (%v)", s.Err())
	default:
	}

	for i, pw := range held {
		if pw != nil {
			_, _ = pw.Write([]byte("held body"))
			pw.Close()
			held[i] = nil
		}
	}
	wg.Wait()
	for i, r := range results {
		want := napBody(fmt.Sprintf("r%d", i), map[bool]string{true: "held body", false: "whole body"}[i%2 == 1])
		if r.err != nil || r.status != http.StatusOK || r.body != want {
			t.Errorf("request r%d: status %d, %d of %d bytes, error %v", i, r.status, len(r.body), len(want), r.err)
		}
	}

	// The grace period is limits.timeout (10s) plus a second.
	select {
	case <-s.Done():
		if s.Err() != nil {
			t.Errorf("after %s the server exited with %v, want exit 0", sig, s.Err())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("the server did not exit within the grace period after %s", sig)
	}
}
