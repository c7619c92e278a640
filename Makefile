# vsq: build, test, install. `make demo` and `make check` first install what is missing.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
LUA_CMOD = $(PREFIX)/lib/lua/5.4
LUA_LMOD = $(PREFIX)/share/lua/5.4
MANDIR = $(PREFIX)/share/man

CC ?= cc
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
# The interpreter links Lua and libev statically: fewer relocations at start-up (vsq -e ''
# must cost at most 2x lua5.4 -e ''). -rdynamic lets Debian's Lua C modules find the API.
LIBDIR := $(shell pkg-config --variable=libdir lua5.4 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)
LUA_LIBS := $(or $(wildcard $(LIBDIR)/liblua5.4.a),-llua5.4)
EV_STATIC := $(or $(wildcard $(LIBDIR)/libev.a),-lev)
NL_CFLAGS := $(shell pkg-config --cflags libnl-route-3.0 2>/dev/null)
NL_LIBS := $(shell pkg-config --libs libnl-route-3.0 2>/dev/null || echo -lnl-route-3 -lnl-3)
SLIRP_CFLAGS := $(shell pkg-config --cflags slirp 2>/dev/null)
SLIRP_LIBS := $(shell pkg-config --libs slirp 2>/dev/null || echo -lslirp)
CAP_LIBS := $(shell pkg-config --libs libcap 2>/dev/null || echo -lcap)

WARN = -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -fPIC -D_GNU_SOURCE -Icore -Ilua -Ibuild \
	$(LUA_CFLAGS) $(NL_CFLAGS) $(SLIRP_CFLAGS)
LIBS = -lev $(NL_LIBS) $(SLIRP_LIBS) $(CAP_LIBS) -lm -ldl -lpthread
# SANITIZE=1 builds ./vsq with ASan and UBSan in build/asan; build/vsq.so stays a plain build
# (stock lua5.4 cannot load an ASan library).
ifeq ($(SANITIZE),1)
BUILD = build/asan
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD = build
endif

CORE_SRC := $(sort $(wildcard core/*.c))
BIND_SRC := $(sort $(filter-out lua/vsq.c,$(wildcard lua/l*.c)))
LUA_MODS := $(sort $(wildcard lua/vsq/*.lua))
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o)
BIND_OBJ = $(BIND_SRC:%.c=$(BUILD)/%.o)
SCRIPTS := $(sort $(wildcard scripts/vsq-*))
MANS := $(sort $(wildcard man/*.[1-9]))
FUZZERS := $(patsubst fuzz/%.c,build/fuzz/%,$(sort $(wildcard fuzz/fuzz_*.c)))

all: vsq lua-module

$(BUILD)/core/%.o: core/%.c $(wildcard core/*.h) | $(BUILD)/core
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(BUILD)/lua/%.o: lua/%.c $(wildcard core/*.h lua/*.h) | $(BUILD)/lua
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(sort $(BUILD)/core $(BUILD)/lua build/lua build/fuzz):
	mkdir -p $@

$(BUILD)/libvsq.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

# The table of built-in modules: C modules found by their luaopen_vsq_* symbol, Lua modules
# embedded as text.
# made every time (the set of modules may change), rewritten only when its text changes
build/modules.c: FORCE | build/lua
	@lua5.4 lua/embed.lua $@ $(BIND_SRC) -- $(LUA_MODS)
FORCE:
$(BUILD)/modules.o: build/modules.c | $(BUILD)/lua
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/vsq: $(BUILD)/lua/vsq.o $(BIND_OBJ) $(BUILD)/modules.o $(BUILD)/libvsq.a
	$(CC) $(LDFLAGS) -rdynamic -Wl,-O1 -Wl,--as-needed -o $@ $^ $(LUA_LIBS) $(EV_STATIC) -lreadline $(LIBS)

# ./vsq is the interpreter of the last build flavour (plain or SANITIZE=1)
vsq: $(BUILD)/vsq
	ln -sf $(BUILD)/vsq vsq

# For stock lua5.4: LUA_CPATH="$PWD/build/?.so" lua5.4 -e 'require "vsq"'
ifeq ($(SANITIZE),1)
lua-module:
	$(MAKE) SANITIZE= lua-module
else
lua-module: build/vsq.so
build/vsq.so: $(BIND_OBJ) build/modules.o build/libvsq.a
	$(CC) $(LDFLAGS) -shared -o $@ $(BIND_OBJ) $(BUILD)/modules.o $(BUILD)/libvsq.a -lreadline $(LIBS)
endif

deps:
	@scripts/deps

check: deps
	$(MAKE) all
	SANITIZE=$(SANITIZE) scripts/check

demo: deps
	$(MAKE) all
	./vsq examples/demo.lua

bench: deps
	$(MAKE) all
	scripts/bench

fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do echo "fuzz: $$f"; mkdir -p build/fuzz/corpus-$${f##*/}; \
		$$f -max_total_time=$${FUZZ_SECONDS:-20} -print_final_stats=0 build/fuzz/corpus-$${f##*/} \
		2>build/fuzz/$${f##*/}.log || { tail -40 build/fuzz/$${f##*/}.log; exit 1; }; done
build/fuzz/%: fuzz/%.c $(CORE_SRC) | build/fuzz
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Icore $(NL_CFLAGS) \
		$(SLIRP_CFLAGS) -o $@ $< $(CORE_SRC) $(LIBS)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUA_CMOD) $(DESTDIR)$(LUA_LMOD)/vsq $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 0755 $(BUILD)/vsq $(DESTDIR)$(BINDIR)/vsq
	for s in $(SCRIPTS); do install -m 0755 $$s $(DESTDIR)$(BINDIR)/; done
	install -m 0755 build/vsq.so $(DESTDIR)$(LUA_CMOD)/vsq.so
	for m in $(LUA_MODS); do install -m 0644 $$m $(DESTDIR)$(LUA_LMOD)/vsq/; done
	for m in $(MANS); do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vsq $(DESTDIR)$(LUA_CMOD)/vsq.so
	for s in $(SCRIPTS); do rm -f $(DESTDIR)$(BINDIR)/$${s##*/}; done
	for m in $(LUA_MODS); do rm -f $(DESTDIR)$(LUA_LMOD)/vsq/$${m##*/}; done
	-rmdir $(DESTDIR)$(LUA_LMOD)/vsq
	for m in $(MANS); do s=$${m##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done

clean:
	rm -rf build vsq

.PHONY: all deps check demo bench fuzz install uninstall clean vsq lua-module
