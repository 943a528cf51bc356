package api

import (
	"net/http"
	"runtime/debug"
)

// recoverPanics answers a panicking handler with 500 INTERNAL (when nothing was
// written yet) and logs it, so one bad request cannot take the server down.
// http.ErrAbortHandler passes through: it is how a handler asks net/http to
// drop the connection on purpose.
func (h *handler) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("handler panic", "method", r.Method, "path", r.URL.Path,
				"panic", v, "stack", string(debug.Stack()))
			if !tw.wroteHeader {
				writeError(w, Errorf(CodeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter remembers whether the header went out, since after that a
// panic can no longer be answered with a status.
type trackingWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (t *trackingWriter) WriteHeader(status int) {
	t.wroteHeader = true
	t.ResponseWriter.WriteHeader(status)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wroteHeader = true
	return t.ResponseWriter.Write(b)
}

// Flush lets the NDJSON encoder flush through the wrapper.
func (t *trackingWriter) Flush() {
	t.wroteHeader = true
	_ = http.NewResponseController(t.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer (write deadlines).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
