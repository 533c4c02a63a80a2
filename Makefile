# hsmsign: the two commands a new machine needs are `make demo` and
# `make check`; both install missing Debian packages first.
BUILD ?= build
MESON ?= meson
DESTDIR ?=
PREFIX ?= /usr/local
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
BUILD_VG ?= build-vg
BUILD_LINT ?= build-lint
FUZZ_SECONDS ?= 60

.PHONY: all deps build check check-asan check-valgrind fuzz fuzz-short lint demo bench bench-apk bench-release install clean

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

# The same suite built with AddressSanitizer + UBSan (gcc) in $(BUILD_ASAN);
# leak suppressions only for third-party libraries (tests/sanitizers/).
check-asan: deps
	@scripts/check-asan $(BUILD_ASAN)

# Integration tests with every hsmsign process under valgrind memcheck (a
# debug build in $(BUILD_VG)); the subset and why: scripts/check-valgrind.
check-valgrind: deps
	@scripts/check-valgrind $(BUILD_VG)

# libFuzzer targets for every parser of untrusted bytes (clang, ASan+UBSan),
# FUZZ_SECONDS each; fuzz-short is the bounded pass for CI. Both replay
# tests/fuzz/regressions first and print executions and crashes per target.
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(BUILD_FUZZ)

fuzz-short: deps
	@FUZZ_SECONDS=6 tests/fuzz/run.sh $(BUILD_FUZZ)

# cppcheck and clang-tidy over src/ with the configuration in the repo
# (.clang-tidy, tests/lint/); fails on any finding, ends with one summary line.
lint: deps
	@scripts/lint $(BUILD_LINT)

demo: build
	@scripts/demo $(BUILD)

# Every speed target against its reference, measured in the same run, one
# table (bench/README.md); not part of `check`. BENCH_QUICK=1: a few
# minutes. bench-apk: the detailed APK comparison with apksigner.
bench: build
	@bench/run $(BUILD)

bench-apk: build
	@bench/apk $(BUILD)

# A whole release through releasetools: file keys, SunPKCS11, hsmsign's
# agent (bench/README.md); needs ../shared/releasetools.
bench-release: build
	@bench/release $(BUILD)

install: build
	DESTDIR=$(DESTDIR) $(MESON) install -C $(BUILD)

clean:
	rm -rf $(BUILD) demo
