package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goBuild builds a package of this module into dir and returns the binary.
func goBuild(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// codemodeConfig writes the code-mode example's config with its server command
// pointing at a freshly built tracker-server.
func codemodeConfig(t *testing.T, dir string) string {
	t.Helper()
	server := goBuild(t, dir, "../../examples/codemode/tracker-server", "tracker-server")
	b, err := os.ReadFile("../../examples/codemode/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), `"bin/tracker-server"`, `"`+server+`"`, 1)
	text = strings.Replace(text, "socket: /tmp/enclave-codemode.sock", "socket: "+filepath.Join(dir, "enclave.sock"), 1)
	if text == string(b) {
		t.Fatal("example config no longer names bin/tracker-server")
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestToolsGolden(t *testing.T) {
	cfg := codemodeConfig(t, t.TempDir())
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"tools", "--config", cfg}, stdio{out: &out, err: &errOut})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	golden := filepath.Join("testdata", "tools-codemode.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out.String() != string(want) {
		t.Fatalf("enclave tools output differs from %s (run with -update to accept):\n%s", golden, out.String())
	}
}

func TestToolsReportsDeadServer(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := "tools:\n  - name: \"x:*\"\n    mcp: { command: [\"" + filepath.Join(dir, "missing") + "\"], prefix: \"x:\" }\n" +
		"  - name: ping\n    description: Answers pong.\n    exec: { command: [\"true\"] }\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"tools", "--config", cfg}, stdio{out: &out, err: &errOut})
	if code != 1 || !strings.Contains(out.String(), `/** Answers pong. */`) ||
		!strings.Contains(out.String(), "// unavailable: mcp server x:*") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
}
