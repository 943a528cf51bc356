package limits

import (
	"strings"
	"testing"
)

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"echo", "echo", true},
		{"echo", "echo2", false},
		{"echo", "ech", false},
		{"users:*", "users:list", true},
		{"users:*", "users:", true},
		{"users:*", "user:list", false},
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "x", false},
		{"*:get", "users:get", true},
		{"*:get", "users:get:x", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "abcbc", true},
		{"a*b*c", "acb", false},
		{"a**b", "ab", true},
		{"*a*", "banana", true},
		{"users:?", "users:x", false},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// A pattern crafted to make a naive backtracking matcher exponential still
// answers.
func TestMatchPatternNoBlowup(t *testing.T) {
	pattern := strings.Repeat("a*", 30) + "b"
	if MatchPattern(pattern, strings.Repeat("a", 5000)) {
		t.Error("matched without a b")
	}
}

func TestToolPolicyAllows(t *testing.T) {
	tests := []struct {
		policy ToolPolicy
		name   string
		want   bool
	}{
		{ToolPolicy{}, "anything", true},
		{ToolPolicy{Allow: []string{"users:*"}}, "users:list", true},
		{ToolPolicy{Allow: []string{"users:*"}}, "orders:list", false},
		{ToolPolicy{Deny: []string{"admin:*"}}, "admin:drop", false},
		{ToolPolicy{Deny: []string{"admin:*"}}, "users:list", true},
		{ToolPolicy{Allow: []string{"*"}, Deny: []string{"users:delete"}}, "users:delete", false},
		{ToolPolicy{Allow: []string{"users:delete"}, Deny: []string{"users:*"}}, "users:delete", false},
	}
	for _, tt := range tests {
		if got := tt.policy.Allows(tt.name); got != tt.want {
			t.Errorf("%+v.Allows(%q) = %v, want %v", tt.policy, tt.name, got, tt.want)
		}
	}
}
