package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
)

type corpusCase struct {
	ID          string          `json:"id"`
	Code        string          `json:"code"`
	Expect      string          `json:"expect"`
	ExpectValue json.RawMessage `json:"expect_value"`
	Also        []struct {
		Expect string `json:"expect"`
		Text   string `json:"text"`
	} `json:"also"`
}

var limitCodes = map[api.Code]bool{
	api.CodeTimeout: true, api.CodeMaxIterations: true, api.CodeMaxToolCalls: true,
	api.CodeMemoryLimit: true, api.CodeConsoleLimit: true, api.CodeSerializationLimit: true,
	api.CodeValidation: true,
}

// corpusTimeout shortens the runs (the corpus says 5 s changes no outcome).
const corpusTimeout = 5 * time.Second

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	path := filepath.Join(repoRoot(t), "..", "shared", "corpus", "cases.jsonl")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("corpus not found at %s: %v", path, err)
	}
	defer f.Close()
	var cases []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("corpus line: %v", err)
		}
		cases = append(cases, c)
	}
	return cases
}

// corpusTools are the corpus's fixture tools, answered by the client.
func corpusTools(_ context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	if name == "fail" {
		var a struct{ Message string }
		_ = json.Unmarshal(args, &a)
		return nil, errors.New(a.Message)
	}
	return args, nil
}

// Every corpus case gets its expected outcome through the real daemon at STANDARD,
// the daemon stays up, and the next run on the same pool succeeds.
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	d := startDaemon(t, func(c *limits.Config) {
		timeout := limits.Duration(corpusTimeout)
		c.Limits.Timeout = &timeout
	})
	c, err := client.New(client.Options{Socket: d.socket})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.ID, func(t *testing.T) {
			start := time.Now()
			res, err := c.Execute(context.Background(), client.ExecuteOptions{
				Request: api.CreateRequest{Code: tc.Code, ClientTools: []string{"echo", "fail"}},
				Tools:   corpusTools,
			})
			checkOutcome(t, tc, res, err)
			// A generous bound that proves the run was stopped, not a speed check.
			if d := time.Since(start); d > corpusTimeout+3*time.Second {
				t.Errorf("took %s, limit %s", d, corpusTimeout)
			}
			next, err := c.Execute(context.Background(), client.ExecuteOptions{Request: api.CreateRequest{Code: "return 'next'"}})
			if err != nil || string(next.Value) != `"next"` {
				t.Fatalf("the next run failed: %v", err)
			}
		})
	}
}

func checkOutcome(t *testing.T, tc corpusCase, res *client.Result, err error) {
	t.Helper()
	code := api.Code("")
	if err != nil {
		var e *api.Error
		if !errors.As(err, &e) {
			t.Fatalf("not a coded error: %v", err)
		}
		code = e.Code
	}
	for _, alt := range tc.Also {
		if alt.Expect == "value_contains" && err == nil && strings.Contains(string(res.Value), alt.Text) {
			return
		}
	}
	switch tc.Expect {
	case "blocked":
		if code != api.CodeValidation {
			t.Fatalf("want VALIDATION_ERROR, got %q (%v)", code, err)
		}
	case "limit":
		if !limitCodes[code] {
			t.Fatalf("want a limit's code, got %q (%v)", code, err)
		}
	case "error":
		if err == nil || code == api.CodeInternal || code == api.CodeWorkerCrashed {
			t.Fatalf("want a clean coded error, got %q (%v)", code, err)
		}
	case "value":
		if err != nil {
			t.Fatalf("want a value, got %v", err)
		}
		var got, want any
		_ = json.Unmarshal(res.Value, &got)
		_ = json.Unmarshal(tc.ExpectValue, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("result %s, want %s", res.Value, tc.ExpectValue)
		}
	default:
		t.Fatalf("unknown expectation %q", tc.Expect)
	}
}
