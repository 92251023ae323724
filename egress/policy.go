package egress

import (
	"fmt"
	"net/netip"
)

// nonPublic are the networks that are not globally routable, with what each is; an
// address in one is reached only through a grant naming it (or its network) literally.
var nonPublic = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private network (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT space (100.64.0.0/10)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata lives at 169.254.169.254)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private network (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation space"},
	{netip.MustParsePrefix("192.88.99.0/24"), "the 6to4 relay anycast network"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private network (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking space"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation space"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation space"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved space or broadcast"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "IPv6 loopback"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "the IPv6 discard prefix"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "IPv6 documentation space"},
	{netip.MustParsePrefix("fc00::/7"), "an IPv6 unique local address (ULA)"},
	{netip.MustParsePrefix("fe80::/10"), "IPv6 link-local"},
	{netip.MustParsePrefix("fec0::/10"), "IPv6 site-local"},
	{netip.MustParsePrefix("ff00::/8"), "IPv6 multicast"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	global6   = netip.MustParsePrefix("2000::/3")
)

// Classify returns "" for a globally routable address, else what the address is. An
// IPv4 address written as IPv6 (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) is
// classified by the IPv4 address it carries.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "not an address"
	}
	if ip.Zone() != "" {
		return "an address with a zone"
	}
	ip = ip.Unmap()
	for _, n := range nonPublic {
		if n.prefix.Contains(ip) {
			return n.what
		}
	}
	if ip.Is4() {
		return ""
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		if what := Classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); what != "" {
			return what + ", through NAT64"
		}
	case sixToFour.Contains(ip):
		if what := Classify(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); what != "" {
			return what + ", through 6to4"
		}
	case !global6.Contains(ip):
		return "outside IPv6 global unicast (2000::/3)"
	}
	return ""
}

// Policy is an app's outbound grant: the destinations it may connect to.
type Policy struct {
	Rules []Rule
}

// NewPolicy parses grant entries into a policy.
func NewPolicy(entries []string) (*Policy, error) {
	rules, err := Parse(entries)
	return &Policy{Rules: rules}, err
}

// Dest is a destination the guest asked for: the host name it named (or "" when it
// named an address), the address the host would connect to, and the port.
type Dest struct {
	Name string
	IP   netip.Addr
	Port int
}

func (d Dest) String() string {
	if !d.IP.IsValid() {
		if d.Port == 0 {
			return d.Name
		}
		return fmt.Sprintf("%s:%d", d.Name, d.Port)
	}
	ap := netip.AddrPortFrom(d.IP.Unmap(), uint16(d.Port)).String()
	if d.Name == "" {
		return ap
	}
	return fmt.Sprintf("%s:%d (%s)", d.Name, d.Port, ap)
}

// Decide returns nil when the policy allows a connection to d, else the reason it
// does not. It does no I/O.
func (p *Policy) Decide(d Dest) error {
	ip := d.IP.Unmap()
	if ip.Zone() != "" {
		return fmt.Errorf("%s is not granted to this app: addresses with a zone cannot be granted", d)
	}
	var private string
	portOnly := false // a rule names the destination, at other ports
	for _, r := range p.Rules {
		if !r.hasPort(d.Port) {
			if r.IsAddress() && r.Prefix.Contains(ip) || d.Name != "" && r.matchesName(d.Name) {
				portOnly = true
			}
			continue
		}
		if r.IsAddress() {
			if r.Prefix.Contains(ip) {
				return nil
			}
			continue
		}
		if d.Name == "" && !r.AnyHost {
			continue
		}
		if d.Name != "" && !r.matchesName(d.Name) {
			continue
		}
		if what := Classify(ip); what != "" {
			private = what
			continue
		}
		return nil
	}
	if private != "" {
		return fmt.Errorf("%s is not granted to this app: %s is %s, reached only through a grant "+
			"naming that address or its network literally (not a host name or wildcard)", d, ip, private)
	}
	if len(p.Rules) == 0 {
		return fmt.Errorf("%s is not granted to this app: it has no outbound grants", d)
	}
	if portOnly {
		return fmt.Errorf("%s is not granted to this app: no outbound entry covers port %d of it", d, d.Port)
	}
	if what := Classify(ip); d.Name == "" && what != "" {
		return fmt.Errorf("%s is not granted to this app: %s is %s, reached only through a grant "+
			"naming that address or its network literally", d, ip, what)
	}
	return fmt.Errorf("%s is not granted to this app: no outbound entry covers it", d)
}

// NameGranted reports whether some rule could match the host name at the port: the
// host resolves only names that are granted.
func (p *Policy) NameGranted(name string, port int) bool {
	for _, r := range p.Rules {
		if r.matchesName(name) && (port == 0 || r.hasPort(port)) {
			return true
		}
	}
	return false
}
