/* <time.h> as the CPython build sees it (build.sh puts this file first on the include
 * path as time.h): wasi-libc's own header, plus the time zone interface that
 * wasi-libc's header leaves out ("WASI has no timezone tables") and that musl's
 * __tz.c, compiled into python.wasm by build.sh, defines. The declarations are
 * musl's and glibc's. */
#include_next <time.h>

#ifndef WASMWSGI_TZ_TIME_H
#define WASMWSGI_TZ_TIME_H

#ifdef __cplusplus
extern "C" {
#endif

void tzset(void);
extern char *tzname[2];
extern long timezone;
extern int daylight;

#ifdef __cplusplus
}
#endif

#endif
