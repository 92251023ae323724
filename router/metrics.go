package router

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, served at /_wasmwsgi/metrics. Each
// Router has its own registry, so tests never collide. The per-app gauges are read from
// the current table at every scrape, so apps that a reload adds or removes appear and
// disappear with it; the per-app series of a removed app are deleted (forget).
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	guest          *prometheus.HistogramVec
	memory         *prometheus.HistogramVec
	connect        *prometheus.HistogramVec
	reloadFailures *prometheus.CounterVec
}

func newMetrics(rt *Router) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwsgi_requests_total",
			Help: "Requests answered, by app, status class (2xx, 4xx, 5xx, aborted; 4xx includes 499, a client that went away) " +
				"and handler (app: the app in its sandbox; static: the host, from the app's [static] files).",
		}, []string{"app", "class", "handler"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmwsgi_request_duration_seconds",
			Help:    "Wall time of requests, by app and handler (app or static).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}, []string{"app", "handler"}),
		guest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmwsgi_guest_seconds",
			Help:    "Wall time of the request's sandbox instance (restore and handling), by app.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"app"}),
		memory: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmwsgi_peak_memory_bytes",
			Help:    "Peak linear memory of the request's sandbox instance, by app.",
			Buckets: prometheus.ExponentialBuckets(8<<20, 2, 10),
		}, []string{"app"}),
		connect: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmwsgi_outbound_connect_seconds",
			Help:    "TCP connect time of each outbound connection a request opened (not the name lookup or a TLS handshake), by app.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17),
		}, []string{"app"}),
		reloadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwsgi_reload_failures_total",
			Help: "New versions of an app that failed to load during a reload, by app.",
		}, []string{"app"}),
	}
	m.registry.MustRegister(
		m.requests, m.duration, m.guest, m.memory, m.connect, m.reloadFailures,
		appGauges{
			rt:      rt,
			running: prometheus.NewDesc("wasmwsgi_instances_running", "Instances running a request.", []string{"app"}, nil),
			queued:  prometheus.NewDesc("wasmwsgi_requests_queued", "Requests waiting for a free instance.", []string{"app"}, nil),
			idle:    prometheus.NewDesc("wasmwsgi_instances_idle", "Restored instances waiting in the app's pool.", []string{"app"}, nil),
			snapshots: prometheus.NewDesc("wasmwsgi_snapshot_builds_total",
				"Imports of the app that produced a snapshot (restores from the disk cache excluded).", []string{"app"}, nil),
			traps:    prometheus.NewDesc("wasmwsgi_traps_total", "Requests whose guest trapped or exited.", []string{"app"}, nil),
			timeouts: prometheus.NewDesc("wasmwsgi_timeouts_total", "Requests stopped at limits.timeout.", []string{"app"}, nil),
			disconnects: prometheus.NewDesc("wasmwsgi_client_disconnects_total",
				"Requests abandoned because their client went away before the answer (499 in the access log).", []string{"app"}, nil),
			limits: prometheus.NewDesc("wasmwsgi_limit_hits_total",
				"Requests refused or stopped by a limit (memory, max_body, max_response, queue, body_timeout).", []string{"app", "limit"}, nil),
			recycled: prometheus.NewDesc("wasmwsgi_instances_recycled_total",
				"Instances closed after a request instead of going back to the pool.", []string{"app"}, nil),
			made: prometheus.NewDesc("wasmwsgi_instances_made_total",
				"Instances made from the app's snapshot: over the memory of a closed instance (spare) or mapping the snapshot (mapped).",
				[]string{"app", "memory"}, nil),
			denied: prometheus.NewDesc("wasmwsgi_outbound_denied_total",
				"Outbound connections and name lookups refused because the app's grants do not cover them.", []string{"app"}, nil),
			conns: prometheus.NewDesc("wasmwsgi_outbound_connections_total",
				"Outbound connections the app opened.", []string{"app"}, nil),
			bytes: prometheus.NewDesc("wasmwsgi_outbound_bytes_total",
				"Bytes the app sent (out) and received (in) over its outbound connections; after TLS, the plaintext.",
				[]string{"app", "direction"}, nil),
			lookups: prometheus.NewDesc("wasmwsgi_outbound_dns_lookups_total",
				"Names the server looked up for the app's outbound connections.", []string{"app"}, nil),
			handshakes: prometheus.NewDesc("wasmwsgi_outbound_tls_handshakes_total",
				"TLS handshakes the app's outbound connections completed.", []string{"app"}, nil),
		},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// appGauges reports, for each mounted app, its instances and what its runtime counted
// since the app was loaded (counters restart when a reload replaces the app).
type appGauges struct {
	rt                                 *Router
	running, queued, idle              *prometheus.Desc
	snapshots, traps, timeouts, limits *prometheus.Desc
	disconnects, recycled, denied      *prometheus.Desc
	made                               *prometheus.Desc
	conns, bytes, lookups, handshakes  *prometheus.Desc
}

func (g appGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.running, g.queued, g.idle, g.snapshots, g.traps, g.timeouts, g.disconnects,
		g.limits, g.recycled, g.made, g.denied, g.conns, g.bytes, g.lookups, g.handshakes} {
		ch <- d
	}
}

func (g appGauges) Collect(ch chan<- prometheus.Metric) {
	for _, mt := range g.rt.Mounts() {
		name := mt.Dir.Name
		running, queued := mt.App.InFlight()
		ev := mt.App.Events()
		ch <- prometheus.MustNewConstMetric(g.running, prometheus.GaugeValue, float64(running), name)
		ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(queued), name)
		ch <- prometheus.MustNewConstMetric(g.idle, prometheus.GaugeValue, float64(mt.App.Idle()), name)
		ch <- prometheus.MustNewConstMetric(g.snapshots, prometheus.CounterValue, float64(ev.SnapshotBuilds.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.traps, prometheus.CounterValue, float64(ev.Traps.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.timeouts, prometheus.CounterValue, float64(ev.Timeouts.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.disconnects, prometheus.CounterValue, float64(ev.ClientDisconnects.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.recycled, prometheus.CounterValue, float64(ev.Recycled.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.made, prometheus.CounterValue, float64(ev.InstancesOverSpare.Load()), name, "spare")
		ch <- prometheus.MustNewConstMetric(g.made, prometheus.CounterValue, float64(ev.InstancesMapped.Load()), name, "mapped")
		ch <- prometheus.MustNewConstMetric(g.denied, prometheus.CounterValue, float64(ev.OutboundDenied.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.conns, prometheus.CounterValue, float64(ev.OutboundConns.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.bytes, prometheus.CounterValue, float64(ev.OutboundBytesIn.Load()), name, "in")
		ch <- prometheus.MustNewConstMetric(g.bytes, prometheus.CounterValue, float64(ev.OutboundBytesOut.Load()), name, "out")
		ch <- prometheus.MustNewConstMetric(g.lookups, prometheus.CounterValue, float64(ev.OutboundLookups.Load()), name)
		ch <- prometheus.MustNewConstMetric(g.handshakes, prometheus.CounterValue, float64(ev.OutboundTLSHandshakes.Load()), name)
		for limit, n := range ev.LimitHits() {
			ch <- prometheus.MustNewConstMetric(g.limits, prometheus.CounterValue, float64(n), name, limit)
		}
	}
}

// forget deletes the series of an app that is no longer served.
func (m *metrics) forget(app string) {
	labels := prometheus.Labels{"app": app}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.requests, m.duration, m.guest, m.memory, m.connect, m.reloadFailures} {
		v.DeletePartialMatch(labels)
	}
}

func (m *metrics) observe(e *logEntry, status int, seconds float64) {
	app := e.app
	if app == "" {
		return // the server's own endpoints
	}
	if e.stats.PeakMemory > 0 {
		m.guest.WithLabelValues(app).Observe(e.stats.Guest.Seconds())
		m.memory.WithLabelValues(app).Observe(float64(e.stats.PeakMemory))
	}
	if times := e.stats.Outbound.ConnectTimes; len(times) > 0 {
		h := m.connect.WithLabelValues(app)
		for _, d := range times {
			h.Observe(d.Seconds())
		}
	}
	class := "aborted"
	if status > 0 {
		class = strconv.Itoa(status/100) + "xx"
	}
	handler := e.handler
	if handler == "" {
		handler = handlerApp
	}
	m.requests.WithLabelValues(app, class, handler).Inc()
	m.duration.WithLabelValues(app, handler).Observe(seconds)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
