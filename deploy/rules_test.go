package deploy

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	rulesFile     = "prometheus-rules.yaml"
	rulesTestFile = "prometheus-rules.test.yaml"
)

// wantAlerts are the alerts operators are promised, with their severity.
var wantAlerts = map[string]string{
	"HighExecutionLatency": "warning",
	"QueueBacklog":         "warning",
	"RuntimeUnhealthy":     "critical",
	"WorkerMemoryKills":    "warning",
	"WorkerRestartsHigh":   "warning",
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// promtool returns the path of Prometheus's checker or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package \"prometheus\"); alert rules not checked")
	}
	return p
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "check", "rules", rulesFile)
}

// TestPromtoolTestRules runs the unit tests that make each alert fire on
// sample series and stay silent on harmless ones.
func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, "test", "rules", rulesTestFile)
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool %s printed no SUCCESS:\n%s", strings.Join(args, " "), out)
	}
}

func TestAlertsHaveSeverityAndText(t *testing.T) {
	rules := loadRules(t)
	var names []string
	for _, r := range rules {
		names = append(names, r.Alert)
		if want, ok := wantAlerts[r.Alert]; ok && r.Labels["severity"] != want {
			t.Errorf("%s: severity %q, want %q", r.Alert, r.Labels["severity"], want)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs summary and description annotations", r.Alert)
		}
		if r.For == "" {
			t.Errorf("%s: no `for`, it would page on a single scrape", r.Alert)
		}
	}
	for name := range wantAlerts {
		if !slices.Contains(names, name) {
			t.Errorf("alert %s missing", name)
		}
	}
}

// TestEveryAlertIsExercised wants each alert named in the promtool test file
// both with an expected firing alert and with an expected silence.
func TestEveryAlertIsExercised(t *testing.T) {
	data, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			fires[a.Alertname] = fires[a.Alertname] || len(a.ExpAlerts) > 0
			silent[a.Alertname] = silent[a.Alertname] || len(a.ExpAlerts) == 0
		}
	}
	for name := range wantAlerts {
		if !fires[name] || !silent[name] {
			t.Errorf("%s: fires %v, silent %v in %s; want both", name, fires[name],
				silent[name], rulesTestFile)
		}
	}
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}
