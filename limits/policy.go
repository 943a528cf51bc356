package limits

// MatchPattern reports whether name matches pattern, where '*' matches any run of
// characters (also none) and every other character matches itself. "users:*"
// matches "users:list"; "*" matches everything.
func MatchPattern(pattern, name string) bool {
	// Greedy match with one backtrack point, the last '*' seen: linear in
	// practice and never exponential, whatever the pattern.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			mark++
			p, n = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Allows reports whether the policy lets a script call the tool name: a deny
// pattern always wins; an empty allow list allows every other name.
func (t ToolPolicy) Allows(name string) bool {
	if matchAny(t.Deny, name) {
		return false
	}
	return len(t.Allow) == 0 || matchAny(t.Allow, name)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if MatchPattern(p, name) {
			return true
		}
	}
	return false
}
