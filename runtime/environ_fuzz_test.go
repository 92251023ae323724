package runtime

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
)

// FuzzEnviron parses arbitrary bytes as an HTTP request with Go's own parser and, when
// it accepts them, builds the environ. The environ must decode back from the pairs
// encoding unchanged, have only CGI-shaped names, never carry a header whose name had
// an underscore, and always hold the keys PEP 3333 requires.
func FuzzEnviron(f *testing.F) {
	f.Add([]byte("GET /app/caf%C3%A9?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-A: 1\r\nX-A: 2\r\n\r\n"), "/app")
	f.Add([]byte("POST / HTTP/1.0\r\nContent-Length: 3\r\nContent-Type: text/plain\r\nX_Forwarded_For: evil\r\n\r\nabc"), "")
	f.Add([]byte("GET http://h/p HTTP/1.1\r\nHost: h\r\n\r\n"), "/p")
	f.Fuzz(func(t *testing.T, raw []byte, prefix string) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		script, pathInfo := prefix, strings.TrimPrefix(r.URL.Path, prefix)
		env := Environ(&Request{HTTP: r, ScriptName: script, PathInfo: pathInfo})
		enc := hostfuncs.AppendPairs(nil, env)
		dec, err := hostfuncs.DecodePairs(enc, 1<<20)
		if err != nil || len(dec) != len(env) {
			t.Fatalf("environ does not round-trip: %v", err)
		}
		seen := map[string]bool{}
		for i, p := range dec {
			if p != env[i] {
				t.Fatalf("pair %d changed: %+v != %+v", i, p, env[i])
			}
			if seen[p.Name] {
				t.Fatalf("duplicate environ key %q", p.Name)
			}
			seen[p.Name] = true
			if strings.HasPrefix(p.Name, "HTTP_") {
				for _, c := range p.Name {
					if !(c == '_' || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) && !strings.ContainsRune("!#$%&'*+.^`|~", c) {
						t.Fatalf("environ key %q has %q", p.Name, c)
					}
				}
			}
			if p.Name == "HTTP_CONTENT_LENGTH" || p.Name == "HTTP_CONTENT_TYPE" {
				t.Fatalf("%s present", p.Name)
			}
		}
		for name := range r.Header {
			if strings.Contains(name, "_") && seen["HTTP_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] &&
				len(r.Header.Values(strings.ReplaceAll(name, "_", "-"))) == 0 {
				t.Fatalf("header %q with an underscore reached the environ", name)
			}
		}
		for _, k := range []string{"REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme"} {
			if !seen[k] {
				t.Fatalf("environ lacks %s", k)
			}
		}
	})
}
