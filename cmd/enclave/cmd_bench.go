package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
)

// Error codes the bench adds to the wire codes.
const (
	// codeWrongResult counts runs that finished with a value other than the
	// expected one: a wrong answer is a failure, however fast.
	codeWrongResult = "WRONG_RESULT"
	// codeClient counts failures with no wire code: a refused connection, a lost
	// stream.
	codeClient = "CLIENT_ERROR"
)

// progressInterval is how often a progress line goes to stderr.
var progressInterval = time.Second

type benchConfig struct {
	socket, broker, apiKey string
	workload               string
	concurrency            int
	duration, warmup       time.Duration
	json                   bool
}

func runBench(ctx context.Context, args []string, io stdio) int {
	cfg, ok := parseBench(args, io.err)
	if !ok {
		return 2
	}
	w, err := newWorkload(cfg.workload)
	if err != nil {
		fmt.Fprintf(io.err, "enclave bench: %v\n", err)
		return 2
	}
	c, err := benchClient(cfg)
	if err != nil {
		fmt.Fprintf(io.err, "enclave bench: %v\n", err)
		return 2
	}
	defer c.Close()
	if err := c.Health(ctx); err != nil {
		fmt.Fprintf(io.err, "enclave bench: %s is not answering: %v\n", cfg.target(), err)
		return 1
	}
	// One run first: a refusal that every run would get (a bad API key, a request
	// the server will not take) ends the bench instead of repeating it thousands
	// of times a second.
	if _, err := c.Execute(ctx, w.options(1)); err != nil {
		if code := api.CodeOf(err); code == api.CodeUnauthorized || code == api.CodeInvalidRequest {
			fmt.Fprintf(io.err, "enclave bench: %s refused the workload: %v\n", cfg.target(), err)
			return 1
		}
	}
	rep := bench(ctx, c, cfg, w, io.err)
	if err := printReport(io.out, rep, cfg.json); err != nil {
		fmt.Fprintf(io.err, "enclave bench: %v\n", err)
		return 1
	}
	if rep.Errors > 0 {
		return 1
	}
	return 0
}

func parseBench(args []string, stderr io.Writer) (benchConfig, bool) {
	var cfg benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.socket, "socket", limits.DefaultSocket(), "daemon's Unix socket")
	fs.StringVar(&cfg.broker, "broker", "", "broker URL (instead of the socket)")
	fs.StringVar(&cfg.apiKey, "api-key", os.Getenv("ENCLAVE_API_KEY"), "broker API key (default $ENCLAVE_API_KEY)")
	fs.StringVar(&cfg.workload, "workload", "simple", "simple (a loop and arithmetic) or tools (four client tool calls)")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "runs in flight at once")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "how long to run first without measuring")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as one JSON object")
	const use = "usage: enclave bench [--socket PATH | --broker URL --api-key K] --workload simple|tools --concurrency N --duration D [--warmup D] [--json]"
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, use)
		return cfg, false
	}
	if cfg.concurrency < 1 || cfg.duration <= 0 || cfg.warmup < 0 {
		fmt.Fprintln(stderr, "enclave bench: --concurrency and --duration must be positive, --warmup not negative")
		return cfg, false
	}
	return cfg, true
}

func (c benchConfig) target() string {
	if c.broker != "" {
		return c.broker
	}
	return "unix:" + c.socket
}

// benchClient builds a client whose transport keeps a connection idle for every
// run in flight and for its tool results, so the bench measures the server and
// not the reconnects of a small idle pool.
func benchClient(cfg benchConfig) (*client.Client, error) {
	idle := 2*cfg.concurrency + 4
	var t *http.Transport
	if cfg.broker != "" {
		t = http.DefaultTransport.(*http.Transport).Clone()
	} else {
		socket := cfg.socket
		t = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}
	}
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = idle, idle, 90*time.Second
	opts := client.Options{HTTPClient: &http.Client{Transport: t}, APIKey: cfg.apiKey}
	if cfg.broker != "" {
		opts.BaseURL = cfg.broker
	} else {
		opts.Socket = cfg.socket
	}
	return client.New(opts)
}

// workload is one kind of run: the request, the client tools that answer it and
// the check of its result.
type workload struct {
	name  string
	code  string
	tools []string
	// seeded runs get a different "seed" global each, so an answer that reached
	// the wrong session shows up as a wrong result.
	seeded bool
	handle client.ToolHandler
	want   func(seed int64) string
}

// simpleScript is a short loop and arithmetic.
const simpleScript = `let sum = 0;
for (let i = 1; i <= 100; i++) {
  sum += (i * i) % 7;
}
return sum;`

// toolsScript makes four client tool calls in a row, each using the last answer.
const toolsScript = `const a = await callTool('bench:add', { a: seed, b: 1 });
const b = await callTool('bench:add', { a: a.sum, b: 2 });
const c = await callTool('bench:add', { a: b.sum, b: 3 });
const d = await callTool('bench:add', { a: c.sum, b: 4 });
return d.sum;`

func newWorkload(name string) (workload, error) {
	switch name {
	case "simple":
		return workload{name: name, code: simpleScript, want: func(int64) string { return strconv.Itoa(simpleSum()) }}, nil
	case "tools":
		return workload{name: name, code: toolsScript, tools: []string{"bench:add"}, seeded: true,
			handle: addTool, want: func(seed int64) string { return strconv.FormatInt(seed+10, 10) }}, nil
	}
	return workload{}, fmt.Errorf("unknown workload %q (want simple or tools)", name)
}

// simpleSum computes simpleScript's answer in Go.
func simpleSum() int {
	sum := 0
	for i := 1; i <= 100; i++ {
		sum += (i * i) % 7
	}
	return sum
}

// addTool answers bench:add with {"sum": a+b}.
func addTool(_ context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	var in struct{ A, B int64 }
	if name != "bench:add" {
		return nil, fmt.Errorf("unknown tool %q", name)
	}
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, fmt.Errorf("bench:add args: %w", err)
	}
	return append(strconv.AppendInt([]byte(`{"sum":`), in.A+in.B, 10), '}'), nil
}

func (w workload) options(seed int64) client.ExecuteOptions {
	req := api.CreateRequest{Code: w.code, ClientTools: w.tools}
	if w.seeded {
		req.Globals = map[string]json.RawMessage{"seed": json.RawMessage(strconv.FormatInt(seed, 10))}
	}
	return client.ExecuteOptions{Request: req, Tools: w.handle}
}

// check returns "" for the right result, else the error code to count.
func (w workload) check(res *client.Result, err error, seed int64) string {
	if err != nil {
		return errorCode(err)
	}
	if strings.TrimSpace(string(res.Value)) != w.want(seed) {
		return codeWrongResult
	}
	return ""
}

func errorCode(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return string(ae.Code)
	}
	var se *client.StatusError
	if errors.As(err, &se) {
		return "HTTP_" + strconv.Itoa(se.Status)
	}
	return codeClient
}

// tally is what one phase of the bench saw.
type tally struct {
	ok, failed atomic.Int64
	seed       atomic.Int64

	mu        sync.Mutex // guards the fields below
	latencies []time.Duration
	errs      map[string]int64
	examples  map[string]string // the first message seen per code
}

func newTally() *tally {
	return &tally{errs: map[string]int64{}, examples: map[string]string{}}
}

func (t *tally) loop(ctx context.Context, c *client.Client, w workload, end time.Time) {
	var lat []time.Duration
	defer func() { t.mu.Lock(); t.latencies = append(t.latencies, lat...); t.mu.Unlock() }()
	for ctx.Err() == nil && time.Now().Before(end) {
		seed := t.seed.Add(1)
		began := time.Now()
		res, err := c.Execute(ctx, w.options(seed))
		took := time.Since(began)
		if ctx.Err() != nil {
			return
		}
		if code := w.check(res, err, seed); code != "" {
			t.fail(code, err, res)
			continue
		}
		t.ok.Add(1)
		lat = append(lat, took)
	}
}

func (t *tally) fail(code string, err error, res *client.Result) {
	t.failed.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs[code]++
	if _, seen := t.examples[code]; seen {
		return
	}
	if err != nil {
		t.examples[code] = err.Error()
	} else {
		t.examples[code] = "got " + string(res.Value)
	}
}

// progress prints a line every progressInterval until stop is closed.
func progress(w io.Writer, phase string, t *tally, stop <-chan struct{}) {
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	began := time.Now()
	var last int64
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			ok, failed := t.ok.Load(), t.failed.Load()
			secs := now.Sub(began).Seconds()
			fmt.Fprintf(w, "bench %s %5.1fs  ok %d  errors %d  now %.0f/s\n", phase, secs, ok, failed,
				float64(ok-last)/progressInterval.Seconds())
			last = ok
		}
	}
}

// bench runs the warm-up (not counted), then the measured phase, with progress
// lines on stderr, and returns the measured phase's report.
func bench(ctx context.Context, c *client.Client, cfg benchConfig, w workload, stderr io.Writer) benchReport {
	if cfg.warmup > 0 {
		_, _ = phase(ctx, c, cfg, w, cfg.warmup, "warmup", stderr)
	}
	t, took := phase(ctx, c, cfg, w, cfg.duration, "run", stderr)
	return report(cfg, w, t, took)
}

func phase(ctx context.Context, c *client.Client, cfg benchConfig, w workload, d time.Duration, name string, stderr io.Writer) (*tally, time.Duration) {
	t := newTally()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); progress(stderr, name, t, stop) }()
	took := t.load(ctx, c, w, cfg.concurrency, d)
	close(stop)
	wg.Wait()
	return t, took
}

// load keeps n runs in flight until d has passed, then waits for the last ones.
// Runs cut short by ctx (Ctrl-C) are not counted.
func (t *tally) load(ctx context.Context, c *client.Client, w workload, n int, d time.Duration) time.Duration {
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.loop(ctx, c, w, end)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// benchReport is the summary; --json prints it as is.
type benchReport struct {
	Workload            string            `json:"workload"`
	Target              string            `json:"target"`
	Concurrency         int               `json:"concurrency"`
	WarmupSeconds       float64           `json:"warmupSeconds"`
	DurationSeconds     float64           `json:"durationSeconds"` // measured wall time
	Executions          int64             `json:"executions"`      // runs with the right result
	Errors              int64             `json:"errors"`
	ExecutionsPerSecond float64           `json:"executionsPerSecond"`
	LatencyMs           latencyReport     `json:"latencyMs"` // of the right results
	ErrorsByCode        map[string]int64  `json:"errorsByCode"`
	ErrorExamples       map[string]string `json:"errorExamples,omitempty"`
}

type latencyReport struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func report(cfg benchConfig, w workload, t *tally, took time.Duration) benchReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	ok := t.ok.Load()
	return benchReport{
		Workload: w.name, Target: cfg.target(), Concurrency: cfg.concurrency,
		WarmupSeconds: cfg.warmup.Seconds(), DurationSeconds: took.Seconds(),
		Executions: ok, Errors: t.failed.Load(),
		ExecutionsPerSecond: float64(ok) / took.Seconds(),
		LatencyMs:           latencies(t.latencies),
		ErrorsByCode:        t.errs, ErrorExamples: t.examples,
	}
}

func latencies(d []time.Duration) latencyReport {
	if len(d) == 0 {
		return latencyReport{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return latencyReport{
		P50: ms(percentile(s, 50)), P90: ms(percentile(s, 90)), P99: ms(percentile(s, 99)),
		Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s))),
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printReport(w io.Writer, r benchReport, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "workload %s, concurrency %d, %.1fs measured after %.1fs warm-up, %s\n",
		r.Workload, r.Concurrency, r.DurationSeconds, r.WarmupSeconds, r.Target)
	fmt.Fprintf(&b, "  executions/s  %.1f   (%d right results, %d errors)\n", r.ExecutionsPerSecond, r.Executions, r.Errors)
	l := r.LatencyMs
	fmt.Fprintf(&b, "  latency ms    p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	codes := make([]string, 0, len(r.ErrorsByCode))
	for code := range r.ErrorsByCode {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		fmt.Fprintf(&b, "  error %-28s %d  (e.g. %s)\n", code, r.ErrorsByCode[code], r.ErrorExamples[code])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
