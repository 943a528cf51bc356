package deploy

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/enclave-go/enclave/limits"
)

// setConfigEnv gives the ${VAR} references of the examples a value, as the
// systemd unit or the pod would.
func setConfigEnv(t *testing.T) {
	t.Setenv("ENCLAVE_API_KEY", "test-api-key")
	t.Setenv("REDIS_PASSWORD", "test-redis-password")
}

// TestConfigsLoadWithTheRealParser runs every example and ConfigMap config
// through the parser the daemon, broker and runtime use: strict keys, value
// types and validation.
func TestConfigsLoadWithTheRealParser(t *testing.T) {
	setConfigEnv(t)
	for _, c := range allConfigs(t) {
		t.Run(c.name, func(t *testing.T) {
			if _, err := limits.Parse(c.data, c.name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRealParserRefusesAMisspeltExample makes sure the parse above would have
// failed on a typo in an example rather than ignored it.
func TestRealParserRefusesAMisspeltExample(t *testing.T) {
	setConfigEnv(t)
	c := readConfig(t, "enclave.yaml")
	bad := strings.Replace(string(c.data), "  idleTimeout:", "  idleTimout:", 1)
	if bad == string(c.data) {
		t.Fatal("enclave.yaml has no pool.idleTimeout line to misspell")
	}
	_, err := limits.Parse([]byte(bad), c.name)
	if err == nil || !strings.Contains(err.Error(), "idleTimout") {
		t.Fatalf("got %v, want an unknown key error naming idleTimout", err)
	}
}

// TestEnclaveYAMLShowsTheDefaults checks that the values written in the
// reference example are the defaults it claims, so the file stays a faithful
// reference when a default changes. pool.size is left out: its default
// depends on the machine's cores.
func TestEnclaveYAMLShowsTheDefaults(t *testing.T) {
	setConfigEnv(t)
	c := readConfig(t, "enclave.yaml")
	got, err := limits.Parse(c.data, c.name)
	if err != nil {
		t.Fatal(err)
	}
	def := limits.Default()
	std := limits.ForLevel(limits.Standard)
	tests := []struct {
		key       string
		got, want any
	}{
		{"socketAccess.mode", got.SocketAccess.Mode, def.SocketAccess.Mode},
		{"securityLevel", got.SecurityLevel, def.SecurityLevel},
		{"pool.minWorkers", got.Pool.MinWorkers, min(2, got.Pool.Size)},
		{"pool.maxWorkerMemory", int64(got.Pool.MaxWorkerMemory), std.WorkerMemory},
		{"pool.maxExecutionsPerWorker", got.Pool.MaxExecutionsPerWorker, std.RunsPerWorker},
		{"pool.idleTimeout", got.Pool.IdleTimeout, def.Pool.IdleTimeout},
		{"pool.maxQueueSize", got.Pool.MaxQueueSize, def.Pool.MaxQueueSize},
		{"pool.queueTimeout", got.Pool.QueueTimeout, def.Pool.QueueTimeout},
		{"pool.maxPendingToolCalls", got.Pool.MaxPendingToolCalls, def.Pool.MaxPendingToolCalls},
		{"limits (all)", got.Values(), std},
		{"log.level", got.Log.Level, def.Log.Level},
		{"log.format", got.Log.Format, def.Log.Format},
		{"maxConcurrentSessions", got.MaxConcurrentSessions, def.MaxConcurrentSessions},
		{"sessionTimeout", got.SessionTimeout, def.SessionTimeout},
		{"tools[0].http.timeout", got.Tools[0].HTTP.Timeout.Std(), limits.DefaultToolTimeout},
		{"tools[1].exec.timeout", got.Tools[1].Exec.Timeout.Std(), limits.DefaultToolTimeout},
		{"tools[2].mcp.timeout", got.Tools[2].MCP.Timeout.Std(), limits.DefaultToolTimeout},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, default is %v", tt.key, tt.got, tt.want)
		}
	}
}

// TestRuntimeConfigMapMatchesPodSizing ties the parsed runtime config to the
// figures the pod resources were sized from.
func TestRuntimeConfigMapMatchesPodSizing(t *testing.T) {
	setConfigEnv(t)
	var found bool
	for _, c := range allConfigs(t) {
		if c.name != "configmap enclave-runtime-config/runtime.yaml" {
			continue
		}
		found = true
		cfg, err := limits.Parse(c.data, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Pool.Size != 3 || cfg.Values().WorkerMemory != 256<<20 {
			t.Errorf("pool %d x %d bytes, the pod is sized for 3 x 256MiB", cfg.Pool.Size,
				cfg.Values().WorkerMemory)
		}
		if cfg.Redis.Password != "test-redis-password" {
			t.Errorf("redis.password %q, want it expanded from REDIS_PASSWORD", cfg.Redis.Password)
		}
		if cfg.Values().Timeout != 30*time.Second {
			t.Errorf("timeout %v; terminationGracePeriodSeconds assumes 30s", cfg.Values().Timeout)
		}
	}
	if !found {
		t.Fatal("no runtime.yaml in the enclave-runtime-config ConfigMap")
	}
}

func readConfig(t *testing.T, name string) configFile {
	t.Helper()
	for _, c := range allConfigs(t) {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no config %s", name)
	return configFile{}
}

// TestSchemaMirrorsTheConfigType keeps configs_test.go's key tree equal to
// the keys limits.Config really decodes.
func TestSchemaMirrorsTheConfigType(t *testing.T) {
	want := schemaOf(reflect.TypeFor[limits.Config]())
	if !reflect.DeepEqual(configSchema, want) {
		t.Errorf("configSchema differs from limits.Config:\n got %v\nwant %v", configSchema, want)
	}
}

// schemaOf builds the key tree of a config type from its yaml tags.
func schemaOf(typ reflect.Type) any {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ.Kind() == reflect.Struct:
		m := map[string]any{}
		for f := range typ.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
				m[name] = schemaOf(f.Type)
			}
		}
		return m
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct:
		return []any{schemaOf(typ.Elem())}
	}
	return anyValue
}
