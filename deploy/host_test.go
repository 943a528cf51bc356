package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// unitDirectives reads a systemd unit into key -> values (a key may repeat).
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t, "enclave.service")
	want := map[string]string{
		"Type":                 "exec",
		"ExecStart":            "/usr/local/bin/enclave serve --config /etc/enclave/enclave.yaml",
		"ExecReload":           "/bin/kill -HUP $MAINPID",
		"RuntimeDirectory":     "enclave",
		"RuntimeDirectoryMode": "0750",
		"KillMode":             "mixed",
		"Delegate":             "yes",
		"TimeoutStopSec":       "45s",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want %q", k, got, v)
		}
	}
	// Each of these makes /sys/fs/cgroup read-only and breaks the per-worker
	// cgroups, however tempting as hardening.
	for _, k := range []string{"ProtectControlGroups", "ProtectKernelTunables"} {
		if got := d[k]; len(got) > 0 && got[0] != "no" {
			t.Errorf("%s = %v would make the cgroup tree read-only", k, got)
		}
	}
}

// TestSystemdAnalyzeVerify lets systemd itself check the unit's syntax. The
// only complaint allowed is the binary not being installed on this machine.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; unit syntax not verified by systemd")
	}
	out, _ := exec.Command(sa, "verify", "./enclave.service").CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "/usr/local/bin/enclave is not executable") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}

func TestDockerfileBuildsStaticBinary(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"CGO_ENABLED=0 go build -trimpath",
		"./cmd/enclave",
		"COPY --from=build /out/enclave /usr/local/bin/enclave",
		`ENTRYPOINT ["/usr/local/bin/enclave"]`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
