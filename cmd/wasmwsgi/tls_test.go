package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// protoApp answers with the protocol and scheme it saw; /upload hashes the request
// body as it streams in; /duplex echoes each line of the body as soon as it arrives;
// /slow sleeps past any short time limit before answering; /late-error fails after
// its response started.
const protoApp = `import hashlib
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/upload":
        h, n = hashlib.sha256(), 0
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        body = ("%d %s" % (n, h.hexdigest())).encode()
    elif path == "/duplex":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"echo " + line for line in stream)
    elif path == "/slow":
        time.sleep(5)
        body = b"too late"
    elif path == "/late-error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return late_error()
    else:
        body = ("hello %s %s" % (environ["SERVER_PROTOCOL"], environ["wsgi.url_scheme"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def late_error():
    yield b"partial"
    raise RuntimeError("failed mid-stream")
`

// selfSigned writes a fresh ECDSA certificate for 127.0.0.1 and localhost and its key
// into dir and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "wasmwsgi test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testkit.WriteFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	testkit.WriteFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// protoApps writes an apps folder holding protoApp as the app "proto".
func protoApps(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "apps")
	testkit.WriteFile(t, filepath.Join(dir, "proto", "app.py"), protoApp)
	return dir
}

// clientFor returns a client speaking only the given protocols, trusting roots.
func clientFor(roots *x509.CertPool, set func(*http.Protocols)) *http.Client {
	p := new(http.Protocols)
	set(p)
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			Protocols:       p,
		},
	}
}

func readAll(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

func TestTLSHTTP2(t *testing.T) {
	certFile, keyFile, roots := selfSigned(t, t.TempDir())
	h2 := clientFor(roots, func(p *http.Protocols) { p.SetHTTP2(true) })
	s := testkit.StartWith(t, testkit.Config{Args: []string{"serve", protoApps(t), "--tls-cert", certFile, "--tls-key", keyFile, "--timeout", "2s"}, Client: h2, Scheme: "https"})
	app := s.Base + "/proto"

	t.Run("GET over HTTP/2", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, app+"/", nil)
		resp, body := readAll(t, h2, req)
		if resp.Proto != "HTTP/2.0" || resp.StatusCode != http.StatusOK {
			t.Fatalf("got %s %d, want HTTP/2.0 200", resp.Proto, resp.StatusCode)
		}
		if body != "hello HTTP/2.0 https" {
			t.Errorf("body %q, want the app to see HTTP/2.0 over https", body)
		}
	})

	t.Run("HTTP/1.1 over TLS still works", func(t *testing.T) {
		h1 := clientFor(roots, func(p *http.Protocols) { p.SetHTTP1(true) })
		req, _ := http.NewRequest(http.MethodGet, app+"/", nil)
		resp, body := readAll(t, h1, req)
		if resp.Proto != "HTTP/1.1" || body != "hello HTTP/1.1 https" {
			t.Errorf("got %s %q", resp.Proto, body)
		}
	})

	t.Run("streamed POST body", func(t *testing.T) {
		// A body of unknown length, written in pieces while the request is in flight.
		pr, pw := io.Pipe()
		sum := sha256.New()
		const pieces, size = 64, 32 << 10
		go func() {
			piece := make([]byte, size)
			for i := range pieces {
				for j := range piece {
					piece[j] = byte(i*7 + j)
				}
				sum.Write(piece)
				if _, err := pw.Write(piece); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, app+"/upload", pr)
		resp, body := readAll(t, h2, req)
		want := fmt.Sprintf("%d %s", pieces*size, hex.EncodeToString(sum.Sum(nil)))
		if resp.Proto != "HTTP/2.0" || body != want {
			t.Errorf("got %s %q, want %q", resp.Proto, body, want)
		}
	})

	t.Run("full duplex", func(t *testing.T) {
		// Each line is sent only once the echo of the previous one came back: this
		// finishes only if both the request and the response stream.
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest(http.MethodPost, app+"/duplex", pr)
		go func() { _, _ = pw.Write([]byte("one\n")) }()
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		lines := bufio.NewReader(resp.Body)
		for _, word := range []string{"one", "two", "three"} {
			if word != "one" {
				if _, err := pw.Write([]byte(word + "\n")); err != nil {
					t.Fatal(err)
				}
			}
			line, err := lines.ReadString('\n')
			if err != nil || line != "echo "+word+"\n" {
				t.Fatalf("read %q, %v; want the echo of %q", line, err, word)
			}
		}
		pw.Close()
		if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
			t.Errorf("after the body ended: %q, %v", rest, err)
		}
	})

	t.Run("failure mid-stream resets the stream", func(t *testing.T) {
		resp, err := h2.Get(app + "/late-error")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("a response cut by the app's failure read as complete: %q", body)
		}
		// The connection survives: the next request on it works.
		req, _ := http.NewRequest(http.MethodGet, app+"/", nil)
		if resp, body := readAll(t, h2, req); resp.Proto != "HTTP/2.0" || body != "hello HTTP/2.0 https" {
			t.Errorf("after a reset stream: %s %q", resp.Proto, body)
		}
	})

	t.Run("time limit answers 504", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, app+"/slow", nil)
		resp, body := readAll(t, h2, req)
		if resp.StatusCode != http.StatusGatewayTimeout || strings.Contains(body, "too late") {
			t.Errorf("got %s %d %q, want 504", resp.Proto, resp.StatusCode, body)
		}
	})
}

func TestH2C(t *testing.T) {
	apps := protoApps(t)
	h2c := clientFor(nil, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) })
	s := testkit.Start(t, apps, "--h2c")

	req, _ := http.NewRequest(http.MethodGet, s.Base+"/proto/", nil)
	resp, body := readAll(t, h2c, req)
	if resp.Proto != "HTTP/2.0" || body != "hello HTTP/2.0 http" {
		t.Errorf("h2c client got %s %q, want HTTP/2.0", resp.Proto, body)
	}
	req, _ = http.NewRequest(http.MethodPost, s.Base+"/proto/upload", strings.NewReader("abc"))
	resp, body = readAll(t, h2c, req)
	if sum := sha256.Sum256([]byte("abc")); resp.Proto != "HTTP/2.0" || body != "3 "+hex.EncodeToString(sum[:]) {
		t.Errorf("h2c POST got %s %q", resp.Proto, body)
	}
	// HTTP/1.1 on the same port is unaffected.
	req, _ = http.NewRequest(http.MethodGet, s.Base+"/proto/", nil)
	if resp, body := readAll(t, http.DefaultClient, req); resp.Proto != "HTTP/1.1" || body != "hello HTTP/1.1 http" {
		t.Errorf("HTTP/1.1 client got %s %q", resp.Proto, body)
	}

	// Without --h2c the server speaks only HTTP/1.1 in cleartext.
	plain := testkit.Start(t, apps)
	if resp, err := h2c.Get(plain.Base + "/proto/"); err == nil {
		resp.Body.Close()
		t.Errorf("a server without --h2c answered an HTTP/2 client: %s %d", resp.Proto, resp.StatusCode)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	otherDir := filepath.Join(dir, "other")
	_, otherKey, _ := selfSigned(t, otherDir)
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--tls-cert", certFile}, []string{"tls_key", "--tls-key"}},
		{[]string{"--tls-key", keyFile}, []string{"tls_cert", "--tls-cert"}},
		{[]string{"--tls-cert", missing, "--tls-key", keyFile}, []string{"tls_cert", missing}},
		{[]string{"--tls-cert", certFile, "--tls-key", missing}, []string{"tls_key", missing}},
		{[]string{"--tls-cert", certFile, "--tls-key", otherKey}, []string{certFile, otherKey}},
		{[]string{"--tls-cert", keyFile, "--tls-key", keyFile}, []string{"tls_cert " + keyFile}},
		{[]string{"--tls-cert", certFile, "--tls-key", keyFile, "--h2c"}, []string{"h2c"}},
	}
	for _, c := range cases {
		for _, cmd := range []string{"serve", "config"} {
			args := append([]string{cmd, t.TempDir(), "--addr", "127.0.0.1:0"}, c.args...)
			_, errOut, code := runWith(t, nil, args...)
			if code == 0 {
				t.Errorf("%s %q: exit 0", cmd, c.args)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%s %q: error does not name %q:\n%s", cmd, c.args, w, errOut)
				}
			}
		}
	}
}
