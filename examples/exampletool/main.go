// Command exampletool is the tool program behind the examples: `exampletool NAME`
// reads the call's arguments as JSON on stdin and prints its answer as JSON, or exits
// non-zero with the error message on stderr, as an exec tool or `enclave run --tool`
// expects.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fail("usage: exampletool customers|orders|catalog|search|inventory|warehouse")
	}
	var args map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&args); err != nil {
		fail("arguments are not a JSON object: " + err.Error())
	}
	out, err := answer(os.Args[1], args)
	if err != nil {
		fail(err.Error())
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

func answer(tool string, args map[string]any) (any, error) {
	switch tool {
	case "customers", "orders":
		return load(tool)
	case "catalog":
		return page(args)
	case "search":
		return search(args)
	case "inventory":
		return nil, fmt.Errorf("inventory service unavailable (maintenance window)")
	case "warehouse":
		return map[string]any{"sku": args["sku"], "inStock": 12, "source": "warehouse"}, nil
	}
	return nil, fmt.Errorf("unknown tool %q", tool)
}

// dataDir is examples/data next to this program's source, or $EXAMPLE_DATA.
func dataDir() string {
	if d := os.Getenv("EXAMPLE_DATA"); d != "" {
		return d
	}
	return "examples/data"
}

func load(name string) (any, error) {
	b, err := os.ReadFile(filepath.Join(dataDir(), name+".json"))
	if err != nil {
		return nil, err
	}
	var v any
	return v, json.Unmarshal(b, &v)
}

// page serves the catalog three items at a time: {page} in, {items, nextPage} out.
func page(args map[string]any) (any, error) {
	all, err := load("catalog")
	if err != nil {
		return nil, err
	}
	items := all.([]any)
	p, _ := args["page"].(float64)
	start := int(p) * 3
	if start >= len(items) {
		return map[string]any{"items": []any{}, "nextPage": nil}, nil
	}
	end := min(start+3, len(items))
	var next any
	if end < len(items) {
		next = int(p) + 1
	}
	return map[string]any{"items": items[start:end], "nextPage": next}, nil
}

// search scores catalog items against a query by shared words.
func search(args map[string]any) (any, error) {
	all, err := load("catalog")
	if err != nil {
		return nil, err
	}
	q, _ := args["query"].(string)
	words := strings.Fields(strings.ToLower(q))
	var hits []any
	for _, it := range all.([]any) {
		item := it.(map[string]any)
		name := strings.ToLower(item["name"].(string))
		score := 0
		for _, w := range words {
			if strings.Contains(name, w) {
				score++
			}
		}
		if score > 0 {
			hits = append(hits, map[string]any{"sku": item["sku"], "name": item["name"], "score": score})
		}
	}
	return map[string]any{"query": q, "hits": hits}, nil
}
