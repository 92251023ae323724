package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// freePort returns a port on 127.0.0.1 that nothing listens on (just now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// fetch is get, as a status and a body.
func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	r := get(t, url)
	return r.status, r.body
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// outboundApps returns an apps folder with the outbound test app as "net", in
// instance isolation as "inst", without grants as "nogrant", and a tenant that
// lists an entry beyond its grant as "wider".
func outboundApps(t *testing.T, sitePackages string) string {
	t.Helper()
	src, err := os.ReadFile("testdata/outbound/app.py")
	if err != nil {
		t.Fatal(err)
	}
	apps := testkit.WriteTree(t, map[string]string{
		"net/app.py":           string(src),
		"inst/app.py":          string(src),
		"inst/wasmwsgi.toml":   "isolation = \"instance\"\n",
		"nogrant/app.py":       string(src),
		"wider/app.py":         string(src),
		"wider/wasmwsgi.toml":  "outbound = [\"tcp://127.0.0.2:6379\"]\n",
		"narrow/app.py":        string(src),
		"narrow/wasmwsgi.toml": "", // filled below
	})
	if sitePackages != "" {
		// A copy: app folders follow only symlinks that stay inside them.
		if err := os.CopyFS(filepath.Join(apps, "net", "site-packages"), os.DirFS(sitePackages)); err != nil {
			t.Fatal(err)
		}
	}
	return apps
}

func TestOutboundSockets(t *testing.T) {
	echo := testkit.StartTCP(t, testkit.Echo)
	sink := testkit.StartTCP(t, testkit.Sink)     // accepts, reads, never answers
	stream := testkit.StartTCP(t, testkit.Stream) // sends without end
	closed := freePort(t)
	full := fullBacklog(t)
	apps := outboundApps(t, "")
	testkit.WriteFile(t, filepath.Join(apps, "narrow", "wasmwsgi.toml"),
		fmt.Sprintf("outbound = [\"tcp://127.0.0.1:%d\"]\n", echo.Port))
	conf := testkit.ConfigFile(t, fmt.Sprintf(`
[limits]
timeout = "3s"
[apps.net]
outbound = ["tcp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[2]d", "tcp://127.0.0.1:%[3]d", "tcp://127.0.0.1:%[4]d",
            "tcp://127.0.0.1:%[5]d"]
[apps.net.outbound_limits]
max_open = 3
max_conns = 10
max_bytes_in = "1MiB"
max_bytes_out = "1MiB"
connect_timeout = "1s"
[apps.inst]
outbound = ["tcp://127.0.0.1:%[1]d"]
[apps.wider]
outbound = ["tcp://127.0.0.1:6379"]
[apps.narrow]
outbound = ["tcp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[2]d"]
`, echo.Port, closed, sink.Port, stream.Port, full))
	s := testkit.Start(t, apps, "--config", conf)
	base := s.Base

	t.Run("echo", func(t *testing.T) {
		code, body := fetch(t, fmt.Sprintf("%s/net/echo?port=%d", base, echo.Port))
		want := `ok b'hello ' b'world\n' 1 b'' would block timed out b'' nodelay=1 peer=127.0.0.1`
		if code != 200 || body != want {
			t.Fatalf("%d %q, want %q", code, body, want)
		}
	})
	t.Run("addresses", func(t *testing.T) {
		// As CPython's socket module parses them; and connecting by an IPv4 address or
		// an ASCII name imports neither ipaddress nor the idna codec, an import every
		// request would pay again in request isolation.
		want := "7f000001 ffffffff OSError OSError OSError OSError OSError OSError 127.0.0.1 ValueError 127.0.0.1 imported="
		if _, body := fetch(t, fmt.Sprintf("%s/narrow/addresses?port=%d", base, echo.Port)); body != want {
			t.Errorf("addresses: %q\nwant       %q", body, want)
		}
	})
	t.Run("denied", func(t *testing.T) {
		for _, tc := range []struct {
			app, host string
			port      int
			want      string
		}{
			{"net", "127.0.0.1", echo.Port + 1, "PermissionError: 127.0.0.1:" + strconv.Itoa(echo.Port+1) +
				" is not granted to this app: no outbound entry covers port"},
			{"net", "127.0.0.2", echo.Port, "PermissionError: 127.0.0.2:" + strconv.Itoa(echo.Port) +
				" is not granted to this app: 127.0.0.2 is loopback"},
			{"net", "localhost", echo.Port, "gaierror: localhost is not granted to this app"},
			{"net", "0.0.0.0", echo.Port, "PermissionError: 0.0.0.0:" + strconv.Itoa(echo.Port) + " is not granted"},
			{"net", "::1", echo.Port, "PermissionError: [::1]:" + strconv.Itoa(echo.Port) + " is not granted"},
			{"net", "169.254.169.254", 80, "PermissionError: 169.254.169.254:80 is not granted to this app: 169.254.169.254 is link-local"},
			{"nogrant", "127.0.0.1", echo.Port, "PermissionError: 127.0.0.1:" + strconv.Itoa(echo.Port) +
				" is not granted to this app: it has no outbound grants"},
			{"narrow", "127.0.0.1", closed, "PermissionError: 127.0.0.1:" + strconv.Itoa(closed) + " is not granted"},
			{"net", "127.0.0.1", closed, "ConnectionRefusedError: connection to 127.0.0.1:" + strconv.Itoa(closed) + " refused"},
		} {
			code, body := fetch(t, fmt.Sprintf("%s/%s/try?host=%s&port=%d", base, tc.app, tc.host, tc.port))
			class, msg, _ := strings.Cut(tc.want, ": ")
			// The exception's text is "[Errno N] message", N being WASI's errno.
			if code != 200 || !strings.HasPrefix(body, class+": [Errno ") || !strings.Contains(body, "] "+msg) {
				t.Errorf("%s -> %s:%d: %d %q, want %q", tc.app, tc.host, tc.port, code, body, tc.want)
			}
		}
		// socket.connect without getaddrinfo: the host gets the name or address as
		// written, and decides on the address it would connect to.
		for _, tc := range []struct{ host, want string }{
			{"localhost", "PermissionError: localhost:%d is not granted to this app: no outbound entry covers it"},
			{"::ffff:127.0.0.2", "PermissionError: 127.0.0.2:%d is not granted to this app: 127.0.0.2 is loopback"},
			{"2130706434", "PermissionError: 2130706434:%d is not granted to this app"}, // 127.0.0.2 as one number
		} {
			want := fmt.Sprintf(tc.want, echo.Port)
			code, body := fetch(t, fmt.Sprintf("%s/net/raw?host=%s&port=%d", base, tc.host, echo.Port))
			class, msg, _ := strings.Cut(want, ": ")
			if code != 200 || !strings.HasPrefix(body, class+": [Errno ") || !strings.Contains(body, "] "+msg) {
				t.Errorf("connect((%q, %d)): %d %q, want %q", tc.host, echo.Port, code, body, want)
			}
		}
		if _, body := fetch(t, base+"/net/resolve?host=metadata.google.internal"); !strings.HasPrefix(body, "gaierror: ") ||
			!strings.Contains(body, "] metadata.google.internal is not granted to this app") {
			t.Errorf("resolving an ungranted name: %q", body)
		}
		code, metrics := fetch(t, base+"/_wasmwsgi/metrics")
		if code != 200 || !strings.Contains(metrics, `wasmwsgi_outbound_denied_total{app="net"} 10`) ||
			!strings.Contains(metrics, `wasmwsgi_outbound_denied_total{app="nogrant"} 1`) {
			t.Errorf("metrics:\n%s", grepLines(metrics, "outbound"))
		}
		if !strings.Contains(s.Log(), "outbound connection denied") || !strings.Contains(s.Log(), "destination=127.0.0.2:") {
			t.Errorf("no denial in the log:\n%s", grepLines(s.Log(), "denied"))
		}
	})
	t.Run("tenant beyond its grant", func(t *testing.T) {
		code, _ := fetch(t, base+"/wider/try?host=127.0.0.1&port=6379")
		_, ready := fetch(t, base+"/_wasmwsgi/ready")
		ready = strings.ReplaceAll(ready, `\"`, `"`) // JSON's escaped quotes
		for _, want := range []string{filepath.Join(apps, "wider", "wasmwsgi.toml"), `"tcp://127.0.0.2:6379"`,
			"not within the app's grant", `[apps.wider] outbound = ["tcp://127.0.0.2:6379"]`} {
			if code != 503 || !strings.Contains(ready, want) {
				t.Errorf("wider: %d, ready %q, want %q", code, ready, want)
			}
		}
	})
	t.Run("tenant widens through hot reload", func(t *testing.T) {
		s.WaitLog(t, "watching the apps folder")
		toml := filepath.Join(apps, "narrow", "wasmwsgi.toml")
		testkit.WriteFile(t, toml, fmt.Sprintf("outbound = [\"tcp://127.0.0.1:%d\", \"tcp://127.0.0.2:%d\"]\n",
			echo.Port, echo.Port))
		entry := fmt.Sprintf(`"tcp://127.0.0.2:%d"`, echo.Port)
		eventually(t, s, func() string {
			st := readyStates(t, base)["narrow"]
			if st.State != "ready" || !strings.Contains(st.ReloadError, toml) || !strings.Contains(st.ReloadError, entry) ||
				!strings.Contains(st.ReloadError, "not within the app's grant") {
				return fmt.Sprintf("narrow is %+v, want ready with a reload error naming %s and %s", st, toml, entry)
			}
			return ""
		})
		// The granted version serves on, narrowed as before.
		want := fmt.Sprintf("] 127.0.0.1:%d is not granted", closed)
		if _, body := fetch(t, fmt.Sprintf("%s/narrow/try?host=127.0.0.1&port=%d", base, closed)); !strings.HasPrefix(body, "PermissionError: [Errno ") ||
			!strings.Contains(body, want) {
			t.Errorf("narrow after a refused reload: %q, want a PermissionError saying %q", body, want)
		}
	})
	t.Run("limits", func(t *testing.T) {
		_, body := fetch(t, fmt.Sprintf("%s/net/many?port=%d&n=4", base, echo.Port))
		if !strings.HasPrefix(body, "after 3: OSError:") || !strings.Contains(body, "max_open") {
			t.Errorf("four connections at once with max_open = 3: %q", body)
		}
		dest := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
		// Each case: the route, its answer's beginning, and what its message must say.
		for _, tc := range []struct {
			path, prefix string
			says         []string
		}{
			{fmt.Sprintf("churn?port=%d", echo.Port), "after 10: OSError: [Errno ",
				[]string{dest(echo.Port), "already opened 10 connections", "(outbound.max_conns)"}},
			{fmt.Sprintf("silence?port=%d&timeout=0.3", sink.Port), "TimeoutError: [Errno ",
				[]string{"receiving from " + dest(sink.Port) + " timed out"}},
			{fmt.Sprintf("try?host=127.0.0.1&port=%d", full), "TimeoutError: [Errno ",
				[]string{"connection to " + dest(full) + " timed out"}},
			{fmt.Sprintf("readall?port=%d", stream.Port), "after ",
				[]string{"OSError: [Errno ", "receiving from " + dest(stream.Port), "more than 1048576 bytes", "(outbound.max_bytes_in)"}},
			{fmt.Sprintf("sendall?port=%d", sink.Port), "after ",
				[]string{"OSError: [Errno ", "sending to " + dest(sink.Port), "more than 1048576 bytes", "(outbound.max_bytes_out)"}},
		} {
			code, body := fetch(t, base+"/net/"+tc.path)
			ok := code == 200 && strings.HasPrefix(body, tc.prefix)
			for _, w := range tc.says {
				ok = ok && strings.Contains(body, w)
			}
			if !ok {
				t.Errorf("%s: %d %q, want %q... saying %q", tc.path, code, body, tc.prefix, tc.says)
			}
			// What was carried stays within the cap.
			var n int
			if _, err := fmt.Sscanf(body, "after %d: ", &n); err == nil && strings.Contains(body, "bytes") && n > 1<<20 {
				t.Errorf("%s: %d bytes carried with a cap of 1 MiB", tc.path, n)
			}
		}
		// readall and sendall left their connections open: the host closed them.
		waitFor(t, "the sink's and the stream's connections are closed", func() bool {
			return sink.Open() == 0 && stream.Open() == 0
		})
	})
	t.Run("connections end with the request", func(t *testing.T) {
		waitFor(t, "the echo server's connections are closed", func() bool { return echo.Open() == 0 })
		if _, body := fetch(t, fmt.Sprintf("%s/net/keep?port=%d", base, echo.Port)); body != "kept 1" {
			t.Fatalf("keep: %q", body)
		}
		waitFor(t, "the request's connection is closed", func() bool { return echo.Open() == 0 })
		// In instance isolation they live on with the instance.
		if _, body := fetch(t, fmt.Sprintf("%s/inst/keep?port=%d", base, echo.Port)); body != "kept 1" {
			t.Fatalf("keep: %q", body)
		}
		if _, body := fetch(t, fmt.Sprintf("%s/inst/keep?port=%d", base, echo.Port)); body != "kept 2" {
			t.Fatalf("second keep on the same instance: %q", body)
		}
		time.Sleep(100 * time.Millisecond)
		if n := echo.Open(); n != 2 {
			t.Errorf("%d connections open after two requests of an instance, want 2", n)
		}
	})
	t.Run("a blocked guest blocks nobody else", func(t *testing.T) {
		before := echo.Open()
		var wg sync.WaitGroup
		wg.Add(1)
		var hangCode int
		start := time.Now()
		go func() {
			defer wg.Done()
			hangCode, _ = fetch(t, fmt.Sprintf("%s/net/hang?port=%d", base, echo.Port))
		}()
		waitFor(t, "the hanging request connected", func() bool { return echo.Open() > before })
		for i := 0; i < 3; i++ {
			if code, body := fetch(t, fmt.Sprintf("%s/net/echo?port=%d", base, echo.Port)); code != 200 || !strings.HasPrefix(body, "ok ") {
				t.Errorf("echo while another request waits in recv: %d %q", code, body)
			}
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("the other requests took %v", d)
		}
		wg.Wait()
		if hangCode != 504 {
			t.Errorf("the request blocked in recv ended with %d, want 504 at its time limit", hangCode)
		}
		waitFor(t, "the timed-out request's connection is closed", func() bool { return echo.Open() == before })
	})
}

// fullBacklog returns the port of a listener on 127.0.0.1 that never accepts and
// whose accept queue is full, so that a connection to it waits until its timeout:
// Linux drops the SYN of a connection the full queue has no room for.
func fullBacklog(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond)
		if err != nil {
			return port // the queue is full
		}
		t.Cleanup(func() { c.Close() })
		if i == 8 {
			t.Fatal("the listener's accept queue never filled")
		}
	}
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// debSitePackages extracts the pure-Python parts of Debian packages (apt-get
// download, dpkg-deb -x) into a site-packages folder cached beside the tests' cache.
func debSitePackages(t *testing.T, name string, pkgs ...string) string {
	t.Helper()
	dir := filepath.Join(testkit.CacheHome(), "site-packages-"+name)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return dir
	}
	debs := filepath.Join(testkit.CacheHome(), "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("apt-get", append([]string{"download", "-q"}, pkgs...)...)
	cmd.Dir = debs
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("apt-get download %v: %v\n%s", pkgs, err, out)
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, f := range files {
		for _, p := range pkgs {
			if strings.HasPrefix(filepath.Base(f), p+"_") {
				if out, err := exec.Command("dpkg-deb", "-x", f, tmp).CombinedOutput(); err != nil {
					t.Fatalf("dpkg-deb -x %s: %v\n%s", f, err, out)
				}
			}
		}
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(filepath.Join(tmp, "usr", "lib", "python3", "dist-packages"), dir); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(tmp)
	testkit.WriteFile(t, filepath.Join(dir, ".done"), "")
	return dir
}

// Real clients of real servers, both started by the test on 127.0.0.1: redis-py
// against redis-server, pg8000 against PostgreSQL 15.
func TestOutboundDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and PostgreSQL")
	}
	site := debSitePackages(t, "outbound", "python3-redis", "python3-packaging", "python3-deprecated",
		"python3-wrapt", "python3-async-timeout", "python3-pg8000", "python3-six")
	redisPort, pgPort := startRedis(t), startPostgres(t)
	apps := outboundApps(t, site)
	var grants []string
	for _, p := range []int{redisPort, pgPort} {
		if p != 0 {
			grants = append(grants, fmt.Sprintf("%q", fmt.Sprintf("tcp://127.0.0.1:%d", p)))
		}
	}
	if len(grants) == 0 {
		t.Skip("neither redis-server nor PostgreSQL 15 is installed (.ci/run installs them)")
	}
	conf := testkit.ConfigFile(t, "[apps.net]\noutbound = ["+strings.Join(grants, ", ")+"]\n")
	s := testkit.Start(t, apps, "--config", conf)
	if redisPort != 0 {
		t.Run("redis", func(t *testing.T) {
			if code, body := fetch(t, fmt.Sprintf("%s/net/redis?port=%d", s.Base, redisPort)); code != 200 || body != "hits=2" {
				t.Errorf("redis: %d %q\n%s", code, body, s.Log())
			}
		})
	}
	if pgPort != 0 {
		t.Run("postgres", func(t *testing.T) {
			if code, body := fetch(t, fmt.Sprintf("%s/net/pg?port=%d", s.Base, pgPort)); code != 200 || body != "rows=first,second" {
				t.Errorf("postgres: %d %q\n%s", code, body, s.Log())
			}
		})
	}
}

// startRedis starts redis-server on a free port of 127.0.0.1, or returns 0 when it is
// not installed.
func startRedis(t *testing.T) int {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Log("redis-server is not installed")
		return 0
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "redis-server listens", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

// startPostgres starts PostgreSQL 15 (trust authentication) as the user postgres on
// a free port of 127.0.0.1, or returns 0 when it is not installed.
func startPostgres(t *testing.T) int {
	bin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Log("PostgreSQL 15 is not installed")
		return 0
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Log("runuser is missing")
		return 0
	}
	dir, err := os.MkdirTemp("", "wasmwsgi-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
		t.Logf("chown postgres: %v %s", err, out)
		return 0
	}
	run(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
	port := freePort(t)
	run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, data),
		"-l", filepath.Join(data, "server.log"), "-w", "start")
	t.Cleanup(func() {
		_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
	})
	return port
}

// testCA makes a CA and a certificate it signs for 127.0.0.1; it returns the CA's PEM
// and the server's certificate.
func testCA(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wasmwsgi test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TLS through the host: urllib over HTTPS and a raw ssl socket with ALPN, against an
// HTTPS server on 127.0.0.1 whose CA is the operator's outbound.ca_file; and a server
// whose CA is not trusted.
func TestOutboundTLS(t *testing.T) {
	caPEM, cert := testCA(t)
	_, untrusted := testCA(t)
	serve := func(c tls.Certificate) int {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "hello over ", r.Proto)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{c}, NextProtos: []string{"http/1.1"}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().(*net.TCPAddr).Port
	}
	good, bad := serve(cert), serve(untrusted)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	testkit.WriteFile(t, caFile, string(caPEM))
	conf := testkit.ConfigFile(t, fmt.Sprintf("[outbound]\nca_file = %q\n[apps.net]\noutbound = [\"https://127.0.0.1:%d\", \"https://127.0.0.1:%d\"]\n",
		caFile, good, bad))
	site := ""
	if !testing.Short() {
		site = debSitePackages(t, "https", "python3-requests", "python3-urllib3", "python3-idna", "python3-certifi",
			"python3-charset-normalizer", "python3-chardet", "python3-six")
	}
	s := testkit.Start(t, outboundApps(t, site), "--config", conf)
	if site != "" {
		if code, body := fetch(t, fmt.Sprintf("%s/net/requests?port=%d", s.Base, good)); code != 200 || body != "200 hello over HTTP/1.1" {
			t.Errorf("requests over HTTPS: %d %q\n%s", code, body, grepLines(s.Log(), "Error"))
		}
	}
	if code, body := fetch(t, fmt.Sprintf("%s/net/https?port=%d", s.Base, good)); code != 200 || body != "200 hello over HTTP/1.1" {
		t.Errorf("urllib over HTTPS: %d %q", code, body)
	}
	if code, body := fetch(t, fmt.Sprintf("%s/net/tls?port=%d", s.Base, good)); code != 200 || !strings.HasPrefix(body, "(('IP Address', '127.0.0.1'),) wasmwsgi test CA TLSv1.3 http/1.1 HTTP/1.") || !strings.HasSuffix(body, " 200 OK") {
		t.Errorf("ssl socket: %d %q", code, body)
	}
	if code, body := fetch(t, fmt.Sprintf("%s/net/https?port=%d", s.Base, bad)); code != 200 ||
		!strings.HasPrefix(body, "SSLCertVerificationError:") || !strings.Contains(body, "certificate signed by unknown authority") {
		t.Errorf("untrusted server: %d %q", code, body)
	}
}
