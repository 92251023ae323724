#!/usr/bin/env bash
# Builds python.wasm and the stdlib bundle from Debian's CPython source, reproducibly.
#
#   python-wasm/build.sh            # build (or reuse the cache) and copy into python-wasm/dist/
#   python-wasm/build.sh --check-sources
#                                   # only check that every pinned source is still served
#
# Outputs are cached outside the repo in $WASMWSGI_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/wasmwsgi), keyed by a hash of every input of this recipe, so
# a second run copies two files and returns. See python-wasm/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

recipe=(build.sh deps.sh fetch-source.sh versions.env Setup.local _wasmwsgi.c immortal.patch gc-frozen.patch file-modes.patch bundle_stdlib.py _sqlite_wasi_vfs.c musl-tz.patch tz-time.h)
key=$(cd "$here" && cat "${recipe[@]}" | sha256sum | cut -c1-16)
cache=${WASMWSGI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmwsgi}
out=$cache/python-wasm-$key
dist=$here/dist

publish() {
  mkdir -p "$dist"
  for f in python.wasm stdlib.zip BUILDINFO; do
    cmp -s "$out/$f" "$dist/$f" 2>/dev/null || cp "$out/$f" "$dist/$f"
  done
}

if [ "${1:-}" = "--check-sources" ]; then
  bash "$here/deps.sh"
  for s in $SOURCES; do
    pkg=${s}_DEB_PACKAGE version=${s}_DEB_VERSION orig=${s}_ORIG sha=${s}_SHA256
    bash "$here/fetch-source.sh" --check "${!pkg}" "${!version}" "${!orig}" "${!sha}"
  done
  exit 0
fi

if [ -f "$out/BUILDINFO" ]; then
  publish
  echo "python-wasm: cached build $key ($out)"
  exit 0
fi

start=$(date +%s)
bash "$here/deps.sh"
# musl's time zone code below is compiled against wasi-libc's internal headers and
# links with its libc.a: both must come from the pinned source version.
installed=$(dpkg-query -W -f='${Version}' wasi-libc)
if [ "$installed" != "$WASILIBC_DEB_VERSION" ]; then
  echo "python-wasm: wasi-libc $installed is installed, the recipe pins $WASILIBC_DEB_VERSION:" >&2
  echo "  re-pin WASILIBC_* in python-wasm/versions.env to the installed version's source and rebuild" >&2
  exit 1
fi

# ---- sources, from Debian, checked against pinned hashes (fetch-source.sh) ----
src=$cache/src
for s in $SOURCES; do
  pkg=${s}_DEB_PACKAGE version=${s}_DEB_VERSION orig=${s}_ORIG sha=${s}_SHA256
  if ! echo "${!sha}  $src/${!orig}" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "python-wasm: fetching ${!pkg}=${!version} (${!orig})" >&2
    bash "$here/fetch-source.sh" "${!pkg}" "${!version}" "${!orig}" "${!sha}" "$src"
  fi
done

work=$cache/work-$key
rm -rf "$work"
mkdir -p "$work"
cd "$work"

export SOURCE_DATE_EPOCH=315532800
wasm_cc="$LLVM/clang --target=wasm32-wasi"
jobs=$(nproc)

# ---- zlib for wasm32-wasi: a static libz.a from the plain sources ----
mkdir zlib-src && tar -xjf "$src/$ZLIB_ORIG" -C zlib-src --strip-components=1
mkdir -p zlib/include zlib/lib
(
  cd zlib-src
  objs=()
  for f in adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast \
           inflate inftrees trees uncompr zutil; do
    $wasm_cc -O2 -w -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -c "$f.c" -o "$f.o"
    objs+=("$f.o")
  done
  "$LLVM/llvm-ar" rcs ../zlib/lib/libz.a "${objs[@]}"
  cp zlib.h zconf.h ../zlib/include/
)

# ---- SQLite for wasm32-wasi: the amalgamation, generated from the source tree by its
# own build (host cc and tclsh), compiled with python-wasm's VFS into libsqlite3.a ----
# SQLITE_OS_OTHER=1   the unix VFS does not build for WASI (fcntl locks, mmap, fchown);
#                     _sqlite_wasi_vfs.c is the OS layer instead, with in-instance locks
# THREADSAFE=0        python.wasm has no threads, so no mutexes
# OMIT_WAL            WAL needs shared memory between connections; WASI has no mmap
# OMIT_LOAD_EXTENSION no dlopen in WASI
# TEMP_STORE=2        temporary tables and indices in memory unless a pragma says file
mkdir sqlite-src && tar -xJf "$src/$SQLITE_ORIG" -C sqlite-src --strip-components=1
mkdir -p sqlite-src/bld sqlite/include sqlite/lib
(
  cd sqlite-src/bld
  ../configure -q --disable-tcl --disable-readline >/dev/null
  make -s sqlite3.c >/dev/null 2>&1 || make sqlite3.c
  flags=(-O2 -w -DSQLITE_OS_OTHER=1 -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_WAL
         -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_TEMP_STORE=2
         -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_MATH_FUNCTIONS)
  $wasm_cc "${flags[@]}" -c sqlite3.c -o sqlite3.o
  $wasm_cc -O2 -Wall -I. -c "$here/_sqlite_wasi_vfs.c" -o _sqlite_wasi_vfs.o
  "$LLVM/llvm-ar" rcs ../../sqlite/lib/libsqlite3.a sqlite3.o _sqlite_wasi_vfs.o
  cp sqlite3.h sqlite3ext.h ../../sqlite/include/
)

# ---- bzip2 and liblzma for wasm32-wasi: static libraries for _bz2 and _lzma ----
mkdir bzip2-src && tar -xzf "$src/$BZIP2_ORIG" -C bzip2-src --strip-components=1
mkdir -p bzip2/include bzip2/lib
(
  cd bzip2-src
  objs=()
  for f in blocksort huffman crctable randtable compress decompress bzlib; do
    $wasm_cc -O2 -w -D_FILE_OFFSET_BITS=64 -c "$f.c" -o "$f.o"
    objs+=("$f.o")
  done
  "$LLVM/llvm-ar" rcs ../bzip2/lib/libbz2.a "${objs[@]}"
  cp bzlib.h ../bzip2/include/
)
# liblzma without threads. Its single-threaded build still declares a helper that
# wraps sigprocmask, which only the xz program calls: WASI has no signal masks, so the
# two names it mentions are defined away when the library is compiled (the helper is
# never compiled into it; llvm-nm shows no reference to either). The quotes are for
# the shell that make runs each compile in.
mkdir xz-src && tar -xJf "$src/$XZ_ORIG" -C xz-src --strip-components=1
mkdir -p xz
(
  cd xz-src
  CC="$wasm_cc" AR="$LLVM/llvm-ar" RANLIB="$LLVM/llvm-ranlib" CFLAGS="-O2" \
  ./configure -q --host=wasm32-unknown-wasi --build=x86_64-pc-linux-gnu --prefix="$work/xz" \
    --disable-shared --enable-static --disable-threads --disable-xz --disable-xzdec \
    --disable-lzmadec --disable-lzmainfo --disable-lzma-links --disable-scripts \
    --disable-doc --disable-nls --disable-rpath >/dev/null
  nosig="-O2 -D_WASI_EMULATED_SIGNAL -Dsigset_t=int '-Dsigprocmask(how,set,old)=0'"
  make -s -j"$jobs" -C src/liblzma CFLAGS="$nosig" >/dev/null 2>&1 || make -j"$jobs" -C src/liblzma CFLAGS="$nosig"
  make -s -C src/liblzma install >/dev/null
)

# ---- musl's time zone code for wasm32-wasi: wasi-libc is musl without it (its
# localtime is gmtime and it has no tzset). __tz.c from the same wasi-libc source, with
# musl-tz.patch (it reads TZif files with read() instead of mmap, and follows glibc where
# the two differ: see README.md), compiled as musl compiles it (-std=c99
# -D_XOPEN_SOURCE=700) with wasi-libc's internal headers, into libtz.a. Linked before
# libc.a, it supplies tzset, tzname, timezone, daylight and the zone lookup that libc.a's
# localtime_r, mktime and strftime call, so libc.a's UTC-only __tz.o is never linked.
# tz-time.h becomes the time.h CPython's build includes: wasi-libc's, plus declarations. ----
mkdir wasi-libc-src && tar -xJf "$src/$WASILIBC_ORIG" -C wasi-libc-src --strip-components=1 \
  --wildcards '*/libc-top-half/musl/src/*' '*/libc-top-half/musl/include/*' '*/libc-top-half/musl/arch/*' \
  '*/libc-top-half/headers/*'
patch -s -d wasi-libc-src -p1 < "$here/musl-tz.patch"
mkdir -p tz/lib tz/include
cp "$here/tz-time.h" tz/include/time.h
(
  cd wasi-libc-src/libc-top-half
  $wasm_cc -std=c99 -D_XOPEN_SOURCE=700 -O2 -w -Imusl/src/include -Imusl/src/internal \
    -Imusl/arch/wasm32 -Imusl/arch/generic -Iheaders/private -c musl/src/time/__tz.c -o __tz.o
  "$LLVM/llvm-ar" rcs ../../tz/lib/libtz.a __tz.o
)

# ---- CPython: the native "build python" (cached on its own: it depends only on the
# source tarball), then the wasm32-wasi cross build ----
native=$cache/native-${PY_SHA256:0:16}
if [ ! -x "$native/cpython/builddir/build/python" ]; then
  rm -rf "$native" && mkdir -p "$native/cpython/builddir/build"
  tar -xzf "$src/$PY_ORIG" -C "$native/cpython" --strip-components=1
  (
    cd "$native/cpython/builddir/build"
    ../../configure -q --prefix=/usr/local >/dev/null
    make -s -j"$jobs" >/dev/null 2>&1 || make -j"$jobs"
  )
fi
build_python=$native/cpython/builddir/build/python

mkdir cpython && tar -xzf "$src/$PY_ORIG" -C cpython --strip-components=1
# immortal.patch: objects whose reference count is >= 2^29 are immortal (Py_INCREF and
# Py_DECREF skip them), as in CPython 3.12; wasmwsgi_freeze() in _wasmwsgi.c makes the
# snapshot's objects immortal so that requests stop copying pages to count references.
# gc-frozen.patch: gc.get_objects() and gc.get_referrers() also see the objects frozen
# with the snapshot, which are the app's objects although the server froze them.
patch -s -d cpython -p1 < "$here/immortal.patch"
patch -s -d cpython -p1 < "$here/gc-frozen.patch"
# file-modes.patch: a stat's mode and owner pass through wasmwsgi_stat_fixup in
# _wasmwsgi.c (WASI's filestat has no permission bits: Linux's defaults by type, or
# what the app set on a /tmp file).
patch -s -d cpython -p1 < "$here/file-modes.patch"
cp "$here/_wasmwsgi.c" cpython/Modules/_wasmwsgi.c
mkdir -p cpython/builddir/wasi/Modules
# makesetup reads Setup.local from the build directory.
cp "$here/Setup.local" cpython/builddir/wasi/Modules/Setup.local
(
  cd cpython/builddir/wasi
  # An empty pkg-config search path keeps the host's libraries (uuid, crypt...) out
  # of the wasm build; zlib, bzip2 and liblzma are passed explicitly. Without
  # clock_nanosleep, time.sleep uses a relative nanosleep: wazero's poll_oneoff rejects
  # absolute-time clock subscriptions (ENOTSUP), which TIMER_ABSTIME sleeps turn into.
  # --with-pymalloc: configure turns CPython's small-object allocator off for WASI, so
  # every object would come from wasi-libc's malloc; with it on, the interpreter is
  # 7-10% faster (geometric mean of benchmarks/micro on wazero and on node) for about
  # 2% more memory in a Flask snapshot. Arenas come from malloc (WASI has no mmap).
  # libtz.a and tz/include give the C library musl's time zone code (above), so tzset
  # works; configure cannot run its test program when cross-compiling, so it is told.
  mkdir -p "$work/no-pkgconfig"
  PKG_CONFIG_LIBDIR="$work/no-pkgconfig" PKG_CONFIG_PATH="" \
  CONFIG_SITE=../../Tools/wasm/config.site-wasm32-wasi \
  CC="$wasm_cc" CPP="$wasm_cc -E" CXX="$LLVM/clang++ --target=wasm32-wasi" \
  AR="$LLVM/llvm-ar" RANLIB="$LLVM/llvm-ranlib" \
  CFLAGS="-Wno-int-conversion" CPPFLAGS="-I$work/tz/include" LIBS="-L$work/tz/lib -ltz" \
  ac_cv_working_tzset=yes \
  ac_cv_func_clock_nanosleep=no ac_cv_lib_rt_clock_nanosleep=no \
  ZLIB_CFLAGS="-I$work/zlib/include" ZLIB_LIBS="-L$work/zlib/lib -lz" \
  BZIP2_CFLAGS="-I$work/bzip2/include" BZIP2_LIBS="-L$work/bzip2/lib -lbz2" \
  LIBLZMA_CFLAGS="-I$work/xz/include" LIBLZMA_LIBS="-L$work/xz/lib -llzma" \
  LIBSQLITE3_CFLAGS="-I$work/sqlite/include" LIBSQLITE3_LIBS="-L$work/sqlite/lib -lsqlite3" \
  ../../configure -q -C --host=wasm32-unknown-wasi --build=x86_64-pc-linux-gnu \
    --with-build-python="$build_python" --prefix=/usr/local \
    --with-pymalloc >/dev/null
  grep -q '^MODULE_ZLIB_STATE=yes' Makefile || { echo "python-wasm: zlib was not enabled" >&2; exit 1; }
  grep -q '^MODULE__SQLITE3_STATE=yes' Makefile || { echo "python-wasm: _sqlite3 was not enabled" >&2; exit 1; }
  grep -q '^MODULE__BZ2_STATE=yes' Makefile || { echo "python-wasm: _bz2 was not enabled" >&2; exit 1; }
  grep -q '^MODULE__LZMA_STATE=yes' Makefile || { echo "python-wasm: _lzma was not enabled" >&2; exit 1; }
  for m in _TESTCAPI _TESTINTERNALCAPI _TESTBUFFER _TESTCLINIC; do
    grep -q "^MODULE_${m}_STATE=yes" Makefile || { echo "python-wasm: test module $m was not enabled" >&2; exit 1; }
  done
  grep -q '^#define WITH_PYMALLOC 1' pyconfig.h || { echo "python-wasm: pymalloc was not enabled" >&2; exit 1; }
  grep -q '^#define HAVE_WORKING_TZSET 1' pyconfig.h || { echo "python-wasm: tzset was not enabled" >&2; exit 1; }
  # The interpreter loop (ceval.c) is compiled with -Os, the rest with configure's -O3:
  # wazero runs the smaller loop faster (benchmarks/micro, bare: geometric mean 3.10x
  # -> 3.00x native, its loop benchmark 4.45x -> 3.79x; -O2, -Oz and -O3 without tail
  # duplication were no better; python-wasm/README.md).
  printf '\n# build.sh: the interpreter loop is compiled for size\nPython/ceval.o: OPT += -Os\n' >> Makefile
  make -n Python/ceval.o | grep -q -- '-O3 .*-Os' || { echo "python-wasm: ceval.c would not be compiled with -Os" >&2; exit 1; }
  make -s -j"$jobs" >/dev/null 2>&1 || make -j"$jobs"
  # Relink as a reactor: the host calls the exported wasmwsgi_init/wasmwsgi_handle
  # instead of _start, which is what lets it keep an initialised instance.
  linkfor=$(sed -n 's/^LINKFORSHARED=[[:space:]]*//p' Makefile)
  rm -f python.wasm
  make -s python.wasm LINKFORSHARED="$linkfor -mexec-model=reactor" >/dev/null
)

wasi=cpython/builddir/wasi
mkdir -p "$out.tmp"
"$LLVM/llvm-strip" --strip-debug -o "$out.tmp/python.wasm" "$wasi/python.wasm"
# The build's configuration names the work folder (under the builder's cache, with the
# recipe's hash in it): it becomes /build, so that the bundle is the same wherever it is
# built and no host path reaches the guest.
sysconfigdata=$(ls "$wasi"/build/lib.wasi-wasm32-3.11/_sysconfigdata_*.py)
mkdir -p sysconfig && sed "s#$work#/build#g" "$sysconfigdata" > "sysconfig/$(basename "$sysconfigdata")"
"$build_python" "$here/bundle_stdlib.py" cpython/Lib "sysconfig/$(basename "$sysconfigdata")" "$out.tmp/stdlib.zip"

cat > "$out.tmp/BUILDINFO" <<INFO
recipe $key
cpython $PY_VERSION (Debian $PY_DEB_PACKAGE=$PY_DEB_VERSION, $PY_ORIG sha256 $PY_SHA256)
zlib (Debian $ZLIB_DEB_PACKAGE=$ZLIB_DEB_VERSION, $ZLIB_ORIG sha256 $ZLIB_SHA256)
sqlite $SQLITE_VERSION (Debian $SQLITE_DEB_PACKAGE=$SQLITE_DEB_VERSION, $SQLITE_ORIG sha256 $SQLITE_SHA256)
bzip2 (Debian $BZIP2_DEB_PACKAGE=$BZIP2_DEB_VERSION, $BZIP2_ORIG sha256 $BZIP2_SHA256)
xz-utils (Debian $XZ_DEB_PACKAGE=$XZ_DEB_VERSION, $XZ_ORIG sha256 $XZ_SHA256)
musl time zone code (Debian $WASILIBC_DEB_PACKAGE=$WASILIBC_DEB_VERSION, $WASILIBC_ORIG sha256 $WASILIBC_SHA256, with musl-tz.patch)
clang $("$LLVM/clang" --version | head -n1)
python.wasm sha256 $(sha256sum "$out.tmp/python.wasm" | cut -d' ' -f1) bytes $(stat -c %s "$out.tmp/python.wasm")
stdlib.zip sha256 $(sha256sum "$out.tmp/stdlib.zip" | cut -d' ' -f1) bytes $(stat -c %s "$out.tmp/stdlib.zip")
INFO
rm -rf "$out" && mv "$out.tmp" "$out"
rm -rf "$work"
publish
echo "python-wasm: built $key in $(( $(date +%s) - start ))s"
cat "$dist/BUILDINFO"
