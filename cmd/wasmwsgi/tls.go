package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/wasmwsgi/wasmwsgi/config"
)

// loadTLS loads the certificate pair of tls_cert and tls_key (config.Load checked
// that they come together); it returns nil when TLS is not configured.
func loadTLS(c *config.Config) (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		return nil, nil
	}
	certPEM, err := os.ReadFile(c.TLSCert)
	if err != nil {
		return nil, fmt.Errorf("tls_cert: %w (set --tls-cert to a PEM certificate file)", err)
	}
	keyPEM, err := os.ReadFile(c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls_key: %w (set --tls-key to a PEM private key file)", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_cert %s with tls_key %s: %w (both must be PEM, the key the certificate's own)",
			c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// protocols returns the HTTP versions the server speaks: HTTP/1.1 always, HTTP/2 over
// TLS (chosen by ALPN) and, with h2c, HTTP/2 over cleartext for clients that start
// with the HTTP/2 preface.
func protocols(c *config.Config) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(c.H2C)
	return p
}

// serveOn serves srv on ln, over TLS when srv has a TLS configuration.
func serveOn(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}
