# wasmwsgi: run `make serve` to build and serve apps/, `make test` to run the tests.
GO        ?= go
BIN       := bin/wasmwsgi
ADDR      ?= 127.0.0.1:8080
FUZZTIME  ?= 30s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build python-wasm wazero test fuzz serve check clean bench bench-density soak vendor-apps micro pytests wazero-spectest

all: build

## python-wasm: build (or fetch from the cache) python.wasm and the stdlib bundle, and
## the time zone database the guest sees (python-wasm/zoneinfo.sh)
python-wasm:
	bash python-wasm/build.sh
	bash python-wasm/zoneinfo.sh

## wazero: wazero with third_party/wazero-patches applied, in the cache outside the repo,
## and the generated go.work that builds everything below with it
wazero:
	bash third_party/wazero-patches/apply.sh

## wazero-spectest: wazero's own tests, run in the patched copy: the WebAssembly spec
## suite (every proposal wazero runs), the optimizing compiler's packages and linear memory
wazero-spectest: wazero
	cd "$$(bash third_party/wazero-patches/apply.sh --dir)" && GOWORK=off $(GO) test -count=1 \
	  ./internal/integration_test/spectest/... ./internal/engine/wazevo/... ./internal/wasm/...

## build: the single-file server binary at bin/wasmwsgi (python.wasm embedded)
build: python-wasm wazero
	$(GO) build -o $(BIN) ./cmd/wasmwsgi

## test: wazero's own spec and compiler tests on the patched copy (wazero-spectest), unit,
## integration and short fuzz runs against the real binary and python.wasm (with the
## differential test of patched against released wazero, internal/enginediff), then a
## GC- and import-heavy part of CPython's own test suite in the sandbox
test: build vendor-apps
	$(MAKE) --no-print-directory wazero-spectest
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) -C e2e test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=50000x FUZZ_SAVE=
	python3 python-wasm/pytests/run.py --modules $(PYTESTS_QUICK) --out bin/pytests-quick

## pytests: CPython's own test suite (Lib/test of the pinned source) in the sandbox, one
## module per request, and natively, side by side; fails on a module that fails only in
## the sandbox and is not in python-wasm/pytests/expected.txt, or on any non-200 answer
PYTESTS_QUICK := test_gc,test_weakref,test_finalization,test_dict,test_descr,test_importlib,test_graphlib,test_contextlib_async,test_doctest,test_script_helper,test_module,test_copy,test_pickle
pytests: build
	python3 python-wasm/pytests/run.py

## fuzz: every fuzz target for FUZZTIME, then the corpus it grew is kept in the
## package's testdata/fuzz (plain `go test` replays it as regression tests). make test
## counts executions instead of seconds: with Go 1.26 a duration can end the run with
## a spurious "context deadline exceeded" (golang/go#75804, fixed in Go 1.27).
FUZZ_TARGETS := hostfuncs:FuzzHostCall hostfuncs:FuzzParseHeaders runtime:FuzzEnviron config:FuzzFindSettingsCall
FUZZ_SAVE ?= 1
fuzz: python-wasm wazero
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t#*:}; \
	  echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	  if [ -n "$(FUZZ_SAVE)" ]; then \
	    mkdir -p $$pkg/testdata/fuzz/$$name; \
	    cp -n "$$($(GO) env GOCACHE)/fuzz/github.com/wasmwsgi/wasmwsgi/$$pkg/$$name/"* $$pkg/testdata/fuzz/$$name/ 2>/dev/null || true; \
	  fi; \
	done

## serve: build, bring the Django example's database up to date (manage.py migrate in
## its sandbox), then serve every app in apps/ on $(ADDR), with the grants of server.toml
serve: build vendor-apps
	$(BIN) run django --apps apps/ --config server.toml -- manage.py migrate
	$(BIN) serve apps/ --config server.toml --addr $(ADDR)

## check: vet, formatting, staticcheck and a tidy go.mod, in the main module and in
## e2e/ (the tests that need Kubernetes' API types or a browser, in a module of their own)
check: python-wasm wazero
	$(GO) vet -stdmethods=false ./...  # wazero's sys.File has its own Seek signature
	$(GO) -C e2e vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "run gofmt -w ."; exit 1; }
	$(GO) run $(STATICCHECK) ./...
	$(GO) -C e2e run $(STATICCHECK) ./...
	$(GO) mod tidy -diff
	$(GO) -C e2e mod tidy -diff

clean:
	rm -rf bin python-wasm/dist/python.wasm python-wasm/dist/stdlib.zip python-wasm/dist/BUILDINFO python-wasm/dist/zoneinfo.zip*

## bench: Go benchmarks of the runtime and of an outbound round trip, then wasmwsgi
## (both isolation modes) against gunicorn with wrk on loopback, on hello, Flask and an
## app doing a Redis GET or a PostgreSQL SELECT, and one static file answered through
## [static], by Flask in the sandbox and by nginx; writes benchmarks/RESULTS.md
## (PARTS=static: only the static file, and only its section of RESULTS.md)
bench: build vendor-apps
	benchmarks/bench.sh benchmarks/RESULTS.md

## bench-density: N (default 200) copies of a Flask app, each with its own site-packages,
## in one server inside a memory cgroup (2 GiB): fresh and cached start to ready, wrk
## with a random tenant per request, memory, and idle against busy first requests;
## writes the Density section of benchmarks/RESULTS.md (N=1000 make bench-density)
bench-density: build vendor-apps
	benchmarks/density.sh benchmarks/RESULTS.md

## micro: pure-Python micro-benchmarks on native python3, wasmwsgi (wazero), bare wazero
## and node, with the wasm/native ratios (see benchmarks/micro/README.md)
micro: build vendor-apps
	benchmarks/micro/run.sh

## vendor-apps: fill apps/{flask,bottle,falcon,pyramid,django}/site-packages from Debian's
## packages, then collect the Django example's static files (manage.py collectstatic)
vendor-apps:
	bash apps/vendor.sh

## soak: SOAK (default 10m) of mixed load on loopback, 5% hostile; fails on any failed
## well-behaved request, RSS drift >= 10% or leaked goroutines/fds
SOAK ?= 10m
soak: build
	$(GO) run ./benchmarks/soak -duration $(SOAK)

## image: container images as tarballs, built by ko with no registry and no daemon:
## bin/wasmwsgi-image.tar (the server) and bin/wasmwsgi-apps-image.tar (apps/ and the
## copier the Deployment's initContainer runs). The base image is written into ko's
## cache by deploy/baseimage and named by digest, so ko never pulls. See docs/deploy.md.
KO             := github.com/google/ko@v0.19.1
IMAGE_REPO     ?= wasmwsgi.local
IMAGE_TAG      ?= dev
IMAGE_PLATFORM ?= linux/$(shell $(GO) env GOARCH)
KO_CACHE       := bin/ko-cache
.PHONY: image
image: python-wasm wazero vendor-apps
	rm -rf $(KO_CACHE)/img
	@set -e; \
	ko() { echo "ko build $$3 -> $$4 (base $$1)"; \
	  KOCACHE=$(CURDIR)/$(KO_CACHE) KO_DEFAULTBASEIMAGE=$$1 KO_DOCKER_REPO=$$2 $(GO) run $(KO) build $$3 \
	    --bare --push=false --sbom=none --platform=$(IMAGE_PLATFORM) --tags=$(IMAGE_TAG) --tarball=$$4; }; \
	base=$$($(GO) run ./deploy/baseimage -layout $(KO_CACHE)/img -name $(IMAGE_REPO)/base); \
	ko $$base $(IMAGE_REPO)/wasmwsgi ./cmd/wasmwsgi bin/wasmwsgi-image.tar; \
	base=$$($(GO) run ./deploy/baseimage -layout $(KO_CACHE)/img -name $(IMAGE_REPO)/apps-base -apps apps); \
	ko $$base $(IMAGE_REPO)/wasmwsgi-apps ./deploy/copyapps bin/wasmwsgi-apps-image.tar
	@ls -l bin/wasmwsgi-image.tar bin/wasmwsgi-apps-image.tar
