package runtime

import (
	"crypto/x509"
	"sync"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
)

// outbound is what an app's sessions share: its policy, made once, and its TLS roots,
// loaded at the app's first TLS handshake.
type outbound struct {
	once       sync.Once
	policy     *egress.Policy
	rootsOnce  sync.Once
	roots      *x509.CertPool
	bundleOnce sync.Once
	bundle     *guestfs.MemFS
}

// newSockets returns a session for one instance under the app's grants. It is cheap:
// instances are made while the app's lock is held.
func (a *App) newSockets() *egress.Session {
	a.net.once.Do(func() { a.net.policy = &egress.Policy{Rules: a.Spec.Outbound} })
	return egress.NewSession(a.net.policy, egress.Config{Limits: a.Spec.OutboundLimits, RootCAs: a.tlsRoots})
}

// tlsRoots returns the system's roots plus outbound.ca_file.
func (a *App) tlsRoots() *x509.CertPool {
	a.net.rootsOnce.Do(func() {
		roots, err := egress.LoadRoots(a.Spec.CAFile)
		if err != nil {
			a.log.Error("outbound TLS uses the system's roots only", "error", err.Error())
			roots, _ = egress.LoadRoots("")
		}
		a.net.roots = roots
	})
	return a.net.roots
}

// GuestCerts is where the guest finds the host's roots as one PEM file,
// ca-certificates.crt: where Debian's certifi, and so requests, looks for them.
const GuestCerts = "/etc/ssl/certs"

// certBundle returns the tree mounted at GuestCerts: the system's roots plus
// outbound.ca_file, the certificates the host trusts for the app anyway. Reading it
// gives the guest nothing it could not fetch from any public server.
//
// The tree of an app without outbound.ca_file is the engine's, made once: reading the
// system's bundle and hashing it cost each app's first instance 1.5 ms.
func (a *App) certBundle() *guestfs.MemFS {
	if a.Spec.CAFile == "" {
		e := a.engine
		e.bundleOnce.Do(func() { e.bundle = certTree(a) })
		return e.bundle
	}
	a.net.bundleOnce.Do(func() { a.net.bundle = certTree(a) })
	return a.net.bundle
}

// certTree makes the tree of certBundle: the system's roots and those of the app's
// outbound.ca_file.
func certTree(a *App) *guestfs.MemFS {
	pem, err := egress.RootsPEM(a.Spec.CAFile)
	if err != nil {
		a.log.Error("the guest's "+GuestCerts+"/ca-certificates.crt lacks outbound.ca_file", "error", err.Error())
	}
	return guestfs.MemFSFromFiles(map[string][]byte{"ca-certificates.crt": pem})
}

// endOutbound ends the request's accounting in its session s: the exchange keeps the
// figures for the request's Stats, and the app's counters add them up.
func (a *App) endOutbound(ex *exchange, s *egress.Session) {
	ex.outbound = s.End()
	a.events.addOutbound(&ex.outbound)
}

// onDeny counts and logs a refused outbound destination.
func (x *exchange) onDeny(dest, reason string) {
	x.app.events.OutboundDenied.Add(1)
	x.log.Warn("outbound connection denied", "destination", dest, "reason", reason)
}

// Sockets returns the outbound connections of the instance serving the exchange.
func (x *exchange) Sockets() *egress.Session { return x.sockets }
