package broker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
)

// maxEvents caps a session's event stream (approximately, as Redis trims whole
// nodes). It is above what the loosest level lets a run write (10,000 console
// calls and 1,000 tool calls with two events each), so it only bites on a
// misbehaving writer.
const maxEvents = 20000

// eventField is the stream field that holds an event's JSON.
const eventField = "e"

// eventID is the stream id of the event with seq: "seq-0". Stream ids must grow,
// so Redis itself refuses a second event with the same seq.
func eventID(seq int64) string { return strconv.FormatInt(seq, 10) + "-0" }

// seqOfID reads the seq back from a stream id.
func seqOfID(id string) (int64, error) {
	ms, _, _ := strings.Cut(id, "-")
	return strconv.ParseInt(ms, 10, 64)
}

func encodeEvent(e api.Event) string {
	b, err := json.Marshal(e)
	if err != nil {
		// Events hold raw JSON built by this program; failing here is a bug.
		panic(fmt.Sprintf("encode event: %v", err))
	}
	return string(b)
}

func decodeEvent(m redis.XMessage) (api.Event, error) {
	var e api.Event
	raw, ok := m.Values[eventField].(string)
	if !ok {
		return e, fmt.Errorf("event %s has no %q field", m.ID, eventField)
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return e, fmt.Errorf("decode event %s: %w", m.ID, err)
	}
	return e, nil
}

// errorPayload is the error event of a failed run.
func errorPayload(err error) api.ErrorPayload {
	var e *api.Error
	if errors.As(err, &e) {
		return api.ErrorPayload{Code: e.Code, Message: e.Message, Line: e.Line, Column: e.Column}
	}
	return api.ErrorPayload{Code: api.CodeInternal, Message: err.Error()}
}

func nowMs() int64 { return time.Now().UnixMilli() }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isIDTooSmall reports a stream's refusal of an id it already holds: a retried
// write whose first attempt landed.
func isIDTooSmall(err error) bool {
	return err != nil && strings.Contains(err.Error(), "equal or smaller than the target stream top item")
}
