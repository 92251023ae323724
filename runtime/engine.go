// Package runtime runs WSGI apps inside wazero instances of CPython.
//
// One Engine per process owns the wazero runtime, python.wasm compiled once (with its
// compilation cache on disk) and the stdlib file tree. Each App holds its own files in
// memory. Loading an app (App.Load), unless its snapshot is in the disk cache:
//
//	instantiate python.wasm (data segments written by the host, then _initialize)
//	  -> wasmwsgi_init   (interpreter start, app import; host: app_info)
//	  -> warm-up requests (wasmwsgi_handle)
//	  -> wasmwsgi_freeze (the objects alive now become immortal)
//	  -> the linear memory becomes the app's snapshot (a memimage.Image)
//
// Serving a request (App.Serve):
//
//	an idle instance from the app's pool, or a new one: over a spare memory (a closed
//	instance's, made equal to the snapshot) or mapping the snapshot copy-on-write
//	  -> wasmwsgi_handle (the shim calls the app; host: environ_get, input_read,
//	                      start_response, body_write, log_write; see hostfuncs)
//	  -> reset: in request isolation the pages the request wrote are copied back
//	     from the snapshot; then the instance returns to the pool
//
// Running a command line (App.Run, for `wasmwsgi run`):
//
//	instantiate python.wasm as for a load, with the command's stdin, stdout and stderr
//	  -> wasmwsgi_init   (app_info carries argv: the shim runs it instead of importing
//	                      the app and ends the instance with proc_exit(status))
package runtime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
	"github.com/wasmwsgi/wasmwsgi/internal/guardpages"
	"github.com/wasmwsgi/wasmwsgi/internal/preemption"
	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/wasmbin"
)

// Guest paths. The stdlib and the app are read-only in-memory trees mounted there;
// /tmp is a writable in-memory tree private to one instance. The read-only tree at
// GuestRoot holds the folders on the way to the other mounts, /dev/null and the time
// zone database at GuestZoneinfo (guestfs.NewRootTree).
const (
	GuestStdlib   = "/usr/local/lib/python3.11"
	GuestApp      = "/app"
	GuestScratch  = "/tmp"
	GuestRoot     = "/"
	GuestZoneinfo = "/usr/share/zoneinfo"
)

// GuestCacheTag is the guest interpreter's sys.implementation.cache_tag: an app's
// compiled bytecode is read from __pycache__/<module>.cpython-311.pyc.
const GuestCacheTag = "cpython-311"

// EngineConfig configures the process-wide engine.
type EngineConfig struct {
	// CacheDir holds wazero's compilation cache. Empty disables the on-disk cache.
	CacheDir string
	// MaxInstances caps the instances running at once across all apps, so one app
	// cannot starve the rest (each app also has its own limits.concurrency).
	MaxInstances int
	// MaxIdle caps the idle instances kept ready across all apps (idleSet); 0 is no
	// cap.
	MaxIdle int
	// BoundsChecks keeps a bounds check on every load and store of python.wasm's
	// code. Without it, where the platform allows (experimental.GuardPagesSupported),
	// the code has none: an access out of bounds faults in the memory's reservation
	// (memimage.Memory.Guarded), and wazero's fault handler makes the fault the
	// guest's trap (docs/design.md, "Guard pages").
	BoundsChecks bool
	Logger       *slog.Logger
	// Guest is the interpreter to run; nil means the one embedded in the binary
	// (EmbeddedGuest).
	Guest *Guest
}

// Engine is the process-wide wazero runtime with python.wasm compiled once.
type Engine struct {
	rt wazero.Runtime
	// module is python.wasm without its data segments, compiled once for every
	// instance: a restored one gets its memory from the app's snapshot, a fresh one
	// has the segments written into its memory before _initialize runs (initMemory).
	module wazero.CompiledModule
	// compiled is closed once the compile NewEngine starts has set module, or
	// compileErr (Compiled).
	compiled   chan struct{}
	compileErr error
	// data holds python.wasm's data segments.
	data   []wasmbin.DataSegment
	stdlib *guestfs.MemFS
	// root is the tree mounted at GuestRoot; rootData is the same with the /data
	// folder, for apps granted one.
	root, rootData *guestfs.MemFS
	log            *slog.Logger
	instances      *gate
	// idle orders the idle instances of all apps, to keep at most MaxIdle of them.
	idle *idleSet
	// imports admits one app import per CPU, up to maxImports: an import is CPU work
	// from start to end, while the loads around it (folders read, cached snapshots
	// restored) mostly wait on the disk and may run many at once.
	imports chan struct{}
	// interruptible is set when python.wasm carries the wasmbin.InterruptGlobal loop checks.
	interruptible bool
	// preempting is set when those checks read the engine's preemption import rather
	// than count iterations.
	preempting bool
	// guardPages is set when python.wasm's code is compiled for guard pages, without
	// bounds checks (EngineConfig.BoundsChecks).
	guardPages bool
	// moduleHash covers the guest: the python.wasm that runs, the stdlib, the shim and
	// the time zone database.
	moduleHash [32]byte
	// snapshotDir caches app snapshots on disk ("" without a cache dir).
	snapshotDir string
	// indexDir keeps each app folder's guestfs.FileIndex ("" without a cache dir).
	indexDir string
	// pagemap tells a restore which pages a request wrote (nil where
	// /proc/self/pagemap cannot be read).
	pagemap *memimage.PageMap
	// spares keeps the memories of instances closed clean, for new instances of any
	// app over the same snapshot file (nil without a page map).
	spares *memimage.Spares
	// dataDirs holds the data folders of the loaded apps, each open once.
	dataDirs *guestfs.DataDirs

	// keyOnce makes key, the server's key for shared snapshots, or keyErr
	// (snapshotshare.go); shareMu orders the writing of base images and layered
	// snapshots with the removal of unused bases.
	keyOnce sync.Once
	key     []byte
	keyErr  error
	shareMu sync.Mutex
	// importsOnce lets copies of an app take one import's snapshot (snapshotclone.go).
	importsOnce importsOnce
	// bundle is the tree at GuestCerts of the apps without outbound.ca_file
	// (App.certBundle), made once.
	bundleOnce sync.Once
	bundle     *guestfs.MemFS
}

// maxImports bounds the imports that run at once whatever the CPUs: each may take an
// app's whole limits.memory, so a many-core host starting cold would otherwise need
// that many times over.
const maxImports = 4

// NewEngine loads the guest's stdlib and starts compiling its python.wasm, which takes
// about a second cold and a fraction of that with the compilation cache warm: apps can
// read their folders meanwhile, and their first instance waits for it (Compiled).
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := cfg.Guest
	if g == nil {
		var err error
		if g, err = EmbeddedGuest(); err != nil {
			return nil, err
		}
	}
	wasm := g.Wasm
	stdlib, err := guestfs.MemFSFromZip(g.Stdlib)
	if err != nil {
		return nil, fmt.Errorf("stdlib bundle: %w", err)
	}
	stdlib = stdlib.Overlay(map[string][]byte{"_wasmwsgi_shim.py": g.Shim})
	grafts := map[string]*guestfs.MemFS{}
	if g.Zoneinfo != nil {
		zoneinfo, err := guestfs.MemFSFromZip(g.Zoneinfo)
		if err != nil {
			return nil, fmt.Errorf("time zone database: %w", err)
		}
		grafts[GuestZoneinfo] = zoneinfo
	}
	mountPoints := []string{GuestStdlib, GuestApp, GuestScratch, GuestCerts}
	root := guestfs.NewRootTree(mountPoints, grafts)
	rootData := guestfs.NewRootTree(append(mountPoints, GuestData), grafts)

	// Loop checks stop a guest at its deadline and give its goroutine back to Go when Go
	// asks (through the preemption import where wazero has it); without them,
	// WithCloseOnContextDone does.
	var preempt *wasmbin.Import
	if module, name, ok := preemption.Import(); ok {
		preempt = &wasmbin.Import{Module: module, Name: name}
	}
	instrumented, err := wasmbin.InstrumentLoops(wasm, preempt)
	if err != nil {
		cfg.Logger.Warn("python.wasm could not be instrumented for interruption; using wazero's slower context checks",
			"error", err.Error())
		instrumented = nil
	} else {
		wasm = instrumented
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(instrumented == nil)
	if cfg.CacheDir != "" {
		dir := filepath.Join(cfg.CacheDir, "wazero", WazeroBuild())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cache dir %s: %w (set cache_dir or WASMWSGI_CACHE_DIR to a writable folder)", dir, err)
		}
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", dir, err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	rtCtx := ctx
	if !cfg.BoundsChecks {
		rtCtx = guardpages.With(ctx)
	}
	rt := wazero.NewRuntimeWithConfig(rtCtx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if _, err := hostfuncs.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if instrumented != nil && preempt != nil {
		_, err := rt.InstantiateWithConfig(ctx, wasmbin.GlobalModule(preempt.Name), wazero.NewModuleConfig().WithName(preempt.Module))
		if err != nil {
			rt.Close(ctx)
			return nil, fmt.Errorf("preemption import: %w", err)
		}
	}
	// The data segments go to Engine.initMemory; splitting them out parses the whole
	// module, so a python.wasm that is no module fails here.
	stripped, data, err := wasmbin.SplitDataSegments(wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("python.wasm: %w", err)
	}
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 64
	}
	guest := sha256.New()
	for _, part := range [][]byte{wasm, g.Stdlib, g.Shim, g.Zoneinfo} {
		fmt.Fprintf(guest, "%d\n", len(part))
		guest.Write(part)
	}
	snapshotDir, indexDir := "", ""
	if cfg.CacheDir != "" {
		snapshotDir = filepath.Join(cfg.CacheDir, "snapshots")
		indexDir = filepath.Join(cfg.CacheDir, "file-index")
	}
	pagemap := memimage.OpenPageMap()
	var spares *memimage.Spares
	if pagemap != nil {
		spares = memimage.NewSpares(maxSpares, spareTTL)
	}
	e := &Engine{
		compiled:    make(chan struct{}),
		moduleHash:  [32]byte(guest.Sum(nil)),
		snapshotDir: snapshotDir,
		indexDir:    indexDir,
		pagemap:     pagemap,
		spares:      spares,
		dataDirs:    guestfs.NewDataDirs(),
		rt:          rt, data: data, stdlib: stdlib, log: cfg.Logger,
		root: root, rootData: rootData,
		interruptible: instrumented != nil,
		preempting:    instrumented != nil && preempt != nil,
		guardPages:    !cfg.BoundsChecks && guardpages.Supported(),
		// Admission to the server-wide cap has no queue of its own: requests wait in
		// their app's queue, and here only for that queue's timeout.
		instances: newGate(cfg.MaxInstances, 1<<30),
		idle:      &idleSet{max: cfg.MaxIdle},
		imports:   make(chan struct{}, min(goruntime.GOMAXPROCS(0), maxImports)),
	}
	// The compile runs while the apps' folders are read: a restart of many tenants
	// spends its first half second walking them, which needs no compiled module.
	go func() {
		defer close(e.compiled)
		e.module, e.compileErr = compileGuest(ctx, rt, stripped)
	}()
	return e, nil
}

// LoopChecks names what python.wasm's loop checks test: "preemption" (Go's request for
// the goroutine, read through wazero's preemption import), "counter" (an iteration
// count), or "none" (wazero's WithCloseOnContextDone stops the guest instead).
func (e *Engine) LoopChecks() string {
	switch {
	case e.preempting:
		return "preemption"
	case e.interruptible:
		return "counter"
	}
	return "none"
}

// GuardPages reports whether python.wasm's code has no bounds checks, a fault past an
// instance's memory being its out of bounds trap instead (EngineConfig.BoundsChecks).
func (e *Engine) GuardPages() bool { return e.guardPages }

// compileGuest compiles python.wasm, its data segments taken out, and checks that it
// exports what wasmwsgi calls.
func compileGuest(ctx context.Context, rt wazero.Runtime, stripped []byte) (wazero.CompiledModule, error) {
	// One compilation worker per CPU (docs/design.md, "Compiling python.wasm").
	ctx = experimental.WithCompilationWorkers(ctx, goruntime.NumCPU())
	compiled, err := rt.CompileModule(ctx, stripped)
	if err != nil {
		return nil, fmt.Errorf("compile python.wasm: %w", err)
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		return nil, fmt.Errorf("python.wasm exports no memory: it was not built by python-wasm/build.sh; run `make build`")
	}
	for _, name := range []string{"_initialize", "wasmwsgi_init", "wasmwsgi_freeze", "wasmwsgi_handle", "wasmwsgi_main"} {
		if _, ok := compiled.ExportedFunctions()[name]; !ok {
			return nil, fmt.Errorf("python.wasm does not export %q: it was not built by python-wasm/build.sh; run `make build`", name)
		}
	}
	return compiled, nil
}

// Compiled waits for python.wasm's compile, which NewEngine started, and returns its
// error: an engine whose compile failed instantiates nothing.
func (e *Engine) Compiled() error {
	if e.compiled == nil {
		return errors.New("the engine was not made by NewEngine: no python.wasm is compiled")
	}
	<-e.compiled
	return e.compileErr
}

// maxSpares and spareTTL bound the memories of closed instances kept for new ones
// (memimage.Spares): a few per core cover the instances made at once under load, and
// one that no new instance took within spareTTL goes back to the OS.
const (
	maxSpares = 16
	spareTTL  = 10 * time.Second
)

// Close releases the runtime and every instance still open.
func (e *Engine) Close(ctx context.Context) error {
	e.Compiled() // the compile uses the runtime until it ends
	e.spares.Close()
	if e.pagemap != nil {
		e.pagemap.Close()
	}
	return e.rt.Close(ctx)
}

// linearMemory is what an instance's memory is made by: memimage's allocators, which
// report a memory they could not make through Err.
type linearMemory interface {
	experimental.MemoryAllocator
	Err() error
}

// instantiate instantiates python.wasm with cfg over a memory mem makes. When mem could
// not make it (the kernel refused the mapping), that is the error returned, the
// instantiation's own being only its consequence, and no module is left open.
func (e *Engine) instantiate(ctx context.Context, mem linearMemory, cfg wazero.ModuleConfig) (api.Module, error) {
	if err := e.Compiled(); err != nil {
		return nil, err
	}
	mod, err := e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, mem), e.module, cfg)
	if merr := mem.Err(); merr != nil {
		err = memoryError{merr}
	}
	if err != nil {
		if mod != nil {
			mod.Close(context.Background())
		}
		return nil, err
	}
	return mod, nil
}

// memoryError is an instance's memory that could not be made: the host's failure (the
// kernel refused the mapping), not the guest's.
type memoryError struct{ err error }

func (e memoryError) Error() string {
	return "the instance's memory could not be made: " + e.err.Error()
}
func (e memoryError) Unwrap() error { return e.err }

// initMemory writes the module's data segments into a fresh instance's memory, which
// is what instantiating the module with its data section would have done.
func (e *Engine) initMemory(mem api.Memory) error {
	for _, s := range e.data {
		if !mem.Write(s.Offset, s.Bytes) {
			return fmt.Errorf("data segment at %d (%d bytes) does not fit in the initial memory", s.Offset, len(s.Bytes))
		}
	}
	return nil
}
