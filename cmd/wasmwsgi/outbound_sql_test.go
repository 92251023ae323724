package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// debPin is a Debian package fetched from the archive's pool by its path and checked
// against its SHA-256: a version the machine's Debian release does not carry.
type debPin struct{ pool, sha256 string }

// pg8000Pins are Debian 13's pg8000 and scramp (which pg8000 1.31 needs and Debian 12
// lacks): SQLAlchemy 1.4's pg8000 dialect wants pg8000 1.16.6 or later, and Debian 12
// has 1.10.6. Their other dependencies (asn1crypto, dateutil, six) are Debian 12's.
var pg8000Pins = []debPin{
	{"pool/main/p/pg8000/python3-pg8000_1.31.2-1_all.deb", "c8ddd14130096b581b7a3e8a6cf680defdf0bc2c343793bc2ca1055afcbb35c6"},
	{"pool/main/p/python-scramp/python3-scramp_1.4.5-2_all.deb", "45c76a7cdacd2cee7a5b0527041b1b4c5c06b03ddffa73031473e0998149cd96"},
}

// pg8000Version is the version pg8000Pins holds.
const pg8000Version = "1.31.2"

// debianMirror is where pinnedDebs fetches pool paths.
const debianMirror = "http://deb.debian.org/debian/"

// pinnedDebs returns the pinned packages' files, fetched into the tests' cache unless
// already there with the right digest. A failed download or a wrong digest fails the
// test, naming the file and where its pin is.
func pinnedDebs(t *testing.T, pins []debPin) []string {
	t.Helper()
	if len(pins) == 0 {
		return nil
	}
	dir := filepath.Join(testkit.CacheHome(), "debs", "pinned")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	var files []string
	for _, p := range pins {
		file := filepath.Join(dir, filepath.Base(p.pool))
		if data, err := os.ReadFile(file); err == nil && digest(data) == p.sha256 {
			files = append(files, file)
			continue
		}
		data, err := fetchPool(client, debianMirror+p.pool)
		if err != nil {
			t.Fatalf("downloading %s%s: %v\nIf the archive no longer has it, pin the version it has in pg8000Pins (cmd/wasmwsgi/outbound_sql_test.go): its Filename and SHA256 are in `apt-cache show` with Debian 13 sources", debianMirror, p.pool, err)
		}
		if got := digest(data); got != p.sha256 {
			t.Fatalf("%s%s has SHA-256 %s, but pg8000Pins (cmd/wasmwsgi/outbound_sql_test.go) pins %s", debianMirror, p.pool, got, p.sha256)
		}
		testkit.WriteFile(t, file, string(data))
		files = append(files, file)
	}
	return files
}

func fetchPool(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// mariaDB is a MariaDB server a test started, with a database and a user of its own.
type mariaDB struct {
	port                     int
	socket                   string
	database, user, password string
}

// query runs SQL as root through the server's Unix socket and returns the rows, tab-
// separated, one a line.
func (m *mariaDB) query(t *testing.T, sql string) string {
	t.Helper()
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+m.socket, "--user=root",
		"--default-character-set=utf8mb4", "--batch", "--skip-column-names", "--execute="+sql).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb --execute=%q: %v\n%s", sql, err, out)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// startMariaDB starts MariaDB in a temporary data folder on a free port of 127.0.0.1
// and makes a database and a user that owns it (mysql_native_password); it returns nil
// when MariaDB is not installed.
func startMariaDB(t *testing.T) *mariaDB {
	t.Helper()
	server, err := exec.LookPath("mariadbd")
	if err != nil {
		t.Log("mariadbd is not installed")
		return nil
	}
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		t.Log("mariadb-install-db is not installed")
		return nil
	}
	// Not t.TempDir: a Unix socket's path must stay short.
	dir, err := os.MkdirTemp("", "wasmwsgi-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	// As root, mariadbd refuses to run unless told to stay root.
	asUser := []string{}
	if os.Geteuid() == 0 {
		asUser = []string{"--user=root"}
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db"}, asUser...)
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	m := &mariaDB{port: testkit.FreePort(t), socket: filepath.Join(dir, "mysqld.sock"),
		database: "notes", user: "wsgi", password: "p4ss-" + strconv.Itoa(os.Getpid())}
	log := filepath.Join(dir, "server.log")
	cmd := exec.Command(server, append([]string{"--no-defaults", "--datadir=" + data,
		"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(m.port), "--skip-networking=0",
		"--socket=" + m.socket, "--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + log,
		"--skip-log-bin", "--innodb-buffer-pool-size=16M"}, asUser...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ready := func() bool {
		select {
		case <-exited:
			text, _ := os.ReadFile(log)
			t.Fatalf("mariadbd exited while starting:\n%s", text)
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	waitForWithin(t, 60*time.Second, "mariadbd listens", ready)
	m.query(t, fmt.Sprintf("CREATE DATABASE %s; CREATE USER '%s'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('%s'); GRANT ALL ON %s.* TO '%s'@'127.0.0.1'",
		m.database, m.user, m.password, m.database, m.user))
	return m
}
