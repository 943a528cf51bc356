package limits

import (
	"errors"
	"strings"
)

// ErrUnknownLevel is wrapped by ParseLevel for a name that is not a level.
var ErrUnknownLevel = errors.New("unknown security level")

// ErrNoCgroups is returned by Cgroups.NewWorker when no cgroup mode works on this
// machine; the caller falls back to RSS sampling alone.
var ErrNoCgroups = errors.New("cgroups unavailable")

// ErrNotV2 is returned by WorkerCgroup.FD on cgroup v1: only v2 can start a process
// directly inside a group.
var ErrNotV2 = errors.New("cgroup fd needs cgroup v2")

// ErrOverMemory is returned by RSSWatch.Run when a process grew past the hard cap.
var ErrOverMemory = errors.New("process over memory cap")

// FieldError is one configuration problem, tied to the key it is about, such as
// "pool.size" or "tools[2].http.url".
type FieldError struct {
	Key     string
	Problem string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Key + ": " + e.Problem }

// problems collects every FieldError of a section so Validate can report them all
// at once instead of stopping at the first.
type problems []error

// add records a problem with key.
func (p *problems) add(key, problem string) {
	*p = append(*p, &FieldError{Key: key, Problem: problem})
}

// nest records the problems of a sub-section, putting prefix before their keys.
func (p *problems) nest(prefix string, err error) {
	for _, e := range flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			e = &FieldError{Key: joinKey(prefix, fe.Key), Problem: fe.Problem}
		}
		*p = append(*p, e)
	}
}

// err joins the problems, nil when there are none.
func (p problems) err() error { return errors.Join(p...) }

// flatten undoes errors.Join so nested sections can re-key each problem.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// joinKey builds "pool.size" from "pool" and "size", and "tools[1]" from "tools"
// and "[1]".
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	if strings.HasPrefix(key, "[") {
		return prefix + key
	}
	return prefix + "." + key
}
