# libmulticast: build, test, demo, install.
#
#   make demo      install what the demo needs, build, and run two members discovering each other
#   make test      set up, build, and run every test (what .ci/run runs)
#   make install   PREFIX=/usr/local DESTDIR= : library, header, pkg-config and CMake files, mcat
#                  with its manual pages and completions (make uninstall removes them)
#   make deb       Debian/Ubuntu packages libmulticast0, libmulticast-dev and mcat in build/deb
#   make header    regenerate include/multicast.h after changing the C API
#   make go-prebuilt  the Go module's static libraries (linux amd64/arm64/armv7, windows
#                  amd64) staged in bindings/go/internal/prebuilt, as the released module
#                  carries them, so a plain `go build` of the checkout's binding links them
#   make fuzz      FUZZ_SECONDS=20 : each libFuzzer target that long (private netns)
#   make bench     the benchmark pairs (private netns); results and chart in build/bench/

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPLETIONDIR ?= $(DATADIR)/zsh/vendor-completions
FISHCOMPLETIONDIR ?= $(DATADIR)/fish/vendor_completions.d
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
MAJOR   := $(word 1,$(subst ., ,$(VERSION)))
MINOR   := $(word 2,$(subst ., ,$(VERSION)))
STATIC_LIBS := $(shell cat scripts/native-static-libs)
# Where the CMake config finds the library and header, from its own directory.
CONFIG_TO_LIBDIR = $(shell realpath -m --relative-to=$(LIBDIR)/cmake/multicast $(LIBDIR))
CONFIG_TO_INCDIR = $(shell realpath -m --relative-to=$(LIBDIR)/cmake/multicast $(INCDIR))
CARGO   ?= cargo
CC      ?= cc
CFLAGS_STRICT := -std=c11 -Wall -Wextra -Wpedantic -Werror -g
B       := build
LIB     := $(B)/lib
FUZZ_SECONDS ?= 20

.PHONY: all setup build lib header go-prebuilt c-tests examples test demo fuzz bench install install-unstripped uninstall deb clean

all: lib c-tests examples

setup:
	scripts/setup

# The C library: the crate with its C API (the `capi` feature) as a cdylib and a staticlib.
# A Rust dependent builds the same crate as an rlib only, without these.
# SONAME libmulticast.so.<major>, as cargo-c and the usual C convention do. Given here, not
# by build.rs, because the package itself declares only the rlib.
C_BUILD := --lib --release --features capi --crate-type cdylib,staticlib \
	-- -C link-arg=-Wl,-soname,libmulticast.so.$(MAJOR)

build:
	$(CARGO) rustc $(C_BUILD)
	$(CARGO) build --release --features cli --bin mcat

# The release libraries staged with the usual SONAME symlinks, for in-tree C programs.
lib: build
	mkdir -p $(LIB)
	cp target/release/libmulticast.so $(LIB)/libmulticast.so.$(VERSION)
	ln -sf libmulticast.so.$(VERSION) $(LIB)/libmulticast.so.$(MAJOR)
	ln -sf libmulticast.so.$(MAJOR) $(LIB)/libmulticast.so
	cp target/release/libmulticast.a $(LIB)/libmulticast.a
	mkdir -p $(B)/bin
	cp target/release/mcat $(B)/bin/mcat

header:
	MC_UPDATE_HEADER=1 $(CARGO) build --features capi

go-prebuilt:
	scripts/go-prebuilt

LINK_SHARED = -L$(LIB) -lmulticast -Wl,-rpath,$(abspath $(LIB)) -lpthread -lm
EXAMPLES := basic discovery listener dict_messages error_handling

c-tests: lib
	$(CC) $(CFLAGS_STRICT) -Iinclude tests/c/test_api.c -o $(B)/test_api $(LINK_SHARED)
	$(CC) $(CFLAGS_STRICT) -fsanitize=address,undefined -fno-omit-frame-pointer -Iinclude \
		tests/c/test_api.c -o $(B)/test_api_asan $(LINK_SHARED)
	$(CC) $(CFLAGS_STRICT) -Iinclude tests/c/test_process.c -o $(B)/test_process $(LINK_SHARED)
	$(CC) $(CFLAGS_STRICT) -DMC_NO_SMALL_STACK -fsanitize=address,undefined -fno-omit-frame-pointer \
		-Iinclude tests/c/test_process.c -o $(B)/test_process_asan $(LINK_SHARED)
	$(CC) $(CFLAGS_STRICT) -D_DEFAULT_SOURCE -Iinclude tests/c/lan_member.c -o $(B)/lan_member $(LINK_SHARED)
	$(CC) $(CFLAGS_STRICT) -Iinclude tests/c/mc_tool.c -o $(B)/mc_tool $(LINK_SHARED)
	$(CC) $(CFLAGS_STRICT) -Iinclude tests/c/test_portable.c -o $(B)/test_portable $(LINK_SHARED)
	$(CXX) -std=c++17 -Wall -Wextra -Werror -Iinclude -x c++ tests/c/cpp_header.cpp -o $(B)/cpp_header $(LINK_SHARED)

examples: lib
	mkdir -p $(B)/examples
	for e in $(EXAMPLES); do \
		$(CC) $(CFLAGS_STRICT) -Iinclude examples-c/$$e.c -o $(B)/examples/$$e $(LINK_SHARED) || exit 1; \
		$(CC) $(CFLAGS_STRICT) -fsanitize=address,undefined -Iinclude examples-c/$$e.c \
			-o $(B)/examples/$$e.asan $(LINK_SHARED) || exit 1; \
	done

test: setup
	scripts/test-all

# Only what the demo uses: no test tools, and only the one example it runs.
demo:
	scripts/setup --demo
	$(MAKE) lib
	mkdir -p $(B)/examples
	$(CC) $(CFLAGS_STRICT) -Iinclude examples-c/discovery.c -o $(B)/examples/discovery $(LINK_SHARED)
	scripts/demo

fuzz: setup
	scripts/fuzz $(FUZZ_SECONDS)

bench: setup
	scripts/bench

# STRIP=no (make install-unstripped) leaves stripping to a packager's tool (debian/rules:
# dh_strip, which keeps the debug information in -dbgsym packages).
STRIP ?= yes
install-unstripped:
	$(MAKE) install STRIP=no

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
ifeq ($(STRIP),yes)
	install -d $(DESTDIR)$(LIBDIR)/.debug
	# Stripped libraries; the shared library's debug information beside it in .debug/,
	# where gdb finds it through the .gnu_debuglink the stripped copy carries.
	objcopy --only-keep-debug target/release/libmulticast.so \
		$(DESTDIR)$(LIBDIR)/.debug/libmulticast.so.$(VERSION).debug
	objcopy --strip-unneeded --remove-section=.comment --remove-section=.note \
		--add-gnu-debuglink=$(DESTDIR)$(LIBDIR)/.debug/libmulticast.so.$(VERSION).debug \
		target/release/libmulticast.so $(DESTDIR)$(LIBDIR)/libmulticast.so.$(VERSION)
	objcopy --strip-debug target/release/libmulticast.a $(DESTDIR)$(LIBDIR)/libmulticast.a
	objcopy --strip-all --remove-section=.comment --remove-section=.note \
		target/release/mcat $(B)/mcat.install
else
	cp target/release/libmulticast.so $(DESTDIR)$(LIBDIR)/libmulticast.so.$(VERSION)
	cp target/release/libmulticast.a $(DESTDIR)$(LIBDIR)/libmulticast.a
	mkdir -p $(B) && cp target/release/mcat $(B)/mcat.install
endif
	# A shared library is not a program: not executable (Debian policy 8.1).
	chmod 0644 $(DESTDIR)$(LIBDIR)/libmulticast.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmulticast.a
	ln -sf libmulticast.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmulticast.so.$(MAJOR)
	ln -sf libmulticast.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libmulticast.so
	install -m 0644 include/multicast.h $(DESTDIR)$(INCDIR)/multicast.h
	install -d $(DESTDIR)$(LIBDIR)/cmake/multicast
	for cm in multicastConfig multicastConfigVersion; do \
		sed -e 's|@CONFIG_TO_LIBDIR@|$(CONFIG_TO_LIBDIR)|' -e 's|@CONFIG_TO_INCDIR@|$(CONFIG_TO_INCDIR)|' \
			-e 's|@VERSION@|$(VERSION)|' -e 's|@MAJOR@|$(MAJOR)|' -e 's|@MINOR@|$(MINOR)|' \
			-e 's|@STATIC_LIBS_CMAKE@|$(subst $(eval) ,;,$(patsubst -l%,%,$(STATIC_LIBS)))|' \
			$$cm.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/multicast/$$cm.cmake || exit 1; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(ZSHCOMPLETIONDIR) \
		$(DESTDIR)$(FISHCOMPLETIONDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(B)/mcat.install $(DESTDIR)$(BINDIR)/mcat
	target/release/mcat completions bash > $(DESTDIR)$(COMPLETIONDIR)/mcat
	target/release/mcat completions zsh > $(DESTDIR)$(ZSHCOMPLETIONDIR)/_mcat
	target/release/mcat completions fish > $(DESTDIR)$(FISHCOMPLETIONDIR)/mcat.fish
	rm -rf $(B)/man && mkdir -p $(B)/man && target/release/mcat man $(B)/man
	for page in $(B)/man/*.1; do gzip -9n < $$page > $(DESTDIR)$(MANDIR)/man1/$${page##*/}.gz || exit 1; done
	for pc in multicast multicast-static; do \
		sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
			-e 's|@VERSION@|$(VERSION)|' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|' \
			$$pc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/$$pc.pc || exit 1; \
	done

# Debian/Ubuntu packages libmulticast0 and libmulticast-dev in build/deb.
deb: build
	scripts/deb

# Removes every file install made, then each directory it leaves empty, up to (not
# including) the prefix.
INSTALL_DIRS = $(LIBDIR)/.debug $(LIBDIR)/cmake/multicast $(LIBDIR)/pkgconfig $(INCDIR) \
	$(BINDIR) $(COMPLETIONDIR) $(ZSHCOMPLETIONDIR) $(FISHCOMPLETIONDIR) $(MANDIR)/man1
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmulticast.so* $(DESTDIR)$(LIBDIR)/libmulticast.a \
		$(DESTDIR)$(LIBDIR)/.debug/libmulticast.so.*.debug \
		$(DESTDIR)$(INCDIR)/multicast.h $(DESTDIR)$(LIBDIR)/pkgconfig/multicast.pc \
		$(DESTDIR)$(LIBDIR)/pkgconfig/multicast-static.pc \
		$(DESTDIR)$(LIBDIR)/cmake/multicast/multicastConfig.cmake \
		$(DESTDIR)$(LIBDIR)/cmake/multicast/multicastConfigVersion.cmake \
		$(DESTDIR)$(BINDIR)/mcat $(DESTDIR)$(COMPLETIONDIR)/mcat \
		$(DESTDIR)$(ZSHCOMPLETIONDIR)/_mcat $(DESTDIR)$(FISHCOMPLETIONDIR)/mcat.fish \
		$(DESTDIR)$(MANDIR)/man1/mcat.1.gz $(DESTDIR)$(MANDIR)/man1/mcat-*.1.gz
	for dir in $(INSTALL_DIRS); do \
		while [ "$$dir" != "$(PREFIX)" ] && [ "$$dir" != / ] && rmdir "$(DESTDIR)$$dir" 2>/dev/null; do \
			dir=$$(dirname "$$dir"); \
		done; \
	done

clean:
	rm -rf $(B)
	rm -f bindings/go/internal/prebuilt/*/libmulticast.a bindings/go/internal/prebuilt/include/multicast.h \
		bindings/go/internal/prebuilt/BUILDINFO
	$(CARGO) clean
