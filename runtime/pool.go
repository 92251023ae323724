package runtime

import (
	"container/list"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/wasmbin"
)

// Isolation says what one request may leave behind for the next one of the same app.
type Isolation string

const (
	// IsolationRequest restores the instance's memory to the app's snapshot after every
	// request: each request sees the app exactly as it was right after import.
	IsolationRequest Isolation = "request"
	// IsolationInstance keeps an instance's memory across requests, like a worker
	// process of a pre-forking server, for up to AppSpec.MaxRequests requests.
	IsolationInstance Isolation = "instance"
)

// An instance is a live guest restored from the app's snapshot, kept between requests
// in the app's pool. Its host-side state (stdio, sleep, the mounts' open-file counts)
// is routed to whichever request it serves.
//
// An instance goes back to the pool only when it is known to be clean: the call
// returned normally, the interrupt flag is unset, memory did not grow past the size it
// started the request with, no file is left open and, in request isolation, its memory
// and /tmp were put back to the snapshot. Anything else closes it.
type instance struct {
	mod       api.Module
	handle    api.Function
	interrupt api.MutableGlobal // nil without loop instrumentation
	mem       *memimage.Restored
	files     *guestfs.OpenFiles
	scratch   *guestfs.ScratchFS

	stdout, stderr routedWriter
	ctx            context.Context // the request being served, for the guest's sleep
	sockets        *egress.Session // its outbound connections

	uses, maxUses int
	idleSince     time.Time
	// owner is the pool the instance goes back to; idleElem is its place in the
	// engine's idleSet while it waits there.
	owner    *pool
	idleElem *list.Element
	// lastRestore and lastDirty are how long the last restore took and how many
	// pages it copied back.
	lastRestore time.Duration
	lastDirty   int
}

// routedWriter passes the guest's stdout or stderr to the current request's writer.
type routedWriter struct{ w io.Writer }

func (r *routedWriter) Write(p []byte) (int, error) {
	if r.w == nil {
		return len(p), nil
	}
	return r.w.Write(p)
}

// newInstance instantiates the module over spare, a memory spareMemory made equal to
// snap, or when spare is nil over a copy-on-write mapping of snap. reqCtx is the
// request the instance is made for; instances of apps with a data_dir bind their
// /data lock to it and are never pooled.
func (a *App) newInstance(ctx context.Context, snap *memimage.Image, spare *memimage.Restored, reqCtx context.Context) (*instance, error) {
	inst := &instance{ctx: reqCtx, maxUses: a.drawMaxUses(), owner: &a.pool}
	inst.files, inst.scratch = a.newHostFiles()
	inst.mem = spare
	made := &a.events.InstancesOverSpare
	if inst.mem == nil {
		inst.mem = memimage.NewRestored(snap, a.memoryLimit())
		if !a.engine.guardPages {
			inst.mem.NoGuard()
		}
		made = &a.events.InstancesMapped
	}
	cfg := a.moduleConfig(inst.files, inst.scratch, reqCtx, &inst.stdout, &inst.stderr,
		func(ns int64) { sleepUntil(inst.ctx)(ns) }, nil)
	mod, err := a.engine.instantiate(ctx, inst.mem, cfg)
	if err != nil {
		inst.mem.Release()
		return nil, err
	}
	made.Add(1)
	inst.mod = mod
	inst.sockets = a.newSockets()
	inst.handle = mod.ExportedFunction("wasmwsgi_handle")
	if a.engine.interruptible {
		inst.interrupt = mod.ExportedGlobal(wasmbin.InterruptGlobal).(api.MutableGlobal)
	}
	// A restored memory starts at its snapshot's size (memimage.Restored.Reallocate).
	if have := uint64(mod.Memory().Size()); have != snap.Size() {
		inst.close()
		return nil, fmt.Errorf("the restored memory has %d bytes, not the snapshot's %d", have, snap.Size())
	}
	return inst, nil
}

// spareMemory returns the memory of a closed instance over the same file as snap,
// made equal to snap, or nil when the engine keeps none (memimage.Spares): an
// instance made over it finds its pages mapped already.
func (a *App) spareMemory(snap *memimage.Image) *memimage.Restored {
	return a.engine.spares.Take(snap, a.memoryLimit(), a.engine.pagemap)
}

// close ends the instance and unmaps its memory.
func (inst *instance) close() { inst.retire(nil) }

// retire ends an instance that is known clean (it waited in the pool, or its request
// ended normally) and offers its memory to spares for a new instance of any app,
// which makes it that app's snapshot first; spares releases what it does not keep,
// and a nil spares all of it.
func (inst *instance) retire(spares *memimage.Spares) {
	inst.sockets.Close()
	inst.mod.Close(context.Background())
	spares.Put(inst.mem)
}

// drawMaxUses picks how many requests an instance serves before it is replaced: in
// instance isolation a number drawn uniformly from [N/2, N], so that instances made
// together are not all replaced together; in request isolation no limit.
func (a *App) drawMaxUses() int {
	n := a.Spec.MaxRequests
	if a.Spec.Isolation != IsolationInstance || n <= 0 {
		return 0
	}
	lo := (n + 1) / 2
	r, err := rand.Int(rand.Reader, big.NewInt(int64(n-lo+1)))
	if err != nil {
		return n
	}
	return lo + int(r.Int64())
}

// pool holds an app's idle instances, at most max of them, most recently used first.
type pool struct {
	mu     sync.Mutex
	idle   []*instance
	max    int
	closed bool
	// keep is how many idle instances survive trimming (the pre-warmed ones).
	keep int
	// emptyAfter is how long the app may go without a request before even the kept
	// instances are closed (AppSpec.IdleAfter); 0 is never.
	emptyAfter time.Duration
	timer      *time.Timer // trims the pool when its next idle instance expires
	// shared bounds the idle instances of all apps together; nil is no bound.
	shared *idleSet
	// spares takes the memory of the instances the pool closes (instance.retire).
	spares *memimage.Spares
}

// idleTimeout is how long an idle instance above the pre-warmed count is kept.
const idleTimeout = 30 * time.Second

// take returns an idle instance, or nil.
func (p *pool) take() *instance {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	inst := p.idle[n-1]
	p.idle = p.idle[:n-1]
	p.shared.remove(inst)
	p.mu.Unlock()
	return inst
}

// remove takes inst out of the pool, and out of the shared set, and reports whether it
// was there.
func (p *pool) remove(inst *instance) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, in := range p.idle {
		if in == inst {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.shared.remove(inst)
			return true
		}
	}
	return false
}

// put keeps inst for a later request, or closes it when the pool is full or closed.
// Instances that expired (expired) are closed on the way.
// Keeping it may close the instance that has waited longest among all apps' (idleSet).
//
// The shared set is changed only under the pool's lock (the lock order is pool, then
// set), so an instance is in the set exactly while it is in a pool: one taken for a
// request is never counted as idle.
func (p *pool) put(inst *instance) {
	now := time.Now()
	inst.idleSince = now
	var drop, over []*instance
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.max {
		p.idle = append(p.idle, inst)
		over = p.shared.add(inst)
	} else {
		drop = append(drop, inst)
	}
	expired := p.expired(now)
	p.shared.remove(expired...)
	drop = append(drop, expired...)
	p.arm(now)
	p.mu.Unlock()
	for _, old := range over {
		// Out of the set already; close it unless it was taken for a request since.
		if old.owner.remove(old) {
			drop = append(drop, old)
		}
	}
	for _, d := range drop {
		d.retire(p.spares)
	}
}

// expired takes out of the pool the instances to close at now: every one once the
// most recently used has waited emptyAfter, else those beyond keep that waited longer
// than idleTimeout. The oldest idle instances are at the front.
func (p *pool) expired(now time.Time) []*instance {
	n := len(p.idle)
	if n > 0 && p.emptyAfter > 0 && now.Sub(p.idle[n-1].idleSince) >= p.emptyAfter {
		drop := p.idle
		p.idle = nil
		return drop
	}
	var drop []*instance
	for len(p.idle) > p.keep && now.Sub(p.idle[0].idleSince) > idleTimeout {
		drop = append(drop, p.idle[0])
		p.idle = p.idle[1:]
	}
	return drop
}

// arm sets the timer for the next expiry, so that an app nobody calls any more lets go
// of its instances too.
func (p *pool) arm(now time.Time) {
	n := len(p.idle)
	if n == 0 || p.closed {
		return
	}
	next := time.Duration(-1)
	if n > p.keep {
		next = idleTimeout - now.Sub(p.idle[0].idleSince) + time.Millisecond
	}
	if p.emptyAfter > 0 {
		if d := p.emptyAfter - now.Sub(p.idle[n-1].idleSince); next < 0 || d < next {
			next = d
		}
	}
	switch {
	case next < 0:
	case p.timer == nil:
		p.timer = time.AfterFunc(next, p.trim)
	default:
		p.timer.Reset(next)
	}
}

// trim closes the instances that expired since the last put.
func (p *pool) trim() {
	now := time.Now()
	p.mu.Lock()
	drop := p.expired(now)
	p.shared.remove(drop...)
	p.arm(now)
	p.mu.Unlock()
	for _, d := range drop {
		d.retire(p.spares)
	}
}

// drain closes every idle instance; instances in use are closed when they come back.
func (p *pool) drain() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.shared.remove(idle...)
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	for _, inst := range idle {
		inst.retire(p.spares)
	}
}

// size returns the number of idle instances.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// poolable reports whether the app's instances may serve more than one request.
// Instances of an app with a data_dir hold the request's /data lock context.
func (a *App) poolable() bool { return a.Spec.DataDir == "" }

// prewarm fills the pool with n restored instances, so the first requests after a
// load skip instantiation.
func (a *App) prewarm(n int) {
	if !a.poolable() {
		return
	}
	for i := 0; i < n; i++ {
		// With every idle instance the server keeps in use, one more would only
		// close another app's: this app restores its first one on demand.
		if a.engine.idle.full() {
			return
		}
		// Holding the read lock keeps Close from releasing the snapshot while it is
		// being mapped; an instance put after Close drained the pool is closed.
		a.mu.RLock()
		snap := a.snap
		var inst *instance
		var err error
		if snap != nil {
			inst, err = a.newInstance(context.Background(), snap, a.spareMemory(snap), context.Background())
		}
		a.mu.RUnlock()
		if snap == nil {
			return
		}
		if err != nil {
			a.log.Warn("pre-warming an instance failed", "error", err.Error())
			return
		}
		a.pool.put(inst)
	}
}

// Idle returns how many instances of the app wait in its pool.
func (a *App) Idle() int { return a.pool.size() }

// pooledMounts is how many mounts a pooled instance has: stdlib, app, TLS roots, /tmp
// and the root tree.
const pooledMounts = 5

// reset puts a used instance back to the snapshot's state for the next request. It
// returns why the instance cannot be reused, or "" when it can.
func (inst *instance) reset(isolation Isolation, pagemap *memimage.PageMap, startSize uint64) string {
	switch {
	case inst.files.LeftOpen(pooledMounts):
		return "files left open"
	case inst.mem.LimitHit():
		return "memory limit reached"
	case inst.mem.Err() != nil:
		return "memory failed: " + inst.mem.Err().Error()
	case inst.mem.Size() != startSize:
		return "memory grew"
	case inst.interrupt != nil && inst.interrupt.Get() != 0:
		return "interrupted"
	case isolation == IsolationInstance:
		if inst.maxUses > 0 && inst.uses >= inst.maxUses {
			return "max_requests reached"
		}
		return ""
	}
	inst.scratch.Reset()
	t := time.Now()
	dirty, err := inst.mem.Restore(pagemap)
	inst.lastRestore, inst.lastDirty = time.Since(t), dirty
	if err != nil {
		return "restore failed: " + err.Error()
	}
	return ""
}
