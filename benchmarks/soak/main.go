// Command soak runs mixed load against a real wasmwsgi server on loopback: well-behaved
// requests to two tenants (one of them makes a round trip to an echo server through its
// outbound grant) and a share of hostile requests to another, some of which flood,
// hold and drain outbound connections to loopback servers the soak starts. It reports
// failed well-behaved requests (must be 0), their p50/p99, the server's resident
// memory, goroutines and open fds before and after, and the outbound connections still
// open at the end (must be 0), and exits non-zero when a bound is broken.
//
//	go run ./benchmarks/soak -duration 10m      (run `make build` first; `make soak`)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

var hostile = []string{
	"spin", "regex", "sleep", "memory-bomb", "memory-creep", "deep-recursion", "huge-stream",
	"huge-chunk", "fd-exhaustion", "host-files", "write-files", "sys-exit", "os-exit",
	"close-raises", "threads", "sockets", "header-injection", "raw-calls", "nested-json",
	// Outbound: {echo}, {sink} and {stream} are the ports of the loopback servers the
	// soak starts (testkit.Echo, Sink, Stream).
	"conn-flood?port={echo}", "slowloris?port={echo}", "endless-read?port={stream}", "endless-write?port={sink}",
}

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to run the load")
	warmup := flag.Duration("warmup", 30*time.Second, "load before the baseline is taken")
	workers := flag.Int("workers", 4, "concurrent clients")
	hostileShare := flag.Float64("hostile", 0.05, "share of requests that are hostile")
	bin := flag.String("bin", "bin/wasmwsgi", "the wasmwsgi binary")
	apps := flag.String("apps", "cmd/wasmwsgi/testdata/hostile-apps", "apps folder with the hostile and victim apps")
	flag.Parse()
	if err := run(*bin, *apps, *warmup, *duration, *workers, *hostileShare); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type sample struct {
	rss        int64
	fds        int
	goroutines int
}

func run(bin, apps string, warmup, duration time.Duration, workers int, hostileShare float64) error {
	var servers []*testkit.TCPServer
	for _, serve := range []func(net.Conn){testkit.Echo, testkit.Sink, testkit.Stream} {
		s, err := testkit.ListenTCP(serve)
		if err != nil {
			return err
		}
		defer s.Close()
		servers = append(servers, s)
	}
	echo, sink, stream := servers[0], servers[1], servers[2]
	conf, err := os.CreateTemp("", "wasmwsgi-soak-*.toml")
	if err != nil {
		return err
	}
	defer os.Remove(conf.Name())
	grants, ports := testkit.HostileNetGrants(echo, sink, stream)
	fmt.Fprint(conf, grants)
	if err := conf.Close(); err != nil {
		return err
	}

	cmd := exec.Command(bin, "serve", apps, "--addr", "127.0.0.1:0", "--config", conf.Name())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg=listening addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(time.Minute):
		return fmt.Errorf("server did not start")
	}
	for !ready(base) {
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{Timeout: 30 * time.Second}

	// The same mixed load for the warm-up and the measured run; the baseline is taken
	// after the warm-up, once the server has reached its working set, and both samples
	// are taken idle.
	l := &load{client: client, base: base, workers: workers, hostileShare: hostileShare, hostileCodes: map[string]int{},
		ports: ports, echoPort: echo.Port}
	l.run(warmup)
	time.Sleep(5 * time.Second)
	client.CloseIdleConnections() // the server's per-connection goroutines and fds go too
	time.Sleep(200 * time.Millisecond)
	before, err := measure(cmd.Process.Pid, base)
	if err != nil {
		return err
	}
	*l = load{client: client, base: base, workers: workers, hostileShare: hostileShare, hostileCodes: map[string]int{},
		ports: ports, echoPort: echo.Port}
	l.run(duration)
	time.Sleep(5 * time.Second) // let the last hostile instances reach their limits
	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	after, err := measure(cmd.Process.Pid, base)
	if err != nil {
		return err
	}
	lat, failures, hostileSent, hostileCodes := l.lat, l.failures, l.hostileSent, l.hostileCodes
	left := echo.Open() + sink.Open() + stream.Open()

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	drift := float64(after.rss-before.rss) / float64(before.rss) * 100
	fmt.Printf("soak %v after %v warm-up, %d workers, %.0f%% hostile\n", duration, warmup, workers, hostileShare*100)
	fmt.Printf("well-behaved: %d ok, %d failed; p50 %v, p99 %v\n", len(lat), failures,
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond))
	fmt.Printf("hostile: %d sent, status counts %v\n", hostileSent, hostileCodes)
	fmt.Printf("rss: %d MiB -> %d MiB (%+.1f%%)\n", before.rss>>20, after.rss>>20, drift)
	fmt.Printf("goroutines: %d -> %d; open fds: %d -> %d\n", before.goroutines, after.goroutines, before.fds, after.fds)
	fmt.Printf("outbound connections left open: %d\n", left)

	var problems []string
	if failures > 0 {
		problems = append(problems, fmt.Sprintf("%d well-behaved requests failed", failures))
	}
	if drift >= 10 {
		problems = append(problems, fmt.Sprintf("rss drifted %+.1f%%", drift))
	}
	if after.goroutines > before.goroutines || after.fds > before.fds {
		problems = append(problems, "goroutines or fds did not return to baseline")
	}
	if left > 0 {
		problems = append(problems, fmt.Sprintf("%d outbound connections left open after the load", left))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// load sends requests from several workers for a while and records the outcome.
type load struct {
	client       *http.Client
	base         string
	ports        *strings.Replacer // puts the loopback servers' ports into hostile paths
	echoPort     int
	workers      int
	hostileShare float64

	mu           sync.Mutex
	lat          []time.Duration
	failures     int
	hostileSent  int
	hostileCodes map[string]int
}

func (l *load) run(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < l.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.one()
			}
		}()
	}
	wg.Wait()
}

func (l *load) one() {
	if rand.Float64() < l.hostileShare {
		path := hostile[rand.IntN(len(hostile))]
		code, _, _ := get(l.client, l.base+"/hostile/"+l.ports.Replace(path))
		l.mu.Lock()
		l.hostileSent++
		l.hostileCodes[strconv.Itoa(code)]++
		l.mu.Unlock()
		return
	}
	url := l.base + "/victim/"
	if rand.IntN(2) == 0 {
		url = l.base + "/netvictim/?port=" + strconv.Itoa(l.echoPort)
	}
	start := time.Now()
	code, body, err := get(l.client, url)
	d := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || code != 200 || body != "fine" {
		l.failures++
		fmt.Fprintf(os.Stderr, "well-behaved request %s failed: %d %q %v\n", url, code, body, err)
		return
	}
	l.lat = append(l.lat, d)
}

func ready(base string) bool {
	resp, err := http.Get(base + "/_wasmwsgi/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// measure reads the server's resident memory and fds from /proc and its goroutines
// from the metrics endpoint.
func measure(pid int, base string) (sample, error) {
	var s sample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			s.rss = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	// A client of its own, closed after: its connection must not count.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	_, body, err := get(c, base+"/_wasmwsgi/metrics")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			s.goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return s, nil
}
