package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// decodeStrict reads exactly one JSON value from r's body into v: unknown fields,
// an empty body, trailing data and a body over limit bytes are all refused with
// INVALID_REQUEST (413 for the size, through the status of the error).
func decodeStrict(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err, limit)
	}
	// A second value, or anything but whitespace after the first, is refused:
	// `{"code":"a"}{"code":"b"}` must not run only half of what was sent.
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if err == nil {
			return Errorf(CodeInvalidRequest, "body holds more than one JSON value")
		}
		return bodyError(err, limit)
	}
	return nil
}

// tooLargeError is INVALID_REQUEST answered with 413 instead of 400.
type tooLargeError struct{ err *Error }

func (e tooLargeError) Error() string { return e.err.Error() }
func (e tooLargeError) Unwrap() error { return e.err }

// bodyError turns a decoding failure into the error the client is answered with.
func bodyError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLargeError{err: Errorf(CodeInvalidRequest, "body larger than %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return Errorf(CodeInvalidRequest, "empty body")
	default:
		return Errorf(CodeInvalidRequest, "malformed JSON body: %v", err)
	}
}
