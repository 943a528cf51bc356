package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
)

// BenchmarkExecuteLive measures Execute end to end against a running daemon or
// broker, 16 sessions at once on 2 cores (8 per GOMAXPROCS):
//
//	ENCLAVE_BENCH_SOCKET=/run/enclave/enclave.sock go test -run '^$' -bench ExecuteLive ./client/
//	ENCLAVE_BENCH_URL=http://127.0.0.1:8080 ENCLAVE_BENCH_API_KEY=... go test ...
//
// It is skipped when neither variable is set.
func BenchmarkExecuteLive(b *testing.B) {
	opts := Options{
		Socket:  os.Getenv("ENCLAVE_BENCH_SOCKET"),
		BaseURL: os.Getenv("ENCLAVE_BENCH_URL"),
		APIKey:  os.Getenv("ENCLAVE_BENCH_API_KEY"),
	}
	if opts.Socket == "" && opts.BaseURL == "" {
		b.Skip("set ENCLAVE_BENCH_SOCKET or ENCLAVE_BENCH_URL to run against a server")
	}
	c, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	workloads := []struct {
		name  string
		req   api.CreateRequest
		tools ToolHandler
	}{
		{"simple", api.CreateRequest{Code: "const x = 1 + 1;\nreturn { x };"}, nil},
		{"tools", api.CreateRequest{
			Code: "let s = 0;\nfor (let i = 0; i < 4; i++) {\n  const r = await callTool('add', { i });\n" +
				"  s += r.v;\n}\nreturn s;",
			ClientTools: []string{"add"},
		}, echoV},
	}
	for _, wl := range workloads {
		b.Run(wl.name, func(b *testing.B) {
			runLive(b, c, ExecuteOptions{Request: wl.req, Tools: wl.tools})
		})
	}
}

// echoV answers {"i": n} with {"v": n}.
func echoV(_ context.Context, _ string, args json.RawMessage) (json.RawMessage, error) {
	var in struct{ I int }
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, err
	}
	return json.RawMessage(fmt.Sprintf(`{"v":%d}`, in.I)), nil
}

// runLive runs opts b.N times from 16 goroutines and reports throughput,
// latency percentiles of the successful runs and the number of failed ones.
func runLive(b *testing.B, c *Client, opts ExecuteOptions) {
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, b.N)
		failed   int
		firstErr error
	)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			_, err := c.Execute(context.Background(), opts)
			d := time.Since(start)
			mu.Lock()
			if err != nil {
				failed++
				firstErr = cmp.Or(firstErr, err)
			} else {
				lat = append(lat, d)
			}
			mu.Unlock()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(failed), "errors")
	if firstErr != nil {
		b.Logf("%d of %d runs failed, the first with: %v", failed, failed+len(lat), firstErr)
	}
	if len(lat) == 0 {
		b.Fatal("every run failed")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "exec/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkExecuteFake is the cost of the HTTP layer and this client alone: the
// same 16 concurrent sessions against an in-memory backend over a Unix socket
// (3 events per session), and with 4 client tool calls (14 events, 4 posts).
func BenchmarkExecuteFake(b *testing.B) {
	for _, wl := range []struct{ name, code string }{{"simple", "return 42"}, {"tools", "tools 4"}} {
		b.Run(wl.name, func(b *testing.B) {
			e := newEnv(b, "unix", api.HandlerOptions{}, Options{})
			runLive(b, e.client, ExecuteOptions{
				Request: api.CreateRequest{Code: wl.code},
				Tools:   (&adder{}).handle,
			})
		})
	}
}
