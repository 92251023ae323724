package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// Limits is how the per-app limits are written in a [limits] table (the server's, a
// grant's or an app's): sizes as text such as "128MiB", durations as "30s". A zero
// field inherits the value it would override.
type Limits struct {
	Timeout      time.Duration `koanf:"timeout"`
	Memory       string        `koanf:"memory"`
	MaxBody      string        `koanf:"max_body"`
	MaxResponse  string        `koanf:"max_response"`
	Concurrency  int           `koanf:"concurrency"`
	Queue        int           `koanf:"queue"`
	QueueTimeout time.Duration `koanf:"queue_timeout"`
	OpenFiles    int           `koanf:"open_files"`
	Scratch      string        `koanf:"scratch"`
	Processes    int           `koanf:"processes"`
}

// MinMemory is the smallest memory limit accepted: python.wasm starts with 10 MiB of
// linear memory and needs room to import anything.
const MinMemory = 32 << 20

// Apply returns base with the fields set in c overriding it, or an error naming the key.
func (c Limits) Apply(base runtime.Limits) (runtime.Limits, error) {
	l := base
	var errs []error
	size := func(key, s string, dst func(uint64)) {
		if s == "" {
			return
		}
		n, err := ParseSize(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("limits.%s: %w", key, err))
			return
		}
		dst(n)
	}
	positive := func(key string, v int64) bool {
		if v < 0 {
			errs = append(errs, fmt.Errorf("limits.%s must not be negative", key))
		}
		return v > 0
	}
	if positive("timeout", int64(c.Timeout)) {
		l.Timeout = c.Timeout
	}
	size("memory", c.Memory, func(n uint64) { l.Memory = n })
	size("max_body", c.MaxBody, func(n uint64) { l.MaxBody = int64(n) })
	size("max_response", c.MaxResponse, func(n uint64) { l.MaxResponse = int64(n) })
	size("scratch", c.Scratch, func(n uint64) { l.Scratch = int64(n) })
	if positive("concurrency", int64(c.Concurrency)) {
		l.Concurrency = c.Concurrency
	}
	if positive("queue", int64(c.Queue)) {
		l.Queue = c.Queue
	}
	if positive("queue_timeout", int64(c.QueueTimeout)) {
		l.QueueTimeout = c.QueueTimeout
	}
	if positive("open_files", int64(c.OpenFiles)) {
		l.OpenFiles = c.OpenFiles
	}
	if positive("processes", int64(c.Processes)) {
		l.Processes = c.Processes
	}
	if l.Memory != 0 && l.Memory < MinMemory {
		errs = append(errs, fmt.Errorf("limits.memory %q is below the minimum of 32MiB", c.Memory))
	}
	return l, errors.Join(errs...)
}

// ParseSize reads a byte size: "1048576", "512KiB", "128MiB", "1GiB", "100MB".
func ParseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// limitKey is one key of [limits]: whether a table sets it, and its typed value as a
// number to compare with a ceiling and as text to show.
type limitKey struct {
	name  string // "memory"
	count bool   // written as a number, not as text
	set   func(Limits) bool
	value func(runtime.Limits) int64
	show  func(runtime.Limits) string
}

// limitKeys are the keys of [limits] an app's limits have, in the order of the README.
var limitKeys = []limitKey{
	{"timeout", false, func(c Limits) bool { return c.Timeout != 0 },
		func(l runtime.Limits) int64 { return int64(l.Timeout) },
		func(l runtime.Limits) string { return showDuration(l.Timeout) }},
	{"memory", false, func(c Limits) bool { return c.Memory != "" },
		func(l runtime.Limits) int64 { return int64(l.Memory) },
		func(l runtime.Limits) string { return showSize(int64(l.Memory)) }},
	{"max_body", false, func(c Limits) bool { return c.MaxBody != "" },
		func(l runtime.Limits) int64 { return l.MaxBody },
		func(l runtime.Limits) string { return showSize(l.MaxBody) }},
	{"max_response", false, func(c Limits) bool { return c.MaxResponse != "" },
		func(l runtime.Limits) int64 { return l.MaxResponse },
		func(l runtime.Limits) string { return showSize(l.MaxResponse) }},
	{"concurrency", true, func(c Limits) bool { return c.Concurrency != 0 },
		func(l runtime.Limits) int64 { return int64(l.Concurrency) },
		func(l runtime.Limits) string { return strconv.Itoa(l.Concurrency) }},
	{"queue", true, func(c Limits) bool { return c.Queue != 0 },
		func(l runtime.Limits) int64 { return int64(l.Queue) },
		func(l runtime.Limits) string { return strconv.Itoa(l.Queue) }},
	{"queue_timeout", false, func(c Limits) bool { return c.QueueTimeout != 0 },
		func(l runtime.Limits) int64 { return int64(l.QueueTimeout) },
		func(l runtime.Limits) string { return showDuration(l.QueueTimeout) }},
	{"open_files", true, func(c Limits) bool { return c.OpenFiles != 0 },
		func(l runtime.Limits) int64 { return int64(l.OpenFiles) },
		func(l runtime.Limits) string { return strconv.Itoa(l.OpenFiles) }},
	{"scratch", false, func(c Limits) bool { return c.Scratch != "" },
		func(l runtime.Limits) int64 { return l.Scratch },
		func(l runtime.Limits) string { return showSize(l.Scratch) }},
	{"processes", true, func(c Limits) bool { return c.Processes != 0 },
		func(l runtime.Limits) int64 { return int64(l.Processes) },
		func(l runtime.Limits) string { return strconv.Itoa(l.Processes) }},
}

// toml writes the limit's value in l as the TOML value of its key.
func (lk limitKey) toml(l runtime.Limits) string {
	if lk.count {
		return lk.show(l)
	}
	return `"` + lk.show(l) + `"`
}

// setting is the limit's value in l as a setting's value: a number or text.
func (lk limitKey) setting(l runtime.Limits) any {
	if lk.count {
		return int(lk.value(l))
	}
	return lk.show(l)
}

// showSize writes a byte count the way sizes are written in the configuration.
func showSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// showDuration writes a duration the way durations are written in the configuration:
// "60s" rather than "1m0s".
func showDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
