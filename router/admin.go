package router

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// AdminConfig configures the admin page at /_wasmwsgi/: a live table of the apps, their
// state, traffic, latency, memory and outbound connections, fed by GET
// /_wasmwsgi/api/apps.
type AdminConfig struct {
	// Enabled serves the admin page; without it /_wasmwsgi/ and its API answer 404.
	Enabled bool
	// Token is the secret a client must show, as "Authorization: Bearer <token>" or
	// once as "?token=<token>", which sets a cookie for the page's own requests. An
	// empty token lets nobody in.
	Token string
	// OwnListener serves the admin page and /_wasmwsgi/metrics only through
	// Router.AdminHandler (a listener of their own); the main handler then answers 404
	// for them.
	OwnListener bool
}

// Windows of the admin page's figures.
const (
	// adminRecent is how many of an app's latest requests the percentiles and the
	// memory peak are taken over.
	adminRecent = 1000
	// adminRateSeconds is the window of the requests-per-second figure: the last whole
	// seconds before the current one.
	adminRateSeconds = 10
	// adminSparkSeconds is the length of the latency sparkline, one point a second.
	adminSparkSeconds = 60
)

const (
	adminCookie   = "wasmwsgi_admin"
	adminPagePath = "/_wasmwsgi/"
	adminAPIPath  = "/_wasmwsgi/api/apps"
	metricsPath   = "/_wasmwsgi/metrics"
)

//go:embed admin.html
var adminPage []byte

// adminCSP allows the page's own inline style and script (by hash) and requests to its
// own origin, nothing else.
var adminCSP = func() string {
	hashes := func(tag string) string {
		re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
		var out []string
		for _, m := range re.FindAllSubmatch(adminPage, -1) {
			sum := sha256.Sum256(m[1])
			out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		return strings.Join(out, " ")
	}
	return "default-src 'none'; style-src " + hashes("style") + "; script-src " + hashes("script") +
		"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// adminState serves the admin page and keeps, per app, the recent figures it shows.
type adminState struct {
	rt  *Router
	cfg AdminConfig

	mu   sync.Mutex
	apps map[string]*appRecorder
}

func newAdmin(rt *Router) *adminState {
	return &adminState{rt: rt, cfg: rt.cfg.Admin, apps: map[string]*appRecorder{}}
}

// record counts one finished request; the access log calls it for every request, and
// those that went to no app (the server's own endpoints) are skipped, as is everything
// while the admin page is off.
func (a *adminState) record(e *logEntry, status int, elapsed time.Duration) {
	if e.app == "" || !a.cfg.Enabled {
		return
	}
	a.recorder(e.app).add(time.Now(), status, elapsed, e.stats.PeakMemory)
}

func (a *adminState) recorder(app string) *appRecorder {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.apps[app]
	if !ok {
		r = &appRecorder{}
		a.apps[app] = r
	}
	return r
}

// forget drops the figures of an app that is no longer served.
func (a *adminState) forget(app string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.apps, app)
}

// routes registers the metrics endpoint and the admin page with its API.
func (a *adminState) routes(r chi.Router) {
	r.Method(http.MethodGet, metricsPath, a.onAdminSide(a.rt.metrics.handler()))
	r.Method(http.MethodGet, "/_wasmwsgi", a.guard(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, adminPagePath, http.StatusSeeOther)
	}))
	r.Method(http.MethodGet, adminPagePath, a.guard(a.servePage))
	r.Method(http.MethodGet, adminAPIPath, a.guard(a.serveApps))
}

type adminListenerKey struct{}

// AdminHandler serves the admin page, its API, /_wasmwsgi/metrics and the health
// endpoints, for a listener of their own (AdminConfig.OwnListener). Every other path
// is 404: no app is reachable through it.
func (rt *Router) AdminHandler() http.Handler {
	paths := map[string]bool{
		"/_wasmwsgi": true, adminPagePath: true, adminAPIPath: true, metricsPath: true,
		"/_wasmwsgi/healthz": true, "/_wasmwsgi/ready": true,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !paths[r.URL.Path] || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		rt.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminListenerKey{}, true)))
	})
}

// onAdminSide hides h from the main listener when the admin endpoints have their own.
func (a *adminState) onAdminSide(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.OwnListener && r.Context().Value(adminListenerKey{}) == nil {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// guard answers 404 while the admin page is off and 401 without the token. A valid
// ?token= sets the session cookie and redirects to the same address without it, so the
// token stays out of the browser's history.
func (a *adminState) guard(h http.HandlerFunc) http.Handler {
	return a.onAdminSide(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Enabled {
			http.NotFound(w, r)
			return
		}
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		q := r.URL.Query()
		if q.Has("token") {
			given := q.Get("token")
			q.Del("token")
			// The access log prints this request's URL, which the handlers share with
			// it: keep the token out of the log.
			r.URL.RawQuery = strings.TrimPrefix(q.Encode()+"&token=REDACTED", "&")
			if !a.tokenValid(given) {
				a.unauthorized(w)
				return
			}
			// Secure when the browser came over HTTPS, directly or through a trusted proxy.
			_, scheme, _ := a.rt.forwarded(r)
			http.SetCookie(w, &http.Cookie{
				Name: adminCookie, Value: a.cookieValue(), Path: "/_wasmwsgi",
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || scheme == "https",
			})
			target := r.URL.Path
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if !a.authorized(r) {
			a.unauthorized(w)
			return
		}
		h(w, r)
	}))
}

// authorized reports whether r carries the token in an Authorization header or the
// session cookie.
func (a *adminState) authorized(r *http.Request) bool {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, _ := strings.Cut(auth, " ")
		return strings.EqualFold(scheme, "Bearer") && a.tokenValid(strings.TrimSpace(tok))
	}
	c, err := r.Cookie(adminCookie)
	if err != nil || a.cfg.Token == "" {
		return false
	}
	return hmac.Equal([]byte(c.Value), []byte(a.cookieValue()))
}

// tokenValid compares in constant time; hashing first makes the time independent of
// the lengths too.
func (a *adminState) tokenValid(given string) bool {
	if a.cfg.Token == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(a.cfg.Token))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// cookieValue is the session cookie: derived from the token, so a new token ends every
// session, without being the token.
func (a *adminState) cookieValue() string {
	m := hmac.New(sha256.New, []byte(a.cfg.Token))
	m.Write([]byte("wasmwsgi admin session"))
	return hex.EncodeToString(m.Sum(nil))
}

func (a *adminState) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="wasmwsgi admin"`)
	http.Error(w, "wasmwsgi admin: the admin token is missing or wrong: open /_wasmwsgi/?token=<admin.token> "+
		"once in the browser, or send \"Authorization: Bearer <admin.token>\"", http.StatusUnauthorized)
}

func (a *adminState) servePage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", adminCSP)
	h.Set("X-Frame-Options", "DENY")
	_, _ = w.Write(adminPage)
}

// adminApps is the body of GET /_wasmwsgi/api/apps.
type adminApps struct {
	Time time.Time `json:"time"`
	// The windows the figures are taken over.
	RecentRequests int        `json:"recent_requests"`
	RateSeconds    int        `json:"rate_seconds"`
	SparkSeconds   int        `json:"spark_seconds"`
	Apps           []adminApp `json:"apps"`
}

type adminApp struct {
	Name   string        `json:"name"`
	Prefix string        `json:"prefix"`
	Hosts  []string      `json:"hosts,omitempty"`
	State  runtime.State `json:"state"`
	// Error is why a failed app failed (with the Python traceback).
	Error string `json:"error,omitempty"`
	// ReloadError is why the app's latest version failed to load while the version
	// before it keeps serving.
	ReloadError string `json:"reload_error,omitempty"`
	Running     int    `json:"running"`
	Queued      int    `json:"queued"`
	// Idle is how many instances wait in the app's pool, SnapshotBytes the size of the
	// memory image every instance starts from.
	Idle          int    `json:"idle"`
	SnapshotBytes uint64 `json:"snapshot_bytes"`
	// Outbound is what the app's outbound connections did since its current version
	// loaded: the figures of the wasmwsgi_outbound_* metrics.
	Outbound adminOutbound `json:"outbound"`
	appStats
}

type adminOutbound struct {
	Connections int64 `json:"connections"`
	BytesOut    int64 `json:"bytes_out"`
	BytesIn     int64 `json:"bytes_in"`
	// Denied counts connections and name lookups the app's grants refused.
	Denied int64 `json:"denied"`
}

func (a *adminState) serveApps(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	out := adminApps{Time: now, RecentRequests: adminRecent, RateSeconds: adminRateSeconds,
		SparkSeconds: adminSparkSeconds, Apps: []adminApp{}}
	for _, m := range a.rt.Mounts() {
		state, why := m.App.Status()
		running, queued := m.App.InFlight()
		ev := m.App.Events()
		out.Apps = append(out.Apps, adminApp{
			Name: m.Dir.Name, Prefix: m.Prefix, Hosts: m.Hosts, State: state, Error: why,
			Running: running, Queued: queued, Idle: m.App.Idle(), SnapshotBytes: m.App.SnapshotSize(),
			ReloadError: a.rt.problem(m.Dir.Name).msg,
			Outbound: adminOutbound{Connections: ev.OutboundConns.Load(), BytesOut: ev.OutboundBytesOut.Load(),
				BytesIn: ev.OutboundBytesIn.Load(), Denied: ev.OutboundDenied.Load()},
			appStats: a.recorder(m.Dir.Name).stats(now),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		a.rt.log.Debug("admin api: writing the response", "error", err.Error())
	}
}

// appRecorder holds one app's recent requests: the latest adminRecent latencies and
// peak memories, and per-second counts for the rate and the sparkline.
type appRecorder struct {
	mu       sync.Mutex
	requests uint64
	errors   uint64
	lastMem  uint64
	recent   [adminRecent]sample
	filled   int // samples in recent
	next     int // where the next sample goes
	// seconds is a ring indexed by Unix second; a slot whose unix is stale is empty.
	seconds [adminSparkSeconds + 4]second
}

type sample struct {
	latency time.Duration
	memory  uint64
}

type second struct {
	unix  int64
	count int
	total time.Duration
}

func (r *appRecorder) add(now time.Time, status int, elapsed time.Duration, memory uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if status >= 500 {
		r.errors++
	}
	if memory > 0 {
		r.lastMem = memory
	}
	r.recent[r.next] = sample{elapsed, memory}
	r.next = (r.next + 1) % len(r.recent)
	r.filled = min(r.filled+1, len(r.recent))
	sec := now.Unix()
	s := &r.seconds[sec%int64(len(r.seconds))]
	if s.unix != sec {
		*s = second{unix: sec}
	}
	s.count++
	s.total += elapsed
}

// appStats are the figures of one app at a moment.
type appStats struct {
	// Requests and Errors (5xx answers) count every request since the start.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// RPS is the mean rate over the last RateSeconds whole seconds.
	RPS float64 `json:"rps"`
	// P50 and P99 are over the last RecentRequests requests, in milliseconds; null
	// before the first request.
	P50 *float64 `json:"p50_ms"`
	P99 *float64 `json:"p99_ms"`
	// PeakMemory is the largest linear memory an instance reached among the recent
	// requests, LastMemory that of the latest request that ran an instance, in bytes.
	PeakMemory uint64 `json:"peak_memory"`
	LastMemory uint64 `json:"last_memory"`
	// Latency is the mean latency of each of the last SparkSeconds whole seconds,
	// oldest first, in milliseconds; null for a second without requests.
	Latency []*float64 `json:"latency_ms"`
}

func (r *appRecorder) stats(now time.Time) appStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := appStats{Requests: r.requests, Errors: r.errors, LastMemory: r.lastMem,
		Latency: make([]*float64, adminSparkSeconds)}
	lat := make([]time.Duration, 0, r.filled)
	for _, s := range r.recent[:r.filled] {
		lat = append(lat, s.latency)
		st.PeakMemory = max(st.PeakMemory, s.memory)
	}
	if len(lat) > 0 {
		st.P50, st.P99 = percentile(lat, 50), percentile(lat, 99)
	}
	nowSec := now.Unix()
	count := 0
	for i := range adminSparkSeconds {
		sec := nowSec - adminSparkSeconds + int64(i)
		s := r.seconds[sec%int64(len(r.seconds))]
		if s.unix != sec || s.count == 0 {
			continue
		}
		st.Latency[i] = ms(s.total / time.Duration(s.count))
		if sec >= nowSec-adminRateSeconds {
			count += s.count
		}
	}
	st.RPS = float64(count) / adminRateSeconds
	return st
}

// percentile returns the nearest-rank p-th percentile of lat (which it sorts) in
// milliseconds.
func percentile(lat []time.Duration, p int) *float64 {
	slices.Sort(lat)
	rank := (p*len(lat) + 99) / 100 // ceil(p/100 * n)
	return ms(lat[max(rank, 1)-1])
}

func ms(d time.Duration) *float64 {
	v := float64(d.Microseconds()) / 1000
	return &v
}
