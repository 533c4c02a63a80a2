# hsmsign: the two commands a new machine needs are `make demo` and
# `make check`; both install missing Debian packages first.
BUILD ?= build
MESON ?= meson
DESTDIR ?=
PREFIX ?= /usr/local

.PHONY: all deps build check demo bench install clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --prefix=$(PREFIX)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Every test: unit (cmocka), the PKCS#11 shim, integration against real
# SoftHSM tokens and real verifiers. Ends with one "N passed, N failed" line.
check: build
	@scripts/run-tests $(BUILD)

demo: build
	@scripts/demo $(BUILD)

# APK signing speed, hsmsign against apksigner (bench/README.md); not part
# of `check`. BENCH_N=50 for a shorter run.
bench: build
	@bench/apk $(BUILD)

install: build
	DESTDIR=$(DESTDIR) $(MESON) install -C $(BUILD)

clean:
	rm -rf $(BUILD) demo
