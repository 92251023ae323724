package main

import (
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// bz2 and lzma are built in (from Debian's bzip2 and xz-utils sources), so tarfile and
// shutil write and read every archive format in the request's /tmp.
func TestCompressionModules(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{"zip/app.py": `import bz2, lzma, os, shutil, tarfile, tempfile

def app(environ, start_response):
    data = b"wasmwsgi " * 5000 + os.urandom(1000)
    out = ["bz2 %s" % (bz2.decompress(bz2.compress(data)) == data),
           "lzma %s" % (lzma.decompress(lzma.compress(data)) == data),
           "lzma-alone %s" % (lzma.decompress(lzma.compress(data, format=lzma.FORMAT_ALONE)) == data),
           "sha256-check %s" % lzma.is_check_supported(lzma.CHECK_SHA256)]
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "src")
        os.mkdir(src)
        with open(os.path.join(src, "a.txt"), "wb") as f:
            f.write(data)
        for fmt in ("gztar", "bztar", "xztar", "zip"):
            archive = shutil.make_archive(os.path.join(d, "archive"), fmt, src)
            dest = os.path.join(d, "out-" + fmt)
            shutil.unpack_archive(archive, dest)
            with open(os.path.join(dest, "a.txt"), "rb") as f:
                out.append("%s %s" % (fmt, f.read() == data))
        with tarfile.open(os.path.join(d, "t.tar.bz2"), "w:bz2") as tar:
            tar.add(src, arcname="src")
        with tarfile.open(os.path.join(d, "t.tar.bz2")) as tar:
            out.append("tarfile %s" % tar.getnames())
    body = "\n".join(out).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`})
	s := testkit.Start(t, apps)
	code, body := fetch(t, s.Base+"/zip/")
	want := strings.Join([]string{"bz2 True", "lzma True", "lzma-alone True", "sha256-check True",
		"gztar True", "bztar True", "xztar True", "zip True", "tarfile ['src', 'src/a.txt']"}, "\n")
	if code != 200 || body != want {
		t.Errorf("GET /zip/: %d\n%s\nwant\n%s\n%s", code, body, want, grepLines(s.Log(), "Error"))
	}
}
