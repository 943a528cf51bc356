package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// Embedding Enclave: a supervisor with a small pool, one script whose tool calls
// are answered by a Go function, the result as JSON. (Outside tests, leave
// WorkerCommand unset: the supervisor starts its own executable's worker command.)
func Example() {
	cfg := limits.Default()
	cfg.Pool.Size, cfg.Pool.MinWorkers = 1, 1
	ctx := context.Background()
	sup, err := supervisor.New(ctx, supervisor.Options{
		Config:        cfg,
		WorkerCommand: []string{os.Args[0]},
		WorkerEnv:     []string{"ENCLAVE_TEST_WORKER=1"},
		CgroupRoot:    "none",
	})
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer sup.Close(ctx)

	res, err := sup.Run(ctx, supervisor.Request{
		Code: `const users = await callTool('users:list', { limit: 3 });
let total = 0;
for (const u of users.items) total += u.score;
return { total };`,
		ClientTools: []string{"users:*"},
		ClientTool: func(_ context.Context, call supervisor.ToolCall) (json.RawMessage, error) {
			return json.RawMessage(`{"items": [{"score": 3}, {"score": 4}, {"score": 5}]}`), nil
		},
	})
	if err != nil {
		fmt.Println("run:", err)
		return
	}
	fmt.Println(string(res.Value), res.Stats.ToolCallCount)
	// Output: {"total":12} 1
}
