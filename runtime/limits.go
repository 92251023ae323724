package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero/experimental"
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
}

// LimitsConfig is how limits are written in config files ("[limits]"): sizes as text
// such as "128MiB", durations as "30s". A zero field inherits the value it overrides.
type LimitsConfig struct {
	Timeout      time.Duration `koanf:"timeout"`
	Memory       string        `koanf:"memory"`
	MaxBody      string        `koanf:"max_body"`
	MaxResponse  string        `koanf:"max_response"`
	Concurrency  int           `koanf:"concurrency"`
	Queue        int           `koanf:"queue"`
	QueueTimeout time.Duration `koanf:"queue_timeout"`
	OpenFiles    int           `koanf:"open_files"`
	Scratch      string        `koanf:"scratch"`
}

// MinMemory is the smallest memory limit accepted: python.wasm starts with 10 MiB of
// linear memory and needs room to import anything.
const MinMemory = 32 << 20

// Apply returns base with the fields set in c overriding it, or an error naming the key.
func (c LimitsConfig) Apply(base Limits) (Limits, error) {
	l := base
	var errs []error
	size := func(key, s string, dst func(uint64)) {
		if s == "" {
			return
		}
		n, err := ParseSize(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("limits.%s: %w", key, err))
			return
		}
		dst(n)
	}
	positive := func(key string, v int64) bool {
		if v < 0 {
			errs = append(errs, fmt.Errorf("limits.%s must not be negative", key))
		}
		return v > 0
	}
	if positive("timeout", int64(c.Timeout)) {
		l.Timeout = c.Timeout
	}
	size("memory", c.Memory, func(n uint64) { l.Memory = n })
	size("max_body", c.MaxBody, func(n uint64) { l.MaxBody = int64(n) })
	size("max_response", c.MaxResponse, func(n uint64) { l.MaxResponse = int64(n) })
	size("scratch", c.Scratch, func(n uint64) { l.Scratch = int64(n) })
	if positive("concurrency", int64(c.Concurrency)) {
		l.Concurrency = c.Concurrency
	}
	if positive("queue", int64(c.Queue)) {
		l.Queue = c.Queue
	}
	if positive("queue_timeout", int64(c.QueueTimeout)) {
		l.QueueTimeout = c.QueueTimeout
	}
	if positive("open_files", int64(c.OpenFiles)) {
		l.OpenFiles = c.OpenFiles
	}
	if l.Memory != 0 && l.Memory < MinMemory {
		errs = append(errs, fmt.Errorf("limits.memory %q is below the minimum of 32MiB", c.Memory))
	}
	return l, errors.Join(errs...)
}

// ParseSize reads a byte size: "1048576", "512KiB", "128MiB", "1GiB", "100MB".
func ParseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with KiB, MiB or GiB", s)
	}
	return n * mult, nil
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

// cappedMemory is a linear memory allocator that refuses to grow past a limit, so
// memory.grow fails in the guest (CPython raises MemoryError) instead of the host
// growing without bound. The memory is an anonymous mapping of the whole limit outside
// the Go heap: pages are backed only once touched, growing never copies, and the pages
// go back to the OS as soon as the instance ends instead of waiting for a GC. It
// records the peak size and whether the cap was hit.
type cappedMemory struct {
	limit  uint64
	mapped []byte
	size   uint64
	peak   uint64
	hit    bool
}

func (m *cappedMemory) Allocate(_, maxBytes uint64) experimental.LinearMemory {
	m.limit = min(m.limit, maxBytes)
	mapped, err := syscall.Mmap(-1, 0, int(m.limit), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		panic(fmt.Sprintf("reserving %d bytes of linear memory: %v", m.limit, err))
	}
	m.mapped = mapped
	return m
}

func (m *cappedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.hit = true
		return nil
	}
	m.size = size
	m.peak = max(m.peak, size)
	return m.mapped[:size:size]
}

// Free is called by wazero when the module closes, which with CloseOnContextDone can
// happen on another goroutine while guest code still runs. The mapping therefore stays
// until release, which the runtime calls once the guest call has returned.
func (m *cappedMemory) Free() {}

// release unmaps the memory. Only call it when no guest code can run on it.
func (m *cappedMemory) release() {
	if m.mapped != nil {
		_ = syscall.Munmap(m.mapped)
		m.mapped = nil
	}
}

// fileCounter wraps an fs.FS-backed mount and refuses to open more than limit files at
// once (EMFILE), so a guest cannot grow the host's file table without bound.
type fileCounter struct {
	open, limit int
	// roots counts the open mount roots among open: the runtime opens each mount's
	// root once, on its first use, and keeps it for the instance's life.
	roots int
}

func (c *fileCounter) acquire(root bool) error {
	if c.open >= c.limit {
		return syscall.EMFILE
	}
	c.open++
	if root {
		c.roots++
	}
	return nil
}

func (c *fileCounter) release(root bool) {
	c.open--
	if root {
		c.roots--
	}
}

// leftOpen reports whether the guest holds files open beyond the mount roots, one
// each, that the runtime itself keeps.
func (c *fileCounter) leftOpen(mounts int) bool {
	return c.open > c.roots || c.roots > mounts
}
