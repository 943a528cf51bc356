package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
)

// A scrape of /metrics after real runs (a success, a script error, a timeout that
// needed the hard kill, a worker killed from outside) shows each family moved.
func TestMetricsScrape(t *testing.T) {
	addr := freeLoopbackAddr(t)
	d := startDaemon(t, func(c *limits.Config) {
		c.Metrics.Listen = addr
		c.Pool.Size, c.Pool.MinWorkers = 1, 1
		timeout := limits.Duration(time.Second)
		c.Limits.Timeout = &timeout
	})
	c, _ := client.New(client.Options{Socket: d.socket})
	exec := func(code string, tools client.ToolHandler) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.Execute(ctx, client.ExecuteOptions{
			Request: api.CreateRequest{Code: code, ClientTools: []string{"hold"}}, Tools: tools,
		})
		return err
	}
	_ = exec("return 1", nil)
	_ = exec("throw new Error('no')", nil)
	_ = exec("return /^(?=[a-z])([a-z0-9]+)+$/.test('a'.repeat(40) + '!')", nil)
	err := exec("return await callTool('hold', {})", func(context.Context, string, json.RawMessage) (json.RawMessage, error) {
		for _, pid := range children() {
			var p int
			if _, err := fmt.Sscan(pid, &p); err == nil {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		time.Sleep(500 * time.Millisecond)
		return json.RawMessage("1"), nil
	})
	if api.CodeOf(err) != api.CodeWorkerCrashed {
		t.Fatalf("killed worker: %v", err)
	}
	text := scrape(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`enclave_executions_total{result="success"} 1`,
		`enclave_executions_total{result="SCRIPT_ERROR"} 1`,
		`enclave_executions_total{result="TIMEOUT"} 1`,
		`enclave_executions_total{result="WORKER_CRASHED"} 1`,
		`enclave_worker_restarts_total{reason="timeout"} 1`,
		`enclave_worker_restarts_total{reason="crashed"} 1`,
		`enclave_execution_latency_seconds_count 4`,
		`enclave_active_executions 0`,
		`enclave_queue_depth{runtime="local"} 0`,
		`enclave_worker_memory_bytes{worker_id="0"}`,
		`enclave_build_info{`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The RSS gauge is sampled every 100ms; wait until a sample exists.
			if strings.Contains(string(body), "enclave_worker_memory_bytes{") || time.Now().After(deadline) {
				return string(body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("scrape: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
