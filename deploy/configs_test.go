package deploy

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// exampleConfigs are the standalone config files of this folder.
var exampleConfigs = []string{"enclave.yaml", "broker.yaml", "runtime.yaml"}

// anyValue marks a key whose value is free-form (a scalar, a list of scalars or a
// map with keys of the user's choosing).
var anyValue = struct{}{}

// configSchema is the tree of config keys the daemon, broker and runtime
// accept (limits.Config). A map is a section, a one-element slice a list of
// such sections, anyValue a leaf. It lets these tests catch a misspelt key
// without depending on the limits package; config_test.go checks the same
// files against the real parser.
var configSchema = map[string]any{
	"socket": anyValue,
	"socketAccess": map[string]any{
		"owner": anyValue, "group": anyValue, "mode": anyValue,
		"allowUids": anyValue, "allowGids": anyValue,
	},
	"securityLevel": anyValue,
	"pool": map[string]any{
		"size": anyValue, "minWorkers": anyValue, "maxWorkerMemory": anyValue,
		"maxExecutionsPerWorker": anyValue, "idleTimeout": anyValue,
		"maxQueueSize": anyValue, "queueTimeout": anyValue, "maxPendingToolCalls": anyValue,
	},
	"limits": map[string]any{
		"timeout": anyValue, "maxIterations": anyValue, "maxToolCalls": anyValue,
		"maxConsoleCalls": anyValue, "maxConsoleOutputBytes": anyValue,
	},
	"toolPolicy": map[string]any{"allow": anyValue, "deny": anyValue},
	"tools": []any{map[string]any{
		"name": anyValue, "description": anyValue, "inputSchema": anyValue,
		"http": map[string]any{"url": anyValue, "timeout": anyValue, "headers": anyValue},
		"exec": map[string]any{
			"command": anyValue, "timeout": anyValue, "env": anyValue, "dir": anyValue,
		},
		"mcp": map[string]any{
			"command": anyValue, "url": anyValue, "env": anyValue, "headers": anyValue,
			"prefix": anyValue, "timeout": anyValue,
		},
	}},
	"metrics": map[string]any{"listen": anyValue},
	"log":     map[string]any{"level": anyValue, "format": anyValue},
	"listen":  anyValue,
	"apiKeys": anyValue,
	"redis": map[string]any{
		"addrs": anyValue, "masterName": anyValue, "password": anyValue, "db": anyValue,
	},
	"maxConcurrentSessions": anyValue,
	"sessionTimeout":        anyValue,
	"routingRules":          []any{map[string]any{"match": anyValue, "target": anyValue}},
	"labels":                anyValue,
	"runtimeId":             anyValue,
}

// configFile is one config text with the name it is reported under.
type configFile struct {
	name string
	data []byte
}

// allConfigs returns the example files and every config embedded in a
// ConfigMap of the manifests.
func allConfigs(t *testing.T) []configFile {
	t.Helper()
	var out []configFile
	for _, name := range exampleConfigs {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, configFile{name, data})
	}
	for _, cm := range ofKind[corev1.ConfigMap](loadObjects(t)) {
		for key, text := range cm.Data {
			out = append(out, configFile{"configmap " + cm.Name + "/" + key, []byte(text)})
		}
	}
	return out
}

func TestConfigsUseKnownKeys(t *testing.T) {
	configs := allConfigs(t)
	if len(configs) != len(exampleConfigs)+2 {
		t.Fatalf("found %d configs, want the examples and the broker and runtime ConfigMaps",
			len(configs))
	}
	for _, c := range configs {
		tree := decodeConfig(t, c)
		for _, p := range unknownKeys("", tree, configSchema) {
			t.Errorf("%s: unknown key %s", c.name, p)
		}
	}
}

// TestSchemaCatchesMisspeltKeys shows the key check has teeth.
func TestSchemaCatchesMisspeltKeys(t *testing.T) {
	tests := []struct{ doc, want string }{
		{"pool: {sise: 3}", "pool.sise"},
		{"tools: [{name: a, exec: {cmd: [cat]}}]", "tools[0].exec.cmd"},
		{"routingRules: [{match: {a: b}, targets: {}}]", "routingRules[0].targets"},
		{"metrics: {listen: x}\nLog: {}", "Log"},
	}
	for _, tt := range tests {
		tree := decodeConfig(t, configFile{tt.want, []byte(tt.doc)})
		got := unknownKeys("", tree, configSchema)
		if !slices.Equal(got, []string{tt.want}) {
			t.Errorf("%q: unknown keys %v, want [%s]", tt.doc, got, tt.want)
		}
	}
}

// TestEnclaveYAMLListsEveryKey holds the reference example to its promise:
// every key appears, so an operator can read all options in one place.
func TestEnclaveYAMLListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("enclave.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree := decodeConfig(t, configFile{"enclave.yaml", data})
	for _, p := range missingKeys("", tree, configSchema) {
		t.Errorf("enclave.yaml does not show key %s", p)
	}
}

func decodeConfig(t *testing.T, c configFile) map[string]any {
	t.Helper()
	var tree map[string]any
	if err := yaml.Unmarshal(c.data, &tree); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return tree
}

// unknownKeys walks a decoded config along the schema and returns the dotted
// path of every key the schema does not have, sorted.
func unknownKeys(prefix string, value any, schema any) []string {
	var out []string
	switch s := schema.(type) {
	case map[string]any:
		m, _ := value.(map[string]any)
		for k, v := range m {
			sub, ok := s[k]
			if !ok {
				out = append(out, prefix+k)
				continue
			}
			out = append(out, unknownKeys(prefix+k+".", v, sub)...)
		}
	case []any:
		list, _ := value.([]any)
		for i, v := range list {
			p := fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i)
			out = append(out, unknownKeys(p, v, s[0])...)
		}
	}
	slices.Sort(out)
	return out
}

// missingKeys returns the schema keys the config does not show. A list counts
// as shown when it is empty (its default) or when its items together show
// every key of the item schema.
func missingKeys(prefix string, value any, schema any) []string {
	var out []string
	switch s := schema.(type) {
	case map[string]any:
		m, _ := value.(map[string]any)
		for k, sub := range s {
			v, ok := m[k]
			if !ok {
				out = append(out, prefix+k)
				continue
			}
			out = append(out, missingKeys(prefix+k+".", v, sub)...)
		}
	case []any:
		list, _ := value.([]any)
		if len(list) > 0 {
			out = append(out, missingKeys(prefix, mergeItems(list), s[0])...)
		}
	}
	slices.Sort(out)
	return out
}

// mergeItems folds a list of sections into one, so that each key of an item
// schema needs to appear in one item only (a tool is http, exec or mcp).
func mergeItems(list []any) map[string]any {
	merged := map[string]any{}
	for _, item := range list {
		m, _ := item.(map[string]any)
		for k, v := range m {
			if old, ok := merged[k].(map[string]any); ok {
				if sub, ok := v.(map[string]any); ok {
					v = mergeItems([]any{old, sub})
				}
			}
			merged[k] = v
		}
	}
	return merged
}

func TestConfigMapsMountedWhereTheArgsPoint(t *testing.T) {
	objs := loadObjects(t)
	for _, w := range workloads(objs) {
		c, ok := enclaveContainer(w)
		if !ok {
			continue
		}
		if _, err := mountedConfig(objs, w, c); err != nil {
			t.Errorf("%s: %v", w.where, err)
		}
	}
}

// mountedConfig follows a container's --config argument through its volume
// mount to the ConfigMap key that holds the file, and returns the text.
func mountedConfig(objs []object, w workload, c corev1.Container) (string, error) {
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		return "", fmt.Errorf("args %v have no --config FILE", c.Args)
	}
	dir, file := path.Split(c.Args[i+1])
	cmName, err := configMapAt(w, c, path.Clean(dir))
	if err != nil {
		return "", err
	}
	for _, cm := range ofKind[corev1.ConfigMap](objs) {
		if text, ok := cm.Data[file]; ok && cm.Name == cmName {
			return text, nil
		}
	}
	return "", fmt.Errorf("configmap %s has no key %s", cmName, file)
}

// configMapAt names the ConfigMap volume mounted at dir.
func configMapAt(w workload, c corev1.Container, dir string) (string, error) {
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for _, v := range w.tmpl.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				return v.ConfigMap.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no configmap volume mounted at %s", dir)
}

// byteSizeRE reads the config's sizes: a number and an optional binary unit.
var byteSizeRE = regexp.MustCompile(`^(\d+)\s*(KiB|MiB|GiB|KB|MB|GB)?$`)

func parseByteSize(s string) (int64, error) {
	m := byteSizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "KiB": 10, "KB": 10, "MiB": 20, "MB": 20, "GiB": 30, "GB": 30}
	return n << shift[m[2]], err
}

// runtimeHeadroom is the least memory a runtime pod must request beyond its
// workers' caps, for the runtime process itself.
const runtimeHeadroom = 128 << 20

// TestRuntimeMemoryCoversThePool checks that the pod's memory request holds
// every worker at its cap plus the runtime, and the limit sits above it, so a
// worker's own cap fires before the kernel kills the whole pod.
func TestRuntimeMemoryCoversThePool(t *testing.T) {
	objs := loadObjects(t)
	runtimes := 0
	for _, w := range workloads(objs) {
		c, ok := enclaveContainer(w)
		if !ok || w.name != "enclave-runtime" {
			continue
		}
		runtimes++
		workers := poolMemory(t, objs, w, c)
		req, lim := c.Resources.Requests.Memory().Value(), c.Resources.Limits.Memory().Value()
		if req < workers+runtimeHeadroom {
			t.Errorf("%s: memory request %d < workers %d + headroom %d", w.where, req,
				workers, runtimeHeadroom)
		}
		if lim <= req {
			t.Errorf("%s: memory limit %d leaves no room above the request %d", w.where, lim, req)
		}
	}
	if runtimes != 2 {
		t.Fatalf("checked %d runtime deployments, want 2", runtimes)
	}
}

// poolMemory is pool.size x pool.maxWorkerMemory of the mounted config.
func poolMemory(t *testing.T, objs []object, w workload, c corev1.Container) int64 {
	t.Helper()
	text, err := mountedConfig(objs, w, c)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Pool struct {
			Size            int64  `yaml:"size"`
			MaxWorkerMemory string `yaml:"maxWorkerMemory"`
		} `yaml:"pool"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	per, err := parseByteSize(cfg.Pool.MaxWorkerMemory)
	if err != nil || cfg.Pool.Size == 0 {
		t.Fatalf("%s: pool.size %d, maxWorkerMemory %q: %v", w.where, cfg.Pool.Size,
			cfg.Pool.MaxWorkerMemory, err)
	}
	return cfg.Pool.Size * per
}

// TestQuotaCoversMaxScale adds up what every workload claims at full scale
// (the HPA's maximum plus a rollout's surge pod) and checks the quota admits
// it. A workload defined twice (the runtime and its alternative) counts with
// the larger of its variants.
func TestQuotaCoversMaxScale(t *testing.T) {
	objs := loadObjects(t)
	quotas := ofKind[corev1.ResourceQuota](objs)
	if len(quotas) != 1 {
		t.Fatalf("found %d quotas, want 1", len(quotas))
	}
	need := map[string]corev1.ResourceList{}
	for _, w := range workloads(objs) {
		need[w.name] = maxList(need[w.name], claims(w))
	}
	total := corev1.ResourceList{}
	for _, l := range need {
		total = addList(total, l)
	}
	for name, want := range total {
		got, ok := quotas[0].Spec.Hard[name]
		if !ok || got.Cmp(want) < 0 {
			t.Errorf("quota %s = %v, full scale needs %v", name, &got, &want)
		}
	}
}

// claims is what one workload counts against a quota at full scale.
func claims(w workload) corev1.ResourceList {
	pods := int64(w.replicas + w.surge)
	l := corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(pods, resource.DecimalSI)}
	for _, c := range w.tmpl.Spec.Containers {
		for name, q := range c.Resources.Requests {
			l = addList(l, corev1.ResourceList{"requests." + name: times(q, pods)})
		}
		for name, q := range c.Resources.Limits {
			l = addList(l, corev1.ResourceList{"limits." + name: times(q, pods)})
		}
	}
	for _, pvc := range w.pvcs {
		n := int64(w.replicas)
		l = addList(l, corev1.ResourceList{
			corev1.ResourcePersistentVolumeClaims: *resource.NewQuantity(n, resource.DecimalSI),
			corev1.ResourceRequestsStorage:        times(pvc.Spec.Resources.Requests[corev1.ResourceStorage], n),
		})
	}
	return l
}

func times(q resource.Quantity, n int64) resource.Quantity {
	return *resource.NewMilliQuantity(q.MilliValue()*n, q.Format)
}

func addList(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	for name, q := range b {
		sum := out[name]
		sum.Add(q)
		out[name] = sum
	}
	return out
}

func maxList(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for name, q := range b {
		if cur, ok := out[name]; !ok || cur.Cmp(q) < 0 {
			out[name] = q
		}
	}
	return out
}
