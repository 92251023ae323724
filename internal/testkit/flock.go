//go:build linux || darwin

package testkit

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// FlockFree reports whether another open file description, as another process would
// have, can take flock(LOCK_EX) on dir now (it gives the lock back at once).
func FlockFree(t testing.TB, dir string) bool {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
