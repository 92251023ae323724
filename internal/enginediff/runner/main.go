// Command runner runs modules written by enginediff and prints, for each, what every
// exported function returned or the first line of its trap, and a hash of the memory,
// before and after calling "grow". enginediff's test builds it twice, with wazero as
// this repo patches it and as released (with -tags wazero_released), runs the patched
// build with and without guard pages, and compares the outputs.
//
//	runner [-guard-pages] DIR
//
// DIR holds NNNN.wasm files, run in name order; NNNN.env.wasm, when present, is
// instantiated first as module "env" (it provides an imported memory).
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmwsgi/wasmwsgi/internal/guardpages"
)

func main() {
	guard := flag.Bool("guard-pages", false, "compile for guard pages, without bounds checks (wazero-patches 0008)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: runner [-guard-pages] DIR")
		os.Exit(2)
	}
	ctx := context.Background()
	if *guard {
		if !guardpages.Supported() {
			fmt.Fprintln(os.Stderr, "runner: -guard-pages: this build or platform has no guard pages")
			os.Exit(2)
		}
		ctx = guardpages.With(ctx)
	}
	files, err := filepath.Glob(filepath.Join(flag.Arg(0), "*.wasm"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sort.Strings(files)
	out := os.Stdout
	for _, f := range files {
		if strings.HasSuffix(f, ".env.wasm") {
			continue
		}
		fmt.Fprintf(out, "module %s\n", filepath.Base(f))
		if err := run(ctx, out, f); err != nil {
			fmt.Fprintf(out, "error %s\n", firstLine(err))
		}
	}
}

func run(ctx context.Context, out *os.File, path string) error {
	rc := wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesThreads)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	defer rt.Close(ctx)
	if env, err := os.ReadFile(strings.TrimSuffix(path, ".wasm") + ".env.wasm"); err == nil {
		if _, err := rt.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
			return fmt.Errorf("env: %w", err)
		}
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("m"))
	if err != nil {
		return err
	}
	var names []string
	for name := range mod.ExportedFunctionDefinitions() {
		if name != "grow" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for pass := 1; pass <= 2; pass++ {
		for _, name := range names {
			res, err := mod.ExportedFunction(name).Call(ctx)
			if err != nil {
				fmt.Fprintf(out, "%d %s trap %s\n", pass, name, firstLine(err))
			} else {
				fmt.Fprintf(out, "%d %s = %#x\n", pass, name, res[0])
			}
		}
		buf, _ := mod.Memory().Read(0, mod.Memory().Size())
		fmt.Fprintf(out, "%d memory %d bytes sha256 %x\n", pass, len(buf), sha256.Sum256(buf))
		res, err := mod.ExportedFunction("grow").Call(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d grow = %d\n", pass, int64(res[0]))
	}
	return nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
