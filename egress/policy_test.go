package egress

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want string // "" for globally routable, else part of the class
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.216.34", ""},
		{"0.0.0.0", "this network"},
		{"0.1.2.3", "this network"},
		{"10.0.0.1", "RFC 1918"},
		{"172.16.0.1", "RFC 1918"},
		{"172.31.255.255", "RFC 1918"},
		{"172.32.0.1", ""},
		{"192.168.1.1", "RFC 1918"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"100.128.0.1", ""},
		{"127.0.0.1", "loopback"},
		{"127.0.0.2", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "link-local"},
		{"169.254.0.1", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"2606:4700:4700::1111", ""},
		{"::", "unspecified"},
		{"::1", "IPv6 loopback"},
		{"fd00::1", "unique local"},
		{"fc00::1", "unique local"},
		{"fe80::1", "IPv6 link-local"},
		{"fe80::1%eth0", "zone"},
		{"fec0::1", "site-local"},
		{"ff02::1", "IPv6 multicast"},
		{"2001:db8::1", "documentation"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		// IPv4 addresses written as IPv6.
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.0.0.1", "RFC 1918"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:8.8.8.8", ""},
		{"::127.0.0.1", "IPv4-compatible"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"64:ff9b::127.0.0.1", "loopback, through NAT64"},
		{"64:ff9b::a9fe:a9fe", "link-local"},
		{"64:ff9b::8.8.8.8", ""},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"2002:7f00:1::", "loopback, through 6to4"},
		{"2002:a9fe:a9fe::1", "link-local (cloud metadata lives at 169.254.169.254), through 6to4"},
		{"2002:c0a8:0101::1", "RFC 1918"},
		{"2002:0808:0808::1", ""},
		{"3fff::1", ""},
		{"4000::1", "outside IPv6 global unicast"},
	} {
		got := Classify(netip.MustParseAddr(tc.ip))
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.ip, got, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	p, err := NewPolicy([]string{
		"https://api.example.com",
		"https://*.cdn.example.net",
		"postgres://db.internal.example",
		"tcp://127.0.0.1:6379",
		"tcp://10.1.0.0/16:5432",
		"tcp://[fd00::5]:9000",
		"http://*",
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := netip.MustParseAddr("93.184.216.34")
	for _, tc := range []struct {
		name, ip string
		port     int
		want     string // "" allowed, else part of the reason
	}{
		{"api.example.com", "93.184.216.34", 443, ""},
		{"api.example.com", "93.184.216.34", 80, ""}, // http://* covers it
		{"api.example.com", "93.184.216.34", 8443, "no outbound entry covers port 8443"},
		{"x.cdn.example.net", "93.184.216.34", 443, ""},
		{"cdn.example.net", "93.184.216.34", 443, "no outbound entry"},
		{"evil.com", "93.184.216.34", 443, "no outbound entry"},
		// A granted name that resolves to a non-public address (DNS rebinding, a
		// hostile or misconfigured record) does not reach it.
		{"api.example.com", "127.0.0.1", 443, "loopback"},
		{"api.example.com", "169.254.169.254", 443, "link-local"},
		{"api.example.com", "10.1.2.3", 443, "RFC 1918"},
		{"api.example.com", "::ffff:10.1.2.3", 443, "RFC 1918"},
		{"api.example.com", "64:ff9b::a9fe:a9fe", 443, "NAT64"},
		{"api.example.com", "2002:7f00:1::", 443, "6to4"},
		{"api.example.com", "::1", 443, "IPv6 loopback"},
		{"api.example.com", "fd00::1", 443, "unique local"},
		{"x.cdn.example.net", "192.168.0.1", 443, "RFC 1918"},
		{"db.internal.example", "10.9.0.9", 5432, "literally"},
		{"db.internal.example", "10.1.0.9", 5432, ""}, // tcp://10.1.0.0/16:5432 names it
		{"anything.org", "127.0.0.1", 80, "loopback"}, // http://* reaches only public addresses
		{"", "8.8.8.8", 80, ""},                       // ... including public address literals
		{"", "0.0.0.0", 80, "this network"},
		// Address grants reach exactly what they name.
		{"", "127.0.0.1", 6379, ""},
		{"", "::ffff:127.0.0.1", 6379, ""},
		{"", "127.0.0.1", 6380, "no outbound entry covers port 6380"},
		{"", "127.0.0.2", 6379, "loopback"},  // other loopback addresses are not 127.0.0.1
		{"localhost", "127.0.0.1", 6379, ""}, // the host resolved a name to the granted address
		{"", "::1", 6379, "IPv6 loopback"},
		{"", "0.0.0.0", 6379, "this network"},
		{"", "10.1.200.7", 5432, ""},
		{"", "10.2.0.1", 5432, "RFC 1918"},
		{"", "fd00::5", 9000, ""},
		{"", "fd00::6", 9000, "unique local"},
		{"", "fe80::1%eth0", 9000, "zone"},
		{"", "93.184.216.34", 443, "no outbound entry"}, // a name grant is not its address
	} {
		d := Dest{Name: tc.name, IP: netip.MustParseAddr(tc.ip), Port: tc.port}
		err := p.Decide(d)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: denied (%v), want allowed", d, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: allowed, want denied (%s)", d, tc.want)
		case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not granted")):
			t.Errorf("%s: %v, want %q", d, err, tc.want)
		}
	}
	if err := (&Policy{}).Decide(Dest{IP: pub, Port: 443}); err == nil || !strings.Contains(err.Error(), "no outbound grants") {
		t.Errorf("no grants: %v", err)
	}
}
