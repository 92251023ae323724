package egress

import (
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	for _, tc := range []struct {
		entry, want string // want: canonical form, or "error: <part of the message>"
	}{
		{"https://api.example.com", "https://api.example.com:443"},
		{"http://api.example.com", "http://api.example.com:80"},
		{"postgres://db.example.com", "postgres://db.example.com:5432"},
		{"mysql://db.example.com", "mysql://db.example.com:3306"},
		{"redis://cache.example.com", "redis://cache.example.com:6379"},
		{"HTTPS://API.Example.COM:8443", "https://api.example.com:8443"},
		{"tcp://10.0.0.5:9000", "tcp://10.0.0.5:9000"},
		{"tcp://10.0.0.0/8:5432", "tcp://10.0.0.0/8:5432"},
		{"tcp://10.1.2.3/8:5432", "tcp://10.0.0.0/8:5432"},
		{"tcp://[::1]:6379", "tcp://[::1]:6379"},
		{"tcp://[fd00::/8]:80", "tcp://[fd00::/8]:80"},
		{"tcp://[::ffff:127.0.0.1]:80", "tcp://127.0.0.1:80"},
		{"https://*.example.com", "https://*.example.com:443"},
		{"https://*", "https://*:443"},
		{"tcp://db:8000..8999", "tcp://db:8000..8999"},
		{"tcp://db:*", "tcp://db:*"},
		{"tcp://db", "error: tcp entries need a port"},
		{"ftp://host", "error: unknown scheme \"ftp\""},
		{"api.example.com", "error: must be scheme://host[:port]"},
		{"https://api.*.com", "error: \"*\" may only stand alone or start the host"},
		{"https://ex*.com", "error: \"*\" may only stand alone"},
		{"https://*example.com", "error: \"*\" may only stand alone"},
		{"https://example.com/path", "error: has a path"},
		{"https://user@example.com", "error: has a path, query or user part"},
		{"tcp://db:0", "error: port \"0\" must be a number from 1 to 65535"},
		{"tcp://db:65536", "error: must be a number from 1 to 65535"},
		{"tcp://db:9..1", "error: must be a number from 1 to 65535, a range"},
		{"tcp://db:", "error: the port after \":\" is empty"},
		{"tcp://:80", "error: has no host"},
		{"tcp://::1:80", "error: an IPv6 address goes in brackets"},
		{"tcp://[::1:80", "error: missing its \"]\""},
		{"tcp://10.0.0.0/33:80", "error: is not a CIDR network"},
		{"tcp://999.1.1.1:80", "error: neither an IPv4 address nor a host name"},
		{"tcp://bad_host!:80", "error: is not a host name"},
		{"tcp://[fe80::1%eth0]:80", "error: zone"},
	} {
		r, err := ParseEntry(tc.entry)
		if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
			if err == nil {
				t.Errorf("%q: parsed as %s, want an error containing %q", tc.entry, r, want)
			} else if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.entry) {
				t.Errorf("%q: error %q, want it to name the entry and contain %q", tc.entry, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.entry, err)
		} else if r.String() != tc.want {
			t.Errorf("%q: parsed as %s, want %s", tc.entry, r, tc.want)
		}
	}
}

func TestParseListsEveryBadEntry(t *testing.T) {
	_, err := Parse([]string{"tcp://a", "https://ok.example.com", "ftp://b"})
	if err == nil || !strings.Contains(err.Error(), `"tcp://a"`) || !strings.Contains(err.Error(), `"ftp://b"`) {
		t.Fatalf("error %v, want both bad entries named", err)
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		grant, tenant string
		want          bool
	}{
		{"https://api.example.com", "https://api.example.com", true},
		{"https://api.example.com", "tcp://api.example.com:443", true},
		{"https://api.example.com", "http://api.example.com", false},
		{"https://api.example.com", "https://other.example.com", false},
		{"https://*.example.com", "https://api.example.com", true},
		{"https://*.example.com", "https://*.api.example.com", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://*", false},
		{"https://*", "https://anything.org", true},
		{"https://*", "tcp://10.0.0.1:443", false}, // "*" never reaches an address rule
		{"tcp://10.0.0.0/8:5432", "tcp://10.1.0.0/16:5432", true},
		{"tcp://10.1.0.0/16:5432", "tcp://10.0.0.0/8:5432", false},
		{"tcp://127.0.0.1:5432", "tcp://127.0.0.2:5432", false},
		{"tcp://db:8000..8999", "tcp://db:8080", true},
		{"tcp://db:8000..8999", "tcp://db:7000..8080", false},
		{"tcp://127.0.0.1:6379", "tcp://localhost:6379", false},
	} {
		g, err1 := ParseEntry(tc.grant)
		r, err2 := ParseEntry(tc.tenant)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got := g.Covers(r); got != tc.want {
			t.Errorf("%s covers %s = %v, want %v", tc.grant, tc.tenant, got, tc.want)
		}
	}
}
