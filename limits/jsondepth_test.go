package limits

import "testing"

func TestJSONDepth(t *testing.T) {
	cases := map[string]int{
		`1`:                    0,
		`[]`:                   1,
		`{"a":[1,{"b":[]}]}`:   4,
		`["[[[", "\"[["]`:      1,
		`[[[[[[[[[[]]]]]]]]]]`: 10,
	}
	for in, want := range cases {
		if got := JSONDepth(in); got != want {
			t.Errorf("JSONDepth(%s) = %d, want %d", in, got, want)
		}
		if got := JSONDepth([]byte(in)); got != want {
			t.Errorf("JSONDepth([]byte %s) = %d, want %d", in, got, want)
		}
	}
}
