package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// The server's endpoints the probes must use (router/router.go serves them).
const (
	readyPath   = "/_wasmwsgi/ready"
	healthzPath = "/_wasmwsgi/healthz"
)

// kustomization is the part of kustomize's Kustomization (kustomize.config.k8s.io/
// v1beta1) that deploy/kustomization.yaml may use. It is not in k8s.io/api; decoding
// strictly into these few fields keeps anything else out of the file.
type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Namespace       string   `json:"namespace,omitempty"`
	Resources       []string `json:"resources"`
	Images          []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// kinds maps apiVersion/kind to the Go type a document of that kind decodes into.
// A kind missing here is an error: add its type before adding such a manifest.
var kinds = map[string]func() any{
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                             func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":                      func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler":        func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":                 func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":                  func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":            func() any { return &networkingv1.NetworkPolicy{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
}

// object is one decoded YAML document.
type object struct {
	file string // relative to deploy/
	doc  int    // index in the file, from 0
	kind string // apiVersion/kind
	obj  any
}

func (o object) String() string { return fmt.Sprintf("%s#%d (%s)", o.file, o.doc, o.kind) }

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitDocuments splits a multi-document YAML stream, dropping documents that hold
// only comments and blank lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(data), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeDocument decodes one document strictly into the type of its apiVersion/kind,
// the way the API server reads it: duplicate keys, unknown fields and fields spelt in
// another case (encoding/json would accept "Image" for "image") are errors.
func decodeDocument(doc []byte) (string, any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "", nil, err
	}
	var tm metav1.TypeMeta
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return "", nil, err
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return "", nil, fmt.Errorf("document has no apiVersion or kind")
	}
	kind := tm.APIVersion + "/" + tm.Kind
	newObj, ok := kinds[kind]
	if !ok {
		return kind, nil, fmt.Errorf("unknown kind %s: add its type to kinds in manifests_test.go", kind)
	}
	obj := newObj()
	strict, err := k8sjson.UnmarshalStrict(j, obj)
	if err != nil {
		return kind, nil, err
	}
	if len(strict) > 0 {
		return kind, nil, fmt.Errorf("strict decoding: %w", joinErrs(strict))
	}
	return kind, obj, nil
}

func joinErrs(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// deployDir is the repository's deploy/ folder, which holds the manifests.
func deployDir(t *testing.T) string { return filepath.Join(testkit.RootOf(t), "deploy") }

// manifestFiles lists every YAML file below deploy/ (paths relative to it), testdata
// excluded.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := fs.WalkDir(os.DirFS(deployDir(t)), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return fs.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// loadAll decodes every manifest; any document that does not decode fails the test.
func loadAll(t *testing.T) []object {
	t.Helper()
	var out []object
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(deployDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocuments(data)
		if len(docs) == 0 {
			t.Errorf("%s holds no document", f)
		}
		for i, doc := range docs {
			kind, obj, err := decodeDocument(doc)
			if err != nil {
				t.Errorf("%s#%d: %v", f, i, err)
				continue
			}
			out = append(out, object{file: f, doc: i, kind: kind, obj: obj})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// the returns the one object of type T; several or none fail the test.
func the[T any](t *testing.T, objs []object) T {
	t.Helper()
	var found []T
	var where []string
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
			where = append(where, o.String())
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in deploy/, found %d: %v", zero, len(found), where)
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadAll(t)
	got := map[string]int{}
	for _, o := range objs {
		got[o.kind]++
		t.Logf("%s", o)
	}
	for _, kind := range []string{
		"apps/v1/Deployment", "v1/Service", "v1/ConfigMap",
		"autoscaling/v2/HorizontalPodAutoscaler", "policy/v1/PodDisruptionBudget",
	} {
		if got[kind] != 1 {
			t.Errorf("want one %s in deploy/, found %d", kind, got[kind])
		}
	}
}

// Each file in testdata/ is a broken manifest whose first line reads
// "# want: <text the decoding error must contain>".
func TestDecodeRejectsBadManifests(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("want at least 4 bad manifests in testdata/, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line %q is not \"# want: ...\"", first)
			}
			var errs []string
			for _, doc := range splitDocuments(data) {
				if _, _, err := decodeDocument(doc); err != nil {
					errs = append(errs, err.Error())
				}
			}
			if len(errs) == 0 {
				t.Fatalf("every document decoded; want an error containing %q", want)
			}
			if !strings.Contains(strings.Join(errs, "\n"), want) {
				t.Fatalf("errors %q do not contain %q", errs, want)
			}
		})
	}
}

// The same document decodes once the fault is fixed, so the rejection above is about
// the fault and not about something else in the file.
func TestDecodeAcceptsFixedManifest(t *testing.T) {
	data, err := os.ReadFile("testdata/unknown-field.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixed := bytes.Replace(data, []byte("livenesProbe:"), []byte("livenessProbe:"), 1)
	if bytes.Equal(fixed, data) {
		t.Fatal("testdata/unknown-field.yaml no longer has the misspelt livenesProbe")
	}
	for _, doc := range splitDocuments(fixed) {
		if _, _, err := decodeDocument(doc); err != nil {
			t.Fatalf("fixed document: %v", err)
		}
	}
}

// serverContainer returns the Deployment's container that runs wasmwsgi serve.
func serverContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if len(c.Args) > 0 && c.Args[0] == "serve" {
			return c
		}
	}
	t.Fatalf("no container of deployment %s runs \"serve\"", d.Name)
	return corev1.Container{}
}

// namedPort returns the container port a probe or Service refers to by name.
func namedPort(t *testing.T, c corev1.Container, port intstr.IntOrString, what string) corev1.ContainerPort {
	t.Helper()
	if port.Type != intstr.String {
		t.Fatalf("%s uses port %s: use the container port's name", what, port.String())
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p
		}
	}
	t.Fatalf("%s uses port %q, which container %s does not name", what, port.StrVal, c.Name)
	return corev1.ContainerPort{}
}

func TestProbes(t *testing.T) {
	objs := loadAll(t)
	d := the[*appsv1.Deployment](t, objs)
	c := serverContainer(t, d)
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"readinessProbe", c.ReadinessProbe, readyPath},
		{"livenessProbe", c.LivenessProbe, healthzPath},
		{"startupProbe", c.StartupProbe, healthzPath},
	}
	for _, p := range probes {
		if p.probe == nil {
			t.Errorf("container %s has no %s", c.Name, p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g == nil {
			t.Errorf("%s is not an httpGet probe", p.name)
			continue
		}
		if g.Path != p.path {
			t.Errorf("%s path %q, want %q", p.name, g.Path, p.path)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s scheme %s: the server speaks plain HTTP", p.name, g.Scheme)
		}
		namedPort(t, c, g.Port, p.name)
	}
	// Liveness must not be the readiness endpoint: a pod whose apps are still loading
	// (503) is alive and must not be restarted.
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == readyPath {
		t.Error("livenessProbe uses the readiness endpoint")
	}
}

func podLabels(d *appsv1.Deployment) labels.Set { return labels.Set(d.Spec.Template.Labels) }

func TestSelectors(t *testing.T) {
	objs := loadAll(t)
	d := the[*appsv1.Deployment](t, objs)
	svc := the[*corev1.Service](t, objs)
	pdb := the[*policyv1.PodDisruptionBudget](t, objs)
	pods := podLabels(d)

	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Empty() || !sel.Matches(pods) {
		t.Errorf("deployment selector %s does not select its own pod labels %v", sel, pods)
	}

	if len(svc.Spec.Selector) == 0 {
		t.Error("service has no selector")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) {
		t.Errorf("service selector %v does not select the pod labels %v", svc.Spec.Selector, pods)
	}
	c := serverContainer(t, d)
	if len(svc.Spec.Ports) == 0 {
		t.Error("service has no ports")
	}
	for _, p := range svc.Spec.Ports {
		namedPort(t, c, p.TargetPort, "service port "+p.Name)
	}

	psel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if psel.Empty() || !psel.Matches(pods) {
		t.Errorf("PDB selector %s does not select the pod labels %v", psel, pods)
	}
	if pdb.Namespace != d.Namespace || svc.Namespace != d.Namespace {
		t.Error("deployment, service and PDB are in different namespaces")
	}
}

func TestAutoscaling(t *testing.T) {
	objs := loadAll(t)
	d := the[*appsv1.Deployment](t, objs)
	hpa := the[*autoscalingv2.HorizontalPodAutoscaler](t, objs)
	pdb := the[*policyv1.PodDisruptionBudget](t, objs)

	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA targets %s %s %q, want apps/v1 Deployment %q", ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	if hpa.Namespace != d.Namespace {
		t.Error("HPA and deployment are in different namespaces")
	}
	var cpu bool
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			if m.Resource.Target.Type != autoscalingv2.UtilizationMetricType || m.Resource.Target.AverageUtilization == nil {
				t.Error("HPA CPU metric is not an average utilization")
			} else if u := *m.Resource.Target.AverageUtilization; u <= 0 || u > 100 {
				t.Errorf("HPA CPU target %d%%", u)
			}
			cpu = true
		}
	}
	if !cpu {
		t.Error("HPA does not scale on CPU")
	}
	// Utilization is relative to the request: every container needs a CPU request.
	for _, c := range d.Spec.Template.Spec.Containers {
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("container %s has no CPU request, which CPU utilization needs", c.Name)
		}
	}
	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	if minReplicas < 2 {
		t.Errorf("HPA minReplicas %d: one pod means downtime on every drain", minReplicas)
	}
	if hpa.Spec.MaxReplicas <= minReplicas {
		t.Errorf("HPA maxReplicas %d <= minReplicas %d", hpa.Spec.MaxReplicas, minReplicas)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("deployment sets replicas (%d): the HPA owns the count, and re-applying would reset it", *d.Spec.Replicas)
	}

	// The PDB must let a drain proceed at minReplicas and keep one pod serving.
	allowed, err := disruptionsAllowed(pdb, int(minReplicas))
	if err != nil {
		t.Fatal(err)
	}
	if allowed < 1 || allowed >= int(minReplicas) {
		t.Errorf("PDB allows %d disruptions of %d pods; want at least 1 and fewer than all", allowed, minReplicas)
	}
}

// disruptionsAllowed is how many of n ready pods the PDB lets be evicted.
func disruptionsAllowed(pdb *policyv1.PodDisruptionBudget, n int) (int, error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MinAvailable != nil:
		return 0, fmt.Errorf("PDB sets both minAvailable and maxUnavailable")
	case pdb.Spec.MaxUnavailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, n, true)
		return min(v, n), err
	case pdb.Spec.MinAvailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, n, true)
		return max(n-v, 0), err
	}
	return 0, fmt.Errorf("PDB sets neither minAvailable nor maxUnavailable")
}

func TestSecurityContext(t *testing.T) {
	objs := loadAll(t)
	d := the[*appsv1.Deployment](t, objs)
	spec := d.Spec.Template.Spec
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("pods mount a service account token they do not use")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("pods share a host namespace")
	}
	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	if len(containers) < 2 {
		t.Fatalf("want the server and the apps initContainer, have %d containers", len(containers))
	}
	for _, c := range containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s has no securityContext", c.Name)
			continue
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = pod.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			t.Errorf("container %s: runAsNonRoot is not true", c.Name)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = pod.RunAsUser
		}
		if uid != nil && *uid == 0 {
			t.Errorf("container %s runs as uid 0", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s does not drop all capabilities (or adds some)", c.Name)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s: seccomp profile is not RuntimeDefault", c.Name)
		}
		if c.ImagePullPolicy == corev1.PullAlways || c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(path.Base(c.Image), ":") {
			// A loaded image tarball (kind load, ctr import) is never pulled, so the
			// tag must not be latest (which means "Always") and the policy not Always.
			t.Errorf("container %s: image %q with pull policy %q cannot use a loaded image tarball", c.Name, c.Image, c.ImagePullPolicy)
		}
	}
}

func TestResources(t *testing.T) {
	objs := loadAll(t)
	d := the[*appsv1.Deployment](t, objs)
	spec := d.Spec.Template.Spec
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[r]
			lim, okLim := c.Resources.Limits[r]
			if !okReq || !okLim {
				t.Errorf("container %s: %s request or limit missing", c.Name, r)
				continue
			}
			if req.Sign() <= 0 || req.Cmp(lim) > 0 {
				t.Errorf("container %s: %s request %s, limit %s", c.Name, r, req.String(), lim.String())
			}
		}
	}
	// The server's memory limit covers what it holds once loaded (the request) plus
	// every instance allowed to run at once growing to its memory limit.
	cfg := serverConfig(t, objs)
	c := serverContainer(t, d)
	instances := cfg.int(t, "limits.instances")
	perInstance := cfg.size(t, "limits.memory")
	req := c.Resources.Requests[corev1.ResourceMemory]
	lim := c.Resources.Limits[corev1.ResourceMemory]
	need := req.Value() + int64(instances)*perInstance
	if lim.Value() < need {
		t.Errorf("memory limit %s < request %s + limits.instances %d x limits.memory %d MiB = %d MiB",
			lim.String(), req.String(), instances, perInstance>>20, need>>20)
	}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit == nil {
			t.Errorf("emptyDir %s has no sizeLimit", v.Name)
		}
	}
}

func TestGracePeriodCoversDrain(t *testing.T) {
	objs := loadAll(t)
	d := the[*appsv1.Deployment](t, objs)
	cfg := serverConfig(t, objs)
	timeout := cfg.duration(t, "limits.timeout")
	queueTimeout := cfg.duration(t, "limits.queue_timeout")
	// An app's grant may allow it longer than the server's limits.
	for key := range cfg.values {
		app, grant, ok := grantKey(key)
		if !ok || (grant != "limits.timeout" && grant != "limits.queue_timeout") {
			continue
		}
		appTimeout, appQueue := timeout, queueTimeout
		if _, set := cfg.values["apps."+app+".limits.timeout"]; set {
			appTimeout = cfg.duration(t, "apps."+app+".limits.timeout")
		}
		if _, set := cfg.values["apps."+app+".limits.queue_timeout"]; set {
			appQueue = cfg.duration(t, "apps."+app+".limits.queue_timeout")
		}
		if appTimeout+appQueue > timeout+queueTimeout {
			timeout, queueTimeout = appTimeout, appQueue
		}
	}
	c := serverContainer(t, d)
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		h := c.Lifecycle.PreStop
		if h.Exec != nil {
			t.Error("preStop runs a command, but the image has no shell or sleep binary")
		}
		if h.Sleep != nil {
			preStop = time.Duration(h.Sleep.Seconds) * time.Second
		}
	}
	// serve waits limits.queue_timeout + limits.timeout + 1s for in-flight requests
	// after SIGTERM, which the kubelet sends once preStop returns.
	need := preStop + queueTimeout + timeout + time.Second
	grace := 30 * time.Second // Kubernetes' default
	if s := d.Spec.Template.Spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	if grace < need {
		t.Errorf("terminationGracePeriodSeconds %v < preStop %v + the longest queue_timeout %v + timeout %v of any app + 1s",
			grace, preStop, queueTimeout, timeout)
	}
}

// serverKeys are the server's configuration keys (README.md, "Configuration";
// cmd/wasmwsgi/config.go) that a deployment has a use for. TestServeWithConfigMap
// runs the real server on the file, which rejects keys it does not know.
var serverKeys = []string{
	"addr", "apps_dir", "cache_dir", "data_root", "validate", "trusted_proxies",
	"log.format", "log.level",
	"limits.timeout", "limits.memory", "limits.max_body", "limits.max_response",
	"limits.concurrency", "limits.queue", "limits.queue_timeout", "limits.open_files",
	"limits.scratch", "limits.app_files", "limits.instances",
}

// grantKeys are the keys of an app's grant, [apps.NAME], that a deployment has a use
// for.
var grantKeys = []string{
	"hosts", "prefix", "data_dir",
	"limits.timeout", "limits.memory", "limits.max_body", "limits.max_response",
	"limits.concurrency", "limits.queue", "limits.queue_timeout", "limits.open_files",
	"limits.scratch",
}

// grantKey splits a key of the server's file into an app's name and its grant key
// ("apps.django.limits.timeout" is django's "limits.timeout"); ok is false for the
// server's own keys.
func grantKey(key string) (app, grant string, ok bool) {
	rest, ok := strings.CutPrefix(key, "apps.")
	if !ok {
		return "", "", false
	}
	app, grant, _ = strings.Cut(rest, ".")
	return app, grant, true
}

// configFile is the server's TOML file from the ConfigMap, flattened to dotted keys.
type configFile struct {
	key    string // the ConfigMap's data key
	text   string
	values map[string]any
}

func serverConfig(t *testing.T, objs []object) configFile {
	t.Helper()
	d := the[*appsv1.Deployment](t, objs)
	cm := the[*corev1.ConfigMap](t, objs)
	c := serverContainer(t, d)
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("server args %q have no --config FILE", c.Args)
	}
	file := c.Args[i+1]
	// The file must come from the ConfigMap, through a volume mount.
	var key string
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			if v.ConfigMap.Name != cm.Name {
				t.Fatalf("volume %s mounts ConfigMap %q, deploy/ defines %q", v.Name, v.ConfigMap.Name, cm.Name)
			}
			key = rel
			for _, item := range v.ConfigMap.Items {
				if item.Path == rel {
					key = item.Key
				}
			}
		}
	}
	if key == "" {
		t.Fatalf("--config %s is not in a ConfigMap volume", file)
	}
	text, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q (the file --config %s)", cm.Name, key, file)
	}
	nested, err := toml.Parser().Unmarshal([]byte(text))
	if err != nil {
		t.Fatalf("ConfigMap %s key %s is not TOML: %v", cm.Name, key, err)
	}
	values := map[string]any{}
	var flatten func(prefix string, m map[string]any)
	flatten = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				flatten(prefix+k+".", sub)
			} else {
				values[prefix+k] = v
			}
		}
	}
	flatten("", nested)
	return configFile{key: key, text: text, values: values}
}

func (c configFile) str(t *testing.T, key string) string {
	t.Helper()
	s, ok := c.values[key].(string)
	if !ok {
		t.Fatalf("config: %s is not set to a string (%v)", key, c.values[key])
	}
	return s
}

func (c configFile) int(t *testing.T, key string) int {
	t.Helper()
	switch v := c.values[key].(type) {
	case int64:
		return int(v)
	case int:
		return v
	}
	t.Fatalf("config: %s is not set to an integer (%v)", key, c.values[key])
	return 0
}

func (c configFile) duration(t *testing.T, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(c.str(t, key))
	if err != nil {
		t.Fatalf("config: %s: %v", key, err)
	}
	return d
}

// size parses the server's sizes ("128MiB"); Kubernetes quantities use the same
// binary suffixes without the B.
func (c configFile) size(t *testing.T, key string) int64 {
	t.Helper()
	s := c.str(t, key)
	q, err := resource.ParseQuantity(strings.TrimSuffix(s, "B"))
	if err != nil {
		t.Fatalf("config: %s = %q: %v", key, s, err)
	}
	return q.Value()
}

func TestConfigMap(t *testing.T) {
	objs := loadAll(t)
	cfg := serverConfig(t, objs)
	for key := range cfg.values {
		if _, grant, ok := grantKey(key); ok {
			if !slices.Contains(grantKeys, grant) && !strings.HasPrefix(grant, "env.") {
				t.Errorf("config key %q is not a grant key %v", key, grantKeys)
			}
			continue
		}
		if !slices.Contains(serverKeys, key) {
			t.Errorf("config key %q is not a server key %v", key, serverKeys)
		}
	}
	d := the[*appsv1.Deployment](t, objs)
	c := serverContainer(t, d)

	// addr listens on every interface, on the port the container declares.
	addr := cfg.str(t, "addr")
	host, portText, ok := strings.Cut(addr, ":")
	port, err := strconv.Atoi(portText)
	if !ok || err != nil || strings.Contains(portText, ":") {
		t.Fatalf("addr %q is not host:port", addr)
	}
	if host != "" && host != "0.0.0.0" && host != "[::]" {
		t.Errorf("addr %q: the kubelet and the Service reach the pod on its own IP, listen on \":%d\"", addr, port)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return int(p.ContainerPort) == port }) {
		t.Errorf("addr port %d is not a container port of %s", port, c.Name)
	}

	// apps_dir and cache_dir are the apps and cache volumes, and the cache is writable.
	mountOf := func(dir string) (corev1.VolumeMount, bool) {
		for _, m := range c.VolumeMounts {
			if path.Clean(m.MountPath) == path.Clean(dir) {
				return m, true
			}
		}
		return corev1.VolumeMount{}, false
	}
	apps, ok := mountOf(cfg.str(t, "apps_dir"))
	if !ok {
		t.Errorf("apps_dir %s is not a volume mount", cfg.str(t, "apps_dir"))
	}
	cache, ok := mountOf(cfg.str(t, "cache_dir"))
	switch {
	case !ok:
		t.Errorf("cache_dir %s is not a volume mount (the root filesystem is read-only)", cfg.str(t, "cache_dir"))
	case cache.ReadOnly:
		t.Errorf("cache_dir %s is mounted read-only", cache.MountPath)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == cache.Name && v.EmptyDir == nil {
			t.Errorf("cache volume %s is not an emptyDir: pods would share or keep snapshots", v.Name)
		}
	}
	// data_root, where the granted data folders are made, is a writable volume outside
	// the apps volume.
	if _, ok := cfg.values["data_root"]; ok {
		data, ok := mountOf(cfg.str(t, "data_root"))
		switch {
		case !ok:
			t.Errorf("data_root %s is not a volume mount (the root filesystem is read-only)", cfg.str(t, "data_root"))
		case data.ReadOnly:
			t.Errorf("data_root %s is mounted read-only", data.MountPath)
		}
	}

	// The initContainer fills the apps volume and creates the mount points of the
	// volumes mounted inside it (the apps volume is read-only in the server, and in
	// the initContainers that run the server's commands after it).
	var filled bool
	for _, ic := range d.Spec.Template.Spec.InitContainers {
		for _, m := range ic.VolumeMounts {
			if m.Name != apps.Name || m.ReadOnly {
				continue
			}
			filled = true
			if len(ic.Args) < 2 || ic.Args[len(ic.Args)-1] != m.MountPath {
				t.Errorf("initContainer %s args %q do not copy into %s", ic.Name, ic.Args, m.MountPath)
			}
			for _, inner := range c.VolumeMounts {
				rel, ok := strings.CutPrefix(inner.MountPath, strings.TrimSuffix(apps.MountPath, "/")+"/")
				if !ok {
					continue
				}
				if !mkdirs(ic.Args)[rel] {
					t.Errorf("%s is mounted inside the apps volume but initContainer %s does not -mkdir %s", inner.MountPath, ic.Name, rel)
				}
			}
		}
	}
	if !filled {
		t.Errorf("no initContainer fills the apps volume %s", apps.Name)
	}
	if !apps.ReadOnly {
		t.Errorf("apps volume is writable by the server")
	}
}

// TestCommandInitContainers checks the initContainers that run a command of the server
// (wasmwsgi run, such as the django example's migrations): they run the server's image
// with its --config file, and see the apps, the data folders and the compilation cache
// where the server does, the apps read-only.
func TestCommandInitContainers(t *testing.T) {
	objs := loadAll(t)
	cfg := serverConfig(t, objs)
	d := the[*appsv1.Deployment](t, objs)
	server := serverContainer(t, d)
	flag := func(args []string, name string) string {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	mounts := func(c corev1.Container) map[string]corev1.VolumeMount {
		out := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			out[path.Clean(m.MountPath)] = m
		}
		return out
	}
	want := mounts(server)
	var commands int
	for _, ic := range d.Spec.Template.Spec.InitContainers {
		if len(ic.Args) == 0 || ic.Args[0] != "run" {
			continue
		}
		commands++
		if ic.Image != server.Image {
			t.Errorf("initContainer %s runs image %s, not the server's %s", ic.Name, ic.Image, server.Image)
		}
		if got := flag(ic.Args, "--config"); got != flag(server.Args, "--config") {
			t.Errorf("initContainer %s: --config %q, the server's is %q", ic.Name, got, flag(server.Args, "--config"))
		}
		have := mounts(ic)
		config := path.Dir(flag(server.Args, "--config"))
		for _, dir := range []string{config, cfg.str(t, "apps_dir"), cfg.str(t, "data_root"), cfg.str(t, "cache_dir")} {
			m, ok := have[path.Clean(dir)]
			switch {
			case !ok:
				t.Errorf("initContainer %s does not mount %s", ic.Name, dir)
			case m.Name != want[path.Clean(dir)].Name:
				t.Errorf("initContainer %s mounts volume %s at %s, the server volume %s", ic.Name, m.Name, dir, want[path.Clean(dir)].Name)
			case dir == cfg.str(t, "apps_dir") && !m.ReadOnly:
				t.Errorf("initContainer %s can write to the apps volume", ic.Name)
			case (dir == cfg.str(t, "data_root") || dir == cfg.str(t, "cache_dir")) && m.ReadOnly:
				t.Errorf("initContainer %s mounts %s read-only", ic.Name, dir)
			}
		}
	}
	if commands == 0 {
		t.Error("no initContainer runs the django example's migrations (wasmwsgi run django -- manage.py migrate)")
	}
}

// mkdirs returns the folders named by the -mkdir flags of copyapps' arguments.
func mkdirs(args []string) map[string]bool {
	out := map[string]bool{}
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "-mkdir="); ok {
			out[v] = true
		} else if a == "-mkdir" && i+1 < len(args) {
			out[args[i+1]] = true
		}
	}
	return out
}

func TestKustomization(t *testing.T) {
	objs := loadAll(t)
	k := the[*kustomization](t, objs)
	var want []string
	for _, f := range manifestFiles(t) {
		if path.Base(f) != "kustomization.yaml" {
			want = append(want, f)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want every manifest %v", got, want)
	}
}
