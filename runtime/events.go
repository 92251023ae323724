package runtime

import (
	"sync/atomic"

	"github.com/wasmwsgi/wasmwsgi/egress"
)

// Events counts what happened to an app's instances since it was loaded, for metrics.
type Events struct {
	// SnapshotBuilds counts imports that produced a snapshot (not cache restores).
	SnapshotBuilds atomic.Int64
	// Traps counts requests whose guest trapped or exited.
	Traps atomic.Int64
	// Timeouts counts requests stopped at limits.timeout.
	Timeouts atomic.Int64
	// ClientDisconnects counts requests abandoned because their client went away
	// before they were answered (not counted as traps or timeouts).
	ClientDisconnects atomic.Int64
	// Limit hits, by limit.
	MemoryLimit, MaxBody, MaxResponse, Queue, BodyTimeout atomic.Int64
	// Recycled counts instances closed instead of going back to the pool.
	Recycled atomic.Int64
	// InstancesOverSpare and InstancesMapped count the instances made for the app:
	// over the memory of a closed instance (memimage.Spares), or mapping the snapshot
	// afresh.
	InstancesOverSpare, InstancesMapped atomic.Int64
	// OutboundDenied counts outbound connections (and name lookups) refused because
	// the app's grants do not cover them.
	OutboundDenied atomic.Int64
	// What the app's instances did through their outbound connections, requests and
	// warm-up requests alike: connections opened, bytes sent and received, names
	// looked up by the host and TLS handshakes completed (egress.Stats).
	OutboundConns, OutboundBytesOut, OutboundBytesIn, OutboundLookups, OutboundTLSHandshakes atomic.Int64
}

// addOutbound adds one request's outbound figures; a request that used no network
// touches no counter.
func (e *Events) addOutbound(st *egress.Stats) {
	if st.Conns == 0 && st.BytesOut == 0 && st.BytesIn == 0 && st.Lookups == 0 && st.TLSHandshakes == 0 {
		return
	}
	e.OutboundConns.Add(st.Conns)
	e.OutboundBytesOut.Add(st.BytesOut)
	e.OutboundBytesIn.Add(st.BytesIn)
	e.OutboundLookups.Add(st.Lookups)
	e.OutboundTLSHandshakes.Add(st.TLSHandshakes)
}

// LimitHits returns the limit-hit counters by the name of their setting.
func (e *Events) LimitHits() map[string]int64 {
	return map[string]int64{
		"memory":       e.MemoryLimit.Load(),
		"max_body":     e.MaxBody.Load(),
		"max_response": e.MaxResponse.Load(),
		"queue":        e.Queue.Load(),
		"body_timeout": e.BodyTimeout.Load(),
	}
}

// Events returns the app's counters.
func (a *App) Events() *Events { return &a.events }
