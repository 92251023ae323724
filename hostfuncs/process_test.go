package hostfuncs

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"
)

func TestDecodeProcessSpec(t *testing.T) {
	spec, err := DecodeProcessSpec(AppendPairs(nil, []Pair{
		{"argv", "python3\x00-c\x00print(1)\x00"}, {"env", "A=1\x00B=x=y\x00"}, {"cwd", "/tmp/w"},
		{"stdin", "in\x00put"}, {"stderr", "stdout"}}))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessSpec{Argv: []string{"python3", "-c", "print(1)"}, Env: []string{"A=1", "B=x=y"}, Cwd: "/tmp/w",
		Stdin: []byte("in\x00put"), MergeStderr: true}
	if !reflect.DeepEqual(spec, want) {
		t.Fatalf("got %+v, want %+v", spec, want)
	}
	// An empty env is an empty environment, not the app's.
	spec, err = DecodeProcessSpec(AppendPairs(nil, []Pair{{"argv", "python\x00"}, {"env", ""}}))
	if err != nil || spec.Env == nil || len(spec.Env) != 0 {
		t.Fatalf("empty env: %+v, %v", spec, err)
	}
	for name, bad := range map[string][]Pair{
		"no argv":        {{"cwd", "/tmp"}},
		"empty argv":     {{"argv", ""}},
		"twice":          {{"argv", "python\x00"}, {"argv", "python\x00"}},
		"unknown key":    {{"argv", "python\x00"}, {"shell", "1"}},
		"env without =":  {{"argv", "python\x00"}, {"env", "A\x00"}},
		"env empty name": {{"argv", "python\x00"}, {"env", "=1\x00"}},
		"stderr":         {{"argv", "python\x00"}, {"stderr", "null"}},
	} {
		if _, err := DecodeProcessSpec(AppendPairs(nil, bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeProcessSpec([]byte{1, 0, 0}); err == nil {
		t.Error("truncated pairs accepted")
	}
}

// processExchange runs no process: it returns the result it is given.
type processExchange struct {
	*fakeExchange
	res  ProcessResult
	err  error
	spec ProcessSpec
	wait time.Duration
}

func (p *processExchange) RunProcess(_ context.Context, spec ProcessSpec, timeout time.Duration) (ProcessResult, error) {
	p.spec, p.wait = spec, timeout
	return p.res, p.err
}

func (p *processExchange) ProcessOutput(which int) []byte {
	if which == 1 {
		return p.res.Stdout
	}
	return p.res.Stderr
}

func TestProcRun(t *testing.T) {
	mem := newMemory(t)
	spec := AppendPairs(nil, []Pair{{"argv", "python\x00-c\x00pass\x00"}})
	mem.Write(100, spec)
	n := uint32(len(spec))

	// An exchange that cannot start processes denies them.
	if got := invoke(t, mem, newFake(), "proc_run", 100, n, 0xffffffff); got != ErrDenied {
		t.Fatalf("without Processes = %d, want ErrDenied", got)
	}
	p := &processExchange{fakeExchange: newFake(), res: ProcessResult{Status: 3, Stdout: []byte("out"), Stderr: []byte("e")}}
	if got := invoke(t, mem, p, "proc_run", 100, n, 0xffffffff); got != 3 || p.wait >= 0 {
		t.Fatalf("proc_run = %d (timeout %v), want 3 and no timeout", got, p.wait)
	}
	if got := invoke(t, mem, p, "proc_run", 100, n, 1500); got != 3 || p.wait != 1500*time.Millisecond {
		t.Fatalf("proc_run = %d (timeout %v), want 3 and 1.5s", got, p.wait)
	}
	if got := invoke(t, mem, p, "proc_output", 1, 200, 64); got != 3 {
		t.Fatalf("proc_output(1) = %d", got)
	}
	if b, _ := mem.Read(200, 3); !bytes.Equal(b, []byte("out")) {
		t.Fatalf("proc_output wrote %q", b)
	}
	if got := invoke(t, mem, p, "proc_output", 3, 200, 64); got != ErrInvalid {
		t.Fatalf("proc_output(3) = %d, want ErrInvalid", got)
	}
	p.res.TimedOut = true
	if got := invoke(t, mem, p, "proc_run", 100, n, 10); got != ErrTimeout {
		t.Fatalf("timed out = %d, want ErrTimeout", got)
	}
	for err, want := range map[error]int32{ErrNotGranted: ErrDenied, ErrTooMany: ErrLimit, context.Canceled: ErrIO} {
		p.err = err
		if got := invoke(t, mem, p, "proc_run", 100, n, 0); got != want {
			t.Errorf("%v = %d, want %d", err, got, want)
		}
	}
	mem.Write(100, []byte{9, 9, 9, 9})
	if got := invoke(t, mem, p, "proc_run", 100, n, 0); got != ErrInvalid {
		t.Fatalf("malformed spec = %d, want ErrInvalid", got)
	}
	if got := invoke(t, mem, p, "proc_run", pageSize-2, 64, 0); got != ErrBounds {
		t.Fatalf("spec past memory = %d, want ErrBounds", got)
	}
}
