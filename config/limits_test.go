package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64 // 0: an error
	}{
		{"1048576", 1048576},
		{"7B", 7},
		{"512KiB", 512 << 10},
		{"128MiB", 128 << 20},
		{"1GiB", 1 << 30},
		{"2KB", 2000},
		{"100MB", 100e6},
		{"3GB", 3e9},
		{" 64 MiB ", 64 << 20},
		{"4294967296GiB", 1 << 62},
		{"4611686018427387904", 1 << 62},
		{"4611686018427387905", 0},
		{"4294967297GiB", 0},
		{"18446744073709551616", 0},
		{"0", 0},
		{"0MiB", 0},
		{"", 0},
		{"MiB", 0},
		{"-1MiB", 0},
		{"1.5GiB", 0},
		{"12TiB", 0},
		{"128mib", 0},
		{"128 M", 0},
		{"0x10", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.want == 0 {
				if err == nil || !strings.Contains(err.Error(), "is not a size") {
					t.Errorf("ParseSize(%q) = %d, %v; want an error", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestShowSizeParses checks that the sizes `wasmwsgi config` prints read back as the
// same number.
func TestShowSizeParses(t *testing.T) {
	for _, n := range []int64{1, 1000, 1024, 1536, 128 << 20, 3 << 30, 1<<30 + 1} {
		if got, err := ParseSize(showSize(n)); err != nil || got != uint64(n) {
			t.Errorf("ParseSize(showSize(%d) = %q) = %d, %v", n, showSize(n), got, err)
		}
	}
}
