package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// The tarballs `make image` writes (docker save format, as ko writes them), below the
// repository's root.
const (
	serverImageTar = "bin/wasmwsgi-image.tar"
	appsImageTar   = "bin/wasmwsgi-apps-image.tar"
)

// imageFile is one file of an image's filesystem, all layers applied.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

type image struct {
	tags   []string
	config struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			User       string   `json:"User"`
			Entrypoint []string `json:"Entrypoint"`
			Cmd        []string `json:"Cmd"`
			Env        []string `json:"Env"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	files map[string]imageFile // by absolute path
}

// readImage reads a single-image tarball: its manifest.json, config and layers,
// checking every layer against the config's diff_ids.
func readImage(t *testing.T, file string) *image {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	members := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		members[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(members["manifest.json"], &manifest); err != nil {
		t.Fatalf("%s: manifest.json: %v", file, err)
	}
	if len(manifest) != 1 {
		t.Fatalf("%s holds %d images, want 1", file, len(manifest))
	}
	m := manifest[0]
	img := &image{tags: m.RepoTags, files: map[string]imageFile{}}
	rawConfig, ok := members[m.Config]
	if !ok {
		t.Fatalf("%s: no config %s", file, m.Config)
	}
	if want := "sha256:" + sha256Hex(rawConfig); !strings.HasSuffix(want, strings.TrimPrefix(m.Config, "sha256:")) {
		t.Errorf("%s: config %s has digest %s", file, m.Config, want)
	}
	if err := json.Unmarshal(rawConfig, &img.config); err != nil {
		t.Fatalf("%s: config: %v", file, err)
	}
	if len(m.Layers) != len(img.config.RootFS.DiffIDs) {
		t.Fatalf("%s: %d layers, %d diff_ids", file, len(m.Layers), len(img.config.RootFS.DiffIDs))
	}
	for i, name := range m.Layers {
		gz, ok := members[name]
		if !ok {
			t.Fatalf("%s: layer %s missing", file, name)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: layer %s: %v", file, name, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: layer %s: %v", file, name, err)
		}
		if got := "sha256:" + sha256Hex(raw); got != img.config.RootFS.DiffIDs[i] {
			t.Errorf("%s: layer %d has diff_id %s, config says %s", file, i, got, img.config.RootFS.DiffIDs[i])
		}
		lr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: layer %d: %v", file, i, err)
			}
			if strings.Contains(path.Base(h.Name), ".wh.") {
				t.Fatalf("%s: layer %d has a whiteout %s, which this test does not apply", file, i, h.Name)
			}
			data, err := io.ReadAll(lr)
			if err != nil {
				t.Fatal(err)
			}
			img.files[path.Clean("/"+h.Name)] = imageFile{hdr: h, data: data}
		}
	}
	return img
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkRunnable checks what Kubernetes needs to run the image as the Deployment
// says: the tag it names, a numeric non-root user that exists, a static entrypoint.
func checkRunnable(t *testing.T, img *image, wantTag string, runAsUser *int64) string {
	t.Helper()
	found := false
	for _, tag := range img.tags {
		found = found || tag == wantTag
	}
	if !found {
		t.Errorf("image tags %q; the Deployment runs %q", img.tags, wantTag)
	}
	if img.config.OS != "linux" {
		t.Errorf("image os %q", img.config.OS)
	}
	uidText, gidText, _ := strings.Cut(img.config.Config.User, ":")
	uid, err := strconv.ParseInt(uidText, 10, 64)
	if err != nil || uid == 0 {
		t.Errorf("image user %q: want a numeric non-root uid (runAsNonRoot can only check numbers)", img.config.Config.User)
	}
	if runAsUser != nil && *runAsUser != uid {
		t.Errorf("image user %d, Deployment runAsUser %d", uid, *runAsUser)
	}
	passwd := string(img.files["/etc/passwd"].data)
	if !strings.Contains(passwd, fmt.Sprintf(":x:%d:%s:", uid, gidText)) {
		t.Errorf("/etc/passwd has no user %d:%s:\n%s", uid, gidText, passwd)
	}
	if len(img.config.Config.Entrypoint) != 1 {
		t.Fatalf("entrypoint %q", img.config.Config.Entrypoint)
	}
	entry := img.config.Config.Entrypoint[0]
	bin, ok := img.files[entry]
	if !ok || bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode&0o001 == 0 {
		t.Fatalf("entrypoint %s is not a file everyone may run", entry)
	}
	ef, err := elf.NewFile(bytes.NewReader(bin.data))
	if err != nil {
		t.Fatalf("%s: %v", entry, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked: the image has no libc", entry)
		}
	}
	out := filepath.Join(t.TempDir(), path.Base(entry))
	if err := os.WriteFile(out, bin.data, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testkit.Env(t, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out)
}

func podRunAsUser(d *appsv1.Deployment) *int64 {
	if sc := d.Spec.Template.Spec.SecurityContext; sc != nil {
		return sc.RunAsUser
	}
	return nil
}

func TestServerImage(t *testing.T) {
	serverImageTar := filepath.Join(testkit.RootOf(t), serverImageTar)
	if _, err := os.Stat(serverImageTar); err != nil {
		t.Skipf("%s not built (make image)", serverImageTar)
	}
	d := the[*appsv1.Deployment](t, loadAll(t))
	c := serverContainer(t, d)
	img := readImage(t, serverImageTar)
	bin := checkRunnable(t, img, c.Image, podRunAsUser(d))
	if out := run(t, bin, "version"); !strings.Contains(out, "CPython 3.11") || !strings.Contains(out, "python.wasm sha256") {
		t.Errorf("version of the image's binary:\n%s", out)
	}
	var size int64
	for _, f := range img.files {
		size += int64(len(f.data))
	}
	st, _ := os.Stat(serverImageTar)
	t.Logf("%s: %d bytes, filesystem %d bytes, %d files", serverImageTar, st.Size(), size, len(img.files))
}

func TestAppsImage(t *testing.T) {
	appsImageTar := filepath.Join(testkit.RootOf(t), appsImageTar)
	if _, err := os.Stat(appsImageTar); err != nil {
		t.Skipf("%s not built (make image)", appsImageTar)
	}
	d := the[*appsv1.Deployment](t, loadAll(t))
	if len(d.Spec.Template.Spec.InitContainers) != 1 {
		t.Fatalf("want one initContainer, have %d", len(d.Spec.Template.Spec.InitContainers))
	}
	ic := d.Spec.Template.Spec.InitContainers[0]
	img := readImage(t, appsImageTar)
	bin := checkRunnable(t, img, ic.Image, podRunAsUser(d))

	// Lay the image's /apps out on disk and run the image's copier on it with the
	// initContainer's arguments (the destination replaced by a temporary folder).
	src := filepath.Join(t.TempDir(), "apps")
	apps := map[string]bool{}
	for name, f := range img.files {
		rel, ok := strings.CutPrefix(name, "/apps/")
		if !ok {
			continue
		}
		top, _, _ := strings.Cut(rel, "/")
		if strings.HasPrefix(top, ".") || strings.HasPrefix(top, "_") {
			t.Errorf("image holds %s, which is not an app", name)
		}
		apps[top] = true
		p := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch f.hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(f.hdr.Linkname, p)
		case tar.TypeReg:
			err = os.WriteFile(p, f.data, os.FileMode(f.hdr.Mode)&0o777)
		default:
			err = fmt.Errorf("unexpected type %c", f.hdr.Typeflag)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(apps) == 0 {
		t.Fatal("the apps image holds no apps under /apps")
	}
	dst := t.TempDir()
	args := append([]string(nil), ic.Args...)
	if len(args) < 2 || args[len(args)-2] != "/apps" {
		t.Fatalf("initContainer args %q do not copy /apps", args)
	}
	args[len(args)-2], args[len(args)-1] = src, dst
	t.Log(strings.TrimSpace(run(t, bin, args...)))
	for app := range apps {
		if _, err := os.Stat(filepath.Join(dst, app)); err != nil {
			t.Errorf("app %s was not copied: %v", app, err)
		}
	}
	for rel := range mkdirs(ic.Args) {
		if fi, err := os.Stat(filepath.Join(dst, rel)); err != nil || !fi.IsDir() {
			t.Errorf("-mkdir %s did not make a folder: %v", rel, err)
		}
	}
	hello := filepath.Join("hello", "app.py")
	if f, ok := img.files["/apps/hello/app.py"]; ok {
		got, err := os.ReadFile(filepath.Join(dst, hello))
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("copied %s differs from the image's (%v)", hello, err)
		}
	}
}
