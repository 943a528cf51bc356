package limits

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestForLevelTable(t *testing.T) {
	tests := []struct {
		level Level
		want  Values
	}{
		{Strict, Values{5 * time.Second, 1000, 10, 100, 65536, 5, 262144, true, 67108864, 100}},
		{Secure, Values{15 * time.Second, 5000, 50, 500, 262144, 10, 1048576, true, 134217728, 500}},
		{Standard, Values{30 * time.Second, 10000, 100, 1000, 1048576, 20, 5242880, false, 268435456, 1000}},
		{Permissive, Values{60 * time.Second, 100000, 1000, 10000, 10485760, 50, 16777216, false, 536870912, 5000}},
		{"BOGUS", Values{5 * time.Second, 1000, 10, 100, 65536, 5, 262144, true, 67108864, 100}},
	}
	for _, tt := range tests {
		if got := ForLevel(tt.level); got != tt.want {
			t.Errorf("ForLevel(%s) = %+v, want %+v", tt.level, got, tt.want)
		}
	}
}

func TestLevelsAreOrdered(t *testing.T) {
	for i := 1; i < len(Levels); i++ {
		if err := ForLevel(Levels[i]).Stricter(ForLevel(Levels[i-1])); err != nil {
			t.Errorf("%s should be at least as strict as %s: %v", Levels[i-1], Levels[i], err)
		}
		if err := ForLevel(Levels[i-1]).Stricter(ForLevel(Levels[i])); err == nil {
			t.Errorf("%s looser than %s not detected", Levels[i], Levels[i-1])
		}
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    Level
		wantErr bool
	}{
		{"STRICT", Strict, false},
		{"strict", Strict, false},
		{"Secure", Secure, false},
		{" standard ", Standard, false},
		{"PERMISSIVE", Permissive, false},
		{"", "", true},
		{"LAX", "", true},
		{"STRICTER", "", true},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseLevel(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if tt.wantErr && !errors.Is(err, ErrUnknownLevel) {
			t.Errorf("ParseLevel(%q) error %v does not wrap ErrUnknownLevel", tt.in, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestApplySetsHigherAndLower(t *testing.T) {
	v := ForLevel(Standard).Apply(Overrides{
		Timeout:               ptr(Duration(90 * time.Second)),
		MaxIterations:         ptr(int64(50)),
		MaxConsoleOutputBytes: ptr(ByteSize(2 << 20)),
	})
	want := ForLevel(Standard)
	want.Timeout, want.MaxIterations, want.MaxConsoleOutputBytes = 90*time.Second, 50, 2<<20
	if v != want {
		t.Errorf("Apply = %+v, want %+v", v, want)
	}
}

func TestTighten(t *testing.T) {
	base := ForLevel(Standard)
	tests := []struct {
		name     string
		o        Overrides
		wantKeys []string // fields named in the error; nil: success
		check    func(Values) bool
	}{
		{"empty", Overrides{}, nil, func(v Values) bool { return v == base }},
		{"lower", Overrides{Timeout: ptr(Duration(time.Second)), MaxToolCalls: ptr(int64(3))}, nil,
			func(v Values) bool {
				return v.Timeout == time.Second && v.MaxToolCalls == 3 && v.MaxIterations == 10000
			}},
		{"equal", Overrides{MaxIterations: ptr(int64(10000))}, nil,
			func(v Values) bool { return v.MaxIterations == 10000 }},
		{"higher timeout", Overrides{Timeout: ptr(Duration(31 * time.Second))}, []string{"timeout"}, nil},
		{"two higher, one lower", Overrides{
			MaxToolCalls:          ptr(int64(101)),
			MaxConsoleOutputBytes: ptr(ByteSize(2 << 20)),
			MaxConsoleCalls:       ptr(int64(5)),
		}, []string{"maxToolCalls", "maxConsoleOutputBytes"}, nil},
		{"zero", Overrides{MaxIterations: ptr(int64(0))}, []string{"maxIterations"}, nil},
		{"negative", Overrides{MaxConsoleCalls: ptr(int64(-1))}, []string{"maxConsoleCalls"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := base.Tighten(tt.o)
			if tt.wantKeys == nil {
				if err != nil || !tt.check(got) {
					t.Fatalf("Tighten = %+v, %v", got, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Tighten(%+v) loosened to %+v", tt.o, got)
			}
			if got != base {
				t.Errorf("failed Tighten changed values: %+v", got)
			}
			assertKeys(t, err, tt.wantKeys)
		})
	}
}

// assertKeys checks that err is exactly one FieldError per wanted key, in order.
func assertKeys(t *testing.T, err error, keys []string) {
	t.Helper()
	errs := flatten(err)
	if len(errs) != len(keys) {
		t.Fatalf("got %d problems, want %d: %v", len(errs), len(keys), err)
	}
	for i, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) || fe.Key != keys[i] {
			t.Errorf("problem %d = %v, want key %q", i, e, keys[i])
		}
	}
}

func TestTightenMessage(t *testing.T) {
	_, err := ForLevel(Strict).Tighten(Overrides{Timeout: ptr(Duration(time.Minute))})
	if err == nil || err.Error() != "timeout: 1m0s is above the allowed 5s" {
		t.Errorf("error = %v", err)
	}
	_, err = ForLevel(Strict).Tighten(Overrides{MaxConsoleOutputBytes: ptr(ByteSize(1 << 20))})
	if err == nil || !strings.Contains(err.Error(), "1MiB is above the allowed 64KiB") {
		t.Errorf("error = %v", err)
	}
}

func TestStricter(t *testing.T) {
	v := ForLevel(Secure)
	loose := v
	loose.MaxValueDepth++
	loose.ScrubStacks = false
	loose.WorkerMemory *= 2
	assertKeys(t, v.Stricter(loose), []string{"maxValueDepth", "workerMemory", "scrubStacks"})

	tight := v
	tight.Timeout = time.Second
	tight.ScrubStacks = true
	if err := v.Stricter(tight); err != nil {
		t.Errorf("tightening refused: %v", err)
	}
	if err := v.Stricter(v); err != nil {
		t.Errorf("equal values refused: %v", err)
	}
}

func TestOverridesValidate(t *testing.T) {
	o := Overrides{Timeout: ptr(Duration(0)), MaxToolCalls: ptr(int64(-5)), MaxIterations: ptr(int64(1))}
	assertKeys(t, o.Validate(), []string{"timeout", "maxToolCalls"})
	if err := (Overrides{}).Validate(); err != nil {
		t.Errorf("empty overrides: %v", err)
	}
}
