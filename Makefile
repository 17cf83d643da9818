# The two commands: `make demo` and `make test`. Both install the Debian
# packages that are missing (scripts/deps.sh), configure and build.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan test test-plain test-asan format format-check demo bench clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@MAKEFLAGS= cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLIPWAY_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@MAKEFLAGS= cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test once plainly, the unit tests again under ASan+UBSan, then the format check.
test: build build-asan
	@$(MAKE) --no-print-directory test-plain test-asan format-check

test-plain:
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -L unit

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	@clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format: ok"

export DEMO_EXIT

demo: build
	@./scripts/demo.sh $(BUILD)

bench: build
	@for b in $(BUILD)/bench_*; do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
