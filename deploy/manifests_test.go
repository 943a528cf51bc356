package deploy

import (
	"path"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// secretPlaceholder is the only value the Secret template may hold.
const secretPlaceholder = "REPLACE-ME"

// workload is a Deployment or StatefulSet reduced to what the checks need.
type workload struct {
	where    string
	name     string
	replicas int32 // most pods it runs at once without a rollout
	surge    int32 // extra pods during a rollout
	pvcs     []corev1.PersistentVolumeClaim
	tmpl     *corev1.PodTemplateSpec
}

func ofKind[T any](objs []object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.obj.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// workloads lists every pod-making object, with the HPA's maximum applied to
// the replica count of the Deployment it scales.
func workloads(objs []object) []workload {
	maxOf := map[string]int32{}
	for _, h := range ofKind[autoscalingv2.HorizontalPodAutoscaler](objs) {
		maxOf[h.Spec.ScaleTargetRef.Name] = h.Spec.MaxReplicas
	}
	var out []workload
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			out = append(out, deploymentWorkload(o.where, v, maxOf[v.Name]))
		case *appsv1.StatefulSet:
			out = append(out, workload{where: o.where, name: v.Name,
				replicas: deref(v.Spec.Replicas, 1), pvcs: v.Spec.VolumeClaimTemplates,
				tmpl: &v.Spec.Template})
		}
	}
	return out
}

func deploymentWorkload(where string, d *appsv1.Deployment, hpaMax int32) workload {
	w := workload{where: where, name: d.Name, replicas: max(deref(d.Spec.Replicas, 1), hpaMax),
		tmpl: &d.Spec.Template}
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		w.surge = int32(ru.MaxSurge.IntValue())
	}
	return w
}

func deref(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// isEnclave reports whether a container runs the enclave binary.
func isEnclave(c corev1.Container) bool {
	return strings.HasPrefix(c.Image, "enclave:")
}

func TestContainersHaveResourcesAndProbes(t *testing.T) {
	ws := workloads(loadObjects(t))
	if len(ws) < 4 {
		t.Fatalf("found %d workloads, want broker, runtime, its alternative and redis", len(ws))
	}
	for _, w := range ws {
		for _, c := range w.tmpl.Spec.Containers {
			checkResources(t, w.where+" "+c.Name, c.Resources)
			checkProbes(t, w.where+" "+c.Name, c)
		}
	}
}

func checkResources(t *testing.T, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		if req.IsZero() || lim.IsZero() {
			t.Errorf("%s: %s request %v and limit %v must both be set", where, name, &req, &lim)
			continue
		}
		if lim.Cmp(req) < 0 {
			t.Errorf("%s: %s limit %v below request %v", where, name, &lim, &req)
		}
	}
}

// checkProbes wants liveness and readiness everywhere, and on enclave
// containers HTTP probes on /healthz and /readyz at a declared port.
func checkProbes(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Errorf("%s: liveness and readiness probes are required", where)
		return
	}
	if !isEnclave(c) {
		return
	}
	checkHTTPProbe(t, where+" liveness", c, c.LivenessProbe, "/healthz")
	checkHTTPProbe(t, where+" readiness", c, c.ReadinessProbe, "/readyz")
	if c.StartupProbe != nil {
		checkHTTPProbe(t, where+" startup", c, c.StartupProbe, "/healthz")
	}
}

func checkHTTPProbe(t *testing.T, where string, c corev1.Container, p *corev1.Probe, want string) {
	t.Helper()
	g := p.HTTPGet
	if g == nil {
		t.Errorf("%s: not an HTTP probe", where)
		return
	}
	if g.Path != want {
		t.Errorf("%s: path %q, want %q", where, g.Path, want)
	}
	if containerPort(c, g.Port.String()) == 0 {
		t.Errorf("%s: port %s is not a port of the container", where, g.Port.String())
	}
}

// containerPort resolves a port name or number against the container's ports;
// 0 means it is not declared.
func containerPort(c corev1.Container, nameOrNumber string) int32 {
	for _, p := range c.Ports {
		if p.Name == nameOrNumber || strconv.Itoa(int(p.ContainerPort)) == nameOrNumber {
			return p.ContainerPort
		}
	}
	return 0
}

func TestEnclavePodsExposeMetrics(t *testing.T) {
	for _, w := range workloads(loadObjects(t)) {
		c, ok := enclaveContainer(w)
		if !ok {
			continue
		}
		a := w.tmpl.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "9464" ||
			a["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: scrape annotations %v", w.where, a)
		}
		if containerPort(c, "metrics") != 9464 {
			t.Errorf("%s: no container port \"metrics\" on 9464", w.where)
		}
	}
}

func enclaveContainer(w workload) (corev1.Container, bool) {
	for _, c := range w.tmpl.Spec.Containers {
		if isEnclave(c) {
			return c, true
		}
	}
	return corev1.Container{}, false
}

func TestBrokerRunsWithoutPrivileges(t *testing.T) {
	w := findWorkload(t, loadObjects(t), "enclave-broker", "broker.yaml")
	c, _ := enclaveContainer(w)
	if len(c.Args) == 0 || c.Args[0] != "broker" {
		t.Errorf("args %v, want the broker subcommand", c.Args)
	}
	if containerPort(c, "http") != 8080 {
		t.Error("no container port \"http\" on 8080")
	}
	checkUnprivileged(t, w.where, w.tmpl.Spec.SecurityContext, c.SecurityContext)
}

func TestRuntimeSecurityContexts(t *testing.T) {
	objs := loadObjects(t)
	tests := []struct {
		file       string
		privileged bool
	}{
		{"runtime.yaml", true},
		{"alternatives/runtime-unprivileged.yaml", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			w := findWorkload(t, objs, "enclave-runtime", tt.file)
			c, _ := enclaveContainer(w)
			if len(c.Args) == 0 || c.Args[0] != "runtime" {
				t.Errorf("args %v, want the runtime subcommand", c.Args)
			}
			sc := c.SecurityContext
			if tt.privileged && (sc == nil || sc.Privileged == nil || !*sc.Privileged) {
				t.Error("the cgroup-managing runtime must be privileged")
			}
			if !tt.privileged {
				checkUnprivileged(t, w.where, w.tmpl.Spec.SecurityContext, sc)
			}
		})
	}
}

// checkUnprivileged wants non-root, a read-only root, no privilege escalation
// and every capability dropped.
func checkUnprivileged(t *testing.T, where string, pod *corev1.PodSecurityContext,
	sc *corev1.SecurityContext) {
	t.Helper()
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
		t.Errorf("%s: pod must set runAsNonRoot", where)
	}
	if sc == nil {
		t.Fatalf("%s: container has no securityContext", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem is writable", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", where)
	}
	caps := sc.Capabilities
	if caps == nil || len(caps.Drop) != 1 || caps.Drop[0] != "ALL" || len(caps.Add) != 0 {
		t.Errorf("%s: capabilities %+v, want drop [ALL] and no add", where, caps)
	}
}

func findWorkload(t *testing.T, objs []object, name, file string) workload {
	t.Helper()
	for _, w := range workloads(objs) {
		if w.name == name && strings.HasPrefix(w.where, path.Join(k8sDir, file)+"#") {
			return w
		}
	}
	t.Fatalf("no workload %s in %s", name, file)
	return workload{}
}

func TestSecretIsOnlyATemplate(t *testing.T) {
	objs := loadObjects(t)
	keys := map[string]bool{}
	for _, s := range ofKind[corev1.Secret](objs) {
		if len(s.Data) > 0 {
			t.Errorf("secret %s: data must stay empty in the template", s.Name)
		}
		for k, v := range s.StringData {
			if v != secretPlaceholder {
				t.Errorf("secret %s: %s holds a value, want %q", s.Name, k, secretPlaceholder)
			}
			keys[s.Name+"/"+k] = true
		}
	}
	for _, w := range workloads(objs) {
		for _, ref := range secretRefs(w) {
			if !keys[ref] {
				t.Errorf("%s: refers to secret key %s, which the template lacks", w.where, ref)
			}
		}
	}
}

func secretRefs(w workload) []string {
	var refs []string
	for _, c := range w.tmpl.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				r := e.ValueFrom.SecretKeyRef
				refs = append(refs, r.Name+"/"+r.Key)
			}
		}
	}
	return refs
}

func TestServicesSelectPodsAndPorts(t *testing.T) {
	objs := loadObjects(t)
	for _, s := range ofKind[corev1.Service](objs) {
		matched := matchingWorkloads(workloads(objs), s.Spec.Selector)
		if len(matched) == 0 {
			t.Errorf("service %s selects no pods", s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			if !anyHasPort(matched, p.TargetPort.String()) {
				t.Errorf("service %s: target port %s is not a container port", s.Name,
					p.TargetPort.String())
			}
		}
	}
}

func matchingWorkloads(ws []workload, selector map[string]string) []workload {
	var out []workload
	for _, w := range ws {
		if len(selector) > 0 && labelsMatch(w.tmpl.Labels, selector) {
			out = append(out, w)
		}
	}
	return out
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func anyHasPort(ws []workload, port string) bool {
	for _, w := range ws {
		for _, c := range w.tmpl.Spec.Containers {
			if containerPort(c, port) != 0 {
				return true
			}
		}
	}
	return false
}

func TestDisruptionBudgetsAndAutoscaler(t *testing.T) {
	objs := loadObjects(t)
	ws := workloads(objs)
	minAvail := map[string]int{}
	for _, p := range ofKind[policyv1.PodDisruptionBudget](objs) {
		m := matchingWorkloads(ws, p.Spec.Selector.MatchLabels)
		if len(m) == 0 {
			t.Errorf("pdb %s selects no pods", p.Name)
			continue
		}
		minAvail[m[0].name] = p.Spec.MinAvailable.IntValue()
	}
	hpas := ofKind[autoscalingv2.HorizontalPodAutoscaler](objs)
	if len(hpas) != 1 {
		t.Fatalf("found %d autoscalers, want 1", len(hpas))
	}
	checkAutoscaler(t, hpas[0], ws, minAvail)
}

// checkAutoscaler wants the runtimes scaled on CPU and on runs in flight, and
// a minimum above the disruption budget so a node drain can always proceed.
func checkAutoscaler(t *testing.T, h *autoscalingv2.HorizontalPodAutoscaler, ws []workload,
	minAvail map[string]int) {
	t.Helper()
	ref := h.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != "enclave-runtime" {
		t.Errorf("hpa scales %s/%s, want Deployment/enclave-runtime", ref.Kind, ref.Name)
	}
	if int(deref(h.Spec.MinReplicas, 1)) <= minAvail[ref.Name] {
		t.Errorf("hpa minReplicas %d must exceed the pdb's minAvailable %d",
			deref(h.Spec.MinReplicas, 1), minAvail[ref.Name])
	}
	var cpu, active bool
	for _, m := range h.Spec.Metrics {
		cpu = cpu || m.Resource != nil && m.Resource.Name == corev1.ResourceCPU
		active = active || m.Pods != nil && m.Pods.Metric.Name == "enclave_active_executions"
	}
	if !cpu || !active {
		t.Errorf("hpa metrics: cpu %v, enclave_active_executions %v; want both", cpu, active)
	}
}

func TestIngressRoutesToBrokerWithAffinity(t *testing.T) {
	objs := loadObjects(t)
	ings := ofKind[networkingv1.Ingress](objs)
	if len(ings) != 1 {
		t.Fatalf("found %d ingresses, want 1", len(ings))
	}
	ing := ings[0]
	want := map[string]string{
		"nginx.ingress.kubernetes.io/affinity":        "cookie",
		"nginx.ingress.kubernetes.io/proxy-buffering": "off",
	}
	for k, v := range want {
		if ing.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, ing.Annotations[k], v)
		}
	}
	if ing.Annotations["nginx.ingress.kubernetes.io/session-cookie-name"] == "" {
		t.Error("no session cookie name")
	}
	checkIngressBackends(t, ing, ofKind[corev1.Service](objs))
}

func checkIngressBackends(t *testing.T, ing *networkingv1.Ingress, svcs []*corev1.Service) {
	t.Helper()
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			if b == nil || b.Name != "enclave-broker" || !serviceHasPort(svcs, b) {
				t.Errorf("ingress path %s: backend %+v is not a port of enclave-broker", p.Path, b)
			}
		}
	}
}

func serviceHasPort(svcs []*corev1.Service, b *networkingv1.IngressServiceBackend) bool {
	for _, s := range svcs {
		if s.Name != b.Name {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.Name == b.Port.Name || p.Port == b.Port.Number {
				return true
			}
		}
	}
	return false
}
