package runtime

import "testing"

// TestEngineRewritesPythonWasm checks that python.wasm as built takes both rewrites:
// the loop checks (without them the engine falls back to wazero's slower context
// checks, and says so only in the log) and the data segments split.
func TestEngineRewritesPythonWasm(t *testing.T) {
	e := newTestEngine(t)
	if !e.interruptible {
		t.Error("python.wasm was not instrumented with loop checks")
	}
	if len(e.data) == 0 {
		t.Error("python.wasm has no data segments for fresh instances")
	}
}
