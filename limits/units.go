package limits

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// ByteSize is a size in bytes. In YAML it is a plain integer (1048576) or a number
// with a unit: "512k", "64KB", "1 MB", "128MiB", "1.5GiB". Every unit is binary:
// KB, K and KiB all mean 1024 bytes, MB and MiB 1<<20, GB and GiB 1<<30, TB and
// TiB 1<<40. Memory caps are set in binary units everywhere else (cgroups, ulimit),
// so reading "64MB" as 64,000,000 would surprise more people than it helps.
type ByteSize int64

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// ParseByteSize reads a size such as "128MiB", "64KB", "1 MB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	num, unit := splitNumber(strings.TrimSpace(s))
	mult, ok := byteUnits[strings.ToLower(strings.TrimSpace(unit))]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid size %q (want a number and an optional unit, like 128MiB)", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("invalid size %q: out of range", s)
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return ByteSize(math.Round(f * float64(mult))), nil
}

// splitNumber splits "1.5 GiB" into "1.5" and " GiB". A leading sign is left in
// the unit so that negative sizes are refused.
func splitNumber(s string) (num, unit string) {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// String writes the size in the largest binary unit that divides it exactly,
// "128MiB", or in bytes, "1000B".
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.size == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a size, like 128MiB")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// Duration is a time.Duration that YAML writes as Go does: "250ms", "30s",
// "1m30s". A bare number is refused: "30" could be seconds or nanoseconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String implements fmt.Stringer.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a duration, like 30s")
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return typeError(n, fmt.Sprintf("invalid duration %q (want a number with a unit, like 30s or 250ms)", n.Value))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// FileMode is a permission mode, always read as octal: 0660, "0660", 660 and
// "0o660" are the same mode.
type FileMode uint32

// Perm returns m as an os.FileMode.
func (m FileMode) Perm() os.FileMode { return os.FileMode(m) & os.ModePerm }

// String writes the mode as "0660".
func (m FileMode) String() string { return fmt.Sprintf("%#o", uint32(m)) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(n.Value)), "0o")
	v, err := strconv.ParseUint(s, 8, 32)
	if n.Kind != yaml.ScalarNode || err != nil {
		return typeError(n, fmt.Sprintf("invalid file mode %q (want octal, like 0660)", n.Value))
	}
	*m = FileMode(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (m FileMode) MarshalYAML() (any, error) { return m.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler so that "standard" reads as STANDARD
// and a misspelt level is reported with its line.
func (l *Level) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a security level")
	}
	if strings.TrimSpace(n.Value) == "" {
		*l = ""
		return nil
	}
	v, err := ParseLevel(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*l = v
	return nil
}

// typeError returns a problem in the form yaml.v3 collects: decoding goes on and
// every such problem of the file is reported together.
func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}
