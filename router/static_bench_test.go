package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// BenchmarkStaticHit is one request for a [static] file through the whole router:
// middleware, access log and metrics, the mount's routes and package static.
func BenchmarkStaticHit(b *testing.B) {
	apps := testkit.WriteTree(b, map[string]string{
		"a/app.py":           appSource("a"),
		"a/static/style.css": "body { color: #333; }\n",
		"a/wasmwsgi.toml":    "[static]\n\"/static\" = \"static\"\n",
	})
	rt, err := New(engine(b), Config{Apps: config.Operator{Dir: apps, Limits: testLimits, StaticFiles: true},
		MaxAppBytes: 64 << 20}, discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	if failed := rt.LoadAll(context.Background()); failed != 0 {
		b.Fatalf("%d apps failed to load", failed)
	}
	req := httptest.NewRequest(http.MethodGet, "/a/static/style.css", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
