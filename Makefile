# sift — build, test and benchmark.
#   make              libsift.a, sift-repl, sift.so (in build/)
#   make deps         install missing Debian packages (needs root / sudo)
#   make test         every test (C unit tests, gradient checks, Lua tests); last line "N passed, N failed"
#   make test-asan    the same suite built with -fsanitize=address,undefined,float-cast-overflow (in build-asan/)
#   make bench-kernels  GFLOP/s of linear forward/backward next to bare sgemms; fused ops vs unfused
#   make install PREFIX=/usr/local
#   make MPI=1        the same with MPI (data-parallel training under mpiexec; in build-mpi/, compiled by mpicc)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)   # build in parallel by default
MPI      ?= 0
ifeq ($(MPI),1)
BUILD    ?= build-mpi
CC       := mpicc
MPI_DEF  := -DSIFT_MPI
endif
BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
LUA_INC  ?= /usr/include/lua5.4
# OpenBLAS built on OpenMP (Debian's libopenblas-openmp-dev), linked by path: its gemms then run on the
# same OpenMP threads as our kernels, waiting passively, instead of a second pool of pthreads that spin
# on sched_yield while OpenMP works (measured: 15-25 % of a training step's cycles on 2 cores).
BLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_INC ?= /usr/include/x86_64-linux-gnu/openblas-openmp
OPT      ?= -O2 -march=native
WERROR   ?= -Werror
SAN      ?=
CFLAGS   += -std=gnu11 $(OPT) -fno-math-errno -g -Wall -Wextra $(WERROR) -fPIC -fopenmp -I$(BLAS_INC) $(SAN) $(MPI_DEF)
LDLIBS   += -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lcjson -lm -lpthread
LDFLAGS  += -fopenmp $(SAN)

CORE_SRC  := $(sort $(wildcard core/*.c))
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o)
BIND_SRC  := $(filter-out lua/repl.c,$(sort $(wildcard lua/*.c)))
BIND_OBJ  := $(BIND_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_LIB  := $(BUILD)/tests/gradcheck.o

LIB   := $(BUILD)/libsift.a
REPL  := $(BUILD)/sift-repl
LUAMOD:= $(BUILD)/sift.so

.PHONY: all mpi-repl test test-asan test-c deps bench bench-kernels clean install install-files demo FORCE
all: $(LIB) $(REPL) $(LUAMOD) $(TEST_BIN) $(BUILD)/bench_kernels

FORCE:

# The compile flags of the last build in this folder: every object depends on this file, which is
# rewritten only when the flags change, so a changed OPT or SAN (test-asan adding a sanitizer) rebuilds
# everything instead of linking objects built the old way.
FLAGS_STAMP := $(BUILD)/.cflags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(LUA_INC) -MMD -MP -c $< -o $@

$(LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(REPL): $(BUILD)/lua/repl.o $(BIND_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -llua5.4 -lreadline $(LDLIBS)

$(LUAMOD): $(BIND_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_kernels: $(BUILD)/scripts/bench_kernels.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# with MPI installed (make deps installs it), the MPI build's sift-repl too: tests/sh/test_dist.sh runs it
# under mpiexec (and reports itself skipped without it)
MPI_REPL := $(if $(shell command -v mpicc 2>/dev/null),mpi-repl)
mpi-repl:
	@$(MAKE) --no-print-directory MPI=1 BUILD=build-mpi build-mpi/sift-repl

test: all $(MPI_REPL)
	@tests/run_all.sh $(BUILD)

test-c: $(TEST_BIN)
	@tests/run_all.sh $(BUILD) c

test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -march=native" SAN="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow" all
	@# allocator_may_return_null: a request too big to satisfy returns NULL, as it does in a plain build,
	@# so the tests see the engine's "out of memory" error instead of the sanitizer stopping the run
	@ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 tests/run_all.sh build-asan

bench-kernels: $(BUILD)/bench_kernels
	$(BUILD)/bench_kernels

bench: all
	@scripts/bench.sh $(BUILD)

deps:
	@./scripts/install_deps.sh

demo: all
	$(REPL) examples/00_demo.lua

install: all
	@$(MAKE) --no-print-directory install-files

# copies what is built (no rebuild: tests install a sanitizer build this way too)
install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/5.4 $(DESTDIR)$(PREFIX)/share/lua/5.4/sift
	install -m 755 $(REPL) $(DESTDIR)$(PREFIX)/bin/sift-repl
	install -m 755 $(LUAMOD) $(DESTDIR)$(PREFIX)/lib/lua/5.4/sift.so
	install -m 644 lua/sift/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/sift/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 docs/sift-repl.1 $(DESTDIR)$(PREFIX)/share/man/man1/sift-repl.1

clean:
	rm -rf build build-asan build-mpi

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
