package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
)

// The test binary is also the worker: the daemon under test starts os.Executable()
// with the hidden "worker" argument, exactly as the real binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(runWorker())
	}
	if cfg := os.Getenv("ENCLAVE_TEST_SERVE"); cfg != "" {
		// The test binary as a whole daemon process, for signal tests.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Run(ctx, []string{"serve", "--config", cfg}, stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type daemon struct {
	socket string
	stop   func()
}

// startDaemon runs the real serve path in-process on a socket in a temp dir.
func startDaemon(t *testing.T, edit func(*limits.Config)) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "enc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := limits.Default()
	cfg.Socket = filepath.Join(dir, "enclave.sock")
	cfg.Pool.Size, cfg.Pool.MinWorkers = 2, 1
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, "", slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	waitForSocket(t, cfg.Socket, done)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return &daemon{socket: cfg.Socket, stop: stop}
}

func waitForSocket(t *testing.T, path string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("daemon exited: %v", err)
		default:
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("daemon socket never came up")
}

func (d *daemon) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
		},
	}}
}

// runCLI runs `enclave args...` in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Run(ctx, args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// exampleTool builds the examples' tool program once per test.
func exampleTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "exampletool")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/exampletool")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build exampletool: %v\n%s", err, out)
	}
	return bin
}

// Each example prints its expected value through `enclave run`, with its tools
// answered by the client (--tool).
func TestExamples(t *testing.T) {
	d := startDaemon(t, nil)
	tool := exampleTool(t)
	t.Setenv("EXAMPLE_DATA", filepath.Join(repoRoot(t), "examples", "data"))
	names := []string{"customers", "orders", "catalog", "search", "inventory", "warehouse"}
	examples, _ := filepath.Glob(filepath.Join(repoRoot(t), "examples", "*.js"))
	if len(examples) < 4 {
		t.Fatalf("found %d examples", len(examples))
	}
	for _, file := range examples {
		t.Run(filepath.Base(file), func(t *testing.T) {
			args := []string{"run", "--socket", d.socket}
			for _, n := range names {
				args = append(args, "--tool", n+"="+tool+" "+n)
			}
			code, out, errOut := runCLI(t, append(args, file)...)
			want, err := os.ReadFile(strings.TrimSuffix(file, ".js") + ".expected.json")
			if err != nil {
				t.Fatal(err)
			}
			if code != 0 || strings.TrimSpace(out) != strings.TrimSpace(string(want)) {
				t.Fatalf("exit %d\nstdout %s\nstderr %s\nwant %s", code, out, errOut, want)
			}
		})
	}
}

// The same examples with the tools served by the daemon itself (exec tools).
func TestExampleWithDaemonTools(t *testing.T) {
	tool := exampleTool(t)
	d := startDaemon(t, func(c *limits.Config) {
		for _, n := range []string{"inventory", "warehouse"} {
			c.Tools = append(c.Tools, limits.Tool{Name: n, Exec: &limits.ExecTool{Command: []string{tool, n}, Timeout: limits.Duration(5 * time.Second)}})
		}
	})
	code, out, errOut := runCLI(t, "run", "--socket", d.socket, filepath.Join(repoRoot(t), "examples", "fallback.js"))
	if code != 0 || !strings.Contains(out, `"source":"warehouse"`) || !strings.Contains(errOut, "maintenance") {
		t.Fatalf("exit %d stdout %s stderr %s", code, out, errOut)
	}
}

func TestRunFailurePrintsCode(t *testing.T) {
	d := startDaemon(t, nil)
	script := filepath.Join(t.TempDir(), "bad.js")
	_ = os.WriteFile(script, []byte("const a = 1;\nthrow new Error('boom');"), 0o644)
	code, _, errOut := runCLI(t, "run", "--socket", d.socket, script)
	if code == 0 || !strings.HasPrefix(errOut, "SCRIPT_ERROR: ") || !strings.Contains(errOut, "boom") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
}

// A raw POST streams session_init ... final as NDJSON.
func TestStreamOverSocket(t *testing.T) {
	d := startDaemon(t, nil)
	resp, err := d.http().Post("http://enclave/v1/sessions", "application/json",
		strings.NewReader(`{"code":"console.log('hi'); return 6 * 7"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var types []string
	var last api.Event
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if last.Type != api.EventHeartbeat {
			types = append(types, string(last.Type))
		}
	}
	if strings.Join(types, ",") != "session_init,stdout,final" {
		t.Fatalf("events %v", types)
	}
	var final api.FinalPayload
	_ = json.Unmarshal(last.Payload, &final)
	if string(final.Result) != "42" {
		t.Fatalf("result %s", final.Result)
	}
}

func TestBadRequests(t *testing.T) {
	d := startDaemon(t, nil)
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"malformed", "POST", "/v1/sessions", `{"code":`, 400},
		{"unknown field", "POST", "/v1/sessions", `{"code":"1","bogus":1}`, 400},
		{"empty body", "POST", "/v1/sessions", ``, 400},
		{"empty code", "POST", "/v1/sessions", `{"code":""}`, 400},
		{"oversized", "POST", "/v1/sessions", `{"code":"` + strings.Repeat("x", 6<<20) + `"}`, 413},
		{"script over the size budget", "POST", "/v1/sessions", `{"code":"` + strings.Repeat("x", 200<<10) + `"}`, 200},
		{"loosening level", "POST", "/v1/sessions", `{"code":"1","securityLevel":"PERMISSIVE"}`, 400},
		{"unknown session", "GET", "/v1/sessions/nope/events", ``, 404},
		{"result for nothing", "POST", "/v1/sessions/nope/tool-result", `{"callId":"c1","result":1}`, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://enclave"+tc.path, strings.NewReader(tc.body))
			resp, err := d.http().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e api.ErrorPayload
			_ = json.Unmarshal(body, &e)
			if tc.status == 200 {
				// Refused by the pre-scan: the stream's error event says why.
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"code":"VALIDATION_ERROR"`) {
					t.Fatalf("status %d body %.200s", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != tc.status || e.Code == "" {
				t.Fatalf("status %d code %q, want %d with a code", resp.StatusCode, e.Code, tc.status)
			}
		})
	}
	// The daemon is still serving.
	c, _ := client.New(client.Options{Socket: d.socket})
	res, err := c.Execute(context.Background(), client.ExecuteOptions{Request: api.CreateRequest{Code: "return 1"}})
	if err != nil || string(res.Value) != "1" {
		t.Fatalf("after bad requests: %v %v", res, err)
	}
}

// Shutdown removes the socket and leaves no worker process behind.
func TestShutdownCleansUp(t *testing.T) {
	d := startDaemon(t, nil)
	if code, out, errOut := runCLI(t, "run", "--socket", d.socket, "-"); code == 0 {
		t.Fatalf("empty script should fail: %s %s", out, errOut)
	}
	d.stop()
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Fatalf("socket still there: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(children()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if left := children(); len(left) > 0 {
		t.Fatalf("worker processes left: %v", left)
	}
}

func children() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	self := fmt.Sprint(os.Getpid())
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat))
		if len(f) > 3 && f[3] == self && f[2] != "Z" {
			out = append(out, e.Name())
		}
	}
	return out
}

// GET /v1/tools describes the daemon's tools as JSON, and as text for a prompt.
func TestToolsRoute(t *testing.T) {
	d := startDaemon(t, func(c *limits.Config) {
		c.Tools = []limits.Tool{{Name: "weather:today", Description: "Today's forecast for a city.",
			InputSchema: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
			Exec:        &limits.ExecTool{Command: []string{"cat"}, Timeout: limits.Duration(time.Second)}}}
	})
	get := func(path string) string {
		resp, err := d.http().Get("http://x" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	var cat struct {
		Tools        []struct{ Name string } `json:"tools"`
		Declarations string                  `json:"declarations"`
	}
	if err := json.Unmarshal([]byte(get("/v1/tools")), &cat); err != nil {
		t.Fatal(err)
	}
	if len(cat.Tools) != 1 || cat.Tools[0].Name != "weather:today" || !strings.Contains(cat.Declarations, "city") {
		t.Fatalf("catalog %+v", cat)
	}
	if text := get("/v1/tools?format=text"); !strings.Contains(text, "weather:today") || !strings.Contains(text, "Today's forecast") {
		t.Fatalf("text:\n%s", text)
	}
}
