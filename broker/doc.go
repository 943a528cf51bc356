// Package broker is Enclave's scale-out mode over Redis: Backend serves the HTTP
// API from any number of stateless brokers, and Runtime takes work from Redis and
// runs it on a local supervisor.
//
// Redis is the only shared state. A session is a hash (session:{id}), an event
// stream (session:{id}:events), a hash of the client tool calls it waits for
// (session:{id}:pending) and a list of their answers (session:{id}:tools); the
// braces are Redis Cluster hash tags, so one session's keys share a slot and the
// Lua scripts that change them run atomically. Work is one Redis stream per
// routing target (work:{enclave}:tier=premium, work:{enclave}:default) read by
// a consumer group; runtimes announce themselves with expiring runtime:{id}
// keys.
//
// A session's status moves queued -> started -> done, each step by a script that
// checks the step before it, so a session is started by one runtime at most and
// never runs twice. docs/scale-out.md gives the failure semantics.
package broker
