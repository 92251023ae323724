package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
)

// TestAppSpecAppInfo: an import is told its settings and mounts, and never the app's name.
func TestAppSpecAppInfo(t *testing.T) {
	withSite, withFile, plain := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(withSite, "site-packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withFile, "site-packages"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec AppSpec
		want hostfuncs.AppInfo
	}{
		{
			name: "a site-packages folder",
			spec: AppSpec{Name: "shop", Dir: withSite, Entrypoint: "app", Isolation: IsolationRequest},
			want: hostfuncs.AppInfo{Entrypoint: "app", AppDir: GuestApp,
				SitePackages: GuestApp + "/site-packages", Isolation: "request"},
		},
		{
			name: "a file named site-packages is not put on sys.path",
			spec: AppSpec{Name: "shop", Dir: withFile, Entrypoint: "app"},
			want: hostfuncs.AppInfo{Entrypoint: "app", AppDir: GuestApp},
		},
		{
			name: "validate and instance isolation",
			spec: AppSpec{Name: "blog", Dir: plain, Entrypoint: "blog.wsgi:app", Validate: true, Isolation: IsolationInstance},
			want: hostfuncs.AppInfo{Entrypoint: "blog.wsgi:app", AppDir: GuestApp, Validate: true,
				Isolation: "instance"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.spec.AppInfo(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AppInfo() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
