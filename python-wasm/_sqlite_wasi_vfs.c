/* The SQLite VFS of python.wasm: files through wasi-libc, locks inside the instance.
 *
 * SQLite's own unix VFS does not build for wasm32-wasi in 3.40 (it needs fcntl byte-range
 * locks, fchown, geteuid and mmap, none of which WASI preview 1 has), so build.sh compiles
 * the amalgamation with SQLITE_OS_OTHER=1 and this file provides the operating-system
 * layer. It uses only calls that wasi-libc turns into WASI file operations: open, pread,
 * pwrite, ftruncate, fsync, fstat, stat, access, unlink, getcwd, getentropy,
 * clock_gettime and nanosleep.
 *
 * Locks. WASI has no file locks, and the interpreter has no threads, so two processes
 * never meet here: every instance is a process of its own. This VFS keeps SQLite's lock
 * levels (SHARED, RESERVED, PENDING, EXCLUSIVE) in a table inside the instance, keyed
 * by the file's device and inode, so that two connections of one instance to the same
 * database still exclude each other the way SQLite expects. Instances of the same app
 * are kept apart by the host instead: wasmwsgi lets one instance at a time hold a file
 * of the app's data folder open for writing (runtime/datadir.go).
 *
 * No shared memory (xShmMap) and no memory-mapped I/O: the io methods are version 1,
 * so journal_mode=WAL is refused and SQLite keeps its rollback journal. Temporary files
 * (large sorts, temp_store=file) go to $TMPDIR, else /tmp, and are removed on close.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sqlite3.h"

#define WASI_MAX_PATHNAME 1024

/* One node per open inode: the lock state shared by the connections of this instance. */
typedef struct WasiInode WasiInode;
struct WasiInode {
  dev_t dev;
  ino_t ino;
  int nRef;    /* files open on this inode */
  int nShared; /* files holding SHARED or stronger */
  int eLock;   /* strongest lock any file holds on it */
  WasiInode *pNext;
};
static WasiInode *inodeList = 0;

typedef struct WasiFile {
  sqlite3_file base;
  int fd;
  int eLock;         /* this file's lock level */
  WasiInode *pInode;
  char *zDelete;     /* removed on close (SQLITE_OPEN_DELETEONCLOSE), else 0 */
} WasiFile;

static WasiInode *inodeAcquire(int fd) {
  struct stat st;
  WasiInode *p;
  if (fstat(fd, &st) != 0) return 0;
  for (p = inodeList; p; p = p->pNext) {
    if (p->dev == st.st_dev && p->ino == st.st_ino) {
      p->nRef++;
      return p;
    }
  }
  p = sqlite3_malloc(sizeof(*p));
  if (!p) return 0;
  memset(p, 0, sizeof(*p));
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  p->nRef = 1;
  p->pNext = inodeList;
  inodeList = p;
  return p;
}

static void inodeRelease(WasiInode *pInode) {
  WasiInode **pp;
  if (!pInode || --pInode->nRef > 0) return;
  for (pp = &inodeList; *pp; pp = &(*pp)->pNext) {
    if (*pp == pInode) {
      *pp = pInode->pNext;
      break;
    }
  }
  sqlite3_free(pInode);
}

/* ---- io methods ------------------------------------------------------------------ */

static int wasiUnlock(sqlite3_file *f, int eLock);

static int wasiClose(sqlite3_file *f) {
  WasiFile *p = (WasiFile *)f;
  wasiUnlock(f, SQLITE_LOCK_NONE);
  inodeRelease(p->pInode);
  close(p->fd);
  if (p->zDelete) {
    unlink(p->zDelete);
    sqlite3_free(p->zDelete);
  }
  p->pInode = 0;
  p->zDelete = 0;
  p->fd = -1;
  return SQLITE_OK;
}

static int wasiRead(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off) {
  WasiFile *p = (WasiFile *)f;
  char *z = buf;
  while (amt > 0) {
    ssize_t n = pread(p->fd, z, (size_t)amt, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return SQLITE_IOERR_READ;
    }
    if (n == 0) {
      /* SQLite requires the rest of the buffer zeroed on a short read. */
      memset(z, 0, (size_t)amt);
      return SQLITE_IOERR_SHORT_READ;
    }
    z += n;
    amt -= (int)n;
    off += n;
  }
  return SQLITE_OK;
}

static int wasiWrite(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off) {
  WasiFile *p = (WasiFile *)f;
  const char *z = buf;
  while (amt > 0) {
    ssize_t n = pwrite(p->fd, z, (size_t)amt, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return (n < 0 && errno == ENOSPC) ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    z += n;
    amt -= (int)n;
    off += n;
  }
  return SQLITE_OK;
}

static int wasiTruncate(sqlite3_file *f, sqlite3_int64 size) {
  return ftruncate(((WasiFile *)f)->fd, (off_t)size) == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

static int wasiSync(sqlite3_file *f, int flags) {
  int fd = ((WasiFile *)f)->fd;
  int rc = (flags & SQLITE_SYNC_DATAONLY) ? fdatasync(fd) : fsync(fd);
  return rc == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int wasiFileSize(sqlite3_file *f, sqlite3_int64 *pSize) {
  struct stat st;
  if (fstat(((WasiFile *)f)->fd, &st) != 0) return SQLITE_IOERR_FSTAT;
  *pSize = st.st_size;
  return SQLITE_OK;
}

/* The in-instance lock protocol: the same transitions as SQLite's unix VFS makes
 * between the connections of one process. */
static int wasiLock(sqlite3_file *f, int eLock) {
  WasiFile *p = (WasiFile *)f;
  WasiInode *n = p->pInode;
  if (p->eLock >= eLock) return SQLITE_OK;
  /* Another file holds the strongest lock: nobody else may go past SHARED, and nobody
   * may even take SHARED once a writer is PENDING or EXCLUSIVE. */
  if (p->eLock != n->eLock && (n->eLock >= SQLITE_LOCK_PENDING || eLock > SQLITE_LOCK_SHARED)) {
    return SQLITE_BUSY;
  }
  if (eLock == SQLITE_LOCK_SHARED) {
    if (n->eLock < SQLITE_LOCK_SHARED) n->eLock = SQLITE_LOCK_SHARED;
    n->nShared++;
    p->eLock = SQLITE_LOCK_SHARED;
    return SQLITE_OK;
  }
  if (eLock == SQLITE_LOCK_EXCLUSIVE && n->nShared > 1) {
    /* Readers remain: hold PENDING so that no new reader starts, and let SQLite retry. */
    p->eLock = n->eLock = SQLITE_LOCK_PENDING;
    return SQLITE_BUSY;
  }
  p->eLock = n->eLock = eLock;
  return SQLITE_OK;
}

static int wasiUnlock(sqlite3_file *f, int eLock) {
  WasiFile *p = (WasiFile *)f;
  WasiInode *n = p->pInode;
  if (!n || p->eLock <= eLock) return SQLITE_OK;
  if (p->eLock > SQLITE_LOCK_SHARED) n->eLock = SQLITE_LOCK_SHARED;
  if (eLock == SQLITE_LOCK_NONE) {
    if (--n->nShared == 0) n->eLock = SQLITE_LOCK_NONE;
  }
  p->eLock = eLock;
  return SQLITE_OK;
}

static int wasiCheckReservedLock(sqlite3_file *f, int *pResOut) {
  *pResOut = ((WasiFile *)f)->pInode->eLock > SQLITE_LOCK_SHARED;
  return SQLITE_OK;
}

static int wasiFileControl(sqlite3_file *f, int op, void *pArg) {
  (void)f;
  (void)op;
  (void)pArg;
  return SQLITE_NOTFOUND;
}

static int wasiSectorSize(sqlite3_file *f) {
  (void)f;
  return 4096;
}

static int wasiDeviceCharacteristics(sqlite3_file *f) {
  (void)f;
  return 0; /* promise nothing about atomic or safe writes */
}

static const sqlite3_io_methods wasiIo = {
    1, /* iVersion: no xShm*, no xFetch/xUnfetch */
    wasiClose,
    wasiRead,
    wasiWrite,
    wasiTruncate,
    wasiSync,
    wasiFileSize,
    wasiLock,
    wasiUnlock,
    wasiCheckReservedLock,
    wasiFileControl,
    wasiSectorSize,
    wasiDeviceCharacteristics,
};

/* ---- the VFS --------------------------------------------------------------------- */

static int wasiRandomness(sqlite3_vfs *vfs, int nByte, char *zOut);

/* tempName returns a fresh name in $TMPDIR (else /tmp), allocated with sqlite3_malloc. */
static char *tempName(sqlite3_vfs *vfs) {
  const char *dir = getenv("TMPDIR");
  unsigned long long r;
  if (!dir || !*dir) dir = "/tmp";
  wasiRandomness(vfs, sizeof(r), (char *)&r);
  return sqlite3_mprintf("%s/sqlite-temp-%016llx", dir, r);
}

static int wasiOpen(sqlite3_vfs *vfs, const char *zName, sqlite3_file *f, int flags, int *pOutFlags) {
  WasiFile *p = (WasiFile *)f;
  char *zTemp = 0;
  int oflags;
  memset(p, 0, sizeof(*p));
  p->fd = -1;
  if (!zName) {
    zTemp = tempName(vfs);
    if (!zTemp) return SQLITE_IOERR_NOMEM;
    zName = zTemp;
    flags |= SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE | SQLITE_OPEN_DELETEONCLOSE;
  }
  oflags = (flags & SQLITE_OPEN_READWRITE) ? O_RDWR : O_RDONLY;
  if (flags & SQLITE_OPEN_CREATE) oflags |= O_CREAT;
  if (flags & SQLITE_OPEN_EXCLUSIVE) oflags |= O_EXCL;
  p->fd = open(zName, oflags, 0644);
  if (p->fd < 0 && errno != EISDIR && (flags & SQLITE_OPEN_READWRITE)) {
    /* A file that cannot be written (the app's read-only folder) opens read-only, as
     * with the unix VFS; SQLite then refuses writes with SQLITE_READONLY. */
    p->fd = open(zName, O_RDONLY);
    flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
  }
  if (p->fd < 0) {
    sqlite3_free(zTemp);
    return SQLITE_CANTOPEN;
  }
  p->pInode = inodeAcquire(p->fd);
  if (!p->pInode) {
    close(p->fd);
    if (zTemp) unlink(zTemp);
    sqlite3_free(zTemp);
    p->fd = -1;
    return SQLITE_IOERR_NOMEM;
  }
  if (flags & SQLITE_OPEN_DELETEONCLOSE) {
    p->zDelete = zTemp ? zTemp : sqlite3_mprintf("%s", zName);
  } else {
    sqlite3_free(zTemp);
  }
  if (pOutFlags) *pOutFlags = flags;
  p->base.pMethods = &wasiIo;
  return SQLITE_OK;
}

static int wasiDelete(sqlite3_vfs *vfs, const char *zPath, int dirSync) {
  (void)vfs;
  if (unlink(zPath) != 0) {
    return errno == ENOENT ? SQLITE_IOERR_DELETE_NOENT : SQLITE_IOERR_DELETE;
  }
  if (dirSync) {
    /* Make the removal durable: sync the folder that held the file (best effort). */
    char zDir[WASI_MAX_PATHNAME + 1];
    char *slash;
    int fd;
    sqlite3_snprintf(sizeof(zDir), zDir, "%s", zPath);
    slash = strrchr(zDir, '/');
    if (slash && slash != zDir) {
      *slash = 0;
      fd = open(zDir, O_RDONLY | O_DIRECTORY);
      if (fd >= 0) {
        fsync(fd);
        close(fd);
      }
    }
  }
  return SQLITE_OK;
}

static int wasiAccess(sqlite3_vfs *vfs, const char *zPath, int flags, int *pResOut) {
  struct stat st;
  (void)vfs;
  if (flags == SQLITE_ACCESS_EXISTS) {
    /* An empty regular file counts as absent, like the unix VFS (a journal left empty). */
    *pResOut = stat(zPath, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > 0);
  } else {
    *pResOut = access(zPath, flags == SQLITE_ACCESS_READWRITE ? (R_OK | W_OK) : R_OK) == 0;
  }
  return SQLITE_OK;
}

static int wasiFullPathname(sqlite3_vfs *vfs, const char *zPath, int nOut, char *zOut) {
  char zCwd[WASI_MAX_PATHNAME + 1];
  (void)vfs;
  if (zPath[0] == '/') {
    if ((int)strlen(zPath) >= nOut) return SQLITE_CANTOPEN;
    sqlite3_snprintf(nOut, zOut, "%s", zPath);
    return SQLITE_OK;
  }
  if (!getcwd(zCwd, sizeof(zCwd))) return SQLITE_CANTOPEN;
  if ((int)(strlen(zCwd) + 1 + strlen(zPath)) >= nOut) return SQLITE_CANTOPEN;
  sqlite3_snprintf(nOut, zOut, "%s%s%s", zCwd, zCwd[strlen(zCwd) - 1] == '/' ? "" : "/", zPath);
  return SQLITE_OK;
}

static int wasiRandomness(sqlite3_vfs *vfs, int nByte, char *zOut) {
  int done = 0;
  (void)vfs;
  memset(zOut, 0, (size_t)nByte);
  while (done < nByte) {
    int n = nByte - done > 256 ? 256 : nByte - done; /* getentropy's limit */
    if (getentropy(zOut + done, (size_t)n) != 0) break;
    done += n;
  }
  return nByte;
}

static int wasiSleep(sqlite3_vfs *vfs, int microseconds) {
  struct timespec ts;
  (void)vfs;
  ts.tv_sec = microseconds / 1000000;
  ts.tv_nsec = (long)(microseconds % 1000000) * 1000;
  nanosleep(&ts, 0); /* a relative sleep: the host ends it at the request's deadline */
  return microseconds;
}

/* Milliseconds since the Julian epoch, as SQLite wants it. */
static int wasiCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *pNow) {
  static const sqlite3_int64 unixEpoch = 24405875 * (sqlite3_int64)8640000;
  struct timespec ts;
  (void)vfs;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return SQLITE_ERROR;
  *pNow = unixEpoch + (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  return SQLITE_OK;
}

static int wasiCurrentTime(sqlite3_vfs *vfs, double *pNow) {
  sqlite3_int64 ms = 0;
  int rc = wasiCurrentTimeInt64(vfs, &ms);
  *pNow = ms / 86400000.0;
  return rc;
}

static int wasiGetLastError(sqlite3_vfs *vfs, int nBuf, char *zBuf) {
  (void)vfs;
  if (nBuf > 0) zBuf[0] = 0;
  return errno;
}

static sqlite3_vfs wasiVfs = {
    2,                 /* iVersion: up to xCurrentTimeInt64 */
    sizeof(WasiFile),  /* szOsFile */
    WASI_MAX_PATHNAME, /* mxPathname */
    0,                 /* pNext */
    "wasi",            /* zName */
    0,                 /* pAppData */
    wasiOpen,
    wasiDelete,
    wasiAccess,
    wasiFullPathname,
    0, 0, 0, 0,        /* xDlOpen, xDlError, xDlSym, xDlClose: no loadable extensions */
    wasiRandomness,
    wasiSleep,
    wasiCurrentTime,
    wasiGetLastError,
    wasiCurrentTimeInt64,
};

/* With SQLITE_OS_OTHER, sqlite3_initialize calls these to install the default VFS. */
int sqlite3_os_init(void) { return sqlite3_vfs_register(&wasiVfs, 1); }

int sqlite3_os_end(void) { return SQLITE_OK; }
