package pythonwasm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests ask Debian's archive (as build.sh does) through fetch-source.sh. The
// archive moving is simulated: a version that never existed, and a curl that answers
// 404 for the pinned version's files.

// pinned reads versions.env into a map.
func pinned(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("versions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = strings.Trim(v, `"`)
		}
	}
	return vars
}

// fetchSource runs fetch-source.sh with args and the given PATH prefix, and returns its
// exit code and combined output.
func fetchSource(t *testing.T, pathPrefix string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"fetch-source.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+pathPrefix+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestPinnedSourcesAreServed is the cheap check that every pinned source is still
// served (a HEAD request each), so that the archive moving fails CI the day it happens.
func TestPinnedSourcesAreServed(t *testing.T) {
	out, err := exec.Command("bash", "build.sh", "--check-sources").CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh --check-sources: %v\n%s", err, out)
	}
	for _, s := range strings.Fields(pinned(t)["SOURCES"]) {
		if want := pinned(t)[s+"_ORIG"] + " is downloadable"; !strings.Contains(string(out), want) {
			t.Errorf("build.sh --check-sources does not say %q:\n%s", want, out)
		}
	}
}

func TestFetchFallsBackWhenPinnedVersionIsGone(t *testing.T) {
	v := pinned(t)
	dir := t.TempDir()
	code, out := fetchSource(t, "", "zlib", "1:1.2.13.dfsg-0gone1", v["ZLIB_ORIG"], v["ZLIB_SHA256"], dir)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "zlib=1:1.2.13.dfsg-0gone1 is not served; zlib=") {
		t.Errorf("the fallback is not reported:\n%s", out)
	}
	data, err := os.ReadFile(filepath.Join(dir, v["ZLIB_ORIG"]))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != v["ZLIB_SHA256"] {
		t.Errorf("downloaded %s has sha256 %s, want %s", v["ZLIB_ORIG"], got, v["ZLIB_SHA256"])
	}
	if _, err := os.Stat(filepath.Join(dir, v["ZLIB_ORIG"]+".part")); !os.IsNotExist(err) {
		t.Errorf("a partial download was left behind: %v", err)
	}
}

func TestFetchFallsBackWhenArchiveAnswers404(t *testing.T) {
	v := pinned(t)
	pkg, version := v["PY_DEB_PACKAGE"], v["PY_DEB_VERSION"]
	// The pinned version's pool folder answers 404, as the security archive did for a
	// superseded revision; every other URI goes to the real curl.
	bin := t.TempDir()
	realCurl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal(err)
	}
	uris, err := exec.Command("apt-get", "source", "--print-uris", "-qq", pkg+"="+version).Output()
	if err != nil {
		t.Fatalf("apt-get source --print-uris %s=%s: %v", pkg, version, err)
	}
	var gone string
	for _, line := range strings.Split(string(uris), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == v["PY_ORIG"] {
			gone = strings.Trim(f[0], "'")
		}
	}
	if gone == "" {
		t.Fatalf("%s=%s lists no %s:\n%s", pkg, version, v["PY_ORIG"], uris)
	}
	shim := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = '" + gone + "' ] && { echo 'curl: (22) 404' >&2; exit 22; }; done\nexec " + realCurl + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "curl"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := fetchSource(t, bin+":", "--check", pkg, version, v["PY_ORIG"], v["PY_SHA256"])
	// A check fails when only another version serves the tarball, and names it.
	if code != 1 || !strings.Contains(out, pkg+"="+version+" is not served; "+pkg+"=") ||
		!strings.Contains(out, "re-pin it in python-wasm/versions.env") {
		t.Errorf("exit %d, want 1 naming the version that serves the tarball:\n%s", code, out)
	}
}

func TestFetchFailsNamingEveryVersionTried(t *testing.T) {
	v := pinned(t)
	wrong := strings.Repeat("0", 64)
	code, out := fetchSource(t, "", "--check", "zlib", v["ZLIB_DEB_VERSION"], v["ZLIB_ORIG"], wrong)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"no Debian version of zlib serves " + v["ZLIB_ORIG"] + " with sha256 " + wrong,
		"zlib=" + v["ZLIB_DEB_VERSION"] + ":",
		"apt-cache showsrc zlib",
		"python-wasm/versions.env",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not say %q:\n%s", want, out)
		}
	}
}
