# dvrflow: the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...
# Unit tests need neither root nor OVS; PostgreSQL-backed tests start a private cluster.
UNIT_TIMEOUT        ?= 20m
INTEGRATION_TIMEOUT ?= 40m

.PHONY: all deps build lint test unit integration conformance bench demo demo-down clean

all: build

deps:
	@./deploy/scripts/install-deps.sh

build:
	$(GO) build -o $(BIN)/ ./cmd/...

lint:
	@echo "lint: gofmt"; out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "lint: go vet"; $(GO) vet $(PKGS)
	@echo "lint: staticcheck"; $(GO) tool staticcheck $(PKGS)

unit:
	$(GO) test -count=1 -timeout $(UNIT_TIMEOUT) $(PKGS)

# End-to-end tests on real OVS bridges and a multi-host bed: root only.
integration:
	$(GO) test -count=1 -p 1 -timeout $(INTEGRATION_TIMEOUT) -tags integration -v ./integration/... ./testbed/... 2>&1 | \
		tee /tmp/dvrflow-integration.log | grep -E '^\s*(=== RUN|--- (PASS|FAIL|SKIP))|^(PASS|FAIL|ok|panic)|^\s+[a-z_]+_test\.go:[0-9]+:' ; \
		exit $${PIPESTATUS[0]}

test: deps build lint unit integration conformance

# OpenStack's own API test suites, tempest's network API tests and neutron-tempest-plugin's
# API tests, against the API with a real Keystone, minus conformance/skip-list.txt (root).
conformance: deps build
	@./deploy/scripts/install-deps.sh conformance
	$(BIN)/dvrflow-conformance -report /tmp/dvrflow-conformance.txt

bench: deps build
	./deploy/scripts/bench.sh

# The seed scenario on a real 3-host bed with traffic; stays up until Ctrl-C (root). demo.sh
# installs the Debian packages and builds bin/ itself. DEMO_EXIT_AFTER_TRAFFIC=1: tear down
# right after the pings, exit 0 only if every one worked.
demo:
	@./deploy/scripts/demo.sh up

demo-down:
	@./deploy/scripts/demo.sh down

clean:
	rm -rf $(BIN)
