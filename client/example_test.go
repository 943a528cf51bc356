package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
)

// Run a script on the local daemon and answer its "users:list" tool calls.
func ExampleClient_Execute() {
	c, err := client.New(client.Options{Socket: "/run/enclave/enclave.sock"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	users := func(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
		if name != "users:list" {
			return nil, fmt.Errorf("unknown tool %s", name)
		}
		return json.RawMessage(`{"items":[{"score":3},{"score":4}]}`), nil
	}
	res, err := c.Execute(context.Background(), client.ExecuteOptions{
		Request: api.CreateRequest{
			Code: `const users = await callTool('users:list', { limit: 2 });
let total = 0;
for (const u of users.items) total += u.score;
return { total };`,
			ClientTools: []string{"users:*"},
		},
		Tools: users,
	})
	var scriptErr *api.Error
	switch {
	case errors.As(err, &scriptErr):
		log.Fatalf("%s at line %d: %s", scriptErr.Code, scriptErr.Line, scriptErr.Message)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(string(res.Value)) // {"total":7}
}
