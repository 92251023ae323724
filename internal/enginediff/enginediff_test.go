package enginediff

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/guardpages"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// randomModules is how many generated modules the differential test runs.
const randomModules = 400

// buildRunner builds runner/ into dir: with the patched wazero through the repo's
// go.work, or with wazero as released when stock is set (-tags wazero_released).
func buildRunner(t *testing.T, root, dir string, stock bool) string {
	t.Helper()
	bin := filepath.Join(dir, "runner-patched")
	env := os.Environ()
	if stock {
		bin = filepath.Join(dir, "runner-stock")
		env = append(env, "GOWORK=off")
	}
	args := []string{"build", "-o", bin}
	if stock {
		args = append(args, "-tags", "wazero_released")
	}
	cmd := exec.Command("go", append(args, "./internal/enginediff/runner")...)
	cmd.Dir, cmd.Env = root, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build runner (stock=%v): %v\n%s", stock, err, out)
	}
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	replaced := bytes.Contains(info, []byte("=>")) && bytes.Contains(info, []byte("github.com/tetratelabs/wazero"))
	if replaced == stock {
		t.Fatalf("runner (stock=%v) was built with the wrong wazero; the patched build needs the go.work of `make wazero`:\n%s", stock, info)
	}
	return bin
}

func writeModule(t *testing.T, dir string, i int, m Module) {
	t.Helper()
	base := filepath.Join(dir, fmt.Sprintf("%04d", i))
	if err := os.WriteFile(base+".wasm", m.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if m.Imported {
		env := Module{MinPages: m.ActualPages, MaxPages: m.MaxPages}
		if err := os.WriteFile(base+".env.wasm", env.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runRunner(t *testing.T, bin, dir string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(bin, append(args, dir)...).Output()
	if err != nil {
		t.Fatalf("%s %s %s: %v", bin, args, dir, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// TestPatchedMatchesStock runs the edge modules and randomly generated ones (memory
// accesses, merges, and loops that keep values across a rarely taken call) on wazero
// with third_party/wazero-patches, with bounds checks and with guard pages, and on
// wazero as released: every result, trap and memory hash must agree. It also checks
// the patched runs against what the edge modules must do: trap exactly when an access
// ends past the memory's current length.
func TestPatchedMatchesStock(t *testing.T) {
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	patched := buildRunner(t, root, tmp, false)
	stock := buildRunner(t, root, tmp, true)

	edgeDir := filepath.Join(tmp, "edge")
	randDir := filepath.Join(tmp, "random")
	for _, d := range []string{edgeDir, randDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	edges := EdgeModules()
	for i, m := range edges {
		writeModule(t, edgeDir, i, m.Module)
	}
	for i := 0; i < randomModules; i++ {
		writeModule(t, randDir, i, RandomModule(int64(i)))
		writeModule(t, randDir, randomModules+i, MergeModule(int64(i)))
		writeModule(t, randDir, 2*randomModules+i, LoopModule(int64(i)))
	}

	for _, dir := range []string{edgeDir, randDir} {
		s := runRunner(t, stock, dir)
		var p []string
		for _, mode := range [][]string{nil, {"-guard-pages"}} {
			if mode != nil && !guardpages.Supported() {
				t.Log("guard pages are not supported here: the patched runner runs with bounds checks only")
				continue
			}
			p = runRunner(t, patched, dir, mode...)
			if len(p) != len(s) {
				t.Fatalf("%s %s: patched printed %d lines, stock %d", dir, mode, len(p), len(s))
			}
			module := ""
			for i := range p {
				if strings.HasPrefix(s[i], "module ") {
					module = s[i]
				}
				if p[i] != s[i] {
					t.Errorf("%s %s %s: patched %q, stock %q", filepath.Base(dir), mode, module, p[i], s[i])
				}
			}
		}
		if t.Failed() {
			return
		}
		if dir == edgeDir {
			checkEdges(t, edges, p)
		} else {
			traps, oob := 0, 0
			for _, line := range p {
				if strings.Contains(line, " trap ") {
					traps++
				}
				if strings.Contains(line, "out of bounds memory access") {
					oob++
				}
			}
			t.Logf("random modules: %d lines, %d traps, %d of them out of bounds", len(p), traps, oob)
			if traps == 0 || traps == len(p) {
				t.Errorf("the random modules are degenerate: %d traps in %d lines", traps, len(p))
			}
		}
	}
}

// checkEdges checks the runner's output for the edge modules against InBounds.
func checkEdges(t *testing.T, edges []EdgeModule, lines []string) {
	m, pages, pass, checked := -1, int64(0), 1, 0
	for _, line := range lines {
		var fn int
		var pn, grow int64
		switch {
		case strings.HasPrefix(line, "module "):
			m++
			pages = edges[m].ActualPages
		case strings.HasPrefix(line, "error "):
			t.Fatalf("edge module %d: %s", m, line)
		case strings.Contains(line, " grow = "):
			if _, err := fmt.Sscanf(line, "%d grow = %d", &pn, &grow); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if grow >= 0 {
				pages++
			}
			pass = int(pn) + 1
		case strings.Contains(line, " memory "):
		default:
			if _, err := fmt.Sscanf(line, "%d f%x", &pn, &fn); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			a := edges[m].Accesses[fn]
			in := a.InBounds(uint64(pages) * page)
			trapped := strings.Contains(line, " trap ")
			switch {
			case !in && !strings.Contains(line, "out of bounds memory access"):
				t.Errorf("pass %d, %d pages: %s did not trap as out of bounds: %q", pass, pages, edges[m].Describe(fn), line)
			case in && a.Aligned() && trapped:
				t.Errorf("pass %d, %d pages: %s trapped: %q", pass, pages, edges[m].Describe(fn), line)
			case in && !a.Aligned() && !strings.Contains(line, "unaligned"):
				t.Errorf("pass %d, %d pages: %s is unaligned but gave %q", pass, pages, edges[m].Describe(fn), line)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no edge access was checked")
	}
	t.Logf("%d edge accesses checked", checked)
}
