// Command baseimage writes the base image of wasmwsgi's container images into an OCI
// image layout, without any registry or daemon.
//
//	baseimage -layout DIR [-apps SRC] [-platforms linux/amd64,linux/arm64] [-name REPO]
//
// The image has no shell and no libraries (wasmwsgi is a static binary): one layer
// with /etc/passwd and /etc/group naming the unprivileged user nonroot (65532:65532),
// its home folder, /tmp and /var/cache/wasmwsgi. With -apps a second layer holds the
// app folders of SRC at /apps (the apps image, see docs/deploy.md).
//
// The layout DIR is the one ko keeps in $KOCACHE/img: ko looks a base image given by
// digest up there before it tries a registry, so the reference printed on stdout
// (REPO@sha256:...) can be given to ko as KO_DEFAULTBASEIMAGE and the build needs no
// network. An existing layout is extended, not replaced. The output only depends on
// the inputs and on SOURCE_DATE_EPOCH (file times; default 0), so builds are
// reproducible.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/atomicfile"
)

// The user the images run as; 65532 is the usual "nonroot" id of distroless images.
const (
	uid      = 65532
	userName = "nonroot"
	home     = "/home/nonroot"
)

// AppsPath is where -apps puts the app folders in the image.
const AppsPath = "/apps"

const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type imageConfig struct {
	Created      time.Time     `json:"created"`
	Architecture string        `json:"architecture"`
	OS           string        `json:"os"`
	Variant      string        `json:"variant,omitempty"`
	Config       containerConf `json:"config"`
	RootFS       rootFS        `json:"rootfs"`
	History      []history     `json:"history"`
}

type containerConf struct {
	User       string            `json:"User"`
	Env        []string          `json:"Env"`
	WorkingDir string            `json:"WorkingDir"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

// layer is a gzipped tar with its digests.
type layer struct {
	gz      []byte
	digest  string // of gz
	diffID  string // of the tar
	comment string
}

func main() {
	layout := flag.String("layout", "", "OCI image layout folder to write (created or extended)")
	apps := flag.String("apps", "", "apps folder whose subfolders go to "+AppsPath+" in a second layer")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch[/variant] of the image index")
	name := flag.String("name", "wasmwsgi.local/base", "repository printed in front of the digest")
	flag.Parse()
	if *layout == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: baseimage -layout DIR [-apps SRC] [-platforms LIST] [-name REPO]")
		os.Exit(2)
	}
	created, err := sourceDate()
	if err == nil {
		var digest string
		digest, err = build(*layout, *apps, strings.Split(*platforms, ","), created)
		if err == nil {
			fmt.Printf("%s@%s\n", *name, digest)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseimage:", err)
		os.Exit(1)
	}
}

// sourceDate is the time stamped on files and history: SOURCE_DATE_EPOCH, else 0.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// build writes the image index and its images into the layout and returns the
// index's digest.
func build(layoutDir, appsDir string, platforms []string, created time.Time) (string, error) {
	base, err := baseLayer(created)
	if err != nil {
		return "", err
	}
	layers := []layer{base}
	if appsDir != "" {
		apps, err := appsLayer(appsDir, created)
		if err != nil {
			return "", err
		}
		layers = append(layers, apps)
	}
	if err := os.MkdirAll(filepath.Join(layoutDir, "blobs", "sha256"), 0o755); err != nil {
		return "", err
	}
	for _, l := range layers {
		if err := writeBlob(layoutDir, l.digest, l.gz); err != nil {
			return "", err
		}
	}

	idx := index{SchemaVersion: 2, MediaType: mediaIndex}
	var all []descriptor
	for _, p := range platforms {
		plat, err := parsePlatform(p)
		if err != nil {
			return "", err
		}
		m, err := imageManifest(layoutDir, plat, layers, created)
		if err != nil {
			return "", err
		}
		idx.Manifests = append(idx.Manifests, m)
		all = append(all, descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return "", err
	}
	digest := sha256Digest(raw)
	if err := writeBlob(layoutDir, digest, raw); err != nil {
		return "", err
	}
	// ko finds a base by digest among the top-level entries of index.json only, so the
	// index and each of its images are listed there.
	all = append([]descriptor{{MediaType: mediaIndex, Digest: digest, Size: int64(len(raw))}}, all...)
	if err := addToLayoutIndex(layoutDir, all); err != nil {
		return "", err
	}
	return digest, nil
}

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("platform %q is not os/arch[/variant]", s)
	}
	p := platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// imageManifest writes the config and manifest of one platform's image and returns
// the manifest's descriptor for the index.
func imageManifest(layoutDir string, plat platform, layers []layer, created time.Time) (descriptor, error) {
	cfg := imageConfig{
		Created:      created,
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Variant:      plat.Variant,
		Config: containerConf{
			// Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
			User:       fmt.Sprintf("%d:%d", uid, uid),
			Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home},
			WorkingDir: home,
		},
		RootFS: rootFS{Type: "layers"},
	}
	m := manifest{SchemaVersion: 2, MediaType: mediaManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		cfg.History = append(cfg.History, history{Created: created, CreatedBy: l.comment})
		m.Layers = append(m.Layers, descriptor{MediaType: mediaLayer, Digest: l.digest, Size: int64(len(l.gz))})
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return descriptor{}, err
	}
	m.Config = descriptor{MediaType: mediaConfig, Digest: sha256Digest(rawCfg), Size: int64(len(rawCfg))}
	if err := writeBlob(layoutDir, m.Config.Digest, rawCfg); err != nil {
		return descriptor{}, err
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return descriptor{}, err
	}
	d := descriptor{MediaType: mediaManifest, Digest: sha256Digest(rawManifest), Size: int64(len(rawManifest))}
	if err := writeBlob(layoutDir, d.Digest, rawManifest); err != nil {
		return descriptor{}, err
	}
	d.Platform = &plat
	return d, nil
}

// baseLayer holds the user database, the user's home, /tmp and the default cache folder.
func baseLayer(created time.Time) (layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode,
			Uid: owner, Gid: owner, ModTime: created, Format: tar.FormatPAX})
	}
	file := func(name, content string) error {
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
			Size: int64(len(content)), ModTime: created, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.WriteString(tw, content)
		}
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n",
		userName, uid, uid, userName, home)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
	err := errors.Join(
		dir("etc", 0o755, 0),
		file("etc/passwd", passwd),
		file("etc/group", group),
		dir("home", 0o755, 0),
		dir(strings.TrimPrefix(home, "/"), 0o700, uid),
		dir("tmp", 0o1777, 0),
		dir("var", 0o755, 0),
		dir("var/cache", 0o755, 0),
		dir("var/cache/wasmwsgi", 0o700, uid),
		tw.Close(),
	)
	if err != nil {
		return layer{}, err
	}
	return compress(buf.Bytes(), "baseimage: /etc/passwd, /etc/group, "+home+", /tmp, /var/cache/wasmwsgi")
}

// appsLayer holds the app folders of src, read-only for everyone, below AppsPath.
// Only subfolders of src are taken (an app is a folder) and, like app discovery, none
// whose name starts with "." or "_": a folder such as apps/.data holds data a local
// run wrote, which belongs to no image.
func appsLayer(src string, created time.Time) (layer, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return layer{}, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := strings.TrimPrefix(AppsPath, "/")
	hdr := func(h *tar.Header) error {
		h.ModTime, h.Format = created, tar.FormatPAX
		return tw.WriteHeader(h)
	}
	if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: root + "/", Mode: 0o755}); err != nil {
		return layer{}, err
	}
	apps := 0
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		apps++
		top := filepath.Join(src, e.Name())
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			name := path.Join(root, filepath.ToSlash(rel))
			if d.IsDir() && d.Name() == ".site-packages.tmp" {
				return filepath.SkipDir // left over by an interrupted apps/vendor.sh
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				return hdr(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
			case info.Mode()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
			case info.Mode().IsRegular():
				mode := int64(0o644)
				if info.Mode()&0o111 != 0 {
					mode = 0o755
				}
				if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: info.Size()}); err != nil {
					return err
				}
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				n, err := io.Copy(tw, f)
				if err == nil && n != info.Size() {
					err = fmt.Errorf("%s changed while it was read", p)
				}
				return err
			default:
				return fmt.Errorf("%s is neither a file, a folder nor a symlink", p)
			}
		})
		if err != nil {
			return layer{}, err
		}
	}
	if apps == 0 {
		return layer{}, fmt.Errorf("%s has no app folders", src)
	}
	if err := tw.Close(); err != nil {
		return layer{}, err
	}
	return compress(buf.Bytes(), fmt.Sprintf("baseimage: %d app folders at %s", apps, AppsPath))
}

func compress(tarball []byte, comment string) (layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return layer{}, err
	}
	if _, err := zw.Write(tarball); err != nil {
		return layer{}, err
	}
	if err := zw.Close(); err != nil {
		return layer{}, err
	}
	return layer{gz: gz.Bytes(), digest: sha256Digest(gz.Bytes()), diffID: sha256Digest(tarball), comment: comment}, nil
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(layoutDir, digest string) string {
	return filepath.Join(layoutDir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// writeBlob stores content under its digest (atomically; an existing blob is kept).
func writeBlob(layoutDir, digest string, content []byte) error {
	dst := blobPath(layoutDir, digest)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	return writeFileAtomic(dst, content)
}

func writeFileAtomic(dst string, content []byte) error {
	return atomicfile.Write(dst, func(f *os.File) error {
		if _, err := f.Write(content); err != nil {
			return err
		}
		return f.Chmod(0o644)
	})
}

// addToLayoutIndex writes oci-layout and adds descs to index.json, keeping what is
// there byte for byte (ko stores the bases it pulled in the same layout).
func addToLayoutIndex(layoutDir string, descs []descriptor) error {
	if err := writeFileAtomic(filepath.Join(layoutDir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	file := filepath.Join(layoutDir, "index.json")
	top := map[string]json.RawMessage{}
	var entries []json.RawMessage
	raw, err := os.ReadFile(file)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &top); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if m, ok := top["manifests"]; ok {
			if err := json.Unmarshal(m, &entries); err != nil {
				return fmt.Errorf("%s: manifests: %w", file, err)
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	have := map[string]bool{}
	for _, e := range entries {
		var d descriptor
		if err := json.Unmarshal(e, &d); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		have[d.Digest] = true
	}
	for _, d := range descs {
		if have[d.Digest] {
			continue
		}
		e, err := json.Marshal(d)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		have[d.Digest] = true
	}
	top["schemaVersion"] = json.RawMessage("2")
	if _, ok := top["mediaType"]; !ok {
		top["mediaType"] = json.RawMessage(`"` + mediaIndex + `"`)
	}
	if top["manifests"], err = json.Marshal(entries); err != nil {
		return err
	}
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(file, append(out, '\n'))
}
