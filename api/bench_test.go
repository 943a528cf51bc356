package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchEvents is one session of the tools workload as the wire carries it:
// session_init, four tool calls each with its applied result, and the final.
func benchEvents() []Event {
	id := "3f2a9c1e-7b4d-4f0a-9a55-0c1d2e3f4a5b"
	evs := []Event{NewEvent(id, 1, EventSessionInit, SessionInitPayload{SecurityLevel: "STANDARD",
		Limits: LimitsReport{TimeoutMs: 30000, MaxIterations: 10000, MaxToolCalls: 100}})}
	for i := range 4 {
		seq := int64(2 + 2*i)
		evs = append(evs,
			NewEvent(id, seq, EventToolCall, ToolCallPayload{CallID: "c1", Name: "bench:add", Args: json.RawMessage(`{"a":1,"b":2}`)}),
			NewEvent(id, seq+1, EventToolResultApplied, ToolResultAppliedPayload{CallID: "c1", OK: true}))
	}
	return append(evs, NewEvent(id, 10, EventFinal, FinalPayload{Result: json.RawMessage(`{"total":42,"names":["a","b"]}`),
		Stats: Stats{DurationMs: 1, ToolCallCount: 4, IterationCount: 4}}))
}

// BenchmarkEncode writes one session's events as NDJSON (per event).
func BenchmarkEncode(b *testing.B) {
	evs := benchEvents()
	enc := NewEncoder(io.Discard)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := enc.Encode(evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDecode reads them back, as the client does (per event).
func BenchmarkDecode(b *testing.B) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for _, ev := range benchEvents() {
		if err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
	dec := NewDecoder(&repeatReader{data: buf.Bytes()})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader reads data over and over, so one Decoder (and its buffer) serves
// the whole benchmark.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkNewEvent is building an envelope: the payload's json.Marshal.
func BenchmarkNewEvent(b *testing.B) {
	p := ToolCallPayload{CallID: "c1", Name: "bench:add", Args: json.RawMessage(`{"a":1,"b":2}`)}
	b.ReportAllocs()
	for b.Loop() {
		_ = NewEvent("s1", 2, EventToolCall, p)
	}
}

// benchBackend serves every session as the same finished log.
type benchBackend struct{ events []Event }

func (f *benchBackend) Create(context.Context, string, CreateRequest) (string, error) {
	return f.events[0].SessionID, nil
}

func (f *benchBackend) Subscribe(context.Context, string, string, int64) (<-chan Event, error) {
	ch := make(chan Event, len(f.events))
	for _, ev := range f.events {
		ch <- ev
	}
	close(ch)
	return ch, nil
}

func (f *benchBackend) ToolResult(context.Context, string, string, ToolResultRequest) error {
	return nil
}
func (f *benchBackend) Cancel(context.Context, string, string) error { return nil }
func (f *benchBackend) Ready(context.Context) error                  { return nil }

// BenchmarkCreateSession is the handler's own cost of one session: decode the
// request, subscribe, write every event of the log (no network).
func BenchmarkCreateSession(b *testing.B) {
	evs := benchEvents()
	h := NewHandler(&benchBackend{events: evs}, HandlerOptions{})
	body := `{"code":"return 1","clientTools":["bench:*"]}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/sessions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || bytes.Count(rec.Body.Bytes(), []byte("\n")) != len(evs) {
			b.Fatalf("status %d, body %s", rec.Code, rec.Body)
		}
	}
}
