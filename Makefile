# ocelot build. `make` builds build/ocelot, build/libocelot.a and build/libocelot.so.
#   make test                 build and run every test (unit, then end-to-end)
#   make test-unit            unit tests only
#   make check                test + test-san with -Werror: what CI runs
#   make test-san             unit tests under AddressSanitizer + UBSan (in build-san/)
#   make BUILD=dir            build somewhere else (parallel work trees, sanitizer builds)
#   make SAN=address,undefined
#   make THREADS=0            portable single-threaded build (no thread pool)
#   make install PREFIX=/usr/local
BUILD    ?= build
PREFIX   ?= /usr/local
THREADS  ?= 1
SAN      ?=
OPT      ?= -O2
SOVERSION := 0
VERSION  := 0.1.0

CC       ?= cc
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wdouble-promotion \
            -Wno-unused-parameter
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden \
            -Iinclude -Isrc -DOC_BUILDING_LIBRARY -MMD -MP \
            $(shell pkg-config --cflags libpng libwebp libcjson libmicrohttpd liblzma 2>/dev/null)
LIBS     := -ljpeg $(shell pkg-config --libs libpng libwebp libcjson libmicrohttpd liblzma 2>/dev/null || \
            echo -lpng16 -lwebp -lcjson -lmicrohttpd -llzma) -lz -lpthread -lm
ifeq ($(THREADS),1)
ALL_CFLAGS += -DOC_THREADS=1
endif
ifneq ($(SAN),)
ALL_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LIBS       += -fsanitize=$(SAN)
endif
ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif

LIB_SRC  := $(wildcard src/core/*.c src/ops/*.c src/nn/*.c src/train/*.c src/data/*.c \
                       src/eval/*.c src/io/*.c src/predict/*.c src/serve/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_LIB := $(filter-out $(TEST_SRC),$(wildcard tests/unit/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TLIB_OBJ := $(TEST_LIB:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all lib tests test test-unit test-e2e test-san check install uninstall clean
all: $(BUILD)/ocelot $(BUILD)/libocelot.a $(BUILD)/libocelot.so

lib: $(BUILD)/libocelot.a $(BUILD)/libocelot.so
tests: $(TEST_BIN)

# SIMD kernels live in files named *_avx512.c / *_avx2.c, compiled for that ISA and called only
# after a run-time CPU check; everything else builds for baseline x86-64.
$(BUILD)/obj/%_avx512.o: ALL_CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 \
                                       -mavx512vnni -mfma -mf16c
$(BUILD)/obj/%_avx2.o: ALL_CFLAGS += -mavx2 -mfma -mf16c

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# the web page is embedded with .incbin (src/serve/page.c)
$(BUILD)/obj/src/serve/page.o: src/serve/web/index.html

$(BUILD)/libocelot.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libocelot.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libocelot.so.$(SOVERSION) -o $@.$(VERSION) $^ $(LIBS)
	ln -sf libocelot.so.$(VERSION) $@.$(SOVERSION)
	ln -sf libocelot.so.$(VERSION) $@

$(BUILD)/ocelot: $(CLI_OBJ) $(BUILD)/libocelot.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libocelot.a $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TLIB_OBJ) $(BUILD)/libocelot.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(TLIB_OBJ) $(BUILD)/libocelot.a $(LIBS)

test: all tests
	BUILD=$(BUILD) tests/run.sh

test-unit: tests
	BUILD=$(BUILD) tests/run.sh --unit

test-e2e: all
	BUILD=$(BUILD) tests/run.sh --e2e

# The unit tier again under AddressSanitizer + UBSan, plus the file-corruption e2e checks.
test-san:
	$(MAKE) BUILD=build-san SAN=address,undefined OPT=-O1 all tests
	BUILD=build-san ASAN_OPTIONS=detect_leaks=1 tests/run.sh --unit --san

# Everything CI runs: the full suite, then the unit tier under sanitizers.
check:
	$(MAKE) WERROR=1 test
	$(MAKE) WERROR=1 test-san

# pkg-config metadata. Shared linking needs only -locelot (the .so records its own
# dependencies); linking libocelot.a (pkg-config --static) adds the libraries below: those with
# a .pc file as Requires.private, the rest as flags. libmicrohttpd is a plain -l: its .pc would
# pull in GnuTLS's whole static closure (ocelot serves plain HTTP), and on Debian 12 that fails
# to link without libunistring-dev.
PC_REQUIRES_PRIVATE := libpng libwebp libcjson liblzma zlib
PC_LIBS_PRIVATE     := -lmicrohttpd -ljpeg -lpthread -lm
ifneq ($(SAN),)
PC_LIBS_PRIVATE     += -fsanitize=$(SAN)
endif
LIBDIR   := $(PREFIX)/lib

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/ocelot.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libocelot.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libocelot.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sfn libocelot.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libocelot.so.$(SOVERSION)
	ln -sfn libocelot.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libocelot.so
	install -m 755 $(BUILD)/ocelot $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES_PRIVATE)|g' \
	    -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|g' ocelot.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/ocelot.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/ocelot.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/ocelot.h $(DESTDIR)$(LIBDIR)/libocelot.a \
	      $(DESTDIR)$(LIBDIR)/libocelot.so $(DESTDIR)$(LIBDIR)/libocelot.so.$(SOVERSION) \
	      $(DESTDIR)$(LIBDIR)/libocelot.so.$(VERSION) $(DESTDIR)$(PREFIX)/bin/ocelot \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/ocelot.pc

clean:
	rm -rf build build-*

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TLIB_OBJ:.o=.d) $(TEST_BIN:$(BUILD)/tests/%=$(BUILD)/obj/tests/unit/%.d)
