package hostfuncs

import (
	"reflect"
	"testing"
)

func TestAppInfoEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		info AppInfo
		want []Pair
	}{
		{
			name: "every key",
			info: AppInfo{Name: "shop", Entrypoint: "app:application", AppDir: "/app",
				SitePackages: "/app/site-packages", Validate: true, Isolation: "instance"},
			want: []Pair{{"name", "shop"}, {"entrypoint", "app:application"}, {"app_dir", "/app"},
				{"site_packages", "/app/site-packages"}, {"validate", "1"}, {"isolation", "instance"}},
		},
		{
			name: "a Django project: its settings module, no entrypoint",
			info: AppInfo{Name: "blog", DjangoSettings: "mysite.settings", AppDir: "/app"},
			want: []Pair{{"name", "blog"}, {"entrypoint", ""}, {"django_settings", "mysite.settings"}, {"app_dir", "/app"}},
		},
		{
			name: "the optional keys left out",
			info: AppInfo{Name: "hello", Entrypoint: "app", AppDir: "/app"},
			want: []Pair{{"name", "hello"}, {"entrypoint", "app"}, {"app_dir", "/app"}},
		},
		{
			name: "request isolation, no site-packages, no name",
			info: AppInfo{Entrypoint: "hello.wsgi", AppDir: "/app", Isolation: "request"},
			want: []Pair{{"entrypoint", "hello.wsgi"}, {"app_dir", "/app"}, {"isolation", "request"}},
		},
		{
			name: "a command line, its arguments each ended by NUL",
			info: AppInfo{Name: "shop", Entrypoint: "app", AppDir: "/app", Run: true,
				Argv: []string{"manage.py", "migrate", "", "caf\u00e9"}},
			want: []Pair{{"name", "shop"}, {"entrypoint", "app"}, {"app_dir", "/app"},
				{"argv", "manage.py\x00migrate\x00\x00caf\u00e9\x00"}},
		},
		{
			name: "a command line without arguments: an interactive prompt",
			info: AppInfo{Name: "shop", Entrypoint: "app", AppDir: "/app", Run: true},
			want: []Pair{{"name", "shop"}, {"entrypoint", "app"}, {"app_dir", "/app"}, {"argv", ""}},
		},
		{
			name: "a child process: main and its working folder",
			info: AppInfo{Entrypoint: "app", AppDir: "/app", Main: true, Cwd: "/tmp/work"},
			want: []Pair{{"entrypoint", "app"}, {"app_dir", "/app"}, {"main", "1"}, {"cwd", "/tmp/work"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePairs(tc.info.Encode(), 16)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Encode decodes to %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
