package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestGate is the admission of requests to an app's instances (limits.concurrency,
// limits.queue, limits.queue_timeout) and to the server's (limits.instances).
func TestGate(t *testing.T) {
	for _, tc := range []struct {
		name            string
		capacity, queue int
		held            int // slots taken before the acquire
		waiting         int // requests already queued
		timeout         time.Duration
		// during runs while the acquire waits: release a slot, or cancel its context.
		release, cancel bool
		want            error
	}{
		{name: "a free slot", capacity: 2, queue: 0, held: 1, timeout: time.Hour},
		{name: "a free slot, no time to wait", capacity: 1, queue: 0, timeout: 0},
		{name: "capacity 0 admits one", capacity: 0, queue: 0, timeout: time.Hour},
		{name: "capacity 0 admits only one", capacity: 0, queue: 0, held: 1, want: errQueueFull},
		{name: "no free slot and no queue", capacity: 1, queue: 0, held: 1, timeout: time.Hour, want: errQueueFull},
		{name: "the queue is full", capacity: 1, queue: 2, held: 1, waiting: 2, timeout: time.Hour, want: errQueueFull},
		{name: "queued until the timeout", capacity: 1, queue: 1, held: 1, timeout: 20 * time.Millisecond, want: errQueueTimeout},
		{name: "queued behind others, until the timeout", capacity: 1, queue: 3, held: 1, waiting: 2,
			timeout: 20 * time.Millisecond, want: errQueueTimeout},
		{name: "queued until a slot is released", capacity: 1, queue: 1, held: 1, timeout: time.Hour, release: true},
		{name: "queued until the client leaves", capacity: 2, queue: 1, held: 2, timeout: time.Hour, cancel: true,
			want: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(tc.capacity, tc.queue)
			for range tc.held {
				if err := g.acquire(context.Background(), 0); err != nil {
					t.Fatalf("taking a slot: %v", err)
				}
			}
			stopWaiters := queueWaiters(t, g, tc.waiting)
			defer stopWaiters()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- g.acquire(ctx, tc.timeout) }()
			if tc.release || tc.cancel {
				waitFor(t, func() bool { _, q := g.inUse(); return q == tc.waiting+1 })
				if tc.release {
					g.release()
				} else {
					cancel()
				}
			}
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("acquire: %v, want %v", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("acquire did not return")
			}
			held, queued := g.inUse()
			wantHeld := tc.held
			if tc.want == nil && !tc.release {
				wantHeld++
			}
			if held != wantHeld || queued != tc.waiting {
				t.Errorf("after acquire: %d held, %d queued; want %d and %d", held, queued, wantHeld, tc.waiting)
			}
		})
	}
}

// queueWaiters starts n acquires that wait in g's queue, and returns what stops them.
func queueWaiters(t *testing.T, g *gate, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	for range n {
		go g.acquire(ctx, time.Hour)
	}
	waitFor(t, func() bool { _, q := g.inUse(); return q == n })
	return func() {
		cancel()
		waitFor(t, func() bool { _, q := g.inUse(); return q == 0 })
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the gate")
		}
	}
}

// TestAdmit is the admission of one request: a slot of its app, then one of the server.
func TestAdmit(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		appHeld, serverHeld   int
		wantErr               string
		wantApp, wantInServer int // slots held once admitted
	}{
		{name: "both free", wantApp: 1, wantInServer: 1},
		{name: "the app is at limits.concurrency", appHeld: 1, wantErr: "queue full"},
		{name: "the server is at limits.instances", serverHeld: 2, wantErr: "server-wide instance limit: queue timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &App{
				Spec:   AppSpec{Limits: Limits{QueueTimeout: 10 * time.Millisecond}},
				gate:   newGate(1, 0),
				engine: &Engine{instances: newGate(2, 1<<30)},
			}
			for range tc.appHeld {
				a.gate.acquire(context.Background(), 0)
			}
			for range tc.serverHeld {
				a.engine.instances.acquire(context.Background(), 0)
			}
			release, err := a.admit(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("admit: %v, want %q", err, tc.wantErr)
				}
				// A refused request holds no slot of either gate.
				if app, _ := a.gate.inUse(); app != tc.appHeld {
					t.Errorf("the app's gate has %d slots held, want %d", app, tc.appHeld)
				}
				if srv, _ := a.engine.instances.inUse(); srv != tc.serverHeld {
					t.Errorf("the server's gate has %d slots held, want %d", srv, tc.serverHeld)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			app, _ := a.gate.inUse()
			srv, _ := a.engine.instances.inUse()
			if app != tc.wantApp || srv != tc.wantInServer {
				t.Errorf("admitted with %d app and %d server slots held, want %d and %d", app, srv, tc.wantApp, tc.wantInServer)
			}
			release()
			app, _ = a.gate.inUse()
			srv, _ = a.engine.instances.inUse()
			if app != 0 || srv != 0 {
				t.Errorf("release left %d app and %d server slots held", app, srv)
			}
		})
	}
}
