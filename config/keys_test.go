package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// An unknown key in wasmwsgi.toml names the file, the line and the key as written,
// and the nearest valid key when one is close.
func TestDiscoverUnknownKeys(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"typo/app.py":          "",
		"typo/wasmwsgi.toml":   "entrypoint = \"app\"\n\n[limits]\ntimeout = \"5s\"\nconcurency = 2\n",
		"top/app.py":           "",
		"top/wasmwsgi.toml":    "# a comment\ntimeout = \"5s\"\n",
		"table/app.py":         "",
		"table/wasmwsgi.toml":  "[envv]\nDJANGO_SETTINGS_MODULE = \"mysite.settings\"\n",
		"inline/app.py":        "",
		"inline/wasmwsgi.toml": "comment = \"\"\"\nprefixx = 1\n\"\"\"\nlimits = { timeot = \"1s\" }\n",
		"far/app.py":           "",
		"far/wasmwsgi.toml":    "validate = true\nprobe_secret = \"x\"\n",
		"two/app.py":           "",
		"two/wasmwsgi.toml":    "Prefixx = \"/two\"\nhost = [\"a.example\"]\n",
	})
	apps, err := Discover(Operator{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{}
	for _, a := range apps {
		if a.Err != nil {
			errs[a.Name] = a.Err.Error()
		}
	}
	file := func(app string) string { return filepath.Join(dir, app, AppFile) }
	want := map[string]string{
		"typo":   file("typo") + ", line 5: limits.concurency is not a setting; did you mean limits.concurrency?",
		"top":    file("top") + ", line 2: timeout is not a setting; did you mean limits.timeout?",
		"table":  file("table") + ", line 2: envv.DJANGO_SETTINGS_MODULE is not a setting; did you mean env.DJANGO_SETTINGS_MODULE?",
		"inline": file("inline") + ", line 1: comment is not a setting; remove it",
		"far": file("far") + `, line 2: probe_secret is not a setting; remove it (the README's "Per-app settings" ` +
			`section lists the settings of wasmwsgi.toml)`,
		"two": file("two") + ", line 1: Prefixx is not a setting; did you mean prefix?\n" +
			file("two") + ", line 2: host is not a setting; did you mean hosts?",
	}
	for app, w := range want {
		got := errs[app]
		if !strings.HasPrefix(got, w) {
			t.Errorf("%s:\n got %q\nwant %q", app, got, w)
		}
		for _, never := range []string{"router.", "AppConfig", "invalid keys"} {
			if strings.Contains(got, never) {
				t.Errorf("%s: the error shows %q: %s", app, never, got)
			}
		}
	}
	if got := errs["inline"]; !strings.Contains(got, "line 4: limits.timeot is not a setting; did you mean limits.timeout?") {
		t.Errorf("inline table: %q", got)
	}
}

func TestTOMLKeyLine(t *testing.T) {
	text := `# settings
addr = "x"   # trailing comment
"quoted.part" . x = 1
body = """
fake = 1
"""
[ limits ]
timeout = "5s"
[[apps]]
name = "a"
[env]
`
	for key, want := range map[string]int{
		"addr":           2,
		"quoted.part.x":  3,
		"fake":           0, // inside a multi-line string
		"limits.timeout": 8,
		"limits.queue":   7, // not in the text: its table
		"apps.name":      10,
		"env":            11,
		"missing":        0,
	} {
		if got := tomlKeyLine(text, key); got != want {
			t.Errorf("%s: line %d, want %d", key, got, want)
		}
	}
}
