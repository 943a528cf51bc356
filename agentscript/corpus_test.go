package agentscript

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dop251/goja"
)

// corpusPath is the shared corpus, in the `shared` folder next to the repo.
var corpusPath = filepath.Join("..", "..", "shared", "corpus", "cases.jsonl")

type corpusCase struct {
	ID     string `json:"id"`
	Code   string `json:"code"`
	Expect string `json:"expect"`
}

// loadCorpus reads every case; new lines are picked up without code changes.
func loadCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	cases, err := readCorpus(corpusPath)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("corpus not found at %s", corpusPath)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return cases
}

func readCorpus(path string) ([]corpusCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		cases = append(cases, c)
	}
	return cases, sc.Err()
}

// TestCorpus: at STANDARD, every "blocked" case is refused and every "value"
// case passes. The other outcomes are decided by the worker; for them Check
// must only answer without failing.
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) == 0 {
		t.Fatal("corpus is empty")
	}
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			s, err := Check(c.Code, standard)
			var probs Problems
			if err != nil && !errors.As(err, &probs) {
				t.Fatalf("error is %T, want Problems", err)
			}
			for _, p := range probs {
				if p.Rule == RuleInternal {
					t.Fatalf("validator failed: %v", p)
				}
			}
			switch c.Expect {
			case "blocked":
				if err == nil {
					t.Fatalf("not refused:\n%s", c.Code)
				}
			case "value":
				if err != nil {
					t.Fatalf("refused:\n%s\n%v", c.Code, err)
				}
			}
			if s != nil {
				if _, err := goja.Compile("script.js", s.Source, false); err != nil {
					t.Fatalf("accepted but does not compile: %v\n%s", err, s.Source)
				}
			}
			t.Logf("%s: %v", c.Expect, err)
		})
	}
}
