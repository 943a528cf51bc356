package ipc

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// HCLogger adapts an slog.Logger to the hclog.Logger go-plugin wants, so the plugin
// library's own messages (and the worker stderr lines it relays) land in the daemon's
// one log with the caller's attributes.
type HCLogger struct {
	l    *slog.Logger
	name string
}

// NewHCLogger returns an hclog.Logger that writes to l.
func NewHCLogger(l *slog.Logger) hclog.Logger { return &HCLogger{l: l} }

// toSlog maps go-plugin's levels onto the daemon's. go-plugin reports every worker
// start and exit at info, which for a pool that recycles workers is debug detail.
func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug, hclog.Info:
		return slog.LevelDebug
	case hclog.Warn, hclog.Error:
		// go-plugin's errors are about workers the supervisor already reports.
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

// Log writes one message at level.
func (h *HCLogger) Log(level hclog.Level, msg string, args ...any) {
	h.l.Log(context.Background(), toSlog(level), msg, args...)
}

func (h *HCLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *HCLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *HCLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *HCLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *HCLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *HCLogger) enabled(level hclog.Level) bool {
	return h.l.Enabled(context.Background(), toSlog(level))
}

func (h *HCLogger) IsTrace() bool { return false }
func (h *HCLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *HCLogger) IsInfo() bool  { return h.enabled(hclog.Info) }

func (h *HCLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *HCLogger) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs is not tracked; slog keeps the attributes itself.
func (h *HCLogger) ImpliedArgs() []any { return nil }

// With returns a logger with the attributes added.
func (h *HCLogger) With(args ...any) hclog.Logger {
	return &HCLogger{l: h.l.With(args...), name: h.name}
}

// Name returns the logger's name.
func (h *HCLogger) Name() string { return h.name }

// Named returns a logger whose name has name appended.
func (h *HCLogger) Named(name string) hclog.Logger {
	full := name
	if h.name != "" {
		full = h.name + "." + name
	}
	return h.ResetNamed(full)
}

// ResetNamed returns a logger named name.
func (h *HCLogger) ResetNamed(name string) hclog.Logger {
	return &HCLogger{l: h.l.With("logger", name), name: name}
}

// SetLevel is a no-op: the slog handler owns the level.
func (h *HCLogger) SetLevel(hclog.Level) {}

// GetLevel reports the most verbose level the handler accepts.
func (h *HCLogger) GetLevel() hclog.Level {
	if h.IsDebug() {
		return hclog.Debug
	}
	return hclog.Info
}

// StandardLogger returns a standard library logger writing at Info.
func (h *HCLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

// StandardWriter returns a writer that logs each write at Info.
func (h *HCLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
