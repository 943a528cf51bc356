package limits

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{"1048576", 1 << 20, false},
		{"0", 0, false},
		{"512", 512, false},
		{"512B", 512, false},
		{"512k", 512 << 10, false},
		{"64KB", 64 << 10, false},
		{"64kib", 64 << 10, false},
		{"64KiB", 64 << 10, false},
		{"1 MB", 1 << 20, false},
		{"128MiB", 128 << 20, false},
		{"128m", 128 << 20, false},
		{"1.5GiB", 3 << 29, false},
		{"2G", 2 << 30, false},
		{"1TiB", 1 << 40, false},
		{" 10 mb ", 10 << 20, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1MiB", 0, true},
		{"12XB", 0, true},
		{"1e6", 0, true},
		{"1..5MB", 0, true},
		{"99999999999TiB", 0, true},
		{"9223372036854775808", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"}, {1000, "1000B"}, {1024, "1KiB"}, {64 << 10, "64KiB"},
		{1 << 20, "1MiB"}, {1536 << 10, "1536KiB"}, {256 << 20, "256MiB"}, {3 << 30, "3GiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		back, err := ParseByteSize(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("round trip of %q = %d, %v", tt.want, back, err)
		}
	}
}

// decodeField decodes `v: <text>` into a struct holding one field of type T.
func decodeField[T any](text string) (T, error) {
	var out struct {
		V T `yaml:"v"`
	}
	err := yaml.Unmarshal([]byte("v: "+text), &out)
	return out.V, err
}

func TestByteSizeYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{"1048576", 1 << 20, false},
		{"128MiB", 128 << 20, false},
		{`"64KB"`, 64 << 10, false},
		{"1 MB", 1 << 20, false},
		{"-5", 0, true},
		{"[1]", 0, true},
		{"lots", 0, true},
	}
	for _, tt := range tests {
		got, err := decodeField[ByteSize](tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("yaml %q = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30s", 30 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{`"2h"`, 2 * time.Hour, false},
		{"30", 0, true},
		{`"30"`, 0, true},
		{"1.5", 0, true},
		{"soon", 0, true},
		{"{a: 1}", 0, true},
	}
	for _, tt := range tests {
		got, err := decodeField[Duration](tt.in)
		if got.Std() != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("yaml %q = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFileModeYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    FileMode
		wantErr bool
	}{
		{"0660", 0o660, false},
		{"660", 0o660, false},
		{`"0600"`, 0o600, false},
		{"0o640", 0o640, false},
		{"0999", 0, true},
		{"rw", 0, true},
	}
	for _, tt := range tests {
		got, err := decodeField[FileMode](tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("yaml %q = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if s := FileMode(0o660).String(); s != "0660" {
		t.Errorf("String = %q", s)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "marshalled")
	if err != nil {
		t.Fatalf("parse of marshalled default: %v\n%s", err, out)
	}
	if back.Pool != c.Pool || back.SocketAccess.Mode != c.SocketAccess.Mode || back.SessionTimeout != c.SessionTimeout {
		t.Errorf("round trip changed the config:\n%+v\n%+v", back, c)
	}
}
