package api

import (
	"encoding/json"
	"errors"
	"net/http"
)

// statusByCode is the one place a wire code meets an HTTP status. Codes that only
// ever end a session inside the stream still get a status, for a backend that
// refuses a session up front with one of them.
var statusByCode = map[Code]int{
	CodeInvalidRequest:      http.StatusBadRequest,
	CodeValidation:          http.StatusBadRequest,
	CodeUnauthorized:        http.StatusUnauthorized,
	CodeToolNotAllowed:      http.StatusForbidden,
	CodeNotFound:            http.StatusNotFound,
	CodeToolCallNotExpected: http.StatusConflict,
	CodeCancelled:           http.StatusConflict,
	CodeSerializationLimit:  http.StatusRequestEntityTooLarge,
	CodeScript:              http.StatusUnprocessableEntity,
	CodeMaxIterations:       http.StatusUnprocessableEntity,
	CodeMaxToolCalls:        http.StatusUnprocessableEntity,
	CodeMemoryLimit:         http.StatusUnprocessableEntity,
	CodeConsoleLimit:        http.StatusUnprocessableEntity,
	CodeToolError:           http.StatusUnprocessableEntity,
	CodeQueueFull:           http.StatusTooManyRequests,
	CodeSessionLimit:        http.StatusTooManyRequests,
	CodeInternal:            http.StatusInternalServerError,
	CodeWorkerCrashed:       http.StatusInternalServerError,
	CodeRuntimeLost:         http.StatusBadGateway,
	CodeQueueTimeout:        http.StatusServiceUnavailable,
	CodeUnavailable:         http.StatusServiceUnavailable,
	CodeTimeout:             http.StatusGatewayTimeout,
	CodeToolTimeout:         http.StatusGatewayTimeout,
}

// StatusOf returns the HTTP status that answers an error with code c; an unknown
// code is 500.
func StatusOf(c Code) int {
	if s, ok := statusByCode[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// retryable codes are answered with Retry-After: the refusal is about load, and
// the same request may succeed a moment later.
func retryable(c Code) bool {
	return c == CodeQueueFull || c == CodeSessionLimit || c == CodeQueueTimeout || c == CodeUnavailable
}

// okBody is the body of every successful non-stream answer that carries no data.
var okBody = []byte(`{"ok":true}` + "\n")

// writeJSON answers with status and v as a JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"code":"INTERNAL","message":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeOK answers 200 {"ok":true}.
func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

// payloadOf turns err into the JSON body of an error answer. An error without a
// code is INTERNAL with a fixed message: its text may name hosts, files or
// internals the caller has no business seeing (the handler logs it instead).
func payloadOf(err error) ErrorPayload {
	var e *Error
	if !errors.As(err, &e) {
		return ErrorPayload{Code: CodeInternal, Message: "internal error"}
	}
	return ErrorPayload{Code: e.Code, Message: e.Message, Line: e.Line, Column: e.Column}
}

// writeError answers with the status of err's code and its ErrorPayload.
func writeError(w http.ResponseWriter, err error) {
	p := payloadOf(err)
	status := StatusOf(p.Code)
	var tooBig tooLargeError
	if errors.As(err, &tooBig) {
		status = http.StatusRequestEntityTooLarge
	}
	if retryable(p.Code) {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, p)
}
