package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// k8sDir holds the Kubernetes manifests; every file below it is checked.
const k8sDir = "k8s"

// typedKinds maps "apiVersion/kind" to a constructor of the real API type the
// document must decode into. A kind missing here and from skippedKinds fails.
var typedKinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ResourceQuota":                       func() any { return &corev1.ResourceQuota{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
}

// skippedKinds are custom resources whose types k8s.io/api does not have; they
// are decoded loosely and only their header is checked.
var skippedKinds = map[string]string{
	"monitoring.coreos.com/v1/ServiceMonitor": "Prometheus Operator CRD, not in k8s.io/api",
}

// object is one decoded document of a manifest file.
type object struct {
	where string // file:document, for messages
	file  string // path relative to k8sDir
	kind  string // apiVersion/kind
	head  typeHeader
	obj   any // pointer to the typed API struct, nil for skipped kinds
}

// typeHeader is what every document starts with.
type typeHeader struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadObjects(t)
	if len(objs) < 12 {
		t.Fatalf("decoded %d documents, want the full set (>= 12)", len(objs))
	}
	seen := map[string]bool{}
	for _, o := range objs {
		seen[o.kind] = true
	}
	for kind := range typedKinds {
		if !seen[kind] {
			t.Errorf("no manifest of kind %s", kind)
		}
	}
}

// TestStrictDecodingCatchesMistakes proves the decoder the other tests rely on
// refuses what the API server would refuse, so a green run means something.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {portz: []}\n"},
		{"wrong case", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterip: None}\n"},
		{"duplicate key", "apiVersion: v1\nkind: Service\nmetadata: {name: a, name: b}\n"},
		{"unknown kind", "apiVersion: v1\nkind: Servise\nmetadata: {name: a}\n"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: two}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeDocument([]byte(tt.doc)); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
}

func TestManifestHeaders(t *testing.T) {
	for _, o := range loadObjects(t) {
		h := o.head
		if h.Metadata.Name == "" {
			t.Errorf("%s: metadata.name is empty", o.where)
		}
		wantNS := "enclave"
		if o.kind == "v1/Namespace" {
			wantNS = ""
		}
		if h.Metadata.Namespace != wantNS {
			t.Errorf("%s: namespace %q, want %q", o.where, h.Metadata.Namespace, wantNS)
		}
	}
}

// loadObjects reads every YAML file under k8sDir, splits it into documents
// and decodes each strictly into its typed API struct.
func loadObjects(t *testing.T) []object {
	t.Helper()
	var objs []object
	err := filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isYAML(path) {
			return err
		}
		more, err := loadFile(path)
		objs = append(objs, more...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func isYAML(path string) bool {
	return strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")
}

// loadFile decodes each non-empty document of one manifest file.
func loadFile(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(k8sDir, path)
	var objs []object
	for i, doc := range splitDocuments(data) {
		where := fmt.Sprintf("%s#%d", path, i)
		o, err := decodeDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		o.where, o.file = where, rel
		objs = append(objs, o)
	}
	return objs, nil
}

// splitDocuments cuts a multi-document YAML stream at "---" lines and drops
// documents holding nothing but comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " \t") == "---" {
			flush()
			continue
		}
		cur.WriteString(sc.Text() + "\n")
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		s := strings.TrimSpace(line)
		if s != "" && !strings.HasPrefix(s, "#") {
			return true
		}
	}
	return false
}

// decodeDocument converts one YAML document to JSON (duplicate keys refused)
// and decodes it the way the API server does: case-sensitive field names,
// unknown and duplicate fields refused.
func decodeDocument(doc []byte) (object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("yaml: %w", err)
	}
	var h typeHeader
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &h); err != nil {
		return object{}, fmt.Errorf("header: %w", err)
	}
	kind := h.APIVersion + "/" + h.Kind
	if _, ok := skippedKinds[kind]; ok {
		return object{kind: kind, head: h}, nil
	}
	newObj, ok := typedKinds[kind]
	if !ok {
		return object{}, fmt.Errorf("unknown kind %s", kind)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return object{}, fmt.Errorf("decode %s: %w", kind, err)
	}
	if len(strict) > 0 {
		return object{}, fmt.Errorf("decode %s: %v", kind, strict)
	}
	return object{kind: kind, head: h, obj: obj}, nil
}
