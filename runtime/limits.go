package runtime

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Limits bound what one app's requests may use. Every field is enforced by the host;
// nothing depends on the guest cooperating.
type Limits struct {
	// Timeout is the wall time of one request, interpreter start included (504 past it).
	Timeout time.Duration
	// Memory caps an instance's linear memory in bytes (memory.grow fails past it).
	Memory uint64
	// MaxBody caps the request body in bytes (413 past it).
	MaxBody int64
	// MaxResponse caps the response body in bytes; past it the stream is cut and the
	// connection aborted.
	MaxResponse int64
	// Concurrency is how many instances of the app may run at once.
	Concurrency int
	// Queue is how many requests may wait for a free instance; QueueTimeout how long.
	// Past either the request gets 503 with Retry-After.
	Queue        int
	QueueTimeout time.Duration
	// OpenFiles caps the files one instance holds open at once.
	OpenFiles int
	// Scratch caps the bytes the guest may write to its private /tmp.
	Scratch int64
	// Processes is how many child processes one request may start: python command
	// lines run to their end in new instances of the app (App.runChild), its
	// children's own children counted with it. 0 grants none.
	Processes int
}

// gate admits at most cap holders at once, with a bounded, timed queue in front.
type gate struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
}

var (
	errQueueFull    = errors.New("queue full")
	errQueueTimeout = errors.New("queue timeout")
)

func newGate(capacity, queue int) *gate {
	return &gate{slots: make(chan struct{}, max(capacity, 1)), queue: int64(queue)}
}

func (g *gate) acquire(ctx context.Context, timeout time.Duration) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return errQueueFull
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errQueueTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) release() { <-g.slots }

// inUse returns the holders and the waiters.
func (g *gate) inUse() (int, int) { return len(g.slots), int(g.waiting.Load()) }
