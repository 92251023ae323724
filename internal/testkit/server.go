package testkit

import (
	"bufio"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a wasmwsgi process a test started (Start), signals included.
type Server struct {
	// Base is scheme://host:port, Addr host:port, of the main listener.
	Base, Addr string

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned, once done is closed
}

// Config says how StartWith runs the server.
type Config struct {
	// Args are the command line after the binary ("serve", the apps folder, flags);
	// "--addr 127.0.0.1:0" is added.
	Args []string
	// Binary is the program to run; "" is Binary(t).
	Binary string
	// Env is the process's environment; nil is Env(t).
	Env []string
	// Client and Scheme ask /_wasmwsgi/ready; nil and "" are http.DefaultClient and
	// "http".
	Client *http.Client
	Scheme string
	// Listening makes StartWith return as soon as the server listens, before its
	// apps are ready.
	Listening bool
	// ReadyOnly makes StartWith return once the server reports ready, while the apps
	// it loads after ready (README, "Restarts") may still be loading.
	ReadyOnly bool
}

// Start runs `wasmwsgi serve appsDir flags...` over plain HTTP and returns once the
// server is ready; see StartWith.
func Start(t testing.TB, appsDir string, flags ...string) *Server {
	t.Helper()
	return StartWith(t, Config{Args: append([]string{"serve", appsDir}, flags...)})
}

// listening finds the listener's address in a text or JSON log line.
var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

func listeningAddr(line string) string {
	if m := listening.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	var rec struct{ Msg, Addr string }
	if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
		return rec.Addr
	}
	return ""
}

// StartWith runs the server as c says and waits until it listens and, unless
// c.Listening, until /_wasmwsgi/ready answers 200 and, unless c.ReadyOnly, shows no
// app still loading (a minute for each). The process is
// stopped with SIGINT at the end of the test if still running (Stop), and its log is
// shown if the test failed.
func StartWith(t testing.TB, c Config) *Server {
	t.Helper()
	if c.Binary == "" {
		c.Binary = Binary(t)
	}
	if c.Env == nil {
		c.Env = Env(t)
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	if c.Scheme == "" {
		c.Scheme = "http"
	}
	cmd := exec.Command(c.Binary, slices.Concat(c.Args, []string{"--addr", "127.0.0.1:0"})...)
	cmd.Env = c.Env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if a := listeningAddr(line); a != "" {
				select {
				case addr <- a:
				default: // only the first one counts
				}
			}
		}
	}()
	go func() {
		<-logged // Wait closes the pipe: read it to the end first
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	select {
	case s.Addr = <-addr:
	case <-s.done:
		t.Fatalf("server exited before listening (%v); log:\n%s", s.err, s.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start listening; log:\n%s", s.Log())
	}
	s.Base = c.Scheme + "://" + s.Addr
	if !c.Listening {
		s.waitReady(t, c.Client, !c.ReadyOnly)
	}
	return s
}

// waitReady waits up to a minute for /_wasmwsgi/ready to answer 200 and, with loaded,
// to show no app in the loading state.
func (s *Server) waitReady(t testing.TB, client *http.Client, loaded bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.Base + "/_wasmwsgi/ready")
		if err == nil {
			var body struct {
				Apps map[string]struct{ State string }
			}
			decodeErr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && (!loaded || decodeErr == nil && !slices.ContainsFunc(
				slices.Collect(maps.Values(body.Apps)), func(a struct{ State string }) bool { return a.State == "loading" })) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server not ready after 60s; log:\n%s", s.Log())
}

// Log returns what the server has written to stderr so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// WaitLog waits up to 5 s until the server log contains want.
func (s *Server) WaitLog(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.Log(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server log never contained %q", want)
}

// Signal sends sig to the server process.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Pid is the server process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Done is closed once the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is what waiting for the process returned (nil for exit code 0); read it once
// Done is closed.
func (s *Server) Err() error { return s.err }

// Stop sends SIGINT unless the server has exited, and waits up to 10 s for it to exit
// (then kills it and fails the test).
func (s *Server) Stop(t testing.TB) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Error("server did not stop within 10s of SIGINT")
	}
}
