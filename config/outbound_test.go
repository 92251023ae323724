package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeOutboundApps makes one app folder per name under a new apps folder, with the given
// wasmwsgi.toml ("" for none).
func writeOutboundApps(t *testing.T, tomls map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, toml := range tomls {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, name, "app.py"), nil, 0o644)
		if toml != "" {
			_ = os.WriteFile(filepath.Join(dir, name, AppFile), []byte(toml), 0o644)
		}
	}
	return dir
}

func TestOutboundGrants(t *testing.T) {
	apps := writeOutboundApps(t, map[string]string{
		"shop":   "outbound = [\"tcp://127.0.0.1:6379\"]\n",
		"wider":  "outbound = [\"tcp://127.0.0.1:6379\", \"tcp://127.0.0.2:6379\"]\n",
		"nogrnt": "outbound = [\"https://api.example.com\"]\n",
		"plain":  "",
	})
	c, _, err := loadFile(t, `
apps_dir = "`+apps+`"
[outbound]
max_open = 3
connect_timeout = "2s"
[apps.shop]
outbound = ["tcp://127.0.0.1:6379", "https://*.example.com"]
[apps.wider]
outbound = ["tcp://127.0.0.1:6379"]
[apps.wider.outbound_limits]
max_conns = 7
max_bytes_in = "1MiB"
[apps.plain]
outbound = ["postgres://db.example.com"]
`)
	if err != nil {
		t.Fatal(err)
	}
	list, err := Discover(c.Operator())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]App{}
	for _, a := range list {
		got[a.Name] = a
	}
	shop := got["shop"]
	if shop.Err != nil || len(shop.Outbound) != 1 || shop.Outbound[0].String() != "tcp://127.0.0.1:6379" {
		t.Errorf("shop narrows its grant to one entry: %v %v", shop.Outbound, shop.Err)
	}
	if !strings.HasPrefix(shop.Sources["outbound"], "tenant file") {
		t.Errorf("shop's outbound source: %q", shop.Sources["outbound"])
	}
	if shop.OutboundLimits.MaxOpen != 3 || shop.OutboundLimits.MaxConns != 50 || shop.OutboundLimits.ConnectTimeout != 2*time.Second {
		t.Errorf("shop's outbound limits: %+v", shop.OutboundLimits)
	}
	plain := got["plain"]
	if plain.Err != nil || len(plain.Outbound) != 1 || plain.Outbound[0].String() != "postgres://db.example.com:5432" ||
		!strings.HasPrefix(plain.Sources["outbound"], "grant") {
		t.Errorf("plain has its whole grant: %v %q %v", plain.Outbound, plain.Sources["outbound"], plain.Err)
	}
	wider := got["wider"]
	for _, want := range []string{filepath.Join(apps, "wider", AppFile), `"tcp://127.0.0.2:6379"`,
		"not within the app's grant", "tcp://127.0.0.1:6379", `[apps.wider] outbound = ["tcp://127.0.0.2:6379"]`} {
		if wider.Err == nil || !strings.Contains(wider.Err.Error(), want) {
			t.Errorf("wider: %v, want it to contain %q", wider.Err, want)
		}
	}
	if nogrnt := got["nogrnt"]; nogrnt.Err == nil || !strings.Contains(nogrnt.Err.Error(), "this app has no outbound grants") ||
		!strings.Contains(nogrnt.Err.Error(), `[apps.nogrnt] outbound = ["https://api.example.com"]`) {
		t.Errorf("nogrnt: %v", nogrnt.Err)
	}
	if g := c.Grants["wider"].OutboundLimits; g.MaxConns != 7 || g.MaxOpen != 3 || g.MaxBytesIn != 1<<20 {
		t.Errorf("wider's grant limits: %+v", g)
	}
	var shown []string
	for _, s := range shop.Settings() {
		if strings.HasPrefix(s.Key, "outbound") {
			shown = append(shown, s.Key)
		}
	}
	if len(shown) != 6 {
		t.Errorf("Settings shows %v", shown)
	}
}

func TestOutboundGrantErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"[apps.shop]\noutbound = [\"tcp://db\"]\n", "apps.shop.outbound: outbound entry \"tcp://db\": tcp entries need a port"},
		{"[apps.shop]\noutbound = [\"https://a.*.com\"]\n", "apps.shop.outbound: outbound entry \"https://a.*.com\""},
		{"[outbound]\nconnect_timeout = \"soon\"\n", "outbound.connect_timeout = \"soon\""},
		{"[outbound]\nca_file = \"/nonexistent/ca.pem\"\n", "outbound.ca_file"},
		{"[apps.shop.outbound_limits]\nmax_bytes_out = \"lots\"\n", "apps.shop.outbound_limits.max_bytes_out"},
	} {
		_, _, err := loadFile(t, tc.toml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.toml, err, tc.want)
		}
	}
}
