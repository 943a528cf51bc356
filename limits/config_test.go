package limits

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	want := Pool{
		Size: DefaultPoolSize(), MinWorkers: min(2, DefaultPoolSize()),
		MaxWorkerMemory: 256 << 20, MaxExecutionsPerWorker: 1000,
		IdleTimeout: Duration(time.Minute), MaxQueueSize: 100,
		QueueTimeout: Duration(30 * time.Second), MaxPendingToolCalls: 100,
	}
	if c.Pool != want {
		t.Errorf("pool = %+v, want %+v", c.Pool, want)
	}
	if c.SecurityLevel != Standard || c.SocketAccess.Mode != 0o660 || c.Socket != DefaultSocket() {
		t.Errorf("level %q mode %v socket %q", c.SecurityLevel, c.SocketAccess.Mode, c.Socket)
	}
	if c.Log != (Log{Level: "info", Format: "text"}) || c.MaxConcurrentSessions != 1000 ||
		c.SessionTimeout.Std() != 5*time.Minute || c.RuntimeID == "" {
		t.Errorf("log %+v sessions %d timeout %v runtime %q", c.Log, c.MaxConcurrentSessions, c.SessionTimeout, c.RuntimeID)
	}
	if c.Values() != ForLevel(Standard) {
		t.Errorf("Values = %+v", c.Values())
	}
	if DefaultPoolSize() < 2 {
		t.Errorf("DefaultPoolSize = %d", DefaultPoolSize())
	}
}

func TestDefaultSocket(t *testing.T) {
	got := DefaultSocket()
	if os.Geteuid() == 0 {
		if got != "/run/enclave/enclave.sock" {
			t.Errorf("root socket = %q", got)
		}
		return
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1234")
	if got := DefaultSocket(); got != "/run/user/1234/enclave/enclave.sock" {
		t.Errorf("xdg socket = %q", got)
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	for _, text := range []string{"", "# only a comment\n", "---\n"} {
		c, err := Parse([]byte(text), "empty.yaml")
		if err != nil {
			t.Fatalf("Parse(%q): %v", text, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("Parse(%q) = %+v, want defaults", text, c)
		}
	}
}

func TestLoad(t *testing.T) {
	c, err := Load("")
	if err != nil || c.SecurityLevel != Standard {
		t.Fatalf("Load(\"\") = %+v, %v", c, err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file error = %v", err)
	}
	path := filepath.Join(t.TempDir(), "enclave.yaml")
	if err := os.WriteFile(path, []byte("securityLevel: secure\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(path)
	if err != nil || c.SecurityLevel != Secure || c.Pool.MaxWorkerMemory != 128<<20 {
		t.Errorf("Load = %+v, %v", c, err)
	}
}

const fullConfig = `
socket: /tmp/e/enclave.sock
socketAccess:
  owner: enclave
  group: "998"
  mode: 0640
  allowUids: [1000, 1001]
  allowGids: [998]
securityLevel: strict
pool:
  size: 6
  minWorkers: 0
  maxWorkerMemory: 96MiB
  maxExecutionsPerWorker: 42
  idleTimeout: 2m
  maxQueueSize: 0
  queueTimeout: 1500ms
  maxPendingToolCalls: 7
limits:
  timeout: 4s
  maxIterations: 500
  maxToolCalls: 8
  maxConsoleCalls: 50
  maxConsoleOutputBytes: 32KB
toolPolicy:
  allow: ["users:*", "echo"]
  deny: ["users:delete"]
tools:
  - name: "users:*"
    description: User lookups
    inputSchema: { type: object, properties: { limit: { type: integer } } }
    http: { url: "https://127.0.0.1:8080/tools", timeout: 5s, headers: { Authorization: "Bearer ${TEST_TOKEN}" } }
  - name: echo
    exec: { command: ["cat"], env: ["LANG=C"], dir: /tmp }
  - name: "fs:*"
    mcp: { command: ["mcp-fs", "--root", "/srv"], env: { A: b }, prefix: "fs:", timeout: 3s }
  - name: "web:*"
    mcp: { url: "http://127.0.0.1:9000/mcp", headers: { X-Key: k } }
metrics:
  listen: 127.0.0.1:9464
log:
  level: debug
  format: json
listen: 127.0.0.1:8080
apiKeys: ["${TEST_API_KEY}", "literal$key"]
redis:
  addrs: ["127.0.0.1:6379", "127.0.0.1:6380"]
  masterName: mymaster
  password: "${TEST_REDIS_PASSWORD}"
  db: 3
maxConcurrentSessions: 20
sessionTimeout: 90s
routingRules:
  - match: { priority: high }
    target: { tier: premium }
labels: { region: eu, tier: standard }
runtimeId: rt-1
`

func TestParseEveryKey(t *testing.T) {
	t.Setenv("TEST_TOKEN", "tok")
	t.Setenv("TEST_API_KEY", "secret-1")
	t.Setenv("TEST_REDIS_PASSWORD", "pw")
	c, err := Parse([]byte(fullConfig), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Socket: "/tmp/e/enclave.sock",
		SocketAccess: SocketAccess{Owner: "enclave", Group: "998", Mode: 0o640,
			AllowUIDs: []uint32{1000, 1001}, AllowGIDs: []uint32{998}},
		SecurityLevel: Strict,
		Pool: Pool{Size: 6, MinWorkers: 0, MaxWorkerMemory: 96 << 20, MaxExecutionsPerWorker: 42,
			IdleTimeout: Duration(2 * time.Minute), MaxQueueSize: 0,
			QueueTimeout: Duration(1500 * time.Millisecond), MaxPendingToolCalls: 7},
		Limits: Overrides{Timeout: ptr(Duration(4 * time.Second)), MaxIterations: ptr(int64(500)),
			MaxToolCalls: ptr(int64(8)), MaxConsoleCalls: ptr(int64(50)),
			MaxConsoleOutputBytes: ptr(ByteSize(32 << 10))},
		ToolPolicy: ToolPolicy{Allow: []string{"users:*", "echo"}, Deny: []string{"users:delete"}},
		Tools: []Tool{
			{Name: "users:*", Description: "User lookups",
				InputSchema: map[string]any{"type": "object", "properties": map[string]any{
					"limit": map[string]any{"type": "integer"}}},
				HTTP: &HTTPTool{URL: "https://127.0.0.1:8080/tools", Timeout: Duration(5 * time.Second),
					Headers: map[string]string{"Authorization": "Bearer tok"}}},
			{Name: "echo", Exec: &ExecTool{Command: []string{"cat"}, Timeout: Duration(10 * time.Second),
				Env: []string{"LANG=C"}, Dir: "/tmp"}},
			{Name: "fs:*", MCP: &MCPTool{Command: []string{"mcp-fs", "--root", "/srv"},
				Env: map[string]string{"A": "b"}, Prefix: "fs:", Timeout: Duration(3 * time.Second)}},
			{Name: "web:*", MCP: &MCPTool{URL: "http://127.0.0.1:9000/mcp",
				Headers: map[string]string{"X-Key": "k"}, Timeout: Duration(10 * time.Second)}},
		},
		Metrics: Metrics{Listen: "127.0.0.1:9464"},
		Log:     Log{Level: "debug", Format: "json"},
		Listen:  "127.0.0.1:8080",
		APIKeys: []string{"secret-1", "literal$key"},
		Redis: Redis{Addrs: []string{"127.0.0.1:6379", "127.0.0.1:6380"}, MasterName: "mymaster",
			Password: "pw", DB: 3},
		MaxConcurrentSessions: 20,
		SessionTimeout:        Duration(90 * time.Second),
		RoutingRules: []RoutingRule{{Match: map[string]string{"priority": "high"},
			Target: map[string]string{"tier": "premium"}}},
		Labels:    map[string]string{"region": "eu", "tier": "standard"},
		RuntimeID: "rt-1",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", c, want)
	}
	wantValues := Values{4 * time.Second, 500, 8, 50, 32 << 10, 5, 256 << 10, true, 96 << 20, 42}
	if c.Values() != wantValues {
		t.Errorf("Values = %+v, want %+v", c.Values(), wantValues)
	}
}

func TestLevelDrivesPoolDefaults(t *testing.T) {
	tests := []struct {
		level Level
		mem   ByteSize
		runs  int64
	}{
		{Strict, 64 << 20, 100}, {Secure, 128 << 20, 500},
		{Standard, 256 << 20, 1000}, {Permissive, 512 << 20, 5000},
	}
	for _, tt := range tests {
		c, err := Parse([]byte("securityLevel: "+string(tt.level)+"\npool: {size: 1}\n"), "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if c.Pool.MaxWorkerMemory != tt.mem || c.Pool.MaxExecutionsPerWorker != tt.runs || c.Pool.MinWorkers != 1 {
			t.Errorf("%s: pool = %+v", tt.level, c.Pool)
		}
	}
}

func TestUnknownKeyNamesFileLineAndKey(t *testing.T) {
	text := "securityLevel: STANDARD\npool:\n  size: 2\n  maxWorkers: 4\nlimits:\n  timeOut: 3s\n"
	_, err := Parse([]byte(text), "bad.yaml")
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, want := range []string{`bad.yaml:4: unknown key "maxWorkers"`, `bad.yaml:6: unknown key "timeOut"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestBadValuesAllReported(t *testing.T) {
	text := `
securityLevel: LAX
socketAccess: { mode: 0007 }
pool:
  size: -1
  minWorkers: 5
  maxWorkerMemory: 1MiB
  maxExecutionsPerWorker: -2
  idleTimeout: 60
  maxQueueSize: -3
  queueTimeout: -1s
  maxPendingToolCalls: -4
limits: { timeout: 0s, maxToolCalls: -1, maxConsoleOutputBytes: huge }
toolPolicy: { allow: [""] }
tools:
  - name: a
  - name: a
    http: { url: "ftp://x/y" }
  - name: c
    exec: { command: [] }
    mcp: { command: [x], url: "http://h/" }
metrics: { listen: nonsense }
log: { level: loud, format: xml }
listen: ":"
apiKeys: ["${ENCLAVE_TEST_UNSET_VAR}"]
redis: { addrs: ["no-port"], db: -1 }
maxConcurrentSessions: -5
routingRules: [{ match: { a: b } }]
`
	_, err := Parse([]byte(text), "bad.yaml")
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	wants := []string{
		"bad.yaml:2: unknown security level", "bad.yaml:9: invalid duration", "bad.yaml:13: invalid size",
		"socketAccess.mode", "pool.size", "pool.minWorkers", "pool.maxWorkerMemory",
		"pool.maxExecutionsPerWorker", "pool.maxQueueSize", "pool.queueTimeout",
		"pool.maxPendingToolCalls", "limits.timeout", "limits.maxToolCalls", "toolPolicy.allow[0]",
		"tools[0].name: tool \"a\" needs exactly one", "tools[1].name: \"a\" is already used by tools[0]",
		"tools[1].http.url", "tools[2].exec.command", "tools[2].mcp.url", "tools[2].name",
		"metrics.listen", "log.level", "log.format", "apiKeys[0]", "redis.addrs[0]", "redis.db",
		"maxConcurrentSessions", "routingRules[0].target",
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("error was:\n%s", msg)
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := Parse([]byte("pool:\n  size: [1\n"), "syntax.yaml")
	if err == nil || !strings.Contains(err.Error(), "syntax.yaml") || !strings.Contains(err.Error(), "line") {
		t.Errorf("syntax error = %v", err)
	}
	_, err = Parse([]byte("pool: {size: 2}\n---\nlog: {level: debug}\n"), "two.yaml")
	if err == nil || !strings.Contains(err.Error(), "only one YAML document") {
		t.Errorf("two documents error = %v", err)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("ENCLAVE_TEST_SIZE", "3")
	t.Setenv("ENCLAVE_TEST_LEVEL", "secure")
	text := "securityLevel: ${ENCLAVE_TEST_LEVEL}\npool: { size: ${ENCLAVE_TEST_SIZE} }\n" +
		"redis: { password: \"$NOT_EXPANDED${ENCLAVE_TEST_UNSET_VAR}\" }\n"
	c, err := Parse([]byte(text), "env.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SecurityLevel != Secure || c.Pool.Size != 3 || c.Redis.Password != "$NOT_EXPANDED" {
		t.Errorf("level %q size %d password %q", c.SecurityLevel, c.Pool.Size, c.Redis.Password)
	}
}

// TestDeployConfigs keeps the shipped example files loadable.
func TestDeployConfigs(t *testing.T) {
	files, _ := filepath.Glob("../deploy/*.yaml")
	if len(files) == 0 {
		t.Skip("no deploy/*.yaml in this tree")
	}
	t.Setenv("ENCLAVE_API_KEY", "k")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "securityLevel") {
			continue // not an enclave config (a Kubernetes manifest, say)
		}
		if _, err := Parse(data, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestLogSlogLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"WARN", slog.LevelWarn},
		{"error", slog.LevelError}, {"", slog.LevelInfo},
	}
	for _, tt := range tests {
		if got := (Log{Level: tt.in}).SlogLevel(); got != tt.want {
			t.Errorf("SlogLevel(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
