package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/enclave-go/enclave/api"
)

// maxAnswerBytes bounds how much of a non-stream answer is read.
const maxAnswerBytes = 1 << 20

// StatusError is an HTTP error answer that carried no Enclave error code (a
// proxy's page, a readiness refusal). Answers with a code become *api.Error.
type StatusError struct {
	Status int
	Body   string // the start of the body, for the message
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// decodeError turns an error answer into *api.Error when its body is an
// ErrorPayload, else into *StatusError.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	var p api.ErrorPayload
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return &api.Error{Code: p.Code, Message: p.Message, Line: p.Line, Column: p.Column}
	}
	const keep = 512
	text := strings.TrimSpace(string(body))
	if len(text) > keep {
		text = text[:keep] + "…"
	}
	return &StatusError{Status: resp.StatusCode, Body: text}
}

// retryable reports whether a failed request may succeed if sent again: the
// connection failed, or the server answered with a 5xx (a broker whose Redis is
// restarting). A 4xx answer is final: sending the same request again cannot help.
func retryable(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) {
		return api.StatusOf(ae.Code) >= http.StatusInternalServerError
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= http.StatusInternalServerError
	}
	return true
}
