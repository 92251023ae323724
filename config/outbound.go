package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wasmwsgi/wasmwsgi/egress"
)

// OutboundConf is the server's [outbound] table: how the host brokers apps' outbound
// connections. The limits are every app's unless its [apps.NAME.outbound_limits]
// table sets its own.
type OutboundConf struct {
	// CAFile is a PEM file of certificates trusted for TLS next to the system's roots
	// (an internal CA). Default none.
	CAFile             string `koanf:"ca_file"`
	OutboundLimitsConf `koanf:",squash"`
}

// OutboundLimitsConf are the per-request limits of outbound connections as written.
type OutboundLimitsConf struct {
	// MaxOpen is how many connections a request may have open at once. Default 6.
	MaxOpen int `koanf:"max_open"`
	// MaxConns is how many connections a request may open. Default 50.
	MaxConns int `koanf:"max_conns"`
	// MaxBytesIn and MaxBytesOut bound what a request receives and sends over all its
	// connections ("10MiB"). Default no bound.
	MaxBytesIn  string `koanf:"max_bytes_in"`
	MaxBytesOut string `koanf:"max_bytes_out"`
	// ConnectTimeout bounds name resolution, the TCP connect and a TLS handshake.
	// Default "5s".
	ConnectTimeout string `koanf:"connect_timeout"`
}

// apply returns base with the limits c sets over it; key prefixes error messages.
func (c OutboundLimitsConf) apply(base egress.Limits, key string) (egress.Limits, error) {
	l := base
	var errs []error
	if c.MaxOpen < 0 || c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("%s.max_open and %s.max_conns must be at least 1", key, key))
	}
	if c.MaxOpen > 0 {
		l.MaxOpen = c.MaxOpen
	}
	if c.MaxConns > 0 {
		l.MaxConns = c.MaxConns
	}
	for _, b := range []struct {
		name string
		in   string
		out  *int64
	}{{"max_bytes_in", c.MaxBytesIn, &l.MaxBytesIn}, {"max_bytes_out", c.MaxBytesOut, &l.MaxBytesOut}} {
		if b.in == "" {
			continue
		}
		n, err := ParseSize(b.in)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s = %q: %v", key, b.name, b.in, err))
			continue
		}
		*b.out = int64(n)
	}
	if c.ConnectTimeout != "" {
		d, err := time.ParseDuration(c.ConnectTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s.connect_timeout = %q is not a duration like \"5s\"", key, c.ConnectTimeout))
		} else {
			l.ConnectTimeout = d
		}
	}
	return l, errors.Join(errs...)
}

// defaultOutboundLimits are the limits with no [outbound] table.
var defaultOutboundLimits = egress.Limits{
	MaxOpen: egress.DefaultMaxOpen, MaxConns: egress.DefaultMaxConns, ConnectTimeout: egress.DefaultConnectTimeout,
}

// checkTenantOutbound checks the tenant file's outbound entries against the grant:
// each must be covered by one of the grant's entries. It returns the tenant's rules.
func checkTenantOutbound(entries []string, g Grant, name, where string) ([]egress.Rule, error) {
	var rules []egress.Rule
	var errs []error
	for i, e := range entries {
		r, err := egress.ParseEntry(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: outbound[%d]: %v", where, i, err))
			continue
		}
		covered := false
		for _, gr := range g.Outbound {
			if gr.Covers(r) {
				covered = true
				break
			}
		}
		if !covered {
			granted := "this app has no outbound grants"
			if len(g.Outbound) > 0 {
				list := make([]string, len(g.Outbound))
				for j, gr := range g.Outbound {
					list[j] = gr.Entry
				}
				granted = "this app is granted " + strings.Join(list, ", ")
			}
			errs = append(errs, fmt.Errorf("%s: outbound[%d] = %q is not within the app's grant (%s): remove it, "+
				"or have the server's operator grant it with [apps.%s] outbound = [%q] in the server configuration",
				where, i, e, granted, name, e))
			continue
		}
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}
