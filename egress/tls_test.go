package egress

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartTLSOptions: what the app's SSLContext asks for decides what the handshake
// verifies, against a server on 127.0.0.1 whose certificate (127.0.0.1, example.com)
// no system root signs.
func TestStartTLSOptions(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("tls ok"))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	for _, c := range []struct {
		name string
		opt  TLS
		fail string // "" when the handshake succeeds
	}{
		{"system roots only", TLS{}, "unknown authority"},
		{"the app's CA", TLS{CAs: ca}, ""},
		{"the app's CA, a name the certificate lacks", TLS{CAs: ca, ServerName: "other.test"}, "other.test"},
		{"the app's CA, no name check", TLS{CAs: ca, ServerName: "other.test", NoNameCheck: true}, ""},
		{"no name check still verifies the chain", TLS{ServerName: "other.test", NoNameCheck: true}, "unknown authority"},
		{"no verification", TLS{ServerName: "other.test", NoVerify: true}, ""},
		{"CAs that hold no certificate", TLS{CAs: []byte("not a certificate")}, "load_verify_locations"},
		{"CAs over the bound", TLS{CAs: make([]byte, MaxCAs+1)}, "more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewSession(p, Config{Resolve: noDNS(t)})
			defer s.Close()
			ctx := context.Background()
			h, err := s.Connect(ctx, "127.0.0.1", port, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = s.StartTLS(ctx, h, c.opt)
			if c.fail != "" {
				if err == nil || !strings.Contains(err.Error(), c.fail) {
					t.Fatalf("handshake: %v, want an error containing %q", err, c.fail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, h, []byte("GET / HTTP/1.0\r\nHost: x\r\n\r\n"), time.Second); err != nil {
				t.Fatal(err)
			}
			var got []byte
			buf := make([]byte, 4096)
			for {
				k, err := s.Recv(ctx, h, buf, 5*time.Second)
				got = append(got, buf[:k]...)
				if k == 0 || err != nil {
					break
				}
			}
			if !strings.HasPrefix(string(got), "HTTP/1.0 200") || !strings.HasSuffix(string(got), "tls ok") {
				t.Fatalf("answer over TLS: %q", got)
			}
		})
	}
}
