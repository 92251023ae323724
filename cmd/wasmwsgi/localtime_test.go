package main

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// localTimeApp answers with what the time module and naive datetimes make of two fixed
// instants, in the zone that TZ names. It calls time.tzset() at import, as Django does
// after putting TIME_ZONE in TZ; ?tz= sets TZ and calls it again in the request.
const localTimeApp = `import datetime, json, os, time

if hasattr(time, "tzset"):
    time.tzset()

WINTER = 1704110400  # 2024-01-01 12:00 UTC
SUMMER = 1719835200  # 2024-07-01 12:00 UTC


def at(ts):
    t = time.localtime(ts)
    return {"wall": time.strftime("%Y-%m-%d %H:%M:%S", t), "gmtoff": t.tm_gmtoff, "zone": t.tm_zone,
            "isdst": t.tm_isdst, "strftime": time.strftime("%Z %z", t), "mktime": time.mktime(t),
            "fromtimestamp": datetime.datetime.fromtimestamp(ts).isoformat(),
            "astimezone": datetime.datetime.fromtimestamp(ts).astimezone().isoformat()}


def seen():
    return {"TZ": os.environ.get("TZ"), "tzset": hasattr(time, "tzset"), "tzname": list(time.tzname),
            "timezone": time.timezone, "altzone": time.altzone, "daylight": time.daylight,
            "winter": at(WINTER), "summer": at(SUMMER)}


def application(environ, start_response):
    query = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    if "tz" in query:
        from urllib.parse import unquote
        os.environ["TZ"] = unquote(query["tz"])
        time.tzset()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen()).encode()]


if __name__ == "__main__":
    print(json.dumps(seen()))
`

// TestLocalTime checks, through the real server, that TZ and time.tzset work in the
// sandbox as on Linux: local times of a winter and a summer instant in Paris (offsets,
// zone names, mktime back to the instant, naive datetime.fromtimestamp and now-style
// local conversions), UTC when TZ is unset, and an invalid TZ that is UTC under the
// name it gives. Where the host has a tz database, each answer with a TZ is also
// compared with the same code run natively by Debian's CPython with that TZ.
func TestLocalTime(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{
		"paris/app.py": localTimeApp, "paris/wasmwsgi.toml": "warmup = []\n[env]\nTZ = \"Europe/Paris\"\n",
		"utc/app.py": localTimeApp, "utc/wasmwsgi.toml": "warmup = []\n",
	})
	s := testkit.Start(t, apps)

	at := func(wall string, gmtoff int, zone string, isdst int, z string, ts float64, iso string) map[string]any {
		return map[string]any{"wall": wall, "gmtoff": gmtoff, "zone": zone, "isdst": isdst,
			"strftime": zone + " " + z, "mktime": ts, "fromtimestamp": iso, "astimezone": iso + z[:3] + ":" + z[3:]}
	}
	const winter, summer = 1704110400, 1719835200
	utc := func(tz any, name string) map[string]any {
		return map[string]any{"TZ": tz, "tzset": true, "tzname": []any{name, name}, "timezone": 0, "altzone": 0, "daylight": 0,
			"winter": at("2024-01-01 12:00:00", 0, name, 0, "+0000", winter, "2024-01-01T12:00:00"),
			"summer": at("2024-07-01 12:00:00", 0, name, 0, "+0000", summer, "2024-07-01T12:00:00")}
	}
	paris := map[string]any{"TZ": "Europe/Paris", "tzset": true, "tzname": []any{"CET", "CEST"},
		"timezone": -3600, "altzone": -7200, "daylight": 1,
		"winter": at("2024-01-01 13:00:00", 3600, "CET", 0, "+0100", winter, "2024-01-01T13:00:00"),
		"summer": at("2024-07-01 14:00:00", 7200, "CEST", 1, "+0200", summer, "2024-07-01T14:00:00")}

	cases := []struct {
		name, path string
		tz         string // the same TZ natively; "" to compare with nothing (the host's own zone)
		want       map[string]any
	}{
		{"TZ=Europe/Paris in [env]", "/paris/", "Europe/Paris", paris},
		{"no TZ", "/utc/", "", utc(nil, "UTC")},
		{"TZ set in a request", "/utc/?tz=Europe/Paris", "Europe/Paris", paris},
		{"the next request starts from the snapshot", "/utc/", "", utc(nil, "UTC")},
		{"an invalid TZ", "/paris/?tz=" + url.QueryEscape("Invalid/Timezone"), "Invalid/Timezone", utc("Invalid/Timezone", "Invalid")},
		{"TZ=UTC", "/paris/?tz=UTC", "UTC", utc("UTC", "UTC")},
	}
	_, statErr := os.Stat("/usr/share/zoneinfo/Europe/Paris")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := get(t, s.Base+c.path)
			if r.status != 200 {
				t.Fatalf("GET %s: %d %s", c.path, r.status, r.body)
			}
			var seen map[string]any
			if err := json.Unmarshal([]byte(r.body), &seen); err != nil {
				t.Fatal(err)
			}
			if got, want := mustJSON(t, seen), mustJSON(t, c.want); got != want {
				t.Errorf("GET %s:\n got %s\nwant %s", c.path, got, want)
			}
			if statErr != nil || c.tz == "" {
				return // no tz database on the host, or the host's own zone
			}
			native := exec.Command("/usr/bin/python3", "-c", localTimeApp)
			native.Env = []string{"PATH=/usr/bin:/bin", "TZ=" + c.tz}
			out, err := native.Output()
			if err != nil {
				t.Skipf("native python3: %v", err)
			}
			var want map[string]any
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			if got, want := mustJSON(t, seen), mustJSON(t, want); got != want {
				t.Errorf("GET %s differs from Linux:\n sandbox %s\n   linux %s", c.path, got, want)
			}
		})
	}
}
