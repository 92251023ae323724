// Package egress decides and brokers a tenant's outbound connections: the operator's
// grants (`scheme://host[:port]` entries), the policy that checks each destination
// against them, and the per-request connections the host opens on the guest's behalf.
//
// Nothing is reachable unless granted. The host resolves names itself, once per
// connection, and connects to the very address it checked, so a name cannot be
// re-pointed between the check and the connection (DNS rebinding). Addresses that are
// not globally routable (loopback, private networks, link-local, metadata services...)
// are reachable only through a grant that names the address or its network literally:
// never through a host name or a wildcard, whatever that name resolves to.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPorts are the ports of the schemes a grant entry may use without a port.
// "tcp" has none: its entries always name a port.
var DefaultPorts = map[string]int{
	"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "mysql": 3306,
	"mariadb": 3306, "redis": 6379, "rediss": 6380, "tcp": 0,
}

// Rule is one parsed grant entry.
type Rule struct {
	// Entry is the entry as written.
	Entry string
	// Scheme is the entry's scheme; it only chooses the default port.
	Scheme string
	// Host is a lower-case host name ("" for an address rule). With Wildcard it is
	// the domain whose subdomains match ("*.example.com" -> "example.com").
	Host     string
	Wildcard bool
	// AnyHost is the entry "*": every host name and every globally routable address.
	AnyHost bool
	// Prefix is the address or network of an address rule (IP literal or CIDR); it
	// is the only kind of rule that reaches non-public addresses.
	Prefix netip.Prefix
	// Ports are the destination ports, inclusive.
	PortLo, PortHi int
}

// IsAddress reports whether the rule names an address or a network.
func (r Rule) IsAddress() bool { return r.Prefix.IsValid() }

// Parse parses grant entries; the error lists every bad entry.
func Parse(entries []string) ([]Rule, error) {
	var rules []Rule
	var errs []error
	for _, e := range entries {
		r, err := ParseEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}

// ParseEntry parses one `scheme://host[:port]` entry. host is a name, "*.domain", "*",
// an IPv4 address, an [IPv6] address, or a CIDR network (IPv6 in brackets); port is a
// number, a range "a..b" or "*". The error names the entry and what is wrong.
func ParseEntry(entry string) (Rule, error) {
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("outbound entry %q: %s", entry, fmt.Sprintf(format, args...))
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(entry), "://")
	if !ok {
		return bad(`must be scheme://host[:port], like "postgres://db.example.com" or "tcp://10.0.0.5:9000"`)
	}
	scheme = strings.ToLower(scheme)
	def, known := DefaultPorts[scheme]
	if !known {
		return bad("unknown scheme %q: use one of http, https, postgres, mysql, redis, rediss, or tcp with a port", scheme)
	}
	if strings.ContainsAny(rest, "?#@") || strings.Contains(rest, "/") && !looksLikeCIDR(rest) {
		return bad("has a path, query or user part: write only scheme://host[:port]")
	}
	r := Rule{Entry: entry, Scheme: scheme}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("an IPv6 address in brackets is missing its \"]\"")
		}
		host, port = rest[1:end], rest[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return bad("unexpected %q after the IPv6 address", port)
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(rest, ":") {
			return bad("the port after \":\" is empty")
		}
	} else if i := strings.LastIndex(rest, ":"); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if strings.Contains(host, ":") {
			return bad("an IPv6 address goes in brackets: %s://[%s]:PORT", scheme, host)
		}
		if port == "" {
			return bad("the port after \":\" is empty")
		}
	}
	if host == "" {
		return bad("has no host")
	}
	// The port.
	switch {
	case port == "" && def == 0:
		return bad("tcp entries need a port: tcp://host:PORT (or a range, tcp://host:8000..8999)")
	case port == "":
		r.PortLo, r.PortHi = def, def
	case port == "*":
		r.PortLo, r.PortHi = 1, 65535
	default:
		lo, hi, isRange := strings.Cut(port, "..")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return bad("port %q must be a number from 1 to 65535, a range like 8000..8999, or *", port)
		}
		r.PortLo, r.PortHi = a, b
	}
	// The host.
	switch {
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return bad("%q is not a CIDR network like 10.0.0.0/8 or [fd00::/8]", host)
		}
		if p.Addr().Zone() != "" {
			return bad("addresses with a zone (%%) cannot be granted")
		}
		r.Prefix = p.Masked()
	case host == "*":
		r.AnyHost = true
	case strings.HasPrefix(host, "*."):
		name, err := checkName(host[2:])
		if err != nil {
			return bad("%v", err)
		}
		r.Host, r.Wildcard = name, true
	case strings.Contains(host, "*"):
		return bad(`"*" may only stand alone or start the host as a subdomain prefix ("*.example.com")`)
	default:
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.Zone() != "" {
				return bad("addresses with a zone (%%) cannot be granted")
			}
			ip = ip.Unmap()
			r.Prefix = netip.PrefixFrom(ip, ip.BitLen())
			break
		}
		if strings.Contains(host, ":") {
			return bad("an IPv6 address goes in brackets: %s://[%s]:PORT", scheme, host)
		}
		name, err := checkName(host)
		if err != nil {
			return bad("%v", err)
		}
		if isNumeric(name) {
			return bad("%q is neither an IPv4 address nor a host name", host)
		}
		r.Host = name
	}
	return r, nil
}

// looksLikeCIDR reports whether the host part of rest is meant as a network: an
// address followed by "/".
func looksLikeCIDR(rest string) bool {
	h := rest
	if strings.HasPrefix(h, "[") {
		if end := strings.Index(h, "]"); end > 0 {
			h = h[1:end]
		}
	} else if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	addr, _, ok := strings.Cut(h, "/")
	_, err := netip.ParseAddr(addr)
	return ok && err == nil
}

// checkName lower-cases a DNS name and checks its syntax.
func checkName(name string) (string, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" || len(name) > 253 {
		return "", fmt.Errorf("%q is not a host name", name)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a host name (empty or malformed label)", name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is not a host name (character %q)", name, c)
			}
		}
	}
	return name, nil
}

func isNumeric(name string) bool {
	for _, c := range name {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// matchesName reports whether the rule matches the host name (lower case).
func (r Rule) matchesName(name string) bool {
	switch {
	case r.AnyHost:
		return true
	case r.IsAddress():
		return false
	case r.Wildcard:
		return strings.HasSuffix(name, "."+r.Host)
	}
	return name == r.Host
}

func (r Rule) hasPort(port int) bool { return port >= r.PortLo && port <= r.PortHi }

// Covers reports whether every destination r2 allows is also allowed by r: a tenant's
// entry must be covered by one of its app's grants.
func (r Rule) Covers(r2 Rule) bool {
	if r2.PortLo < r.PortLo || r2.PortHi > r.PortHi {
		return false
	}
	switch {
	case r2.IsAddress():
		return r.IsAddress() && r.Prefix.Bits() <= r2.Prefix.Bits() && r.Prefix.Contains(r2.Prefix.Addr())
	case r2.AnyHost:
		return r.AnyHost
	case r2.Wildcard:
		return r.AnyHost || r.Wildcard && (r2.Host == r.Host || strings.HasSuffix(r2.Host, "."+r.Host))
	}
	return r.matchesName(r2.Host)
}

// String writes the rule in its canonical form.
func (r Rule) String() string {
	host := r.Host
	switch {
	case r.AnyHost:
		host = "*"
	case r.Wildcard:
		host = "*." + r.Host
	case r.IsAddress():
		if r.Prefix.IsSingleIP() {
			host = r.Prefix.Addr().String()
		} else {
			host = r.Prefix.String()
		}
		if r.Prefix.Addr().Is6() {
			host = "[" + host + "]"
		}
	}
	port := strconv.Itoa(r.PortLo)
	if r.PortLo == 1 && r.PortHi == 65535 {
		port = "*"
	} else if r.PortHi != r.PortLo {
		port += ".." + strconv.Itoa(r.PortHi)
	}
	return r.Scheme + "://" + host + ":" + port
}
