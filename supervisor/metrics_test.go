package supervisor_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// After real runs (a success, a script error, a timeout, a recycled worker) each
// metric family moved as it should.
func TestMetricsAfterRuns(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers = 1, 1
		d := limits.Duration(time.Second)
		c.Limits.Timeout = &d
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := supervisor.New(ctx, supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1"},
		CgroupRoot: "none", Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, _ = s.Run(ctx, supervisor.Request{Code: "return 1"})
	_, _ = s.Run(ctx, supervisor.Request{Code: "throw new Error('x')"})
	_, _ = s.Run(ctx, supervisor.Request{Code: "return /^(?=[a-z])([a-z0-9]+)+$/.test('a'.repeat(40) + '!')"})
	_, _ = s.Run(ctx, supervisor.Request{Code: "await callTool('missing', {})"})

	checks := map[string]float64{
		`enclave_executions_total{result="success"}`:          1,
		`enclave_executions_total{result="SCRIPT_ERROR"}`:     1,
		`enclave_executions_total{result="TIMEOUT"}`:          1,
		`enclave_executions_total{result="TOOL_NOT_ALLOWED"}`: 1,
		`enclave_tool_calls_total{result="TOOL_NOT_ALLOWED"}`: 1,
		`enclave_worker_restarts_total{reason="timeout"}`:     1,
	}
	for series, want := range checks {
		if got := value(t, reg, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if n := value(t, reg, "enclave_execution_latency_seconds"); n != 4 {
		t.Errorf("latency histogram counted %v runs, want 4", n)
	}
	if got := value(t, reg, `enclave_active_executions`); got != 0 {
		t.Errorf("active executions %v after all runs ended", got)
	}
}

// value reads one series from the registry by its text-format name and labels.
func value(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			if len(m.GetLabel()) > 0 {
				name += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						name += ","
					}
					name += l.GetName() + `="` + l.GetValue() + `"`
				}
				name += "}"
			}
			if name != series {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}
