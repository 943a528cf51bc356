package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// newServer starts the handler over b on a loopback httptest server.
func newServer(t *testing.T, b Backend, opts HandlerOptions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(b, opts))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// wantError checks an error answer: its status, JSON content type and code.
func wantError(t *testing.T, resp *http.Response, status int, code Code) ErrorPayload {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d", resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var p ErrorPayload
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	if p.Code != code {
		t.Errorf("code = %q, want %q (message %q)", p.Code, code, p.Message)
	}
	if p.Message == "" {
		t.Error("error message is empty")
	}
	return p
}

func readEvents(t *testing.T, r io.Reader) []Event {
	t.Helper()
	var out []Event
	dec := NewDecoder(r)
	for {
		ev, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode stream: %v", err)
		}
		out = append(out, ev)
	}
}

func seqs(evs []Event) []int64 {
	var s []int64
	for _, ev := range evs {
		s = append(s, ev.Seq)
	}
	return s
}

func TestCreateStreamsEvents(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{})
	resp := do(t, "POST", srv.URL+"/v1/sessions",
		`{"code":"return 42","securityLevel":"STRICT","clientTools":["users:*"],"limits":{"timeout":"2s"}}`)

	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ContentTypeNDJSON {
		t.Errorf("Content-Type = %q", ct)
	}
	if id := resp.Header.Get(SessionIDHeader); id != "s1" {
		t.Errorf("%s = %q, want s1", SessionIDHeader, id)
	}
	evs := readEvents(t, resp.Body)
	if got := seqs(evs); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("seqs = %v, want [1 2 3]", got)
	}
	if evs[0].Type != EventSessionInit || evs[2].Type != EventFinal {
		t.Errorf("types = %s..%s", evs[0].Type, evs[2].Type)
	}
	var fin FinalPayload
	if err := json.Unmarshal(evs[2].Payload, &fin); err != nil || string(fin.Result) != "42" {
		t.Errorf("final payload = %s (%v)", evs[2].Payload, err)
	}
	req := b.created[0]
	if req.SecurityLevel != "STRICT" || req.ClientTools[0] != "users:*" ||
		time.Duration(*req.Limits.Timeout) != 2*time.Second {
		t.Errorf("backend got %+v", req)
	}
}

func TestCreateRejectsBadBodies(t *testing.T) {
	big := `{"code":"` + strings.Repeat("x", 2048) + `"}`
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{"malformed", `{"code":`, 400},
		{"not an object", `["code"]`, 400},
		{"unknown field", `{"code":"1","cdoe":"2"}`, 400},
		{"empty body", ``, 400},
		{"whitespace body", "  \n", 400},
		{"null body", `null`, 400},
		{"empty code", `{"code":""}`, 400},
		{"blank code", `{"code":"  \n"}`, 400},
		{"wrong type", `{"code":42}`, 400},
		{"trailing garbage", `{"code":"1"} xyz`, 400},
		{"two values", `{"code":"1"}{"code":"2"}`, 400},
		{"bad duration", `{"code":"1","limits":{"timeout":"soon"}}`, 400},
		{"oversized", big, 413},
	}
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{MaxBodyBytes: 1024})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, "POST", srv.URL+"/v1/sessions", tt.body)
			wantError(t, resp, tt.status, CodeInvalidRequest)
		})
	}
	if len(b.created) != 0 {
		t.Errorf("backend created %d sessions from bad bodies", len(b.created))
	}
}

func TestCreateBackendErrors(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		code       Code
		retryAfter string
	}{
		{Errorf(CodeQueueFull, "queue full"), 429, CodeQueueFull, "1"},
		{Errorf(CodeSessionLimit, "too many"), 429, CodeSessionLimit, "1"},
		{Errorf(CodeQueueTimeout, "waited"), 503, CodeQueueTimeout, "1"},
		{Errorf(CodeUnauthorized, "no"), 401, CodeUnauthorized, ""},
		{errors.New("dial redis 10.1.2.3:6379: refused"), 500, CodeInternal, ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			b := newFakeBackend()
			b.createErr = tt.err
			srv := newServer(t, b, HandlerOptions{Logger: discardLogger()})
			resp := do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`)
			p := wantError(t, resp, tt.status, tt.code)
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			if strings.Contains(p.Message, "10.1.2.3") {
				t.Errorf("internal detail leaked: %q", p.Message)
			}
		})
	}
}

func TestEventsReplay(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{})
	do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`)
	tests := []struct {
		query string
		want  []int64
	}{
		{"", []int64{1, 2, 3}},
		{"?fromSeq=0", []int64{1, 2, 3}},
		{"?fromSeq=2", []int64{2, 3}},
		{"?fromSeq=3", []int64{3}},
	}
	for _, tt := range tests {
		resp := do(t, "GET", srv.URL+"/v1/sessions/s1/events"+tt.query, "")
		got := seqs(readEvents(t, resp.Body))
		if !equalSeqs(got, tt.want) {
			t.Errorf("%q: seqs = %v, want %v", tt.query, got, tt.want)
		}
	}
}

func equalSeqs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEventsErrors(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{})
	do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`)
	tests := []struct {
		path   string
		status int
		code   Code
	}{
		{"/v1/sessions/s1/events?fromSeq=abc", 400, CodeInvalidRequest},
		{"/v1/sessions/s1/events?fromSeq=-1", 400, CodeInvalidRequest},
		{"/v1/sessions/s1/events?fromSeq=1.5", 400, CodeInvalidRequest},
		{"/v1/sessions/nope/events", 404, CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			wantError(t, do(t, "GET", srv.URL+tt.path, ""), tt.status, tt.code)
		})
	}
}

func TestToolResult(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		code   Code
	}{
		{"result", `{"callId":"c1","result":{"n":1}}`, 200, ""},
		{"null result", `{"callId":"c2","result":null}`, 200, ""},
		{"error", `{"callId":"c3","error":{"message":"nope"}}`, 200, ""},
		{"missing callId", `{"result":1}`, 400, CodeInvalidRequest},
		{"both", `{"callId":"c","result":1,"error":{"message":"x"}}`, 400, CodeInvalidRequest},
		{"neither", `{"callId":"c"}`, 400, CodeInvalidRequest},
		{"unknown field", `{"callId":"c","result":1,"extra":true}`, 400, CodeInvalidRequest},
		{"malformed", `{"callId":`, 400, CodeInvalidRequest},
		{"not pending", `{"callId":"answered","result":1}`, 409, CodeToolCallNotExpected},
	}
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{})
	do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, "POST", srv.URL+"/v1/sessions/s1/tool-result", tt.body)
			if tt.status == 200 {
				wantOK(t, resp)
				return
			}
			wantError(t, resp, tt.status, tt.code)
		})
	}
	got := b.toolResults
	if len(got) != 3 || string(got[0].Result) != `{"n":1}` || string(got[1].Result) != "null" ||
		got[2].Error == nil || got[2].Error.Message != "nope" {
		t.Errorf("backend got %+v", got)
	}
	resp := do(t, "POST", srv.URL+"/v1/sessions/zzz/tool-result", `{"callId":"c","result":1}`)
	wantError(t, resp, 404, CodeNotFound)
}

func wantOK(t *testing.T, resp *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"ok":true}` {
		t.Errorf("answer = %d %s, want 200 {\"ok\":true}", resp.StatusCode, body)
	}
}

func TestCancel(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{Logger: discardLogger()})
	do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`)
	wantOK(t, do(t, "DELETE", srv.URL+"/v1/sessions/s1", ""))
	if len(b.cancelled) != 1 || b.cancelled[0] != "s1" {
		t.Errorf("cancelled = %v", b.cancelled)
	}
	wantError(t, do(t, "DELETE", srv.URL+"/v1/sessions/s9", ""), 404, CodeNotFound)
	p := wantError(t, do(t, "DELETE", srv.URL+"/v1/sessions/plain", ""), 500, CodeInternal)
	if strings.Contains(p.Message, "10.0.0.7") {
		t.Errorf("internal detail leaked: %q", p.Message)
	}
}

func TestHealthAndReady(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{})
	wantStatusBody(t, do(t, "GET", srv.URL+"/healthz", ""), 200, `{"status":"ok"}`)
	wantStatusBody(t, do(t, "GET", srv.URL+"/readyz", ""), 200, `{"status":"ok"}`)
	b.readyErr = errors.New("no idle worker")
	wantStatusBody(t, do(t, "GET", srv.URL+"/readyz", ""), 503,
		`{"status":"not ready","reason":"no idle worker"}`)
}

func wantStatusBody(t *testing.T, resp *http.Response, status int, body string) {
	t.Helper()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || strings.TrimSpace(string(got)) != body {
		t.Errorf("answer = %d %s, want %d %s", resp.StatusCode, got, status, body)
	}
}

func TestUnknownRouteAndWrongMethod(t *testing.T) {
	srv := newServer(t, newFakeBackend(), HandlerOptions{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/v1/sessions/", 404, ""},
		{"GET", "/v1/sessions/a/b/c", 404, ""},
		{"POST", "/v1/sessions//tool-result", 404, ""},
		{"GET", "/v1/sessions/../healthz", 404, ""},
		{"GET", "/v1/./sessions/s1/events", 404, ""},
		{"GET", "/v1/sessions", 405, "POST"},
		{"PUT", "/v1/sessions/s1", 405, "DELETE"},
		{"POST", "/v1/sessions/s1/events", 405, "GET, HEAD"},
		{"GET", "/v1/sessions/s1/tool-result", 405, "POST"},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "/readyz", 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			resp := do(t, tt.method, srv.URL+tt.path, "")
			code := CodeNotFound
			if tt.status == 405 {
				code = CodeInvalidRequest
			}
			wantError(t, resp, tt.status, code)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestHeartbeatWhenQuiet(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{HeartbeatInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/sessions",
		strings.NewReader(`{"code":"quiet"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	dec := NewDecoder(resp.Body)
	var got []Event
	for range 3 {
		ev, err := dec.Decode()
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		got = append(got, ev)
	}
	if got[0].Type != EventSessionInit {
		t.Fatalf("first event %s", got[0].Type)
	}
	for _, hb := range got[1:] {
		if hb.Type != EventHeartbeat || hb.Seq != 1 || hb.SessionID != "s1" || string(hb.Payload) != "{}" {
			t.Errorf("heartbeat = %+v payload %s", hb, hb.Payload)
		}
	}

	// The client leaving must end the backend subscription too.
	cancel()
	waitFor(t, func() bool { return b.subscriberCount() == 0 })
}

// waitFor polls cond until it holds or the test has waited too long.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestPanicIsRecovered(t *testing.T) {
	var logs syncBuffer
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	p := wantError(t, do(t, "DELETE", srv.URL+"/v1/sessions/boom", ""), 500, CodeInternal)
	if strings.Contains(p.Message, "exploded") {
		t.Errorf("panic value leaked to the client: %q", p.Message)
	}
	if !strings.Contains(logs.String(), "cancel exploded") {
		t.Errorf("panic not logged; log = %q", logs.String())
	}
	// The server goes on serving.
	wantStatusBody(t, do(t, "GET", srv.URL+"/healthz", ""), 200, `{"status":"ok"}`)
}

func TestAuthenticate(t *testing.T) {
	b := newFakeBackend()
	srv := newServer(t, b, HandlerOptions{Authenticate: BearerAuth([]string{"k1", "k2"})})

	wantError(t, do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`), 401, CodeUnauthorized)
	wantError(t, do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`, "Authorization", "Bearer k3"),
		401, CodeUnauthorized)
	resp := do(t, "POST", srv.URL+"/v1/sessions", `{"code":"1"}`, "Authorization", "Bearer k2")
	if n := len(readEvents(t, resp.Body)); resp.StatusCode != 200 || n != 3 {
		t.Fatalf("authorized create = %d with %d events", resp.StatusCode, n)
	}
	if b.owners[0] != OwnerOfKey("k2") {
		t.Errorf("owner = %q, want %q", b.owners[0], OwnerOfKey("k2"))
	}
	// Another key is another owner: the backend refuses it the session.
	wantError(t, do(t, "DELETE", srv.URL+"/v1/sessions/s1", "", "Authorization", "Bearer k1"),
		401, CodeUnauthorized)
	wantOK(t, do(t, "DELETE", srv.URL+"/v1/sessions/s1", "", "Authorization", "Bearer k2"))
	// Probes stay open.
	wantStatusBody(t, do(t, "GET", srv.URL+"/healthz", ""), 200, `{"status":"ok"}`)
	wantStatusBody(t, do(t, "GET", srv.URL+"/readyz", ""), 200, `{"status":"ok"}`)
}

func TestBearerAuth(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		header string
		owner  string
	}{
		{"valid", []string{"alpha", "beta"}, "Bearer beta", OwnerOfKey("beta")},
		{"scheme case", []string{"alpha"}, "bearer alpha", OwnerOfKey("alpha")},
		{"no header", []string{"alpha"}, "", ""},
		{"basic scheme", []string{"alpha"}, "Basic alpha", ""},
		{"wrong key", []string{"alpha"}, "Bearer alph", ""},
		{"prefix of key", []string{"alpha"}, "Bearer alphaa", ""},
		{"empty token", []string{"alpha"}, "Bearer ", ""},
		{"empty key configured", []string{""}, "Bearer ", ""},
		{"no keys", nil, "Bearer alpha", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			owner, err := BearerAuth(tt.keys)(r)
			if tt.owner == "" {
				if err == nil || CodeOf(err) != CodeUnauthorized {
					t.Errorf("err = %v, want UNAUTHORIZED", err)
				}
				return
			}
			if err != nil || owner != tt.owner {
				t.Errorf("owner, err = %q, %v; want %q", owner, err, tt.owner)
			}
		})
	}
	if o := OwnerOfKey("alpha"); len(o) != 16 || o == OwnerOfKey("beta") || strings.Contains(o, "alpha") {
		t.Errorf("OwnerOfKey(alpha) = %q", o)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		code Code
		want int
	}{
		{CodeInvalidRequest, 400},
		{CodeValidation, 400},
		{CodeUnauthorized, 401},
		{CodeNotFound, 404},
		{CodeToolCallNotExpected, 409},
		{CodeQueueFull, 429},
		{CodeSessionLimit, 429},
		{CodeQueueTimeout, 503},
		{CodeInternal, 500},
		{CodeWorkerCrashed, 500},
		{CodeRuntimeLost, 502},
		{CodeTimeout, 504},
		{Code("SOMETHING_NEW"), 500},
	}
	for _, tt := range tests {
		if got := StatusOf(tt.code); got != tt.want {
			t.Errorf("StatusOf(%s) = %d, want %d", tt.code, got, tt.want)
		}
	}
}
