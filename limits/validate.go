package limits

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// minWorkerMemory is the smallest worker memory cap accepted: below it a Go worker
// process with a JavaScript engine cannot even start.
const minWorkerMemory = 16 << 20

// Validate checks the whole configuration and returns every problem joined with
// errors.Join, each a *FieldError naming its key ("pool.size: ...").
func (c *Config) Validate() error {
	var p problems
	if c.Socket == "" {
		p.add("socket", "must not be empty")
	}
	if !c.SecurityLevel.Valid() {
		p.add("securityLevel", fmt.Sprintf("unknown level %q (want STRICT, SECURE, STANDARD or PERMISSIVE)", c.SecurityLevel))
	}
	p.nest("socketAccess", c.SocketAccess.Validate())
	p.nest("pool", c.Pool.Validate())
	p.nest("limits", c.Limits.Validate())
	p.nest("toolPolicy", c.ToolPolicy.Validate())
	p.nest("tools", validateTools(c.Tools))
	p.nest("metrics", c.Metrics.Validate())
	p.nest("log", c.Log.Validate())
	c.validateScaleOut(&p)
	return p.err()
}

func (c *Config) validateScaleOut(p *problems) {
	if c.Listen != "" {
		checkHostPort(p, "listen", c.Listen)
	}
	for i, k := range c.APIKeys {
		if strings.TrimSpace(k) == "" {
			p.add(fmt.Sprintf("apiKeys[%d]", i), "empty key (is its environment variable set?)")
		}
	}
	p.nest("redis", c.Redis.Validate())
	if c.MaxConcurrentSessions < 1 {
		p.add("maxConcurrentSessions", "must be at least 1")
	}
	if c.SessionTimeout <= 0 {
		p.add("sessionTimeout", "must be positive")
	}
	for i, r := range c.RoutingRules {
		p.nest(fmt.Sprintf("routingRules[%d]", i), r.Validate())
	}
}

// Validate checks the socket file's mode.
func (s SocketAccess) Validate() error {
	var p problems
	if s.Mode&^0o777 != 0 {
		p.add("mode", fmt.Sprintf("%s is not a permission mode (0 to 0777)", s.Mode))
	}
	if s.Mode&0o600 != 0o600 {
		p.add("mode", fmt.Sprintf("%s must give the owner read and write", s.Mode))
	}
	return p.err()
}

// Validate checks the pool's sizes and timeouts.
func (pl Pool) Validate() error {
	var p problems
	if pl.Size < 1 {
		p.add("size", "must be at least 1")
	}
	if pl.MinWorkers < 0 || pl.MinWorkers > pl.Size {
		p.add("minWorkers", fmt.Sprintf("%d must be between 0 and size (%d)", pl.MinWorkers, pl.Size))
	}
	if pl.MaxWorkerMemory < minWorkerMemory {
		p.add("maxWorkerMemory", fmt.Sprintf("%s is below the minimum %s", pl.MaxWorkerMemory, ByteSize(minWorkerMemory)))
	}
	if pl.MaxExecutionsPerWorker < 1 {
		p.add("maxExecutionsPerWorker", "must be at least 1")
	}
	checkPositive(&p, "idleTimeout", pl.IdleTimeout)
	if pl.MaxQueueSize < 0 {
		p.add("maxQueueSize", "must not be negative")
	}
	checkPositive(&p, "queueTimeout", pl.QueueTimeout)
	if pl.MaxPendingToolCalls < 1 {
		p.add("maxPendingToolCalls", "must be at least 1")
	}
	return p.err()
}

// Validate checks that no pattern is empty.
func (t ToolPolicy) Validate() error {
	var p problems
	checkPatterns(&p, "allow", t.Allow)
	checkPatterns(&p, "deny", t.Deny)
	return p.err()
}

func checkPatterns(p *problems, key string, patterns []string) {
	for i, pat := range patterns {
		if strings.TrimSpace(pat) == "" {
			p.add(fmt.Sprintf("%s[%d]", key, i), "empty pattern")
		}
	}
}

// validateTools checks each tool and that no two share a name.
func validateTools(tools []Tool) error {
	var p problems
	seen := map[string]int{}
	for i, t := range tools {
		key := fmt.Sprintf("[%d]", i)
		p.nest(key, t.Validate())
		if j, dup := seen[t.Name]; dup && t.Name != "" {
			p.add(key+".name", fmt.Sprintf("%q is already used by tools[%d]", t.Name, j))
		}
		seen[t.Name] = i
	}
	return p.err()
}

// Validate checks the tool's name and that exactly one kind is set and valid.
func (t Tool) Validate() error {
	var p problems
	if strings.TrimSpace(t.Name) == "" {
		p.add("name", "must not be empty")
	}
	kinds := 0
	if t.HTTP != nil {
		kinds++
		p.nest("http", t.HTTP.Validate())
	}
	if t.Exec != nil {
		kinds++
		p.nest("exec", t.Exec.Validate())
	}
	if t.MCP != nil {
		kinds++
		p.nest("mcp", t.MCP.Validate())
	}
	if kinds != 1 {
		p.add("name", fmt.Sprintf("tool %q needs exactly one of http, exec or mcp (has %d)", t.Name, kinds))
	}
	return p.err()
}

// Validate checks the URL and timeout.
func (h HTTPTool) Validate() error {
	var p problems
	checkURL(&p, "url", h.URL)
	checkPositive(&p, "timeout", h.Timeout)
	return p.err()
}

// Validate checks the command and timeout.
func (e ExecTool) Validate() error {
	var p problems
	if len(e.Command) == 0 || strings.TrimSpace(e.Command[0]) == "" {
		p.add("command", "must name a program")
	}
	checkPositive(&p, "timeout", e.Timeout)
	for i, kv := range e.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			p.add(fmt.Sprintf("env[%d]", i), fmt.Sprintf("%q is not KEY=VALUE", kv))
		}
	}
	return p.err()
}

// Validate checks that exactly one of command and url is set.
func (m MCPTool) Validate() error {
	var p problems
	hasCmd, hasURL := len(m.Command) > 0, m.URL != ""
	switch {
	case hasCmd && hasURL:
		p.add("url", "set command or url, not both")
	case !hasCmd && !hasURL:
		p.add("command", "set command or url")
	case hasCmd && strings.TrimSpace(m.Command[0]) == "":
		p.add("command", "must name a program")
	case hasURL:
		checkURL(&p, "url", m.URL)
	}
	checkPositive(&p, "timeout", m.Timeout)
	return p.err()
}

// Validate checks the listen address.
func (m Metrics) Validate() error {
	var p problems
	if m.Listen != "" {
		checkHostPort(&p, "listen", m.Listen)
	}
	return p.err()
}

// Validate checks the level and format names.
func (l Log) Validate() error {
	var p problems
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		p.add("level", fmt.Sprintf("unknown level %q (want debug, info, warn or error)", l.Level))
	}
	switch strings.ToLower(l.Format) {
	case "text", "json":
	default:
		p.add("format", fmt.Sprintf("unknown format %q (want text or json)", l.Format))
	}
	return p.err()
}

// Validate checks the addresses and database number.
func (r Redis) Validate() error {
	var p problems
	for i, a := range r.Addrs {
		checkHostPort(&p, fmt.Sprintf("addrs[%d]", i), a)
	}
	if r.DB < 0 {
		p.add("db", "must not be negative")
	}
	if r.MasterName != "" && len(r.Addrs) == 0 {
		p.add("addrs", "Sentinel (masterName) needs at least one address")
	}
	return p.err()
}

// Validate checks that the rule targets some label.
func (r RoutingRule) Validate() error {
	var p problems
	if len(r.Target) == 0 {
		p.add("target", "must name at least one label")
	}
	return p.err()
}

func checkPositive(p *problems, key string, d Duration) {
	if d <= 0 {
		p.add(key, "must be positive")
	}
}

func checkHostPort(p *problems, key, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		p.add(key, fmt.Sprintf("%q is not host:port", addr))
	}
}

func checkURL(p *problems, key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		p.add(key, "must not be empty")
	case err != nil:
		p.add(key, fmt.Sprintf("%q does not parse", raw))
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(key, fmt.Sprintf("%q must be http or https", raw))
	case u.Host == "":
		p.add(key, fmt.Sprintf("%q has no host", raw))
	}
}
