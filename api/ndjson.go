package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// ContentTypeNDJSON is the media type of an event stream: one JSON Event a line.
const ContentTypeNDJSON = "application/x-ndjson"

// DefaultMaxLineBytes bounds one line read by a Decoder: the largest result a
// PERMISSIVE session may return (16 MiB) plus room for the envelope.
const DefaultMaxLineBytes = 17 << 20

// Encoder writes Events as NDJSON, one line each, and flushes after every line
// when the writer is an http.Flusher so a client sees events as they happen.
// It is not safe for concurrent use.
type Encoder struct {
	w   io.Writer
	f   http.Flusher
	buf []byte
	tmp bytes.Buffer
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	f, _ := w.(http.Flusher)
	return &Encoder{w: w, f: f, buf: make([]byte, 0, 512)}
}

// Encode writes ev as one line and flushes it. The payload is compacted, so a
// payload with newlines inside cannot split the line, and validated, so a bad
// payload from a backend is an error here instead of a corrupt stream.
func (e *Encoder) Encode(ev Event) error {
	if err := e.EncodeBuffered(ev); err != nil {
		return err
	}
	e.Flush()
	return nil
}

// EncodeBuffered writes ev like Encode but leaves it in the writer's buffer,
// for a caller that knows more lines follow at once (a replay) and flushes
// once after them.
func (e *Encoder) EncodeBuffered(ev Event) error {
	b, err := e.appendEvent(e.buf[:0], ev)
	if err != nil {
		return err
	}
	e.buf = b
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}

// Flush flushes the writer if it is an http.Flusher.
func (e *Encoder) Flush() {
	if e.f != nil {
		e.f.Flush()
	}
}

// appendEvent writes the envelope by hand: the field set is fixed, and doing so
// avoids reflection and a copy of the payload on every line of every stream.
func (e *Encoder) appendEvent(b []byte, ev Event) ([]byte, error) {
	b = append(b, `{"protocolVersion":`...)
	b = appendString(b, ev.ProtocolVersion)
	b = append(b, `,"sessionId":`...)
	b = appendString(b, ev.SessionID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, string(ev.Type))
	b = append(b, `,"timestamp":"`...)
	b = ev.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","payload":`...)
	b, err := e.appendPayload(b, ev.Payload)
	if err != nil {
		return nil, err
	}
	return append(b, '}', '\n'), nil
}

// appendPayload appends p compacted; an empty payload is written as {}.
func (e *Encoder) appendPayload(b []byte, p json.RawMessage) ([]byte, error) {
	if len(p) == 0 {
		return append(b, '{', '}'), nil
	}
	e.tmp.Reset()
	if err := json.Compact(&e.tmp, p); err != nil {
		return nil, fmt.Errorf("encode event payload: %w", err)
	}
	return append(b, e.tmp.Bytes()...), nil
}

// appendString appends s as a JSON string. Plain printable ASCII, which is every
// id, type and version this protocol writes, takes the fast path.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ErrLineTooLong is returned by a Decoder for a line over its size limit.
var ErrLineTooLong = errors.New("ndjson line too long")

// Decoder reads Events from an NDJSON stream, one line at a time. Blank lines are
// skipped; unknown envelope fields are ignored so newer servers stay readable.
type Decoder struct {
	r    *bufio.Reader
	max  int
	line int
	buf  []byte
}

// NewDecoder returns a Decoder reading r with lines of at most DefaultMaxLineBytes.
// Its read buffer is small (every stream has one); a longer line is gathered
// piece by piece.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 4<<10), max: DefaultMaxLineBytes}
}

// SetMaxLineBytes changes the line size limit.
func (d *Decoder) SetMaxLineBytes(n int) { d.max = n }

// Decode reads the next event. It returns io.EOF at a clean end of stream and
// io.ErrUnexpectedEOF when the stream stops in the middle of a line.
func (d *Decoder) Decode() (Event, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return Event{}, fmt.Errorf("ndjson line %d: %w", d.line, err)
		}
		return ev, nil
	}
}

// readLine returns the next line without its newline, enforcing the size limit
// while reading so a hostile stream cannot make it buffer without bound.
func (d *Decoder) readLine() ([]byte, error) {
	d.buf = d.buf[:0]
	d.line++
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(d.buf)+len(chunk) > d.max+1 {
			return nil, fmt.Errorf("ndjson line %d: %w (limit %d bytes)", d.line, ErrLineTooLong, d.max)
		}
		d.buf = append(d.buf, chunk...)
		switch {
		case err == nil:
			return d.buf[:len(d.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(d.buf) > 0:
			return nil, fmt.Errorf("ndjson line %d: %w", d.line, io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}
