package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestEncoderMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 600700800, time.UTC)
	tests := []Event{
		{ProtocolVersion: "1", SessionID: "s1", Seq: 7, Type: EventStdout, Timestamp: ts,
			Payload: json.RawMessage(`{"level":"log","text":"a\nb"}`)},
		{ProtocolVersion: "1", SessionID: `we"ird<&>\ id` + "\u2028é\x01", Seq: 1, Type: EventFinal,
			Timestamp: ts, Payload: json.RawMessage(`{"result":[1,2,{"x":null}]}`)},
		{ProtocolVersion: "1", SessionID: "s", Type: EventHeartbeat, Timestamp: ts},
	}
	for _, ev := range tests {
		var buf bytes.Buffer
		if err := NewEncoder(&buf).Encode(ev); err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("not one line: %q", line)
		}
		var got, want map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("encoder wrote invalid JSON %q: %v", line, err)
		}
		if len(ev.Payload) == 0 {
			ev.Payload = json.RawMessage(`{}`)
		}
		std, _ := json.Marshal(ev)
		_ = json.Unmarshal(std, &want)
		if g, w := mustJSON(got), mustJSON(want); g != w {
			t.Errorf("encoder wrote\n%s\nencoding/json writes\n%s", g, w)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestEncoderCompactsPayloadAndRefusesBadOne(t *testing.T) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	ev := NewEvent("s1", 1, EventLog, nil)
	ev.Payload = json.RawMessage("{\n  \"text\": \"x\"\n}")
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 || !strings.Contains(buf.String(), `"payload":{"text":"x"}`) {
		t.Errorf("payload not compacted onto one line: %q", buf.String())
	}
	buf.Reset()
	ev.Payload = json.RawMessage(`{"text":`)
	if err := enc.Encode(ev); err == nil || buf.Len() != 0 {
		t.Errorf("bad payload: err %v, wrote %q", err, buf.String())
	}
}

func TestEncoderFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	enc := NewEncoder(rec)
	if err := enc.EncodeBuffered(NewEvent("s", 1, EventSessionInit, SessionInitPayload{})); err != nil {
		t.Fatal(err)
	}
	if rec.Flushed {
		t.Error("EncodeBuffered flushed")
	}
	if err := enc.Encode(NewEvent("s", 2, EventStdout, ConsolePayload{})); err != nil {
		t.Fatal(err)
	}
	if !rec.Flushed || strings.Count(rec.Body.String(), "\n") != 2 {
		t.Errorf("Encode did not flush both lines: flushed %v, body %q", rec.Flushed, rec.Body.String())
	}
}

func TestDecoderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for i := int64(1); i <= 3; i++ {
		if err := enc.Encode(NewEvent("s1", i, EventStdout, ConsolePayload{Text: "line"})); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("\n") // blank lines are skipped
	}
	dec := NewDecoder(&buf)
	for i := int64(1); i <= 3; i++ {
		ev, err := dec.Decode()
		if err != nil || ev.Seq != i || ev.Type != EventStdout || ev.SessionID != "s1" {
			t.Fatalf("event %d = %+v, %v", i, ev, err)
		}
	}
	if _, err := dec.Decode(); !errors.Is(err, io.EOF) {
		t.Errorf("end: err = %v, want io.EOF", err)
	}
}

func TestDecoderErrors(t *testing.T) {
	good := `{"seq":1,"type":"stdout","payload":{}}` + "\n"
	tests := []struct {
		name   string
		input  string
		max    int
		want   error
		inText string
	}{
		{"malformed line", good + "{not json}\n", 0, nil, "line 2"},
		{"too long", good + `{"seq":2,"payload":"` + strings.Repeat("x", 100) + `"}` + "\n", 64,
			ErrLineTooLong, "line 2"},
		{"cut mid-line", good + `{"seq":2,"ty`, 0, io.ErrUnexpectedEOF, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := NewDecoder(strings.NewReader(tt.input))
			if tt.max > 0 {
				dec.SetMaxLineBytes(tt.max)
			}
			if ev, err := dec.Decode(); err != nil || ev.Seq != 1 {
				t.Fatalf("first line: %+v, %v", ev, err)
			}
			_, err := dec.Decode()
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.inText) {
				t.Errorf("err %q does not name %q", err, tt.inText)
			}
		})
	}
}

func TestDecoderLongLineWithinLimit(t *testing.T) {
	text := strings.Repeat("y", 200<<10) // spans several bufio reads
	var buf bytes.Buffer
	_ = NewEncoder(&buf).Encode(NewEvent("s", 1, EventStdout, ConsolePayload{Text: text}))
	ev, err := NewDecoder(&buf).Decode()
	if err != nil {
		t.Fatal(err)
	}
	var p ConsolePayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.Text != text {
		t.Errorf("long payload lost (%d bytes, %v)", len(p.Text), err)
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev := NewEvent("3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2c", 12, EventToolCall, ToolCallPayload{
		CallID: "c-12", Name: "users:list", Args: json.RawMessage(`{"limit":3,"cursor":"abc"}`),
	})
	enc := NewEncoder(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeEventStdlib is the same line through encoding/json, for scale.
func BenchmarkEncodeEventStdlib(b *testing.B) {
	ev := NewEvent("3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2c", 12, EventToolCall, ToolCallPayload{
		CallID: "c-12", Name: "users:list", Args: json.RawMessage(`{"limit":3,"cursor":"abc"}`),
	})
	enc := json.NewEncoder(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}
