package runtime

import "fmt"

// StateClosed is the state of an app after Close: it serves nothing any more.
const StateClosed State = "closed"

// Close releases what the app holds outside the Go heap: its idle pooled instances, its
// snapshot's memory image and its data folder (the last app using a folder gives up
// its flock). Call it once no request runs on the app and none can reach it any more
// (the router does so when a reload replaced or removed the app and the requests in
// flight on it have ended, and when it is closed). A request that still reached the
// app would get 503. Close is idempotent.
func (a *App) Close() error {
	a.mu.Lock()
	snap := a.snap
	a.snap = nil
	a.state, a.loadErr = StateClosed, fmt.Sprintf("app %s was unloaded", a.Spec.Name)
	a.mu.Unlock()
	a.pool.drain()
	a.releaseDataDir()
	if snap == nil {
		return nil
	}
	return snap.Close()
}
