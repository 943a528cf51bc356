# Enclave for Go. `make run` starts the daemon on built-in defaults; `make test` runs
# every test with the race detector.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Generous: the suite starts many real worker processes on a small machine.
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: build run test fuzz proto clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/enclave ./cmd/enclave
	$(GO) build -trimpath -o $(BIN)/exampletool ./examples/exampletool

run: build
	$(BIN)/enclave serve $(if $(CONFIG),--config $(CONFIG))

test: build
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

# Fuzz the pre-scanner and validator (CI runs only the seed corpus, through make test).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime $(or $(FUZZTIME),10m) ./agentscript/

# Regenerate the worker protocol (needs protoc, protoc-gen-go and protoc-gen-go-grpc).
proto:
	cd ipc/ipcpb && protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative worker.proto

clean:
	rm -rf $(BIN)
