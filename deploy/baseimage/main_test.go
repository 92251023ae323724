package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readBlob reads a blob of the layout and checks that its content has its digest.
func readBlob(t *testing.T, layout, digest string) []byte {
	t.Helper()
	b, err := os.ReadFile(blobPath(layout, digest))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		t.Fatalf("blob %s holds content with digest %s", digest, got)
	}
	return b
}

// layerFiles returns the entries of a gzipped layer blob, checking its diff_id.
func layerFiles(t *testing.T, layout, digest, diffID string) map[string]*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(readBlob(t, layout, digest)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != diffID {
		t.Fatalf("layer %s: diff_id %s, config says %s", digest, got, diffID)
	}
	files := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			h.PAXRecords = map[string]string{"content": readAll(t, tr)}
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func readAll(t *testing.T, r io.Reader) string {
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// images follows the index to each platform's manifest and config.
func images(t *testing.T, layout, indexDigest string) (map[string]manifest, map[string]imageConfig) {
	t.Helper()
	var idx index
	if err := json.Unmarshal(readBlob(t, layout, indexDigest), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.MediaType != mediaIndex {
		t.Fatalf("index media type %q", idx.MediaType)
	}
	manifests, configs := map[string]manifest{}, map[string]imageConfig{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.MediaType != mediaManifest {
			t.Fatalf("index entry %+v", d)
		}
		var m manifest
		if err := json.Unmarshal(readBlob(t, layout, d.Digest), &m); err != nil {
			t.Fatal(err)
		}
		var c imageConfig
		if err := json.Unmarshal(readBlob(t, layout, m.Config.Digest), &c); err != nil {
			t.Fatal(err)
		}
		key := d.Platform.OS + "/" + d.Platform.Architecture
		if c.OS+"/"+c.Architecture != key {
			t.Errorf("index says %s, config says %s/%s", key, c.OS, c.Architecture)
		}
		manifests[key], configs[key] = m, c
	}
	return manifests, configs
}

// layoutIndex returns the digests listed in the layout's index.json.
func layoutIndex(t *testing.T, layout string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range idx.Manifests {
		out = append(out, d.Digest)
	}
	return out
}

func TestBaseImage(t *testing.T) {
	layout := t.TempDir()
	digest, err := build(layout, "", []string{"linux/amd64", "linux/arm64"}, time.Unix(0, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(layout, "oci-layout")); err != nil {
		t.Fatal(err)
	}
	manifests, configs := images(t, layout, digest)
	if len(manifests) != 2 || manifests["linux/amd64"].Config.Digest == manifests["linux/arm64"].Config.Digest {
		t.Fatalf("want two platforms with their own configs, got %v", manifests)
	}
	// ko looks up the base and each platform's image by digest in index.json.
	listed := layoutIndex(t, layout)
	if !slices.Contains(listed, digest) {
		t.Errorf("index.json does not list the index %s", digest)
	}
	for p, m := range manifests {
		c := configs[p]
		if c.Config.User != "65532:65532" {
			t.Errorf("%s: user %q", p, c.Config.User)
		}
		if !slices.Contains(c.Config.Env, "HOME=/home/nonroot") {
			t.Errorf("%s: env %q", p, c.Config.Env)
		}
		if len(m.Layers) != 1 || len(c.RootFS.DiffIDs) != 1 {
			t.Fatalf("%s: %d layers", p, len(m.Layers))
		}
		files := layerFiles(t, layout, m.Layers[0].Digest, c.RootFS.DiffIDs[0])
		passwd := files["etc/passwd"]
		if passwd == nil || !strings.Contains(passwd.PAXRecords["content"], "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd lacks nonroot: %v", p, passwd)
		}
		for dir, uid := range map[string]int{"home/nonroot": 65532, "var/cache/wasmwsgi": 65532, "tmp": 0} {
			h := files[dir]
			if h == nil || h.Typeflag != tar.TypeDir || h.Uid != uid {
				t.Errorf("%s: %s missing or not a folder of uid %d: %+v", p, dir, uid, h)
			}
		}
		if files["tmp"] != nil && files["tmp"].Mode != 0o1777 {
			t.Errorf("/tmp mode %o", files["tmp"].Mode)
		}
		found := false
		for _, d := range listed {
			found = found || d == mustDigest(t, manifestsDigest(t, layout, digest, p))
		}
		if !found {
			t.Errorf("index.json does not list the %s image", p)
		}
	}
}

// manifestsDigest returns the digest of platform p's manifest in the index.
func manifestsDigest(t *testing.T, layout, indexDigest, p string) string {
	t.Helper()
	var idx index
	if err := json.Unmarshal(readBlob(t, layout, indexDigest), &idx); err != nil {
		t.Fatal(err)
	}
	for _, d := range idx.Manifests {
		if d.Platform.OS+"/"+d.Platform.Architecture == p {
			return d.Digest
		}
	}
	return ""
}

func mustDigest(t *testing.T, d string) string {
	t.Helper()
	if !strings.HasPrefix(d, "sha256:") {
		t.Fatalf("digest %q", d)
	}
	return d
}

func TestAppsLayer(t *testing.T) {
	src := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("hello/app.py", "def application(e, s): pass\n", 0o600)
	write("hello/tool.sh", "#!/bin/sh\n", 0o700)
	write("hello/site-packages/pkg/__init__.py", "", 0o644)
	write("hello/.site-packages.tmp/junk.py", "", 0o644)
	write(".data/django/db.sqlite3", "state", 0o600)
	write("_shared/x.py", "", 0o644)
	write("README.md", "not an app", 0o644)
	if err := os.Symlink("app.py", filepath.Join(src, "hello", "link.py")); err != nil {
		t.Fatal(err)
	}

	layout := t.TempDir()
	digest, err := build(layout, src, []string{"linux/amd64"}, time.Unix(0, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	manifests, configs := images(t, layout, digest)
	m, c := manifests["linux/amd64"], configs["linux/amd64"]
	if len(m.Layers) != 2 {
		t.Fatalf("want the base and the apps layer, have %d", len(m.Layers))
	}
	files := layerFiles(t, layout, m.Layers[1].Digest, c.RootFS.DiffIDs[1])
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"apps", "apps/hello", "apps/hello/app.py", "apps/hello/link.py",
		"apps/hello/site-packages", "apps/hello/site-packages/pkg", "apps/hello/site-packages/pkg/__init__.py",
		"apps/hello/tool.sh"}
	if !slices.Equal(names, want) {
		t.Errorf("apps layer holds\n%q\nwant\n%q", names, want)
	}
	if h := files["apps/hello/app.py"]; h == nil || h.Mode != 0o644 || h.Uid != 0 || h.PAXRecords["content"] != "def application(e, s): pass\n" {
		t.Errorf("app.py: %+v (want mode 644, root, same content: readable by the nonroot user)", h)
	}
	if h := files["apps/hello/tool.sh"]; h == nil || h.Mode != 0o755 {
		t.Errorf("tool.sh: %+v (want 755)", h)
	}
	if h := files["apps/hello/link.py"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "app.py" {
		t.Errorf("link.py: %+v (want the symlink kept)", h)
	}

	// An empty folder is an error, not an image without apps.
	if _, err := build(t.TempDir(), t.TempDir(), []string{"linux/amd64"}, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "no app folders") {
		t.Errorf("empty apps folder: %v", err)
	}
}

func TestReproducibleAndExtending(t *testing.T) {
	epoch := time.Unix(0, 0).UTC()
	a, b := t.TempDir(), t.TempDir()
	d1, err := build(a, "", []string{"linux/amd64"}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := build(b, "", []string{"linux/amd64"}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("same inputs, digests %s and %s", d1, d2)
	}
	d3, err := build(b, "", []string{"linux/amd64"}, epoch.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d3 == d1 {
		t.Error("another SOURCE_DATE_EPOCH gave the same digest")
	}
	// The second build extended b's index.json: both indexes are there, once each.
	listed := layoutIndex(t, b)
	if !slices.Contains(listed, d1) || !slices.Contains(listed, d3) {
		t.Errorf("index.json lists %v, want %s and %s", listed, d1, d3)
	}
	seen := map[string]bool{}
	for _, d := range listed {
		if seen[d] {
			t.Errorf("index.json lists %s twice", d)
		}
		seen[d] = true
	}
	if _, err := build(t.TempDir(), "", []string{"linux"}, epoch); err == nil {
		t.Error("platform \"linux\" accepted")
	}
}

// An entry ko wrote into index.json (with fields this program does not model) is
// kept as it was.
func TestKeepsForeignIndexEntries(t *testing.T) {
	layout := t.TempDir()
	foreign := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` +
		strings.Repeat("ab", 32) + `","size":7,"artifactType":"application/x-ko","urls":["https://example.invalid/x"]}`
	idx := `{"schemaVersion":2,"manifests":[` + foreign + `]}`
	if err := os.WriteFile(filepath.Join(layout, "index.json"), []byte(idx), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := build(layout, "", []string{"linux/amd64"}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Manifests []json.RawMessage }
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	if len(got.Manifests) > 0 {
		if err := json.Compact(&first, got.Manifests[0]); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.Manifests) != 3 || first.String() != foreign {
		t.Errorf("index.json manifests:\n%s", raw)
	}
}
