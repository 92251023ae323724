package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// Command is a Python command line run in an app's sandbox (`wasmwsgi run`).
type Command struct {
	// Argv are python's arguments after the interpreter's name: "-c" CODE, "-m"
	// MODULE, "-" (a script read from stdin) or a script's path relative to the app
	// folder, each followed by the arguments sys.argv gets. None opens an interactive
	// prompt.
	Argv []string
	// Stdin, Stdout and Stderr are the guest's standard streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Timeout bounds the command's wall time; 0 sets no bound (ending ctx still stops it).
	Timeout time.Duration
}

// ErrTimeout is what Run returns when the command reached its Timeout.
var ErrTimeout = errors.New("time limit reached")

// Run runs cmd in a fresh instance of the app's interpreter, which runs the command
// line instead of importing the app: the same files (the app folder read-only at
// /app, the data folder at /data, a private /tmp), environment, outbound grants and
// limits as a request gets, except the time limit, which is cmd.Timeout. The app needs
// no snapshot and is not loaded; its data folder, opened here when it has one, stays
// open until Close. It returns the command's exit status (0-255, as python's); an
// error when the command could not run to its end (the time limit, ctx ended, the
// guest trapped), with ErrTimeout or ctx's error when either stopped it.
func (a *App) Run(ctx context.Context, cmd Command) (int, error) {
	if err := a.openDataDir(); err != nil {
		return 0, err
	}
	if err := a.readTree(); err != nil {
		return 0, err
	}
	a.warnSkipped()
	info := a.Spec.AppInfo()
	info.Name, info.Run, info.Argv = a.Spec.Name, true, cmd.Argv

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the instance's hold on the data folder's lock
	if cmd.Timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, cmd.Timeout, ErrTimeout)
		defer cancel()
	}
	ex := &exchange{app: a, log: a.log, info: info.Encode(), stdin: cmd.Stdin}
	code, err := a.runFresh(ctx, ex, cmd.Stdout, cmd.Stderr, func(context.Context, api.Module) (int32, error) {
		return 0, errors.New("the guest returned from the command instead of exiting")
	})
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() <= 255:
		return int(exit.ExitCode()), nil
	case err != nil && ctx.Err() != nil:
		return 0, context.Cause(ctx)
	case ex.mem.LimitHit():
		return 0, fmt.Errorf("the memory limit of %d bytes was reached (limits.memory): %s", a.memoryLimit(), describeRun(err))
	case err != nil:
		return 0, errors.New(describeRun(err))
	case code == 3:
		return 0, errors.New("the interpreter failed to start")
	}
	// The shim failed before the command ran; its traceback is on cmd.Stderr.
	return int(code), nil
}

// describeRun is describe for a command, which may have ended without an error.
func describeRun(err error) string {
	if err == nil {
		return "the command failed"
	}
	return describe(err)
}
