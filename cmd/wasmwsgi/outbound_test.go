package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"syscall"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// fetch is get, as a status and a body.
func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	r := get(t, url)
	return r.status, r.body
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 10*time.Second, what, cond)
}

func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
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
		"loop/app.py":          string(src), // no grant either; its denials are its own
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
	closed := testkit.FreePort(t)
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
	t.Run("unix", func(t *testing.T) {
		want := "family=AF_UNIX type=SOCK_STREAM bind PermissionError True connect PermissionError True packet True pair b'x'"
		if code, body := fetch(t, base+"/nogrant/unix"); code != 200 || body != want {
			t.Errorf("%d %q\nwant %q", code, body, want)
		}
	})
	t.Run("loopback", func(t *testing.T) {
		// An app with no grant listens on loopback and connects to itself, with
		// sockets and with asyncio. Twice: the second request starts with the ports
		// free again.
		want := "bound 127.0.0.1 True peer True True PING eof b'' accept would block EADDRINUSE EADDRNOTAVAIL " +
			"ASYNCIO closed port: host denies"
		for range 2 {
			if code, body := fetch(t, base+"/loop/loopback"); code != 200 || body != want {
				t.Fatalf("%d %q\nwant %q", code, body, want)
			}
		}
	})
	t.Run("loopback stays in the instance", func(t *testing.T) {
		// An instance keeps a listener open after its request; the server process
		// listens on nothing but its own address, and another app connecting to that
		// port reaches the host, which denies it.
		code, port := fetch(t, base+"/inst/hold")
		if code != 200 {
			t.Fatalf("hold: %d %s", code, port)
		}
		_, serverPort, _ := strings.Cut(s.Addr, ":")
		if got := listeningPorts(t, s.Pid()); !slices.Equal(got, []string{serverPort}) {
			t.Errorf("the server process listens on %v, want only its own port %s (the guest holds %s)", got, serverPort, port)
		}
		code, body := fetch(t, fmt.Sprintf("%s/loop/try?host=127.0.0.1&port=%s", base, port))
		if want := "PermissionError: [Errno "; code != 200 || !strings.HasPrefix(body, want) || !strings.Contains(body, "is not granted") {
			t.Errorf("another app connecting to the held port: %d %q, want %s... is not granted", code, body, want)
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
	// Close-on-exec, as every socket Go makes: the server the test starts would
	// otherwise inherit the listener and keep it open.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
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
	return debSitePackagesWith(t, name, nil, pkgs...)
}

// debSitePackagesWith is debSitePackages with, on top, packages fetched by their pool
// path and checked against their SHA-256 (pinnedDebs). The cache folder's name holds a
// digest of the list, so a changed list makes a new folder.
func debSitePackagesWith(t *testing.T, name string, pins []debPin, pkgs ...string) string {
	t.Helper()
	key := sha256.Sum256([]byte(fmt.Sprint(pkgs, pins)))
	dir := filepath.Join(testkit.CacheHome(), fmt.Sprintf("site-packages-%s-%x", name, key[:4]))
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
		unavailable(t, "apt-get download %v: %v\n%s", pkgs, err, out)
	}
	var files []string
	all, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, f := range all {
		for _, p := range pkgs {
			if strings.HasPrefix(filepath.Base(f), p+"_") {
				files = append(files, f)
			}
		}
	}
	files = append(files, pinnedDebs(t, pins)...)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	for _, f := range files {
		if out, err := exec.Command("dpkg-deb", "-x", f, tmp).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", f, err, out)
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

// unavailable skips a test whose server or package this machine lacks, and fails it in
// CI (CI set), whose .ci/run installs them all.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (.ci/run installs what the tests need)", args...)
	}
	t.Skipf(format, args...)
}

// Real clients of real servers, each started by the test on 127.0.0.1: redis-py against
// redis-server, pg8000 against PostgreSQL 15, PyMySQL against MariaDB, and SQLAlchemy's
// ORM over PyMySQL and over a newer pg8000 (app "orm", its own site-packages).
func TestOutboundDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server, PostgreSQL and MariaDB")
	}
	site := debSitePackages(t, "outbound", "python3-redis", "python3-packaging", "python3-deprecated",
		"python3-wrapt", "python3-async-timeout", "python3-pg8000", "python3-six", "python3-pymysql")
	ormSite := debSitePackagesWith(t, "orm", pg8000Pins, "python3-sqlalchemy", "python3-pymysql",
		"python3-asn1crypto", "python3-dateutil", "python3-six")
	redisPort, pgPort, maria := startRedis(t), startPostgres(t), startMariaDB(t)
	apps := outboundApps(t, site)
	src, err := os.ReadFile("testdata/outbound/app.py")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(apps, "orm", "app.py"), string(src))
	if err := os.CopyFS(filepath.Join(apps, "orm", "site-packages"), os.DirFS(ormSite)); err != nil {
		t.Fatal(err)
	}
	var grants []string
	if redisPort != 0 {
		grants = append(grants, fmt.Sprintf("%q", fmt.Sprintf("redis://127.0.0.1:%d", redisPort)))
	}
	if pgPort != 0 {
		grants = append(grants, fmt.Sprintf("%q", fmt.Sprintf("postgres://127.0.0.1:%d", pgPort)))
	}
	if maria != nil {
		grants = append(grants, fmt.Sprintf("%q", fmt.Sprintf("mysql://127.0.0.1:%d", maria.port)))
	}
	if len(grants) == 0 {
		unavailable(t, "none of redis-server, PostgreSQL 15 and MariaDB is installed")
	}
	list := strings.Join(grants, ", ")
	conf := testkit.ConfigFile(t, "[apps.net]\noutbound = ["+list+"]\n[apps.orm]\noutbound = ["+list+"]\n")
	s := testkit.Start(t, apps, "--config", conf)
	t.Run("redis", func(t *testing.T) {
		if redisPort == 0 {
			unavailable(t, "redis-server is not installed")
		}
		if code, body := fetch(t, fmt.Sprintf("%s/net/redis?port=%d", s.Base, redisPort)); code != 200 || body != "hits=2" {
			t.Errorf("redis: %d %q\n%s", code, body, s.Log())
		}
	})
	t.Run("postgres", func(t *testing.T) {
		if pgPort == 0 {
			unavailable(t, "PostgreSQL 15 is not installed")
		}
		if code, body := fetch(t, fmt.Sprintf("%s/net/pg?port=%d", s.Base, pgPort)); code != 200 || body != "rows=first,second" {
			t.Errorf("postgres: %d %q\n%s", code, body, s.Log())
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		if maria == nil {
			unavailable(t, "MariaDB is not installed")
		}
		code, body := fetch(t, fmt.Sprintf("%s/net/mysql?port=%d&user=%s&password=%s&db=%s",
			s.Base, maria.port, maria.user, maria.password, maria.database))
		want := "server=MariaDB in-transaction=3 after-rollback=first,it's second \u2615"
		if code != 200 || body != want {
			t.Fatalf("PyMySQL: %d %q, want %q\n%s", code, body, want, grepLines(s.Log(), "rror"))
		}
		// What the app committed is in the server, and what it rolled back is not.
		if got := maria.query(t, "SELECT body FROM "+maria.database+".notes ORDER BY id"); got != "first\nit's second \u2615" {
			t.Errorf("the server's rows: %q", got)
		}
		// The server's refusal reaches the app as PyMySQL's error (ER_ACCESS_DENIED_ERROR).
		code, body = fetch(t, fmt.Sprintf("%s/net/mysql?port=%d&user=%s&password=wrong&db=%s",
			s.Base, maria.port, maria.user, maria.database))
		if code != 200 || body != "OperationalError 1045" {
			t.Errorf("PyMySQL with a wrong password: %d %q", code, body)
		}
	})
	t.Run("sqlalchemy over PyMySQL", func(t *testing.T) {
		if maria == nil {
			unavailable(t, "MariaDB is not installed")
		}
		dsn := fmt.Sprintf("mysql+pymysql://%s:%s@127.0.0.1:%d/%s", maria.user, maria.password, maria.port, maria.database)
		code, body := fetch(t, s.Base+"/orm/orm?url="+url.QueryEscape(dsn))
		want := "sqlalchemy=1.4.46 dialect=mysql+pymysql driver=1.0.2 rows=first,second,third s-rows=second"
		if code != 200 || body != want {
			t.Fatalf("SQLAlchemy over PyMySQL: %d %q, want %q\n%s", code, body, want, grepLines(s.Log(), "rror"))
		}
		if got := maria.query(t, "SELECT body FROM "+maria.database+".orm_notes ORDER BY id"); got != "first\nsecond\nthird" {
			t.Errorf("the server's rows: %q", got)
		}
	})
	t.Run("sqlalchemy over pg8000", func(t *testing.T) {
		if pgPort == 0 {
			unavailable(t, "PostgreSQL 15 is not installed")
		}
		dsn := fmt.Sprintf("postgresql+pg8000://postgres@127.0.0.1:%d/postgres", pgPort)
		code, body := fetch(t, s.Base+"/orm/orm?url="+url.QueryEscape(dsn))
		want := "sqlalchemy=1.4.46 dialect=postgresql+pg8000 driver=" + pg8000Version + " rows=first,second,third s-rows=second"
		if code != 200 || body != want {
			t.Fatalf("SQLAlchemy over pg8000: %d %q, want %q\n%s", code, body, want, grepLines(s.Log(), "rror"))
		}
		out, err := exec.Command("/usr/lib/postgresql/15/bin/psql", "-h", "127.0.0.1", "-p", strconv.Itoa(pgPort),
			"-U", "postgres", "-d", "postgres", "-At", "-c", "SELECT body FROM orm_notes ORDER BY id").CombinedOutput()
		if err != nil || string(out) != "first\nsecond\nthird\n" {
			t.Errorf("the server's rows: %v %q", err, out)
		}
	})
}

// startRedis starts redis-server on a free port of 127.0.0.1, or returns 0 when it is
// not installed.
func startRedis(t *testing.T) int {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Log("redis-server is not installed")
		return 0
	}
	port := testkit.FreePort(t)
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
	port := testkit.FreePort(t)
	run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, data),
		"-l", filepath.Join(data, "server.log"), "-w", "start")
	t.Cleanup(func() {
		_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
	})
	return port
}

// testCA makes a CA; it returns the CA's PEM and a function that makes a server
// certificate it signs for host (an IP address or a DNS name).
func testCA(t *testing.T) ([]byte, func(host string) tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wasmwsgi test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	sign := func(host string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		if ip := net.ParseIP(host); ip != nil {
			leaf.IPAddresses = []net.IP{ip}
		} else {
			leaf.DNSNames = []string{host}
		}
		der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), sign
}

// TLS through the host, against HTTPS servers on 127.0.0.1: one whose CA is the
// operator's outbound.ca_file, one with that CA whose certificate names another host,
// and one whose CA only the app trusts (load_verify_locations). urllib, requests and
// raw ssl sockets with ALPN; verification as the app's SSLContext asks (CERT_NONE and
// check_hostname off are the app's choice, the destination is still the grants').
func TestOutboundTLS(t *testing.T) {
	caPEM, sign := testCA(t)
	appCA, signApp := testCA(t)
	serve := func(c tls.Certificate) int {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "hello over ", r.Proto)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{c}, NextProtos: []string{"http/1.1"}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().(*net.TCPAddr).Port
	}
	good, other, own := serve(sign("127.0.0.1")), serve(sign("other.test")), serve(signApp("127.0.0.1"))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	testkit.WriteFile(t, caFile, string(caPEM))
	conf := testkit.ConfigFile(t, fmt.Sprintf("[outbound]\nca_file = %q\n[apps.net]\noutbound = [\"https://127.0.0.1:%d\", \"https://127.0.0.1:%d\", \"https://127.0.0.1:%d\"]\n",
		caFile, good, other, own))
	site := ""
	if !testing.Short() {
		site = debSitePackages(t, "https", "python3-requests", "python3-urllib3", "python3-idna", "python3-certifi",
			"python3-charset-normalizer", "python3-chardet", "python3-six")
	}
	apps := outboundApps(t, site)
	testkit.WriteFile(t, filepath.Join(apps, "net", "app-ca.pem"), string(appCA))
	s := testkit.Start(t, apps, "--config", conf)
	get := func(path string, args ...any) string {
		t.Helper()
		code, body := fetch(t, s.Base+"/net"+fmt.Sprintf(path, args...))
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return body
	}
	if site != "" {
		for _, c := range []struct {
			port         int
			verify, want string
		}{
			{good, "", "200 hello over HTTP/1.1"}, // certifi's bundle: the host's roots
			{own, "", "SSLError"},
			{own, "app-ca.pem", "200 hello over HTTP/1.1"},
			{own, "off", "200 hello over HTTP/1.1"},
		} {
			if body := get("/requests?port=%d&verify=%s", c.port, c.verify); body != c.want {
				t.Errorf("requests to %d, verify=%q: %q, want %q", c.port, c.verify, body, c.want)
			}
		}
	}
	if body := get("/https?port=%d", good); body != "200 hello over HTTP/1.1" {
		t.Errorf("urllib over HTTPS: %q", body)
	}
	if body := get("/tls?port=%d", good); !strings.HasPrefix(body, "(('IP Address', '127.0.0.1'),) wasmwsgi test CA TLSv1.3 http/1.1 HTTP/1.") || !strings.HasSuffix(body, " 200 OK") {
		t.Errorf("ssl socket: %q", body)
	}
	for _, c := range []struct {
		name, query, prefix, contains string
	}{
		{"CA only the app trusts, not given", fmt.Sprintf("port=%d", own), "SSLCertVerificationError:", "certificate signed by unknown authority"},
		{"CA only the app trusts, given", fmt.Sprintf("port=%d&ca=app-ca.pem", own), "ok wasmwsgi test CA der=True HTTP/1.0 200 OK", ""},
		{"certificate for another name", fmt.Sprintf("port=%d", other), "SSLCertVerificationError:", "cannot validate certificate for 127.0.0.1"},
		{"another name, check_hostname off", fmt.Sprintf("port=%d&mode=noname", other), "ok wasmwsgi test CA der=True HTTP/1.0 200 OK", ""},
		{"untrusted CA, check_hostname off", fmt.Sprintf("port=%d&mode=noname", own), "SSLCertVerificationError:", "unknown authority"},
		{"untrusted CA, CERT_NONE", fmt.Sprintf("port=%d&mode=none", own), "ok {} der=True HTTP/1.0 200 OK", ""},
		{"another name, CERT_NONE", fmt.Sprintf("port=%d&mode=none", other), "ok {} der=True HTTP/1.0 200 OK", ""},
	} {
		if body := get("/tlsmode?%s", c.query); !strings.HasPrefix(body, c.prefix) || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %q, want %q...%q", c.name, body, c.prefix, c.contains)
		}
	}
	if body := get("/https?port=%d", own); !strings.HasPrefix(body, "SSLCertVerificationError:") || !strings.Contains(body, "certificate signed by unknown authority") {
		t.Errorf("urllib, untrusted server: %q", body)
	}
	// One handshake per fetch that verified (or did not need to): urllib and the
	// ssl socket, four of /tlsmode and three of requests; failed ones are not counted.
	handshakes := 2 + 4
	if site != "" {
		handshakes += 3
	}
	_, metrics := fetch(t, s.Base+"/_wasmwsgi/metrics")
	if want := fmt.Sprintf(`wasmwsgi_outbound_tls_handshakes_total{app="net"} %d`+"\n", handshakes); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "outbound"))
	}
}

// What an app's outbound connections did reaches the metrics, the access log and the
// admin page, with the figures of the traffic the test made; and the series go with
// the app.
func TestOutboundStats(t *testing.T) {
	echo := testkit.StartTCP(t, testkit.Echo)
	apps := outboundApps(t, "")
	const token = "outbound-stats-token"
	conf := testkit.ConfigFile(t, fmt.Sprintf(`
[admin]
enabled = true
token = %q
[apps.net]
outbound = ["tcp://127.0.0.1:%d"]
`, token, echo.Port))
	s := testkit.Start(t, apps, "--config", conf)

	const n, size = 3, 1000
	traffic := fmt.Sprintf("/net/traffic?port=%d&n=%d&size=%d", echo.Port, n, size)
	if code, body := fetch(t, s.Base+traffic); code != 200 || body != fmt.Sprintf("%d connections, %d bytes back", n, n*size) {
		t.Fatalf("traffic: %d %q", code, body)
	}
	denied := fmt.Sprintf("/net/try?host=127.0.0.2&port=%d", echo.Port)
	if code, body := fetch(t, s.Base+denied); code != 200 || !strings.HasPrefix(body, "PermissionError") {
		t.Fatalf("denied: %d %q", code, body)
	}
	if code, body := fetch(t, s.Base+"/hello-not-served"); code != 404 {
		t.Fatalf("404 expected: %d %q", code, body)
	}

	_, metrics := fetch(t, s.Base+"/_wasmwsgi/metrics")
	for _, want := range []string{
		fmt.Sprintf(`wasmwsgi_outbound_connections_total{app="net"} %d`, n),
		fmt.Sprintf(`wasmwsgi_outbound_bytes_total{app="net",direction="out"} %d`, n*size),
		fmt.Sprintf(`wasmwsgi_outbound_bytes_total{app="net",direction="in"} %d`, n*size),
		fmt.Sprintf(`wasmwsgi_outbound_connect_seconds_count{app="net"} %d`, n),
		`wasmwsgi_outbound_dns_lookups_total{app="net"} 0`,
		`wasmwsgi_outbound_tls_handshakes_total{app="net"} 0`,
		`wasmwsgi_outbound_denied_total{app="net"} 1`,
		`wasmwsgi_outbound_connections_total{app="nogrant"} 0`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "outbound"))
		}
	}

	log := s.Log()
	wantLine := regexp.QuoteMeta(fmt.Sprintf("path=%q status=200 ", traffic)) +
		fmt.Sprintf(`.* outbound_conns=%d outbound_bytes_out=%d outbound_bytes_in=%d\n`, n, n*size, n*size)
	if !regexp.MustCompile(wantLine).MatchString(log) {
		t.Errorf("no access log line matches %s:\n%s", wantLine, grepLines(log, "traffic"))
	}
	// A request that opened no connection and moved no byte has no outbound fields.
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=request ") && strings.Contains(l, "path="+strconv.Quote(denied)) && strings.Contains(l, "outbound_") {
			t.Errorf("the denied request's access log line has outbound fields: %s", l)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, s.Base+"/_wasmwsgi/api/apps", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	r := do(t, req)
	var api struct {
		Apps []struct {
			Name     string `json:"name"`
			Outbound struct {
				Connections int64 `json:"connections"`
				BytesOut    int64 `json:"bytes_out"`
				BytesIn     int64 `json:"bytes_in"`
				Denied      int64 `json:"denied"`
			} `json:"outbound"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(r.body), &api); r.status != 200 || err != nil {
		t.Fatalf("admin api: %d %v %q", r.status, err, r.body)
	}
	found := false
	for _, a := range api.Apps {
		if a.Name != "net" {
			continue
		}
		found = true
		if o := a.Outbound; o.Connections != n || o.BytesOut != n*size || o.BytesIn != n*size || o.Denied != 1 {
			t.Errorf("admin api: net's outbound %+v, want %d connections, %d bytes each way, 1 denial", o, n, n*size)
		}
	}
	if !found {
		t.Fatalf("admin api does not list net: %s", r.body)
	}

	// The app's series go with it.
	if err := os.RemoveAll(filepath.Join(apps, "net")); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed app's series are gone", func() bool {
		_, m := fetch(t, s.Base+"/_wasmwsgi/metrics")
		return !strings.Contains(m, `{app="net"`)
	})
}

// listeningPorts returns the TCP ports (decimal, sorted) on which process pid has a
// listening socket, from /proc: its socket descriptors, matched by inode against the
// LISTEN entries of /proc/net/tcp and tcp6.
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc for the server: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ports []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			n, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: %q", table, line)
			}
			ports = append(ports, strconv.FormatUint(n, 10))
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}
