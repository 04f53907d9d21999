# The latest fluxcd/pkg modules need Go 1.27; the go command fetches this
# toolchain from the module proxy when the installed Go is older.
export GOTOOLCHAIN ?= go1.27.3

# Kubernetes version of the test API server (and of the k8s.io libraries).
K8S_VERSION ?= v1.37.2
TESTBIN_DIR := $(CURDIR)/bin/testbin/$(K8S_VERSION)
export KUBEBUILDER_ASSETS ?= $(TESTBIN_DIR)

# kwok simulates nodes and pods for the local control plane.
KWOK_VERSION ?= v0.8.0
KWOK := $(CURDIR)/bin/kwok/$(KWOK_VERSION)/kwok
KWOK_STAGES := $(CURDIR)/bin/kwok/$(KWOK_VERSION)/stages/.copied

VERSION ?= dev
LDFLAGS := -X github.com/stageset/stageset-controller/internal/version.Version=$(VERSION)

CONTROLLER_GEN := go tool controller-gen
# Generated files, checked for staleness by `make test`.
GENERATED := api/v1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/testdata/crds config/chart/stageset-controller/files/crds docs/reference/api.md

.PHONY: all
all: build

##@ Development

.PHONY: build
build: ## Build bin/stageset-controller and bin/stagesetctl.
	go build -ldflags "$(LDFLAGS)" -o bin/stageset-controller .
	go build -ldflags "$(LDFLAGS)" -o bin/stagesetctl ./cmd/stagesetctl

# One binary, three names: it reads the name it was called by. kubectl (1.26
# or later) completes `kubectl stageset` by running kubectl_complete-stageset
# from PATH, which the binary answers as `__complete`.
CLI_LINKS := flux-stageset kubectl-stageset kubectl_complete-stageset

.PHONY: cli
cli: ## Build bin/stagesetctl, the Flux plugin bin/flux-stageset, the kubectl plugin bin/kubectl-stageset and its completion helper bin/kubectl_complete-stageset (hard links to one binary).
	go build -ldflags "$(LDFLAGS)" -o bin/stagesetctl ./cmd/stagesetctl
	@for name in $(CLI_LINKS); do ln -f bin/stagesetctl bin/$$name 2>/dev/null || cp -f bin/stagesetctl bin/$$name; done
	@echo "built bin/stagesetctl $(addprefix bin/,$(CLI_LINKS)): put bin/ on PATH for kubectl, or link bin/flux-stageset into ~/.fluxcd/plugins (or \$$FLUXCD_PLUGINS) for flux"

# The image. `make image` writes it as a tarball with no Docker (hack/image);
# the Dockerfile builds the same image for people with Docker: keep the two in
# step. IMG is the reference the tarball is tagged with (docker load and
# podman load keep it). REVISION and SOURCE_DATE_EPOCH, the commit time (so
# one commit gives one image, byte for byte), fill the OCI labels.
# IMAGE_ARCH=arm64 builds for another architecture.
IMG ?= ghcr.io/stageset/stageset-controller:$(VERSION)
IMAGE_ARCH ?= $(shell go env GOARCH)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_BINARY := $(CURDIR)/bin/image/linux-$(IMAGE_ARCH)/stageset-controller

.PHONY: image
image: ## Build the controller image without Docker into bin/stageset-controller-image.tar (for docker load, podman load, crane push) and print its digest.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(IMAGE_BINARY) .
	cd hack/image && GOOS= GOARCH= go run . --binary=$(IMAGE_BINARY) --output=$(CURDIR)/bin/stageset-controller-image.tar \
	  --tag=$(IMG) --version=$(VERSION) --revision=$(REVISION) --source-date-epoch=$(SOURCE_DATE_EPOCH)

.PHONY: run
run: build localbin ## Start a local control plane, the controller and the sample StageSet, and stream the rollout (Ctrl-C stops and cleans up). Your own: RUN_ARGS='--source-dir DIR --stageset FILE [--watch]'.
	go run ./hack/localrun $(RUN_ARGS)

.PHONY: run-cluster
run-cluster: build ## Install the CRDs into the cluster of the current kubeconfig and run the controller against it.
	go run ./hack/installcrds config/crd/bases
	bin/stageset-controller --health-probe-bind-address=:8081 --metrics-bind-address=:8080 --enable-webhook=false \
	  --integrity-key-secret=kube-system/stageset-controller-integrity-key

# The API reference comes from the doc comments the CRD descriptions come
# from: `make generate` writes both, so check-generated covers both.
.PHONY: generate
generate: docs ## Regenerate deepcopy code, the CRD, the RBAC role, the API reference and the Flux source and notification CRDs for tests.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=github.com/stageset/stageset-controller/api/v1
	$(CONTROLLER_GEN) crd paths=github.com/stageset/stageset-controller/api/v1 output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/stageset.io_stagesets.yaml config/chart/stageset-controller/files/crds/
	$(CONTROLLER_GEN) rbac:roleName=stageset-controller paths=./internal/controller/... output:rbac:artifacts:config=config/rbac
	rm -rf config/testdata/crds
	$(CONTROLLER_GEN) crd paths=github.com/fluxcd/source-controller/api/v1 output:crd:artifacts:config=config/testdata/crds
	rm -f config/testdata/crds/source.toolkit.fluxcd.io_helm*.yaml
	$(CONTROLLER_GEN) crd paths=github.com/fluxcd/notification-controller/api/... output:crd:artifacts:config=config/testdata/crds

.PHONY: docs
docs: ## Write the API reference docs/reference/api.md from the doc comments and markers of api/v1.
	go run ./hack/apidocs --output docs/reference/api.md

.PHONY: check-generated
check-generated: ## Fail when generated files differ from what `make generate` produces.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	tar -cf "$$tmp/before.tar" $(GENERATED) && \
	$(MAKE) --no-print-directory generate >/dev/null && \
	mkdir "$$tmp/before" && tar -xf "$$tmp/before.tar" -C "$$tmp/before" && \
	for p in $(GENERATED); do \
	  diff -ruN "$$tmp/before/$$p" "$$p" >/dev/null || { echo "generated files are stale: $$p (run make generate and commit)"; diff -ruN "$$tmp/before/$$p" "$$p" | head -40; exit 1; }; \
	done; echo "generated files are up to date"

.PHONY: vet
vet: ## Check formatting, that no Go file is left out of the build, and run go vet in both modules.
	@unformatted=$$($$(go env GOROOT)/bin/gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "not gofmt-ed (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	@ignored=$$(go list -f '{{range .IgnoredGoFiles}}{{$$.Dir}}/{{.}} {{end}}' ./... && cd api && go list -f '{{range .IgnoredGoFiles}}{{$$.Dir}}/{{.}} {{end}}' ./...); \
	  if [ -n "$$(echo $$ignored)" ]; then echo "Go files left out of the build on this platform (a _windows or _linux file suffix, a build tag?):"; echo "$$ignored"; exit 1; fi
	go vet ./...
	cd api && go vet ./...

.PHONY: testbin
testbin: $(TESTBIN_DIR)/kube-apiserver $(TESTBIN_DIR)/etcd ## Build the test API server and etcd from the Go module proxy (once; cached in bin/).

.PHONY: localbin
localbin: testbin $(TESTBIN_DIR)/kube-controller-manager $(TESTBIN_DIR)/kube-scheduler $(KWOK) $(KWOK_STAGES) ## Also build kube-controller-manager, kube-scheduler and kwok for the local control plane.

TESTBIN_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION:v%=%))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION:v%=%))) \
	-X k8s.io/component-base/version.gitTreeState=clean

# Keyed by version: present binaries are never rebuilt.
$(KWOK):
	@mkdir -p $(dir $(KWOK))
	@echo "building kwok $(KWOK_VERSION) from the Go module proxy"
	cd hack/kwok && go build -trimpath -ldflags "-s -w" -o $(KWOK) sigs.k8s.io/kwok/cmd/kwok

# The Stage definitions kwok ships: fast nodes with heartbeats, fast pods,
# and the chaos stage that fails a pod's containers when the pod opts in by
# label.
$(KWOK_STAGES):
	@mkdir -p $(dir $@)
	cd hack/kwok && dir=$$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage && \
	  cp $$dir/node/fast/node-initialize.yaml $$dir/node/heartbeat/node-heartbeat.yaml $$dir/pod/fast/pod-*.yaml \
	     $$dir/pod/chaos/pod-container-running-failed.yaml $(dir $@)
	@touch $@

$(TESTBIN_DIR)/%:
	@mkdir -p $(TESTBIN_DIR)
	@echo "building $* $(K8S_VERSION) from the Go module proxy (the first build takes several minutes)"
	cd hack/testbin && go build -trimpath -ldflags "$(TESTBIN_LDFLAGS)" -o $(TESTBIN_DIR)/$* ./$*

.PHONY: test
test: localbin check-generated vet ## Run every test against the real API server and the local control plane (the one test command; CI runs it).
	go test -race ./...
	cd api && go test -race ./...
	# The chart, its alerts and the dashboard (tests/install): no -race, these are manifest tests, and -race would compile Prometheus and Helm a second time on CI's 2 cores.
	cd tests/install && go test ./...
	cd hack/image && go test ./...

# How long `make fuzz` runs each fuzz target. Their seeds (f.Add and
# testdata/fuzz/) already run in `make test`; this is the long run.
FUZZTIME ?= 30s

# Targets are found in the test files of the module's packages, so a new
# Fuzz function is picked up without a list to maintain. A failure stops the
# run; go keeps the failing input under <package>/testdata/fuzz/<target>/,
# where it stays as a seed of every later `go test` once committed.
.PHONY: fuzz
fuzz: testbin ## Run every fuzz target for FUZZTIME each (default 30s), one after the other; stop at the first failure.
	@set -e; for dir in $$(go list -f '{{.Dir}}' ./...); do \
	  for target in $$(cat $$dir/*_test.go 2>/dev/null | sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p'); do \
	    echo "fuzzing $$target in $${dir#$(CURDIR)/} for $(FUZZTIME)"; \
	    go test $$dir -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

# The plugin tests run stagesetctl through a real Flux CLI (v2.9.5, which has
# `flux plugin`) and kubectl, both built from the module proxy into bin/ the
# first time: about 10 CPU-minutes, which is why they are not in `make test`.
.PHONY: test-plugins
test-plugins: ## Run stagesetctl as `flux stageset` and `kubectl stageset` through the real Flux CLI and kubectl (builds them once into bin/).
	cd tests/plugins && go test -count=1 ./...

# Kills of the controller in the random part of the crash test (`make test`
# runs 4) and seconds of network faults after the rollouts (`make test`: 30);
# FAULTS_SEED=... replays the draws of a run.
FAULTS_KILLS ?= 24
FAULTS_DURATION_SECONDS ?= 600
# StageSets of the load test and seconds their sources keep changing
# (`make test`: 20 and 20).
FAULTS_LOAD_STAGESETS ?= 500
FAULTS_LOAD_SECONDS ?= 300

.PHONY: reliability
reliability: localbin ## Run the long reliability tests: the controller SIGKILLed FAULTS_KILLS times during rollouts, leader failover, FAULTS_DURATION_SECONDS of network faults, FAULTS_LOAD_STAGESETS StageSets whose sources change for FAULTS_LOAD_SECONDS (see docs/reliability.md).
	FAULTS_KILLS=$(FAULTS_KILLS) FAULTS_DURATION_SECONDS=$(FAULTS_DURATION_SECONDS) \
	FAULTS_LOAD_STAGESETS=$(FAULTS_LOAD_STAGESETS) FAULTS_LOAD_SECONDS=$(FAULTS_LOAD_SECONDS) \
	go test ./tests/faults -count=1 -v -timeout 60m

# Repetitions of each end-to-end scenario: the full run (scale 1,000 with
# --concurrent 4 and 10 among others) takes about 40 minutes at 3 on two cores.
BENCH_REPS ?= 3

.PHONY: bench
bench: localbin ## Benchmark a steady-state run against a plain server-side apply loop, the controller's memory with 1,000 StageSets, and the controller end to end, the mixed rollout on the local control plane (bin/bench/e2e.{json,md}; see docs/performance.md).
	go test ./tests/bench/ -run '^$$' -bench . -benchtime=3x -count=1
	mkdir -p bin/bench
	go run ./tests/bench/e2e -reps $(BENCH_REPS) -out bin/bench/e2e.json -md bin/bench/e2e.md

# The documentation site: site/ renders docs/ as it is, with Hugo (a Debian
# package: apt-get install hugo); tests/docs builds and checks it in `make test`.
HUGO ?= hugo
DOCS_PORT ?= 1313

.PHONY: docs-site
docs-site: ## Build the documentation site from docs/ into bin/site (needs Hugo: apt-get install hugo).
	$(HUGO) --source site --destination $(CURDIR)/bin/site --cleanDestinationDir --noBuildLock

.PHONY: docs-serve
docs-serve: ## Preview the documentation site on http://127.0.0.1:1313 (DOCS_PORT=...) with live reload as you edit docs/ (needs Hugo).
	$(HUGO) server --source site --bind 127.0.0.1 --port $(DOCS_PORT) --baseURL http://127.0.0.1:$(DOCS_PORT)/ --noBuildLock

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
