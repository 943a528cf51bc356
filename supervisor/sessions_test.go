package supervisor_test

import (
	"context"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/supervisor"
)

// Ended sessions stay replayable, but their kept events are bounded in bytes: the
// oldest large ones are dropped first and answer NOT_FOUND.
func TestSessionsRetentionIsBounded(t *testing.T) {
	s := newSupervisor(t, testConfig(t, nil), "")
	m := supervisor.NewSessions(s, time.Hour, 100)
	defer m.Close()
	ctx := context.Background()
	var ids []string
	for i := 0; i < 70; i++ { // 70 results of 1 MB: more than the 64 MiB kept
		id, err := m.Create(ctx, "", api.CreateRequest{Code: "return 'y'.repeat(1000000)"})
		if err != nil {
			t.Fatal(err)
		}
		events, err := m.Subscribe(ctx, "", id, 0)
		if err != nil {
			t.Fatal(err)
		}
		var last api.Event
		for e := range events {
			last = e
		}
		if last.Type != api.EventFinal {
			t.Fatalf("session %d ended with %s: %s", i, last.Type, last.Payload)
		}
		ids = append(ids, id)
	}
	if _, err := m.Subscribe(ctx, "", ids[0], 0); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("the oldest large session is still kept: %v", err)
	}
	if _, err := m.Subscribe(ctx, "", ids[len(ids)-1], 0); err != nil {
		t.Fatalf("the newest session was dropped: %v", err)
	}
}
