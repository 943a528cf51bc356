package limits

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Config is the daemon's, the broker's and the runtime's YAML configuration file.
// Keys are camelCase and unknown keys are an error. Every field's doc comment
// gives its default; Default returns them all filled in.
type Config struct {
	// Socket is the path of the Unix socket of the HTTP API. Default:
	// /run/enclave/enclave.sock as root, else $XDG_RUNTIME_DIR/enclave/enclave.sock,
	// else <os.TempDir()>/enclave-<uid>/enclave.sock.
	Socket string `yaml:"socket"`
	// SocketAccess is who may connect to the socket.
	SocketAccess SocketAccess `yaml:"socketAccess"`
	// SecurityLevel is the level of runs that do not ask for one; a request may
	// name a stricter one only. Any case is accepted. Default: STANDARD.
	SecurityLevel Level `yaml:"securityLevel"`
	// Pool sizes the worker pool and its queue.
	Pool Pool `yaml:"pool"`
	// Limits override the level's per-run values. Default: none, the level's.
	Limits Overrides `yaml:"limits"`
	// ToolPolicy restricts which tool names scripts may call. Default: all.
	ToolPolicy ToolPolicy `yaml:"toolPolicy"`
	// Tools are the tools the daemon serves itself. Default: none.
	Tools []Tool `yaml:"tools"`
	// Metrics is the Prometheus listener.
	Metrics Metrics `yaml:"metrics"`
	// Log sets the daemon's log level and format.
	Log Log `yaml:"log"`

	// Listen is the broker's TCP address for the HTTP API, or the runtime's for
	// its health endpoints. Default: "" (none).
	Listen string `yaml:"listen"`
	// APIKeys are the broker's accepted bearer tokens; write them as
	// "${ENV_VAR}". Default: none, which turns authentication off.
	APIKeys []string `yaml:"apiKeys"`
	// Redis is the store shared by brokers and runtimes.
	Redis Redis `yaml:"redis"`
	// MaxConcurrentSessions caps a broker's open sessions; more get
	// SESSION_LIMIT. Default: 1000.
	MaxConcurrentSessions int64 `yaml:"maxConcurrentSessions"`
	// SessionTimeout is how long a broker keeps a session's state after its last
	// event. Default: 5m.
	SessionTimeout Duration `yaml:"sessionTimeout"`
	// RoutingRules map request metadata to runtime labels; the first matching
	// rule wins. Default: none (any runtime).
	RoutingRules []RoutingRule `yaml:"routingRules"`
	// Labels describe a runtime to the routing rules. Default: none.
	Labels map[string]string `yaml:"labels"`
	// RuntimeID names a runtime in Redis. Default: <hostname>-<pid>.
	RuntimeID string `yaml:"runtimeId"`
}

// SocketAccess says who may connect to the Unix socket: the file's owner, group
// and mode, then a check of each peer's uid and gid (SO_PEERCRED).
type SocketAccess struct {
	// Owner is a user name or uid for the socket file. Default: "" (the daemon's).
	Owner string `yaml:"owner"`
	// Group is a group name or gid for the socket file. Default: "" (the daemon's).
	Group string `yaml:"group"`
	// Mode is the socket file's mode, in octal. Default: 0660.
	Mode FileMode `yaml:"mode"`
	// AllowUIDs are the peer uids allowed in. Default: [] (anyone who can open the
	// socket file).
	AllowUIDs []uint32 `yaml:"allowUids"`
	// AllowGIDs are the peer gids allowed in; a peer passes if its uid or its gid
	// is listed. Default: [] (anyone who can open the socket file).
	AllowGIDs []uint32 `yaml:"allowGids"`
}

// Pool sizes the worker pool. Size and queue are capacity, not security, so they
// do not follow the security level.
type Pool struct {
	// Size is the most worker processes. Default: cores x 1.5, at least 2.
	Size int `yaml:"size"`
	// MinWorkers are kept running when idle. Default (also when -1): min(2, size).
	MinWorkers int `yaml:"minWorkers"`
	// MaxWorkerMemory is one worker's memory cap (cgroup limit and RSS
	// watchdog). Default: the level's (64MiB, 128MiB, 256MiB, 512MiB).
	MaxWorkerMemory ByteSize `yaml:"maxWorkerMemory"`
	// MaxExecutionsPerWorker recycles a worker after this many runs. Default: the
	// level's (100, 500, 1000, 5000).
	MaxExecutionsPerWorker int64 `yaml:"maxExecutionsPerWorker"`
	// IdleTimeout stops idle workers above MinWorkers. Default: 60s.
	IdleTimeout Duration `yaml:"idleTimeout"`
	// MaxQueueSize is how many runs may wait for a worker; more get QUEUE_FULL.
	// 0 refuses any run that finds every worker busy. Default: 100.
	MaxQueueSize int `yaml:"maxQueueSize"`
	// QueueTimeout is the longest wait for a worker; then QUEUE_TIMEOUT.
	// Default: 30s.
	QueueTimeout Duration `yaml:"queueTimeout"`
	// MaxPendingToolCalls caps the unanswered tool calls of one run. Default: 100.
	MaxPendingToolCalls int `yaml:"maxPendingToolCalls"`
}

// ToolPolicy restricts tool names by pattern ('*' matches any run of characters).
type ToolPolicy struct {
	// Allow lists the names scripts may call. Default: [] (every name).
	Allow []string `yaml:"allow"`
	// Deny lists names refused even when allowed. Default: [].
	Deny []string `yaml:"deny"`
}

// Tool is a tool the daemon serves itself. Exactly one of HTTP, Exec and MCP is
// set.
type Tool struct {
	// Name is an exact tool name or a pattern with '*'. Required.
	Name string `yaml:"name"`
	// Description is shown to models in code mode. Default: "".
	Description string `yaml:"description"`
	// InputSchema is an optional JSON schema of the arguments. Default: none.
	InputSchema map[string]any `yaml:"inputSchema"`
	// HTTP POSTs the arguments as JSON to a URL.
	HTTP *HTTPTool `yaml:"http"`
	// Exec runs a command with the arguments as JSON on stdin.
	Exec *ExecTool `yaml:"exec"`
	// MCP forwards calls to an MCP server.
	MCP *MCPTool `yaml:"mcp"`
}

// HTTPTool POSTs a call's arguments as JSON and reads a JSON answer.
type HTTPTool struct {
	// URL is the http or https address to POST to. Required.
	URL string `yaml:"url"`
	// Timeout bounds one call. Default: 10s.
	Timeout Duration `yaml:"timeout"`
	// Headers are added to each request. Default: none.
	Headers map[string]string `yaml:"headers"`
}

// ExecTool runs a command per call: arguments as JSON on stdin; exit 0 and JSON
// on stdout, or non-zero and the error message on stderr.
type ExecTool struct {
	// Command is the program and its arguments. Required.
	Command []string `yaml:"command"`
	// Timeout bounds one call. Default: 10s.
	Timeout Duration `yaml:"timeout"`
	// Env adds KEY=VALUE pairs to the command's environment. Default: none.
	Env []string `yaml:"env"`
	// Dir is the working directory. Default: "" (the daemon's).
	Dir string `yaml:"dir"`
}

// MCPTool forwards calls to an MCP server, started as a command (stdio) or
// reached at a URL (streamable HTTP): exactly one of the two.
type MCPTool struct {
	// Command starts the server over stdio. Default: none.
	Command []string `yaml:"command"`
	// URL is the server's streamable HTTP endpoint. Default: "".
	URL string `yaml:"url"`
	// Env is the server process's environment. Default: none.
	Env map[string]string `yaml:"env"`
	// Headers are sent with HTTP requests when URL is set. Default: none.
	Headers map[string]string `yaml:"headers"`
	// Prefix is put before the server's tool names ("fs:"). Default: "".
	Prefix string `yaml:"prefix"`
	// Timeout bounds one call. Default: 10s.
	Timeout Duration `yaml:"timeout"`
}

// Metrics is the Prometheus listener.
type Metrics struct {
	// Listen is the host:port of /metrics. Default: "" (no listener).
	Listen string `yaml:"listen"`
}

// Log sets the log output.
type Log struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
	// Format is text or json. Default: text.
	Format string `yaml:"format"`
}

// Redis is how brokers and runtimes reach Redis: one address for a single node,
// several for Cluster, or Sentinel addresses with MasterName.
type Redis struct {
	// Addrs are host:port addresses. Default: none.
	Addrs []string `yaml:"addrs"`
	// MasterName selects Sentinel. Default: "".
	MasterName string `yaml:"masterName"`
	// Password authenticates; write it as "${ENV_VAR}". Default: "".
	Password string `yaml:"password"`
	// DB is the database number, ignored by Cluster. Default: 0.
	DB int `yaml:"db"`
}

// RoutingRule sends a request whose metadata contains every Match pair to a
// runtime whose labels contain every Target pair.
type RoutingRule struct {
	// Match is the metadata a request must carry. Default: {} (every request).
	Match map[string]string `yaml:"match"`
	// Target is the labels a runtime must carry. Required.
	Target map[string]string `yaml:"target"`
}

// Defaults that do not follow the security level.
const (
	DefaultSocketMode            FileMode = 0o660
	DefaultIdleTimeout                    = 60 * time.Second
	DefaultMaxQueueSize                   = 100
	DefaultQueueTimeout                   = 30 * time.Second
	DefaultMaxPendingToolCalls            = 100
	DefaultToolTimeout                    = 10 * time.Second
	DefaultMaxConcurrentSessions          = 1000
	DefaultSessionTimeout                 = 5 * time.Minute
)

// Default returns a configuration with every default filled in, at level
// STANDARD. It is what the daemon runs on without a config file.
func Default() *Config {
	c := &Config{Pool: Pool{MinWorkers: -1, MaxQueueSize: DefaultMaxQueueSize}}
	c.fillDefaults()
	return c
}

// fillDefaults sets every unset field. Zero means unset except for the two pool
// fields where zero is a real choice (minWorkers, maxQueueSize): decoding starts
// with those at -1 and DefaultMaxQueueSize so that an explicit 0 survives.
func (c *Config) fillDefaults() {
	if c.Socket == "" {
		c.Socket = DefaultSocket()
	}
	if c.SocketAccess.Mode == 0 {
		c.SocketAccess.Mode = DefaultSocketMode
	}
	if c.SecurityLevel == "" {
		c.SecurityLevel = Standard
	}
	c.Pool.fillDefaults(c.SecurityLevel)
	for i := range c.Tools {
		c.Tools[i].fillDefaults()
	}
	c.Log.fillDefaults()
	c.fillScaleOutDefaults()
}

func (c *Config) fillScaleOutDefaults() {
	if c.MaxConcurrentSessions == 0 {
		c.MaxConcurrentSessions = DefaultMaxConcurrentSessions
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = Duration(DefaultSessionTimeout)
	}
	if c.RuntimeID == "" {
		c.RuntimeID = defaultRuntimeID()
	}
}

func (p *Pool) fillDefaults(level Level) {
	lv := ForLevel(level)
	if p.Size == 0 {
		p.Size = DefaultPoolSize()
	}
	if p.MinWorkers < 0 {
		p.MinWorkers = max(0, min(2, p.Size))
	}
	if p.MaxWorkerMemory == 0 {
		p.MaxWorkerMemory = ByteSize(lv.WorkerMemory)
	}
	if p.MaxExecutionsPerWorker == 0 {
		p.MaxExecutionsPerWorker = lv.RunsPerWorker
	}
	setDuration(&p.IdleTimeout, DefaultIdleTimeout)
	setDuration(&p.QueueTimeout, DefaultQueueTimeout)
	if p.MaxPendingToolCalls == 0 {
		p.MaxPendingToolCalls = DefaultMaxPendingToolCalls
	}
}

func (t *Tool) fillDefaults() {
	if t.HTTP != nil {
		setDuration(&t.HTTP.Timeout, DefaultToolTimeout)
	}
	if t.Exec != nil {
		setDuration(&t.Exec.Timeout, DefaultToolTimeout)
	}
	if t.MCP != nil {
		setDuration(&t.MCP.Timeout, DefaultToolTimeout)
	}
}

func (l *Log) fillDefaults() {
	if l.Level == "" {
		l.Level = "info"
	}
	if l.Format == "" {
		l.Format = "text"
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// DefaultPoolSize is the scaling guide's rule for mixed work: cores x 1.5, at
// least 2.
func DefaultPoolSize() int {
	return max(2, runtime.NumCPU()*3/2)
}

// DefaultSocket is the socket path used when the config names none:
// /run/enclave/enclave.sock as root, else under $XDG_RUNTIME_DIR, else in a
// per-user directory of os.TempDir().
func DefaultSocket() string {
	if os.Geteuid() == 0 {
		return "/run/enclave/enclave.sock"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "enclave", "enclave.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("enclave-%d", os.Geteuid()), "enclave.sock")
}

func defaultRuntimeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "runtime"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// Values returns the limits of a run at the configured level: the level's table,
// the `limits:` overrides applied, and the pool's worker memory and recycling.
func (c *Config) Values() Values {
	v := ForLevel(c.SecurityLevel).Apply(c.Limits)
	if c.Pool.MaxWorkerMemory > 0 {
		v.WorkerMemory = int64(c.Pool.MaxWorkerMemory)
	}
	if c.Pool.MaxExecutionsPerWorker > 0 {
		v.RunsPerWorker = c.Pool.MaxExecutionsPerWorker
	}
	return v
}

// SlogLevel returns the configured level for log/slog; an unknown name (which
// Validate refuses) reads as info.
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
