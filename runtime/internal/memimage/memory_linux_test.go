//go:build linux

package memimage

import (
	"testing"

	"github.com/tetratelabs/wazero/experimental"
)

// TestReserveFailure: a memory whose reservation the kernel refuses (here, more
// address space than a process has) fails with an error, for the guest's instance
// alone, instead of taking the process down.
func TestReserveFailure(t *testing.T) {
	m := NewMemory(1 << 62)
	m.Allocate(WasmPage, 1<<62)
	defer m.Release()
	if m.Err() == nil {
		t.Fatal("reserving 2^62 bytes succeeded")
	}
	if b := m.Reallocate(WasmPage); b != nil {
		t.Error("a memory that could not be reserved handed out bytes")
	}
	if m.LimitHit() {
		t.Error("a failed reservation is reported as the guest reaching its memory limit")
	}
}

// TestGuardReservation: a memory reserves what wazero asks of a guarded memory.
func TestGuardReservation(t *testing.T) {
	if guardReservation < experimental.GuardedReservationBytes {
		t.Fatalf("memories reserve %d bytes, wazero's guard pages need %d", guardReservation, experimental.GuardedReservationBytes)
	}
}
