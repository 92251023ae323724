package hostfuncs

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// Errors a Processes implementation returns to select proc_run's code.
var (
	// ErrNotGranted: the operator grants the app no child processes (ErrDenied).
	ErrNotGranted = errors.New("not granted")
	// ErrTooMany: the request started as many children as it may (ErrLimit).
	ErrTooMany = errors.New("too many")
)

// ProcessSpec is the command line a guest asks proc_run to run.
type ProcessSpec struct {
	// Argv is the whole command line, the program first.
	Argv []string
	// Env is the child's environment, each "NAME=value"; nil when the spec gave none.
	Env []string
	// Cwd is the child's working folder, a guest path ("" keeps the app folder).
	Cwd string
	// Stdin is all the child reads on its standard input.
	Stdin []byte
	// MergeStderr sends the child's stderr to its stdout, in the order written.
	MergeStderr bool
}

// ProcessResult is how a child ended and what it wrote.
type ProcessResult struct {
	// Status is the exit status (0-255), or 256 plus the number of the signal that
	// ended it.
	Status int32
	// TimedOut is set when the child was stopped at proc_run's timeout.
	TimedOut       bool
	Stdout, Stderr []byte
}

// Processes is implemented by an Exchange whose guest may start child processes.
type Processes interface {
	// RunProcess runs spec to its end, or until timeout (negative: no timeout of its
	// own), and keeps the result for ProcessOutput.
	RunProcess(ctx context.Context, spec ProcessSpec, timeout time.Duration) (ProcessResult, error)
	// ProcessOutput is what the last child wrote to stdout (1) or stderr (2).
	ProcessOutput(which int) []byte
}

// maxSpecPairs bounds the pairs of a proc_run spec.
const maxSpecPairs = 8

// DecodeProcessSpec reads proc_run's spec: pairs "argv" (each argument followed by a
// NUL byte, at least one), "env" (each NAME=value followed by a NUL byte), "cwd",
// "stdin" and "stderr" ("stdout" to merge the two), each at most once.
func DecodeProcessSpec(b []byte) (ProcessSpec, error) {
	ps, err := DecodePairs(b, maxSpecPairs)
	if err != nil {
		return ProcessSpec{}, err
	}
	var spec ProcessSpec
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name] {
			return ProcessSpec{}, errors.New("proc_run: " + p.Name + " given twice")
		}
		seen[p.Name] = true
		switch p.Name {
		case "argv":
			spec.Argv = nulList(p.Value)
		case "env":
			spec.Env = nulList(p.Value)
			if spec.Env == nil {
				spec.Env = []string{}
			}
			for _, kv := range spec.Env {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return ProcessSpec{}, errors.New("proc_run: an env entry is not NAME=value")
				}
			}
		case "cwd":
			spec.Cwd = p.Value
		case "stdin":
			spec.Stdin = []byte(p.Value)
		case "stderr":
			if p.Value != "stdout" {
				return ProcessSpec{}, errors.New(`proc_run: stderr is "stdout" or left out`)
			}
			spec.MergeStderr = true
		default:
			return ProcessSpec{}, errors.New("proc_run: unknown key " + p.Name)
		}
	}
	if len(spec.Argv) == 0 {
		return ProcessSpec{}, errors.New("proc_run: argv is empty")
	}
	return spec, nil
}

// nulList splits a list of NUL-terminated strings; nil for an empty one.
func nulList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\x00"), "\x00")
}

func procRun(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	raw, ok := view(mem, a[0], a[1])
	if !ok {
		return ErrBounds
	}
	p, ok := ex.(Processes)
	if !ok {
		return ErrDenied
	}
	spec, err := DecodeProcessSpec(raw)
	if err != nil {
		ex.Fault("proc_run", err)
		return ErrInvalid
	}
	res, err := p.RunProcess(ctx, spec, timeoutArg(a[2]))
	switch {
	case errors.Is(err, ErrNotGranted):
		return ErrDenied
	case errors.Is(err, ErrTooMany):
		return ErrLimit
	case err != nil:
		ex.Fault("proc_run", err)
		return ErrIO
	case res.TimedOut:
		return ErrTimeout
	}
	return res.Status
}

func procOutput(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	which := int(int32(a[0]))
	if which != 1 && which != 2 {
		return ErrInvalid
	}
	p, ok := ex.(Processes)
	if !ok {
		return putSized(mem, a[1], a[2], nil)
	}
	return putSized(mem, a[1], a[2], p.ProcessOutput(which))
}
