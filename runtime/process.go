package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
)

// MaxChildOutput caps what a child process may write to its stdout and to its stderr;
// past it a write fails (EIO), as a full disk's would.
const MaxChildOutput = 16 << 20

// children is what a request (or a `wasmwsgi run` command) and the child processes it
// starts share: how many more may start (limits.processes).
type children struct{ left int }

// RunProcess implements hostfuncs.Processes: proc_run runs a python command line to its
// end in a new instance of the app, while the parent waits in the call.
//
// The child is the app's interpreter started as python is (wasmwsgi_main: the command
// line and environment are WASI's, read by python's own start-up), with the app folder
// and the stdlib read-only, the parent's /tmp (the same files, which the parent cannot
// touch while it waits), its own /data mount of the app's data folder, the outbound
// grants, the memory limit, and the environment and working folder the spec gives. Its
// time is the parent's: the request's time limit ends both. Only requests and commands
// start children; an import and its warm-up are refused, as they are refused everything
// that reaches outside the instance.
func (x *exchange) RunProcess(ctx context.Context, spec hostfuncs.ProcessSpec, timeout time.Duration) (hostfuncs.ProcessResult, error) {
	x.lastChild = hostfuncs.ProcessResult{}
	if x.kids == nil {
		if x.errCopy != nil || x.app.Spec.Limits.Processes <= 0 { // errCopy: an import's exchange
			return hostfuncs.ProcessResult{}, hostfuncs.ErrNotGranted
		}
		x.kids = &children{left: x.app.Spec.Limits.Processes}
	}
	if x.kids.left <= 0 {
		return hostfuncs.ProcessResult{}, hostfuncs.ErrTooMany
	}
	x.kids.left--
	res, err := x.app.runChild(ctx, x, spec, timeout)
	x.lastChild = res
	return res, err
}

// ProcessOutput implements hostfuncs.Processes.
func (x *exchange) ProcessOutput(which int) []byte {
	if which == 1 {
		return x.lastChild.Stdout
	}
	return x.lastChild.Stderr
}

// runChild runs a child process of parent's instance (RunProcess).
func (a *App) runChild(ctx context.Context, parent *exchange, spec hostfuncs.ProcessSpec, timeout time.Duration) (hostfuncs.ProcessResult, error) {
	info := a.Spec.AppInfo()
	info.Main = true
	if spec.Cwd != "" {
		info.Cwd = path.Clean(spec.Cwd)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timedOut := errors.New("the child reached its timeout")
	if timeout >= 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, timedOut)
		defer cancel()
	}
	stdout := &cappedBuffer{max: MaxChildOutput}
	stderr := stdout
	if !spec.MergeStderr {
		stderr = &cappedBuffer{max: MaxChildOutput}
	}
	env := spec.Env
	if env == nil {
		env = a.Spec.Env
	}
	child := &exchange{app: a, log: parent.log, info: info.Encode(), stdin: bytes.NewReader(spec.Stdin),
		files: parent.files, scratch: parent.scratch, childArgv: spec.Argv, childEnv: env, kids: parent.kids}
	start := time.Now()
	code, err := a.runFresh(ctx, child, stdout, stderr, nil)
	res := hostfuncs.ProcessResult{}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() <= 255:
		res.Status = int32(exit.ExitCode())
	case err != nil && errors.Is(context.Cause(ctx), timedOut):
		res.TimedOut = true
	case err != nil && ctx.Err() != nil:
		// The parent's own time is up: the host function's next check ends it.
		return res, context.Cause(ctx)
	case err != nil && child.mem != nil && child.mem.LimitHit():
		res.Status = 256 + 9 // what the kernel's out-of-memory killer sends
		fmt.Fprintf(stderr, "wasmwsgi: the child process reached the memory limit of %d bytes (limits.memory)\n", a.memoryLimit())
	case err != nil:
		res.Status = 256 + 6 // an abort's SIGABRT: the instance trapped
		fmt.Fprintf(stderr, "wasmwsgi: the child process ended: %s\n", describe(err))
	case code == -1:
		res.Status = 1
		fmt.Fprintln(stderr, "wasmwsgi: the child's interpreter failed to start")
	case code < 0:
		res.Status = 1 // the shim failed before the command ran; its traceback is in stderr
	default:
		res.Status = code & 0xff
	}
	res.Stdout = stdout.Bytes()
	if !spec.MergeStderr {
		res.Stderr = stderr.Bytes()
	}
	parent.log.Debug("child process", "argv", spec.Argv, "status", res.Status, "timed_out", res.TimedOut,
		"elapsed", time.Since(start))
	return res, nil
}

// cappedBuffer is a child's stdout or stderr: it keeps up to max bytes and fails
// writes past them.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

var errOutputFull = errors.New("a child process's output is limited to 16 MiB")

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		n, _ := b.Buffer.Write(p[:b.max-b.Len()])
		return n, errOutputFull
	}
	return b.Buffer.Write(p)
}
