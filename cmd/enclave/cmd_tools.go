package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"

	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// Every supervisor this binary builds (serve, runtime, mcp) serves `mcp` tool
// entries through codemode. The hook is a package variable of supervisor, so
// it is set once here rather than in each command.
func init() {
	supervisor.ProviderFactory = codemode.NewProvider
}

func runTools(ctx context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("tools", flag.ContinueOnError)
	fs.SetOutput(io.err)
	configPath := fs.String("config", "", "YAML config file (default: built-in defaults)")
	asJSON := fs.Bool("json", false, "print the catalog as JSON (tools, declarations, primer)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(io.err, "usage: enclave tools [--config FILE] [--json]")
		return 2
	}
	cfg, err := limits.Load(*configPath)
	if err != nil {
		fmt.Fprintf(io.err, "enclave tools: %v\n", err)
		return 1
	}
	// Connection chatter would bury the declarations: only warnings and errors.
	log := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := codemode.NewRegistry(log)
	defer reg.Close()
	cat := codemode.BuildCatalog(ctx, cfg, reg.Lister)
	if err := printCatalog(cat, *asJSON, io); err != nil {
		fmt.Fprintf(io.err, "enclave tools: %v\n", err)
		return 1
	}
	if len(cat.Problems) > 0 {
		fmt.Fprintf(io.err, "enclave tools: %d tool provider(s) could not be listed\n", len(cat.Problems))
		return 1
	}
	return 0
}

func printCatalog(cat *codemode.Catalog, asJSON bool, io stdio) error {
	if !asJSON {
		_, err := fmt.Fprint(io.out, cat.Text())
		return err
	}
	enc := json.NewEncoder(io.out)
	enc.SetIndent("", "  ")
	return enc.Encode(cat)
}
