package runtime

import (
	"path/filepath"
	"runtime/debug"
)

const wazeroModule = "github.com/tetratelabs/wazero"

// WazeroBuild names the wazero this binary was built with: "wazero-" and its version
// as released, or, when the build replaced it with the copy that
// third_party/wazero-patches/apply.sh patched, that copy's folder name, which carries
// the hash of the patches. Compiled code is cached per WazeroBuild, so a binary never
// loads code that another build of wazero compiled (wazero's own cache is keyed by
// version only).
func WazeroBuild() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "wazero-unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path != wazeroModule {
			continue
		}
		if dep.Replace != nil {
			return filepath.Base(dep.Replace.Path)
		}
		return "wazero-" + dep.Version
	}
	return "wazero-unknown"
}
