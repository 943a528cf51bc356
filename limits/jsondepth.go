package limits

// JSONDepth is the deepest bracket nesting of a JSON text, strings skipped. It does
// not validate: it is the cheap check run before a parser that recurses (goja's
// JSON.parse, a tool result headed for one) is handed the text.
func JSONDepth[T ~string | ~[]byte](s T) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
