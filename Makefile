# calclab: `make lab-up` brings the lab up, `make test` runs every test.
GO       ?= go
BIN      := $(CURDIR)/bin
PROVIDER ?=
ENGINE   ?=
NODE     ?=
LAB      := $(BIN)/lab --file lab.yaml $(if $(PROVIDER),--provider $(PROVIDER)) $(if $(ENGINE),--engine $(ENGINE))
GOFLAGS_BUILD := -trimpath
# The services are built with Go's SIMD experiment: the Mandelbrot renderer's
# vector kernel (AVX2/AVX-512, chosen at run time). A plain `go build` gives the
# scalar kernel, same pixels.
SIMD     := GOEXPERIMENT=simd

.PHONY: deps tools build lab-up lab-down lab-status lab-logs lab-ssh test unit vet cross fmt-check newman bench-calc bench-mandel clean

tools: ## pulumi and terraform CLIs for the IaC engines, built once into ~/.cache/calclab/bin (or taken from PATH)
	GO=$(GO) scripts/tools.sh

build: ## build bin/master bin/slave bin/lab, and static linux/amd64 services for VMs
	@mkdir -p $(BIN)/linux-amd64
	$(SIMD) $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/master ./cmd/slave ./cmd/lab ./cmd/terraform-provider-calclab ./cmd/pulumi-resource-calclab
	$(SIMD) CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/linux-amd64/ ./cmd/master ./cmd/slave

lab-up: build $(if $(filter-out native,$(ENGINE)),tools) ## start the lab from lab.yaml (local processes by default; ENGINE=terraform|pulumi, PROVIDER=qemu|hyperv)
	$(LAB) up

lab-down: ## stop the lab and remove its files (safe to run twice)
	@if [ -x $(BIN)/lab ]; then $(LAB) down; else echo "lab is not built; nothing to stop"; fi

lab-status: build ## table of the lab's nodes
	$(LAB) status

lab-logs: build ## make lab-logs NODE=slave-1
	@test -n "$(NODE)" || { echo "usage: make lab-logs NODE=master|slave-1|slave-2"; exit 2; }
	$(LAB) logs $(NODE)

image: ## build (or reuse) the Debian 12 VM image for the qemu provider (root)
	scripts/build-image.sh

lab-ssh: build ## make lab-ssh NODE=slave-1 (VM providers)
	@test -n "$(NODE)" || { echo "usage: make lab-ssh NODE=slave-1"; exit 2; }
	$(LAB) ssh $(NODE)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit: ## go test -race over every package (fuzz seed corpora included)
	$(GO) test -race -short -count=1 ./...
	$(SIMD) $(GO) test -race -short -count=1 ./services/mandel/...

newman: build ## run the Postman collection against a lab this target starts and stops
	scripts/newman.sh

deps: ## install what make test needs: Debian packages (as root) and the pinned npm tools (npm ci)
	scripts/test-deps.sh

test: deps tools fmt-check vet cross unit newman vagrant-check ## the whole suite: what .ci/run calls

cross: ## the commands build for Windows (lab drives Hyper-V from there) and macOS
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/lab ./cmd/master ./cmd/slave
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/lab ./cmd/master ./cmd/slave


bench-calc: build ## calculator benchmark: direct, master, nginx (own generator and wrk), batch, 50 slaves
	$(GO) run ./scripts/benchcalc

clean:
	rm -rf $(BIN)

bench-mandel: build ## Mandelbrot benchmark: seed view, 4K frame vs in-process, policies
	$(SIMD) $(GO) run ./scripts/benchmandel

.PHONY: e2e-vm
e2e-vm: deps ## end-to-end test of the lab on QEMU VMs (image, build, up, ssh, newman, failover, down); root for the image
	@scripts/vm-deps.sh
	@mkdir -p artifacts
	@date +%s.%N > artifacts/e2e-vm-start
	@t0=$$(date +%s.%N); \
	if [ "$$(id -u)" -eq 0 ]; then scripts/build-image.sh; else sudo scripts/build-image.sh; fi || exit 1; \
	echo "$$t0 $$(date +%s.%N)" | awk '{ printf "%.2f\n", $$2 - $$1 }' > artifacts/e2e-vm-image.seconds
	$(MAKE) build
	CALCLAB_E2E_VM=1 CALCLAB_E2E_MAKE_START=$$(cat artifacts/e2e-vm-start) \
		CALCLAB_E2E_IMAGE_SECONDS=$$(cat artifacts/e2e-vm-image.seconds) \
		$(GO) test -count=1 -timeout 40m -v ./tests/e2evm/

.PHONY: e2e-engines
e2e-engines: deps tools ## the terraform and pulumi engines once each on QEMU VMs (up, a task, plan says no changes, down); root for the image
	@scripts/vm-deps.sh
	@if [ "$$(id -u)" -eq 0 ]; then scripts/build-image.sh; else sudo scripts/build-image.sh; fi
	$(MAKE) build
	CALCLAB_E2E_ENGINES=1 $(GO) test -count=1 -timeout 45m -v ./tests/e2eengines/

.PHONY: vagrant-check
vagrant-check: build ## vagrant validate + every machine's Hyper-V settings through Vagrant's own config classes
	@if ! command -v vagrant >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends vagrant >/dev/null; \
	  else echo "vagrant-check: skipped: vagrant is not installed (as root: apt-get install vagrant)"; exit 0; fi; \
	fi; \
	vagrant validate --ignore-provider && ruby scripts/vagrant-check.rb && \
	$(GO) test -count=1 -run TestVagrantCheck ./infra/vagrant/

.PHONY: e2e-gen2
e2e-gen2: ## Hyper-V Gen2 boot rehearsed on QEMU: UEFI Secure Boot (MS keys), VHDX disk, seed on a DVD, static MAC; root for the image
	@scripts/vm-deps.sh ovmf sgdisk:gdisk mcopy:mtools mkfs.vfat:dosfstools sbverify:sbsigntool
	@mkdir -p artifacts
	@t0=$$(date +%s.%N); \
	if [ "$$(id -u)" -eq 0 ]; then scripts/build-image-gen2.sh; else sudo scripts/build-image-gen2.sh; fi || exit 1; \
	echo "$$t0 $$(date +%s.%N)" | awk '{ printf "%.2f\n", $$2 - $$1 }' > artifacts/e2e-gen2-image.seconds
	$(MAKE) build
	CALCLAB_E2E_GEN2=1 CALCLAB_E2E_GEN2_IMAGE_SECONDS=$$(cat artifacts/e2e-gen2-image.seconds) \
		$(GO) test -count=1 -timeout 30m -v ./tests/e2egen2/
