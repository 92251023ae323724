package runtime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A client that leaves while its request waits for an instance is counted as a
// disconnect, not as a queue refusal, and gets no answer. (cmd/wasmwsgi's
// TestClientDisconnect covers clients that leave while their request runs.)
func TestClientGoneWhileQueued(t *testing.T) {
	a := newPoolApp(t, newTestEngine(t), "gone-queued", IsolationRequest, 0)
	for range a.Spec.Limits.Concurrency {
		if err := a.gate.acquire(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for range a.Spec.Limits.Concurrency {
			a.gate.release()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/count", nil)
	w := httptest.NewRecorder()
	stats := &Stats{}
	aborted := func() (v any) {
		defer func() { v = recover() }()
		a.Serve(w, &Request{HTTP: r, PathInfo: "/count", ID: "queued-1", Stats: stats})
		return nil
	}()
	if aborted != http.ErrAbortHandler {
		t.Errorf("Serve ended with %v and status %d, want the connection aborted", aborted, w.Code)
	}
	if w.Body.Len() > 0 {
		t.Errorf("a client that left got a response: %q", w.Body)
	}
	if !stats.ClientGone {
		t.Error("Stats.ClientGone is not set")
	}
	ev := a.Events()
	if ev.ClientDisconnects.Load() != 1 || ev.Queue.Load() != 0 {
		t.Errorf("client disconnects %d, queue refusals %d; want 1 and 0", ev.ClientDisconnects.Load(), ev.Queue.Load())
	}
}
