/*
 * _wasmwsgi: the guest side of the wasmwsgi host ABI.
 *
 * This builtin module does two things and nothing else:
 *   1. It declares the functions of the "wasmwsgi" wasm import module (implemented by
 *      the Go host, see hostfuncs/) and exposes each to Python with bytes in and out.
 *      It also decodes and encodes the ABI's pairs encoding, which the shim needs on
 *      every request. All WSGI logic lives in the Python shim (_wasmwsgi_shim.py), so
 *      this file changes only when the ABI itself changes.
 *   2. It exports the reactor entry points the host calls: wasmwsgi_init() starts the
 *      interpreter and loads the app, wasmwsgi_freeze() prepares the heap for the
 *      snapshot, wasmwsgi_handle() serves one request.
 *
 * Every host function returns an int32: >= 0 is a length or a count, < 0 is an
 * error code (see hostfuncs/doc.go for the table).
 */
#include "Python.h"
#include "pycore_code.h"   /* _PyOpcode_Adaptive, ADAPTIVE_BACKOFF_BITS (a builtin module */
#include "pycore_opcode.h" /* _PyOpcode_Deopt, _PyOpcode_Caches   is built with the core) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wasi/api.h>

/* Objects/obmalloc.c: writes the small-object allocator's per-size-class table. */
int _PyObject_DebugMallocStats(FILE *out);

#define WASMWSGI_IMPORT(name) \
    __attribute__((import_module("wasmwsgi"), import_name(#name)))
#define WASMWSGI_EXPORT(name) __attribute__((export_name(#name)))

WASMWSGI_IMPORT(app_info) int32_t ww_app_info(uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(environ_get) int32_t ww_environ_get(uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(input_read) int32_t ww_input_read(uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(start_response) int32_t ww_start_response(
    const uint8_t *status, int32_t status_len, const uint8_t *headers, int32_t headers_len);
WASMWSGI_IMPORT(body_write) int32_t ww_body_write(const uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(log_write) int32_t ww_log_write(int32_t level, const uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(begin_app_code) int32_t ww_begin_app_code(void);
/* Outbound sockets, brokered by the host under the operator's grants (hostfuncs/doc.go,
 * "Network"). Timeouts are in milliseconds, -1 waits until the request's deadline. */
WASMWSGI_IMPORT(net_resolve) int32_t ww_net_resolve(
    const uint8_t *name, int32_t name_len, uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(net_connect) int32_t ww_net_connect(
    const uint8_t *host, int32_t host_len, int32_t port, int32_t timeout_ms);
WASMWSGI_IMPORT(net_send) int32_t ww_net_send(int32_t handle, const uint8_t *buf, int32_t buf_len, int32_t timeout_ms);
WASMWSGI_IMPORT(net_recv) int32_t ww_net_recv(int32_t handle, uint8_t *buf, int32_t buf_len, int32_t timeout_ms);
WASMWSGI_IMPORT(net_poll) int32_t ww_net_poll(uint8_t *list, int32_t list_len, int32_t timeout_ms);
WASMWSGI_IMPORT(net_shutdown) int32_t ww_net_shutdown(int32_t handle, int32_t how);
WASMWSGI_IMPORT(net_close) int32_t ww_net_close(int32_t handle);
WASMWSGI_IMPORT(net_addr) int32_t ww_net_addr(int32_t handle, int32_t which, uint8_t *buf, int32_t buf_len);
WASMWSGI_IMPORT(net_tls) int32_t ww_net_tls(int32_t handle, const uint8_t *server_name, int32_t name_len,
    const uint8_t *alpn, int32_t alpn_len, const uint8_t *cas, int32_t cas_len, int32_t flags);
WASMWSGI_IMPORT(net_error) int32_t ww_net_error(uint8_t *buf, int32_t buf_len);
/* Child processes: a python command line run to its end in a new instance of the app
 * (hostfuncs/doc.go, "Processes"), under the operator's limits.processes. */
WASMWSGI_IMPORT(proc_run) int32_t ww_proc_run(const uint8_t *spec, int32_t spec_len, int32_t timeout_ms);
WASMWSGI_IMPORT(proc_output) int32_t ww_proc_output(int32_t which, uint8_t *buf, int32_t buf_len);

/* The host reports failures as negative codes; they become OSError(code, message). */
static PyObject *
host_error(const char *fn, int32_t code)
{
    PyErr_Format(PyExc_OSError, "wasmwsgi host function %s failed with code %d", fn, (int)code);
    return NULL;
}

/* Calls a "fill a buffer, return the real length" host function, growing the buffer
 * until the value fits. */
static PyObject *
fetch_sized(const char *fn, int32_t (*get)(uint8_t *, int32_t))
{
    Py_ssize_t cap = 4096;
    for (int attempt = 0; attempt < 4; attempt++) {
        PyObject *buf = PyBytes_FromStringAndSize(NULL, cap);
        if (buf == NULL) {
            return NULL;
        }
        int32_t n = get((uint8_t *)PyBytes_AS_STRING(buf), (int32_t)cap);
        if (n < 0) {
            Py_DECREF(buf);
            return host_error(fn, n);
        }
        if (n <= cap) {
            if (_PyBytes_Resize(&buf, n) < 0) {
                return NULL;
            }
            return buf;
        }
        Py_DECREF(buf);
        cap = n;
    }
    PyErr_Format(PyExc_RuntimeError, "wasmwsgi host function %s kept changing its length", fn);
    return NULL;
}

static PyObject *
wasmwsgi_app_info(PyObject *self, PyObject *unused)
{
    return fetch_sized("app_info", ww_app_info);
}

/* Tells the host that the app's own code runs from now on (hostfuncs/doc.go). */
static PyObject *
wasmwsgi_begin_app_code(PyObject *self, PyObject *unused)
{
    int32_t rc = ww_begin_app_code();
    if (rc < 0) {
        return host_error("begin_app_code", rc);
    }
    Py_RETURN_NONE;
}

static PyObject *
wasmwsgi_environ(PyObject *self, PyObject *unused)
{
    return fetch_sized("environ_get", ww_environ_get);
}

static PyObject *
wasmwsgi_read(PyObject *self, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0 || size > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "read size must be in [0, 2**31)");
        return NULL;
    }
    PyObject *buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL) {
        return NULL;
    }
    int32_t n;
    Py_BEGIN_ALLOW_THREADS
    n = ww_input_read((uint8_t *)PyBytes_AS_STRING(buf), (int32_t)size);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        Py_DECREF(buf);
        return host_error("input_read", n);
    }
    if (n > size) {
        Py_DECREF(buf);
        PyErr_SetString(PyExc_RuntimeError, "input_read returned more than asked");
        return NULL;
    }
    if (_PyBytes_Resize(&buf, n) < 0) {
        return NULL;
    }
    return buf;
}

static PyObject *
wasmwsgi_start_response(PyObject *self, PyObject *args)
{
    Py_buffer status, headers;
    if (!PyArg_ParseTuple(args, "y*y*:start_response", &status, &headers)) {
        return NULL;
    }
    int32_t rc = ww_start_response(status.buf, (int32_t)status.len, headers.buf, (int32_t)headers.len);
    PyBuffer_Release(&status);
    PyBuffer_Release(&headers);
    if (rc < 0) {
        return host_error("start_response", rc);
    }
    Py_RETURN_NONE;
}

static PyObject *
wasmwsgi_write(PyObject *self, PyObject *arg)
{
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (data.len > INT32_MAX) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "chunk too large");
        return NULL;
    }
    int32_t rc = ww_body_write(data.buf, (int32_t)data.len);
    PyBuffer_Release(&data);
    if (rc < 0) {
        return host_error("body_write", rc);
    }
    return PyLong_FromLong(rc);
}

static PyObject *
wasmwsgi_log(PyObject *self, PyObject *args)
{
    int level;
    Py_buffer msg;
    if (!PyArg_ParseTuple(args, "iy*:log", &level, &msg)) {
        return NULL;
    }
    int32_t rc = ww_log_write(level, msg.buf, msg.len > INT32_MAX ? INT32_MAX : (int32_t)msg.len);
    PyBuffer_Release(&msg);
    if (rc < 0) {
        return host_error("log_write", rc);
    }
    Py_RETURN_NONE;
}

/* ---- outbound sockets: thin wrappers, the socket module lives in the shim. Each
 * returns the host's result: an int (negative is an error code, whose message
 * net_error() returns) or, for the functions that fill a buffer, bytes. Calls that may
 * wait release the GIL like input_read does. ------------------------------------ */

/* Calls get(handle, which, buf, cap) until the value fits; an int on error. */
static PyObject *
net_sized(int32_t handle, int32_t which, const Py_buffer *arg,
          int32_t (*get)(int32_t, int32_t, const Py_buffer *, uint8_t *, int32_t))
{
    Py_ssize_t cap = 512;
    for (int attempt = 0; attempt < 4; attempt++) {
        PyObject *buf = PyBytes_FromStringAndSize(NULL, cap);
        if (buf == NULL) {
            return NULL;
        }
        int32_t n;
        Py_BEGIN_ALLOW_THREADS
        n = get(handle, which, arg, (uint8_t *)PyBytes_AS_STRING(buf), (int32_t)cap);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            Py_DECREF(buf);
            return PyLong_FromLong(n);
        }
        if (n <= cap) {
            if (_PyBytes_Resize(&buf, n) < 0) {
                return NULL;
            }
            return buf;
        }
        Py_DECREF(buf);
        cap = n;
    }
    PyErr_SetString(PyExc_RuntimeError, "wasmwsgi: a net host function kept changing its length");
    return NULL;
}

static int32_t
get_resolve(int32_t h, int32_t w, const Py_buffer *name, uint8_t *buf, int32_t cap)
{
    return ww_net_resolve(name->buf, (int32_t)name->len, buf, cap);
}

static int32_t
get_addr(int32_t h, int32_t w, const Py_buffer *unused, uint8_t *buf, int32_t cap)
{
    return ww_net_addr(h, w, buf, cap);
}

static int32_t
get_error(int32_t h, int32_t w, const Py_buffer *unused, uint8_t *buf, int32_t cap)
{
    return ww_net_error(buf, cap);
}

/* net_resolve(name: bytes) -> bytes (addresses, one a line) | int */
static PyObject *
wasmwsgi_net_resolve(PyObject *self, PyObject *args)
{
    Py_buffer name;
    if (!PyArg_ParseTuple(args, "y*:net_resolve", &name)) {
        return NULL;
    }
    PyObject *res = net_sized(0, 0, &name, get_resolve);
    PyBuffer_Release(&name);
    return res;
}

/* net_connect(host: bytes, port, timeout_ms) -> handle | error code */
static PyObject *
wasmwsgi_net_connect(PyObject *self, PyObject *args)
{
    Py_buffer host;
    int port, timeout;
    if (!PyArg_ParseTuple(args, "y*ii:net_connect", &host, &port, &timeout)) {
        return NULL;
    }
    int32_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ww_net_connect(host.buf, (int32_t)host.len, port, timeout);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&host);
    return PyLong_FromLong(rc);
}

/* net_send(handle, data, timeout_ms) -> bytes sent | error code */
static PyObject *
wasmwsgi_net_send(PyObject *self, PyObject *args)
{
    int handle, timeout;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*i:net_send", &handle, &data, &timeout)) {
        return NULL;
    }
    int32_t len = data.len > INT32_MAX ? INT32_MAX : (int32_t)data.len;
    int32_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ww_net_send(handle, data.buf, len, timeout);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyLong_FromLong(rc);
}

/* net_recv_into(handle, writable buffer, nbytes, timeout_ms) -> bytes read | error code */
static PyObject *
wasmwsgi_net_recv_into(PyObject *self, PyObject *args)
{
    int handle, timeout;
    Py_ssize_t nbytes;
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "iw*ni:net_recv_into", &handle, &buf, &nbytes, &timeout)) {
        return NULL;
    }
    if (nbytes < 0 || nbytes > buf.len) {
        nbytes = buf.len;
    }
    if (nbytes > INT32_MAX) {
        nbytes = INT32_MAX;
    }
    int32_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ww_net_recv(handle, buf.buf, (int32_t)nbytes, timeout);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return PyLong_FromLong(rc);
}

/* net_poll(list: bytes of (u32 handle, u32 events) pairs, timeout_ms) -> the list with
 * each events field replaced by the ready events | error code */
static PyObject *
wasmwsgi_net_poll(PyObject *self, PyObject *args)
{
    Py_buffer list;
    int timeout;
    if (!PyArg_ParseTuple(args, "y*i:net_poll", &list, &timeout)) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(list.buf, list.len);
    PyBuffer_Release(&list);
    if (out == NULL) {
        return NULL;
    }
    int32_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ww_net_poll((uint8_t *)PyBytes_AS_STRING(out), (int32_t)PyBytes_GET_SIZE(out), timeout);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        Py_DECREF(out);
        return PyLong_FromLong(rc);
    }
    return out;
}

static PyObject *
wasmwsgi_net_shutdown(PyObject *self, PyObject *args)
{
    int handle, how;
    if (!PyArg_ParseTuple(args, "ii:net_shutdown", &handle, &how)) {
        return NULL;
    }
    return PyLong_FromLong(ww_net_shutdown(handle, how));
}

static PyObject *
wasmwsgi_net_close(PyObject *self, PyObject *arg)
{
    int handle = PyLong_AsLong(arg);
    if (handle == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLong(ww_net_close(handle));
}

/* net_addr(handle, which) -> bytes | error code; which: 0 peer, 1 local, 2 TLS details */
static PyObject *
wasmwsgi_net_addr(PyObject *self, PyObject *args)
{
    int handle, which;
    if (!PyArg_ParseTuple(args, "ii:net_addr", &handle, &which)) {
        return NULL;
    }
    return net_sized(handle, which, NULL, get_addr);
}

/* net_tls(handle, server_name: bytes, alpn: bytes, one protocol a line, cas: bytes of PEM
 * certificates the app trusts besides the host's roots, flags: 1 no verification,
 * 2 no name check) -> 0 | error code */
static PyObject *
wasmwsgi_net_tls(PyObject *self, PyObject *args)
{
    int handle, flags = 0;
    Py_buffer name, alpn, cas = {0};
    if (!PyArg_ParseTuple(args, "iy*y*|y*i:net_tls", &handle, &name, &alpn, &cas, &flags)) {
        return NULL;
    }
    int32_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ww_net_tls(handle, name.buf, (int32_t)name.len, alpn.buf, (int32_t)alpn.len, cas.buf, (int32_t)cas.len,
                    flags);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&name);
    PyBuffer_Release(&alpn);
    if (cas.obj != NULL) {
        PyBuffer_Release(&cas);
    }
    return PyLong_FromLong(rc);
}

/* net_error() -> bytes: the message of the last failed net_* call */
static PyObject *
wasmwsgi_net_error(PyObject *self, PyObject *unused)
{
    return net_sized(0, 0, NULL, get_error);
}

/* proc_run(spec, timeout_ms) -> the child's status | error code. The spec is in the
 * pairs encoding; the guest waits, with no other work to do, until the child ends. */
static PyObject *
wasmwsgi_proc_run(PyObject *self, PyObject *args)
{
    Py_buffer spec;
    int timeout;
    if (!PyArg_ParseTuple(args, "y*i:proc_run", &spec, &timeout)) {
        return NULL;
    }
    if (spec.len > INT32_MAX) {
        PyBuffer_Release(&spec);
        PyErr_SetString(PyExc_ValueError, "proc_run: the spec is too large");
        return NULL;
    }
    int32_t rc = ww_proc_run(spec.buf, (int32_t)spec.len, timeout);
    PyBuffer_Release(&spec);
    return PyLong_FromLong(rc);
}

static int32_t
proc_stdout(uint8_t *buf, int32_t len)
{
    return ww_proc_output(1, buf, len);
}

static int32_t
proc_stderr(uint8_t *buf, int32_t len)
{
    return ww_proc_output(2, buf, len);
}

/* proc_output(which) -> bytes: what the last child wrote to stdout (1) or stderr (2) */
static PyObject *
wasmwsgi_proc_output(PyObject *self, PyObject *arg)
{
    long which = PyLong_AsLong(arg);
    if (which == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (which != 1 && which != 2) {
        PyErr_SetString(PyExc_ValueError, "proc_output: which is 1 (stdout) or 2 (stderr)");
        return NULL;
    }
    return fetch_sized("proc_output", which == 1 ? proc_stdout : proc_stderr);
}

/* ---- the pairs encoding (hostfuncs/doc.go), in C because the shim decodes a request's
 * environ on every request: the same loop in Python took ~4 us per pair ---------- */

static int
read_pair_len(const unsigned char *p, Py_ssize_t at, Py_ssize_t n, Py_ssize_t *out)
{
    if (n - at < 4) {
        PyErr_SetString(PyExc_ValueError, "pairs: truncated length field");
        return -1;
    }
    *out = (Py_ssize_t)((uint32_t)p[at] | (uint32_t)p[at + 1] << 8 |
                        (uint32_t)p[at + 2] << 16 | (uint32_t)p[at + 3] << 24);
    if (*out > n - at - 4) {
        PyErr_SetString(PyExc_ValueError, "pairs: a field runs past the end");
        return -1;
    }
    return 0;
}

/* decode_pairs(data) -> dict of str to str, each field decoded as latin-1. */
static PyObject *
wasmwsgi_decode_pairs(PyObject *self, PyObject *arg)
{
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *p = buf.buf;
    Py_ssize_t n = buf.len, i = 0;
    PyObject *out = PyDict_New();
    while (out != NULL && i < n) {
        Py_ssize_t kl, vl;
        PyObject *key = NULL, *value = NULL;
        if (read_pair_len(p, i, n, &kl) == 0) {
            key = PyUnicode_DecodeLatin1((const char *)p + i + 4, kl, NULL);
            i += 4 + kl;
        }
        if (key != NULL && read_pair_len(p, i, n, &vl) == 0) {
            value = PyUnicode_DecodeLatin1((const char *)p + i + 4, vl, NULL);
            i += 4 + vl;
        }
        if (value == NULL || PyDict_SetItem(out, key, value) < 0) {
            Py_CLEAR(out);
        }
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    PyBuffer_Release(&buf);
    return out;
}

/* encode_pairs(list of (str, str)) -> bytes; every str must be latin-1. */
static PyObject *
wasmwsgi_encode_pairs(PyObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "encode_pairs takes a list of (str, str) tuples");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *fields = PyList_New(0); /* latin-1 bytes of every name and value */
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; fields != NULL && i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "encode_pairs takes a list of (str, str) tuples");
            Py_CLEAR(fields);
            break;
        }
        for (int j = 0; j < 2; j++) {
            PyObject *b = PyUnicode_AsLatin1String(PyTuple_GET_ITEM(item, j));
            if (b == NULL || PyList_Append(fields, b) < 0) {
                Py_XDECREF(b);
                Py_CLEAR(fields);
                break;
            }
            total += 4 + PyBytes_GET_SIZE(b);
            Py_DECREF(b);
        }
    }
    Py_DECREF(seq);
    if (fields == NULL) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out != NULL) {
        unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(fields); i++) {
            PyObject *b = PyList_GET_ITEM(fields, i);
            uint32_t len = (uint32_t)PyBytes_GET_SIZE(b);
            w[0] = len & 0xff;
            w[1] = (len >> 8) & 0xff;
            w[2] = (len >> 16) & 0xff;
            w[3] = len >> 24;
            memcpy(w + 4, PyBytes_AS_STRING(b), len);
            w += 4 + len;
        }
    }
    Py_DECREF(fields);
    return out;
}

/* raw_call(index, a, b, c, d) calls host function number `index` with raw integers as
 * pointers and lengths, bypassing every check above. It exists so the host's own
 * bounds checks can be exercised from inside the sandbox; it grants nothing a guest
 * could not do with its own wasm code. */
static PyObject *
wasmwsgi_raw_call(PyObject *self, PyObject *args)
{
    int index;
    unsigned int a = 0, b = 0, c = 0, d = 0;
    if (!PyArg_ParseTuple(args, "i|IIII:raw_call", &index, &a, &b, &c, &d)) {
        return NULL;
    }
    int32_t rc;
    switch (index) {
    case 0: rc = ww_app_info((uint8_t *)(uintptr_t)a, (int32_t)b); break;
    case 1: rc = ww_environ_get((uint8_t *)(uintptr_t)a, (int32_t)b); break;
    case 2: rc = ww_input_read((uint8_t *)(uintptr_t)a, (int32_t)b); break;
    case 3: rc = ww_start_response((uint8_t *)(uintptr_t)a, (int32_t)b, (uint8_t *)(uintptr_t)c, (int32_t)d); break;
    case 4: rc = ww_body_write((uint8_t *)(uintptr_t)a, (int32_t)b); break;
    case 5: rc = ww_log_write((int32_t)a, (uint8_t *)(uintptr_t)b, (int32_t)c); break;
    default:
        PyErr_SetString(PyExc_ValueError, "unknown host function index");
        return NULL;
    }
    return PyLong_FromLong(rc);
}

/* ---- file modes and owners ------------------------------------------------------
 *
 * WASI's filestat carries a file's type but no permission bits and no owner, so every
 * stat answered mode 0 ("----------"): tarfile and zipfile stored that in archives, and
 * os.chmod (which CPython's WASI build makes a no-op) changed nothing anyone could see.
 * posixmodule.c (file-modes.patch) passes each stat through wasmwsgi_stat_fixup:
 *
 * - a file with no permission bits gets Linux's usual ones for its type: 0644 for a
 *   regular file, 0755 for a folder, 0777 for a symbolic link, 0666 for a character
 *   device (as /dev/null is);
 * - a file of the private /tmp (st_dev 0, st_ino > 0: the read-only trees have st_ino
 *   0, the data folder the host's device) whose mode or owner the shim set through
 *   set_file_mode gets those. The table lives in the instance's memory, as /tmp does,
 *   and goes back to the snapshot with it. */

typedef struct {
    unsigned long long ino; /* 0: an empty slot */
    int mode;               /* permission bits, or -1 */
    long long uid, gid;     /* -1: not set */
} file_mode;

static file_mode *file_modes;
static size_t file_modes_cap; /* a power of two, or 0 */
static size_t file_modes_len;

static file_mode *
file_mode_slot(unsigned long long ino)
{
    size_t mask = file_modes_cap - 1;
    size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ULL) & mask;
    while (file_modes[i].ino != 0 && file_modes[i].ino != ino) {
        i = (i + 1) & mask;
    }
    return &file_modes[i];
}

static int
file_modes_grow(void)
{
    size_t cap = file_modes_cap ? file_modes_cap * 2 : 64;
    file_mode *old = file_modes;
    size_t old_cap = file_modes_cap;
    file_modes = PyMem_RawCalloc(cap, sizeof(file_mode));
    if (file_modes == NULL) {
        file_modes = old;
        return -1;
    }
    file_modes_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].ino != 0) {
            *file_mode_slot(old[i].ino) = old[i];
        }
    }
    PyMem_RawFree(old);
    return 0;
}

void
wasmwsgi_stat_fixup(struct stat *st)
{
    if ((st->st_mode & 07777) == 0) {
        switch (st->st_mode & S_IFMT) {
        case S_IFDIR: st->st_mode |= 0755; break;
        case S_IFLNK: st->st_mode |= 0777; break;
        case S_IFCHR: st->st_mode |= 0666; break;
        default: st->st_mode |= 0644; break;
        }
    }
    if (st->st_dev != 0 || st->st_ino == 0 || file_modes_len == 0) {
        return;
    }
    file_mode *m = file_mode_slot(st->st_ino);
    if (m->ino == 0) {
        return;
    }
    if (m->mode >= 0) {
        st->st_mode = (st->st_mode & ~07777) | (m->mode & 07777);
    }
    if (m->uid >= 0) {
        st->st_uid = (uid_t)m->uid;
    }
    if (m->gid >= 0) {
        st->st_gid = (gid_t)m->gid;
    }
}

/* set_file_mode(ino, mode, uid, gid): -1 leaves that one as it is. */
static PyObject *
wasmwsgi_set_file_mode(PyObject *self, PyObject *args)
{
    unsigned long long ino;
    int mode;
    long long uid, gid;
    if (!PyArg_ParseTuple(args, "KiLL:set_file_mode", &ino, &mode, &uid, &gid)) {
        return NULL;
    }
    if (ino == 0) {
        PyErr_SetString(PyExc_ValueError, "set_file_mode: inode 0 has no mode of its own");
        return NULL;
    }
    if (file_modes_cap == 0 || (file_modes_len + 1) * 4 > file_modes_cap * 3) {
        if (file_modes_grow() < 0) {
            return PyErr_NoMemory();
        }
    }
    file_mode *m = file_mode_slot(ino);
    if (m->ino == 0) {
        m->ino = ino;
        m->mode = -1;
        m->uid = m->gid = -1;
        file_modes_len++;
    }
    if (mode >= 0) {
        m->mode = mode & 07777;
    }
    if (uid >= 0) {
        m->uid = uid;
    }
    if (gid >= 0) {
        m->gid = gid;
    }
    Py_RETURN_NONE;
}

static PyMethodDef wasmwsgi_methods[] = {
    {"set_file_mode", wasmwsgi_set_file_mode, METH_VARARGS,
     "Set the mode bits and owner stat reports for a /tmp inode (-1 keeps one)."},
    {"app_info", wasmwsgi_app_info, METH_NOARGS, "Encoded app settings from the host."},
    {"begin_app_code", wasmwsgi_begin_app_code, METH_NOARGS, "Tell the host that the app's own code runs from now on."},
    {"environ", wasmwsgi_environ, METH_NOARGS, "Encoded CGI variables of the current request."},
    {"read", wasmwsgi_read, METH_O, "Read up to n bytes of the request body."},
    {"start_response", wasmwsgi_start_response, METH_VARARGS, "Send status and encoded headers."},
    {"write", wasmwsgi_write, METH_O, "Send one chunk of the response body."},
    {"log", wasmwsgi_log, METH_VARARGS, "Write a message to the host log."},
    {"decode_pairs", wasmwsgi_decode_pairs, METH_O, "Decode the pairs encoding into a dict of str."},
    {"encode_pairs", wasmwsgi_encode_pairs, METH_O, "Encode (str, str) tuples as pairs, latin-1."},
    {"raw_call", wasmwsgi_raw_call, METH_VARARGS, "Call a host function with raw integers."},
    {"net_resolve", wasmwsgi_net_resolve, METH_VARARGS, "Resolve a host name through the host."},
    {"net_connect", wasmwsgi_net_connect, METH_VARARGS, "Open a TCP connection through the host."},
    {"net_send", wasmwsgi_net_send, METH_VARARGS, "Send bytes on a connection."},
    {"net_recv_into", wasmwsgi_net_recv_into, METH_VARARGS, "Receive bytes from a connection."},
    {"net_poll", wasmwsgi_net_poll, METH_VARARGS, "Wait until connections are ready."},
    {"net_shutdown", wasmwsgi_net_shutdown, METH_VARARGS, "Shut down one or both directions."},
    {"net_close", wasmwsgi_net_close, METH_O, "Close a connection."},
    {"net_addr", wasmwsgi_net_addr, METH_VARARGS, "A connection's peer or local address."},
    {"net_tls", wasmwsgi_net_tls, METH_VARARGS, "Make a connection TLS (the host does the handshake)."},
    {"net_error", wasmwsgi_net_error, METH_NOARGS, "The message of the last failed net call."},
    {"proc_run", wasmwsgi_proc_run, METH_VARARGS, "Run a python command line in a child instance."},
    {"proc_output", wasmwsgi_proc_output, METH_O, "What the last child wrote to stdout (1) or stderr (2)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wasmwsgi_module = {
    PyModuleDef_HEAD_INIT, "_wasmwsgi", "The wasmwsgi host ABI.", -1, wasmwsgi_methods,
};

PyMODINIT_FUNC
PyInit__wasmwsgi(void)
{
    return PyModule_Create(&wasmwsgi_module);
}

/* ---- reactor entry points ------------------------------------------------------ */

static PyObject *shim_handle;

/* Calls a shim function and maps its result to an exit code: the int it returned,
 * or `failed` when it raised (the traceback goes to stderr, i.e. the host log). */
static int32_t
call_shim(PyObject *fn, int32_t failed)
{
    PyObject *res = PyObject_CallNoArgs(fn);
    if (res == NULL) {
        PyErr_Print();
        return failed;
    }
    long code = PyLong_AsLong(res);
    Py_DECREF(res);
    if (code == -1 && PyErr_Occurred()) {
        PyErr_Print();
        return failed;
    }
    return (int32_t)code;
}

/* Starts the interpreter as the sandbox has it, and clears config: python under
 * /usr/local (sys.executable /usr/local/bin/python3, which the guest's root tree
 * holds), the stdlib at /usr/local/lib/python3.11 its whole search path, and no
 * signal handlers (no signal reaches the sandbox). */
static PyStatus
initialize(PyConfig *config)
{
    config->install_signal_handlers = 0;
    config->module_search_paths_set = 1;
    PyStatus status = PyConfig_SetBytesString(config, &config->program_name, "python");
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(config, &config->executable, "/usr/local/bin/python3");
    }
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(config, &config->home, "/usr/local");
    }
    if (!PyStatus_Exception(status)) {
        status = PyWideStringList_Append(&config->module_search_paths, L"/usr/local/lib/python3.11");
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(config);
    }
    PyConfig_Clear(config);
    return status;
}

/* Starts the interpreter with the stdlib at /usr/local/lib/python3.11 and no site
 * import, then runs _wasmwsgi_shim.init(), which imports the app. Returns 0 when the
 * app is ready, 1 when it failed to load, 3 when the interpreter failed to start. */
WASMWSGI_EXPORT(wasmwsgi_init) int32_t
wasmwsgi_init(void)
{
    PyStatus status;
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        return 3;
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    status = initialize(&config);
    if (PyStatus_Exception(status)) {
        return 3;
    }

    PyObject *shim = PyImport_ImportModule("_wasmwsgi_shim");
    if (shim == NULL) {
        PyErr_Print();
        return 1;
    }
    PyObject *init = PyObject_GetAttrString(shim, "init");
    shim_handle = PyObject_GetAttrString(shim, "handle");
    Py_DECREF(shim);
    if (init == NULL || shim_handle == NULL) {
        PyErr_Print();
        Py_XDECREF(init);
        return 1;
    }
    int32_t rc = call_shim(init, 1);
    Py_DECREF(init);
    return rc;
}

/* Changes to app_info's "cwd", when it has one: a child process's working folder, in
 * which python's start-up makes the script's path absolute. */
static void
chdir_to_app_cwd(void)
{
    int32_t n = ww_app_info(NULL, 0);
    if (n <= 0) {
        return;
    }
    uint8_t *info = malloc((size_t)n + 1);
    if (info == NULL || ww_app_info(info, n) != n) {
        free(info);
        return;
    }
    uint32_t at = 0, len[2];
    while (at + 4 <= (uint32_t)n) {
        uint32_t field[2]; /* offsets of the name and the value */
        for (int i = 0; i < 2; i++) {
            if (at + 4 > (uint32_t)n) {
                free(info);
                return;
            }
            len[i] = info[at] | info[at + 1] << 8 | info[at + 2] << 16 | (uint32_t)info[at + 3] << 24;
            field[i] = at + 4;
            if (len[i] > (uint32_t)n - field[i]) {
                free(info);
                return;
            }
            at = field[i] + len[i];
        }
        if (len[0] == 3 && memcmp(info + field[0], "cwd", 3) == 0) {
            memmove(info, info + field[1], len[1]);
            info[len[1]] = 0;
            if (chdir((char *)info) != 0) {
                fprintf(stderr, "python: can't change to %s\n", (char *)info);
            }
            break;
        }
    }
    free(info);
}

/* Runs a command line as python's own main does, for a child process (hostfuncs/doc.go,
 * "Processes"): the arguments are WASI's (argv[0] the program's name), and python's
 * options and PYTHON* variables are read as python reads them, unless -E or -I. The
 * shim's init() then sets up the sandbox's modules without importing the app
 * (app_info's "main"), and Py_RunMain runs -c, -m, the script or the prompt, and ends
 * the interpreter. Returns python's exit status (0-255), -1 when WASI's arguments
 * cannot be read, -2 when the shim failed; an interpreter that cannot start prints
 * python's "Fatal Python error: ..." and exits 1, as python does. */
WASMWSGI_EXPORT(wasmwsgi_main) int32_t
wasmwsgi_main(void)
{
    __wasi_size_t argc, size;
    if (__wasi_args_sizes_get(&argc, &size) != 0 || argc < 1) {
        return -1;
    }
    char **argv = calloc(argc + 1, sizeof(char *));
    char *buf = malloc(size);
    if (argv == NULL || buf == NULL || __wasi_args_get((uint8_t **)argv, (uint8_t *)buf) != 0) {
        return -1;
    }
    chdir_to_app_cwd();
    PyPreConfig preconfig;
    PyPreConfig_InitPythonConfig(&preconfig);
    PyStatus status = Py_PreInitializeFromBytesArgs(&preconfig, (Py_ssize_t)argc, argv);
    if (PyStatus_Exception(status)) {
        /* As python's main: a usage error's exit status, or "Fatal Python error: ..."
         * on stderr and exit status 1 (both end the instance). */
        Py_ExitStatusException(status);
    }
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.pathconfig_warnings = 0;
    status = PyConfig_SetBytesArgv(&config, (Py_ssize_t)argc, argv);
    if (!PyStatus_Exception(status)) {
        status = initialize(&config); /* the shim adds PYTHONPATH's folders */
    } else {
        PyConfig_Clear(&config);
    }
    if (PyStatus_IsExit(status)) {
        /* --version, --help, a usage error: printed by the C library, flushed here as
         * exit() would */
        fflush(stdout);
        fflush(stderr);
        return status.exitcode;
    }
    if (PyStatus_Exception(status)) {
        Py_ExitStatusException(status);
    }
    PyObject *shim = PyImport_ImportModule("_wasmwsgi_shim");
    PyObject *init = shim == NULL ? NULL : PyObject_GetAttrString(shim, "init");
    Py_XDECREF(shim);
    if (init == NULL) {
        PyErr_Print();
        return -2;
    }
    int32_t rc = call_shim(init, -2);
    Py_DECREF(init);
    if (rc != 0) {
        return -2;
    }
    return Py_RunMain();
}

/* ---- the snapshot's heap --------------------------------------------------------- */

/* Queues a referent that is not immortal yet. */
static int
immortal_visit(PyObject *op, void *todo)
{
    if (op == NULL || _Py_IsImmortal(op)) {
        return 0;
    }
    return PyList_Append((PyObject *)todo, op);
}

/* The objects a code object holds: code is not a GC type, so tp_traverse never
 * reaches its constants and names. */
static int
immortal_visit_code(PyCodeObject *co, PyObject *todo)
{
    PyObject *fields[] = {
        co->co_consts, co->co_names, co->co_exceptiontable, co->co_localsplusnames,
        co->co_localspluskinds, co->co_filename, co->co_name, co->co_qualname,
        co->co_linetable, co->_co_code,
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (immortal_visit(fields[i], todo) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Settles a code object's adaptive instructions that failed to specialize during the
 * warm-up: such an instruction counts down a backoff counter on every execution, which
 * writes its code object's page in every request. Each becomes its generic form, which
 * has no counter (the form a miss falls back to). Instructions still waiting for their
 * first execution (counter below one backoff step) keep their chance to specialize. */
static void
settle_adaptive(PyCodeObject *co)
{
    _Py_CODEUNIT *code = _PyCode_CODE(co);
    Py_ssize_t n = Py_SIZE(co);
    for (Py_ssize_t i = 0; i < n; i++) {
        int op = _Py_OPCODE(code[i]);
        int base = _PyOpcode_Deopt[op];
        int caches = _PyOpcode_Caches[base];
        if (caches > 0 && op != base && _PyOpcode_Adaptive[base] == op && i + 1 < n &&
            code[i + 1] >= (1 << ADAPTIVE_BACKOFF_BITS)) {
            _Py_SET_OPCODE(code[i], base);
        }
        i += caches;
    }
}

/* Makes every object reachable from the collector's lists immortal (see
 * _Py_IMMORTAL_MIN in the patched Include/object.h) and returns how many it changed,
 * or -1 with an exception set. Objects it does not reach stay ordinary. */
static Py_ssize_t
immortalize_heap(PyObject *gc)
{
    PyObject *todo = PyObject_CallMethod(gc, "get_objects", NULL);
    if (todo == NULL) {
        return -1;
    }
    Py_ssize_t changed = 0;
    /* The list grows while it is walked: referents are appended at its end. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(todo); i++) {
        PyObject *op = PyList_GET_ITEM(todo, i);
        if (_Py_IsImmortal(op)) {
            continue;
        }
        Py_SET_REFCNT(op, _Py_IMMORTAL_REFCNT);
        changed++;
        int err = immortal_visit((PyObject *)Py_TYPE(op), todo);
        if (err == 0 && PyObject_IS_GC(op)) {
            err = Py_TYPE(op)->tp_traverse(op, immortal_visit, todo);
        }
        else if (err == 0 && PyCode_Check(op)) {
            settle_adaptive((PyCodeObject *)op);
            err = immortal_visit_code((PyCodeObject *)op, todo);
        }
        if (err < 0) {
            Py_DECREF(todo);
            return -1;
        }
    }
    Py_DECREF(todo);
    return changed;
}

/* Fills the free blocks of every partly used pool of the small-object allocator, and
 * never frees them: after the collection above, those blocks are scattered over
 * hundreds of pools (pages), and a request that allocated into them wrote one page per
 * pool it reached. With them taken, a request's small objects come from fresh pools,
 * a few pages per size class. The counts come from the allocator's own statistics
 * table (class, size, pools, blocks in use, blocks available). */
static void
fill_partial_pools(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL) {
        return;
    }
    int pymalloc = _PyObject_DebugMallocStats(out);
    fclose(out);
    for (char *line = pymalloc ? text : NULL; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        int cls, size, pools, used, avail;
        if (sscanf(line, "%d %d %d %d %d", &cls, &size, &pools, &used, &avail) == 5 && size > 0) {
            for (int i = 0; i < avail; i++) {
                if (PyObject_Malloc((size_t)size) == NULL) {
                    break;
                }
            }
        }
        line = next != NULL ? next + 1 : NULL;
    }
    free(text);
}

/* Prepares the interpreter's heap for the snapshot, after the app's import and
 * warm-up: collects garbage, makes every live object immortal so that reading it no
 * longer writes its reference count (which would copy its page in every request),
 * moves the objects out of the collector's generations (gc.freeze) so that no
 * collection walks them, and fills the allocator's partly used pools. Returns the
 * number of objects made immortal, or -1. */
WASMWSGI_EXPORT(wasmwsgi_freeze) int32_t
wasmwsgi_freeze(void)
{
    PyObject *gc = PyImport_ImportModule("gc");
    if (gc == NULL) {
        PyErr_Print();
        return -1;
    }
    Py_ssize_t changed = -1;
    PyObject *res = PyObject_CallMethod(gc, "collect", NULL);
    if (res != NULL) {
        Py_DECREF(res);
        changed = immortalize_heap(gc);
    }
    if (changed >= 0) {
        res = PyObject_CallMethod(gc, "freeze", NULL);
        Py_XDECREF(res);
        if (res == NULL) {
            changed = -1;
        }
    }
    if (changed >= 0) {
        fill_partial_pools();
    }
    Py_DECREF(gc);
    if (changed < 0) {
        PyErr_Print();
        return -1;
    }
    return (int32_t)changed;
}

/* Serves the current request; see _wasmwsgi_shim.handle for the result codes. */
WASMWSGI_EXPORT(wasmwsgi_handle) int32_t
wasmwsgi_handle(void)
{
    if (shim_handle == NULL) {
        return 3;
    }
    return call_shim(shim_handle, 2);
}
