package broker

import (
	"maps"
	"slices"
	"strings"

	"github.com/enclave-go/enclave/limits"
)

// Keys that are not per session. None carries a hash tag: each is one key, so it
// sits on one Cluster slot on its own.
const (
	// openSessionsKey is a sorted set of open session ids scored by the time
	// (Unix ms) their admission lapses; it enforces maxConcurrentSessions.
	openSessionsKey = "enclave:sessions:open"
	// targetsKey is the set of routing targets brokers send work to; runtimes read
	// it to learn which work streams to consume.
	targetsKey = "enclave:targets"
	// groupName is the one consumer group of every work stream.
	groupName = "runtimes"
	// defaultTarget is the target of requests no routing rule matches.
	defaultTarget = "default"
)

// sessionKeys are one session's keys, all in the same hash slot.
type sessionKeys struct {
	hash, events, pending, tools string
}

func keysOf(id string) sessionKeys {
	base := "session:{" + id + "}"
	return sessionKeys{hash: base, events: base + ":events", pending: base + ":pending", tools: base + ":tools"}
}

func (k sessionKeys) all() []string { return []string{k.hash, k.events, k.pending, k.tools} }

// streamKey is the work stream of a routing target. Every work stream shares
// one hash tag, so a runtime reads all the streams it serves with one blocking
// XREADGROUP even on Cluster; a work stream holds one small entry per queued
// session, so one slot carries them easily.
func streamKey(target string) string { return "work:{enclave}:" + target }

// runtimeKey is a runtime's heartbeat key; it expires when the runtime stops
// renewing it.
func runtimeKey(id string) string { return "runtime:{" + id + "}" }

// cancelChannel is where brokers tell runtime id to cancel a session it runs.
func cancelChannel(id string) string { return "enclave:cancel:" + id }

// targetName writes a label set as a stable string: "region=eu,tier=premium",
// or "default" for no labels.
func targetName(labels map[string]string) string {
	if len(labels) == 0 {
		return defaultTarget
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// parseTarget reads targetName's output back; ok is false for a malformed name.
func parseTarget(name string) (map[string]string, bool) {
	labels := map[string]string{}
	if name == defaultTarget {
		return labels, true
	}
	for part := range strings.SplitSeq(name, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, false
		}
		labels[k] = v
	}
	return labels, true
}

// route picks the target of a request: the first rule whose every match pair is
// in the metadata, else the default target.
func route(rules []limits.RoutingRule, metadata map[string]string) string {
	for _, r := range rules {
		if contains(metadata, r.Match) {
			return targetName(r.Target)
		}
	}
	return defaultTarget
}

// contains reports whether every pair of sub is in set.
func contains(set, sub map[string]string) bool {
	for k, v := range sub {
		if got, ok := set[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// serves reports whether a runtime with labels takes work routed to target.
func serves(labels map[string]string, target string) bool {
	want, ok := parseTarget(target)
	return ok && contains(labels, want)
}
