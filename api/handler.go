package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Handler defaults.
const (
	// DefaultMaxBodyBytes is the largest request body: a 1 MiB script plus room
	// for globals and options.
	DefaultMaxBodyBytes int64 = 1<<20 + 64<<10
	// DefaultHeartbeatInterval is how long a stream stays silent before a heartbeat.
	DefaultHeartbeatInterval = 5 * time.Second
	// readyTimeout bounds Backend.Ready so a stuck backend cannot hang a probe.
	readyTimeout = 5 * time.Second
)

// HandlerOptions configure NewHandler. The zero value is usable.
type HandlerOptions struct {
	// MaxBodyBytes bounds a request body; a larger one is 413 INVALID_REQUEST.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// HeartbeatInterval is how long a stream may stay silent before a heartbeat
	// line is written. Default DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Authenticate names the owner of a request to /v1/; an error answers 401
	// UNAUTHORIZED. Nil lets everyone in as owner "" (the local socket, whose
	// file permissions are the access control). /healthz and /readyz are open.
	Authenticate func(r *http.Request) (owner string, err error)
	// Logger receives handler failures and recovered panics. Default slog.Default().
	Logger *slog.Logger
	// Tools describes what scripts may call, for GET /v1/tools: a value answered as
	// JSON, and the same as text for ?format=text. Nil: the route answers 404.
	Tools func(ctx context.Context) (value any, text string, err error)
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// handler serves the HTTP API over one Backend.
type handler struct {
	b    Backend
	opts HandlerOptions
	log  *slog.Logger
}

// route is one path of the API: the methods it answers and their handlers.
type route struct {
	path    string
	methods map[string]http.HandlerFunc
}

// NewHandler returns the HTTP API of DESIGN's contract served over b: sessions,
// tool results, replay, cancel, health and readiness. Every error answer is a
// JSON ErrorPayload; a panic in a handler is answered 500 INTERNAL and logged.
func NewHandler(b Backend, opts HandlerOptions) http.Handler {
	opts = opts.withDefaults()
	h := &handler{b: b, opts: opts, log: opts.Logger}
	mux := http.NewServeMux()
	for _, rt := range h.routes() {
		h.register(mux, rt)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(CodeNotFound, "no route %s", r.URL.Path))
	})
	return h.recoverPanics(cleanPaths(mux))
}

// cleanPaths answers a path with empty, "." or ".." segments 404 itself:
// ServeMux would answer it with a redirect, which an API client does not
// follow and which would send an empty session id elsewhere.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != "/" && (p == "" || path.Clean(p) != strings.TrimSuffix(p, "/")) {
			writeError(w, Errorf(CodeNotFound, "no route %s", p))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) routes() []route {
	return []route{
		{"/v1/sessions", map[string]http.HandlerFunc{"POST": h.auth(h.create)}},
		{"/v1/sessions/{id}", map[string]http.HandlerFunc{"DELETE": h.auth(h.cancel)}},
		{"/v1/sessions/{id}/events", map[string]http.HandlerFunc{"GET": h.auth(h.events)}},
		{"/v1/sessions/{id}/tool-result", map[string]http.HandlerFunc{"POST": h.auth(h.toolResult)}},
		{"/v1/tools", map[string]http.HandlerFunc{"GET": h.auth(h.tools)}},
		{"/healthz", map[string]http.HandlerFunc{"GET": h.healthz}},
		{"/readyz", map[string]http.HandlerFunc{"GET": h.readyz}},
	}
}

// register adds rt's method patterns and a method-less pattern for the same path.
// ServeMux prefers the pattern with a method, so the method-less one only sees
// wrong methods and answers them 405 with a JSON body instead of ServeMux's text.
func (h *handler) register(mux *http.ServeMux, rt route) {
	allow := make([]string, 0, len(rt.methods))
	for m, fn := range rt.methods {
		mux.HandleFunc(m+" "+rt.path, fn)
		allow = append(allow, m)
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	allowed := strings.Join(allow, ", ")
	mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowed)
		writeJSON(w, http.StatusMethodNotAllowed, ErrorPayload{
			Code:    CodeInvalidRequest,
			Message: "method " + r.Method + " not allowed; use " + allowed,
		})
	})
}

// ownerKey carries the authenticated owner from auth to the handlers.
type ownerKey struct{}

// auth runs Authenticate before next and hands it the owner through the context.
func (h *handler) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		owner := ""
		if h.opts.Authenticate != nil {
			o, err := h.opts.Authenticate(r)
			if err != nil {
				writeError(w, unauthorized(err))
				return
			}
			owner = o
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ownerKey{}, owner)))
	}
}

// unauthorized keeps an Authenticate error's message when it carries a code and
// hides it otherwise.
func unauthorized(err error) *Error {
	if p := payloadOf(err); p.Code == CodeUnauthorized {
		return &Error{Code: CodeUnauthorized, Message: p.Message}
	}
	return Errorf(CodeUnauthorized, "missing or invalid credentials")
}

func ownerOf(r *http.Request) string {
	o, _ := r.Context().Value(ownerKey{}).(string)
	return o
}

// create handles POST /v1/sessions: validate, create, then stream from seq 1.
func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if err := decodeStrict(w, r, h.opts.MaxBodyBytes, &req); err != nil {
		writeError(w, err)
		return
	}
	if strings.TrimSpace(req.Code) == "" {
		writeError(w, Errorf(CodeInvalidRequest, "code is required"))
		return
	}
	id, err := h.b.Create(r.Context(), ownerOf(r), req)
	if err != nil {
		h.fail(w, r, "create session", err)
		return
	}
	// Named even if the stream cannot start: the session exists, and the
	// client may replay or cancel it.
	w.Header().Set(SessionIDHeader, id)
	h.stream(w, r, id, 1)
}

// events handles GET /v1/sessions/{id}/events?fromSeq=N.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	from, err := parseFromSeq(r.URL.Query().Get("fromSeq"))
	if err != nil {
		writeError(w, err)
		return
	}
	h.stream(w, r, r.PathValue("id"), from)
}

// parseFromSeq reads fromSeq; absent means 1, the whole log. 0 is read as 1 too:
// seqs start at 1, so "from 0" and "from 1" ask for the same events.
func parseFromSeq(s string) (int64, error) {
	if s == "" {
		return 1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, Errorf(CodeInvalidRequest, "fromSeq must be a non-negative integer, got %q", s)
	}
	return max(n, 1), nil
}

// toolResult handles POST /v1/sessions/{id}/tool-result.
func (h *handler) toolResult(w http.ResponseWriter, r *http.Request) {
	var req ToolResultRequest
	if err := decodeStrict(w, r, h.opts.MaxBodyBytes, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := checkToolResult(req); err != nil {
		writeError(w, err)
		return
	}
	err := h.b.ToolResult(r.Context(), ownerOf(r), r.PathValue("id"), req)
	if err != nil {
		h.fail(w, r, "tool result", err)
		return
	}
	writeOK(w)
}

// checkToolResult enforces a callId and exactly one of result and error. A JSON
// null result is a result: a tool may well answer null.
func checkToolResult(req ToolResultRequest) error {
	if req.CallID == "" {
		return Errorf(CodeInvalidRequest, "callId is required")
	}
	if (len(req.Result) > 0) == (req.Error != nil) {
		return Errorf(CodeInvalidRequest, "exactly one of result and error is required")
	}
	return nil
}

// cancel handles DELETE /v1/sessions/{id}.
func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	if err := h.b.Cancel(r.Context(), ownerOf(r), r.PathValue("id")); err != nil {
		h.fail(w, r, "cancel session", err)
		return
	}
	writeOK(w)
}

// tools answers GET /v1/tools: the declarations a model's prompt needs.
func (h *handler) tools(w http.ResponseWriter, r *http.Request) {
	if h.opts.Tools == nil {
		writeError(w, Errorf(CodeNotFound, "this server does not describe its tools"))
		return
	}
	value, text, err := h.opts.Tools(r.Context())
	if err != nil {
		h.fail(w, r, "describe tools", err)
		return
	}
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, text)
		return
	}
	writeJSON(w, http.StatusOK, value)
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of GET /readyz.
type readiness struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.b.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "not ready", Reason: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, readiness{Status: "ok"})
}

// fail answers a backend error, logging the ones a client is not told about.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	if CodeOf(err) == CodeInternal {
		h.log.Error(what+" failed", "path", r.URL.Path, "error", err)
	}
	writeError(w, err)
}
