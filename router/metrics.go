package router

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, served at /_wasmwsgi/metrics. Each
// Router has its own registry, so tests and reloads never collide.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	guest    *prometheus.HistogramVec
	memory   *prometheus.HistogramVec
}

func newMetrics(rt *Router) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwsgi_requests_total",
			Help: "Requests answered, by app and status class (2xx, 4xx, 5xx, aborted).",
		}, []string{"app", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmwsgi_request_duration_seconds",
			Help:    "Wall time of requests, by app.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"app"}),
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
	}
	m.registry.MustRegister(
		m.requests, m.duration, m.guest, m.memory,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, mt := range rt.mounts {
		app := mt.App
		labels := prometheus.Labels{"app": mt.Dir.Name}
		m.registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wasmwsgi_instances_running", Help: "Instances running a request.", ConstLabels: labels,
			}, func() float64 { n, _ := app.InFlight(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wasmwsgi_requests_queued", Help: "Requests waiting for a free instance.", ConstLabels: labels,
			}, func() float64 { _, n := app.InFlight(); return float64(n) }),
		)
	}
	return m
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
	class := "aborted"
	if status > 0 {
		class = strconv.Itoa(status/100) + "xx"
	}
	m.requests.WithLabelValues(app, class).Inc()
	m.duration.WithLabelValues(app).Observe(seconds)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
