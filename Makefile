# wasmwsgi: run `make serve` to build and serve apps/, `make test` to run the tests.
GO        ?= go
BIN       := bin/wasmwsgi
ADDR      ?= 127.0.0.1:8080
FUZZTIME  ?= 30s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build python-wasm test fuzz serve check clean bench

all: build

## python-wasm: build (or fetch from the cache) python.wasm and the stdlib bundle
python-wasm:
	bash python-wasm/build.sh

## build: the single-file server binary at bin/wasmwsgi (python.wasm embedded)
build: python-wasm
	$(GO) build -o $(BIN) ./cmd/wasmwsgi

## test: unit, integration and short fuzz runs against the real binary and python.wasm
test: build
	$(GO) test -count=1 ./...
	$(GO) test -run '^$$' -fuzz '^FuzzHostCall$$' -fuzztime 10s ./hostfuncs
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeaders$$' -fuzztime 5s ./hostfuncs

## fuzz: longer fuzz runs (FUZZTIME each)
fuzz: python-wasm
	$(GO) test -run '^$$' -fuzz '^FuzzHostCall$$' -fuzztime $(FUZZTIME) ./hostfuncs
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeaders$$' -fuzztime $(FUZZTIME) ./hostfuncs

## serve: build, then serve every app in apps/ on $(ADDR)
serve: build
	$(BIN) serve apps/ --addr $(ADDR)

## check: vet, formatting, staticcheck and a tidy go.mod
check: python-wasm
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "run gofmt -w ."; exit 1; }
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff

clean:
	rm -rf bin python-wasm/dist/python.wasm python-wasm/dist/stdlib.zip python-wasm/dist/BUILDINFO

## bench: Go benchmarks of one request and of engine start (python.wasm embedded)
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 100x -count 1 ./runtime
