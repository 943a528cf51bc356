package api

import (
	"context"
	"net/http"
	"time"
)

// SessionIDHeader names the session on the answer to POST /v1/sessions, so a
// client knows what to resume even if the stream breaks before its first line.
const SessionIDHeader = "X-Enclave-Session-Id"

// heartbeatPayload is the payload of every heartbeat.
var heartbeatPayload = []byte(`{}`)

// stream answers with the session's events from seq from on as NDJSON, and a
// heartbeat whenever nothing was written for HeartbeatInterval. It returns when
// the backend closes the channel (after the terminal event) or the client leaves.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, id string, from int64) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // ends the backend's subscription whichever way we leave
	events, err := h.b.Subscribe(ctx, ownerOf(r), id, from)
	if err != nil {
		h.fail(w, r, "subscribe", err)
		return
	}
	startStream(w, id)
	enc := NewEncoder(w)
	last := from - 1
	if err := h.pump(ctx, enc, events, id, &last); err != nil {
		// The client went away or the backend handed us a bad event; either way
		// the stream cannot go on, and a client resumes from its last seq.
		h.log.Debug("stream ended", "session_id", id, "last_seq", last, "error", err)
	}
}

// startStream writes the stream's headers. A stream lives as long as its
// session, so the server's read and write deadlines, if any, must not cut it: the
// read deadline bounds a slow request body, and the request has been read by now.
func startStream(w http.ResponseWriter, id string) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // not every writer supports deadlines
	_ = rc.SetReadDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", ContentTypeNDJSON)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set(SessionIDHeader, id)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
}

// pump copies events to enc until the channel closes, writing a heartbeat after
// every quiet HeartbeatInterval. *last tracks the seq of the last line written.
func (h *handler) pump(ctx context.Context, enc *Encoder, events <-chan Event, id string, last *int64) error {
	quiet := time.NewTimer(h.opts.HeartbeatInterval)
	defer quiet.Stop()
	for {
		var ev Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-events:
			if !ok {
				return nil
			}
			ev = e
		case <-quiet.C:
			ev = h.heartbeat(id, *last)
		}
		if err := enc.EncodeBuffered(ev); err != nil {
			return err
		}
		// Flush only when nothing else is waiting: a burst (a replay, a final
		// right after the last console line) goes out in one write, and a
		// lone event still goes out at once.
		if len(events) == 0 {
			enc.Flush()
		}
		*last = max(*last, ev.Seq)
		quiet.Reset(h.opts.HeartbeatInterval)
	}
}

func (h *handler) heartbeat(id string, seq int64) Event {
	return Event{
		ProtocolVersion: ProtocolVersion,
		SessionID:       id,
		Seq:             seq,
		Type:            EventHeartbeat,
		Timestamp:       time.Now().UTC(),
		Payload:         heartbeatPayload,
	}
}
