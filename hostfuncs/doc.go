// Package hostfuncs is the "wasmwsgi" host module: the whole ABI between the Go host and
// the CPython guest, documented here and nowhere else.
//
// # Shape of a request
//
// python.wasm is a WASI reactor. The host instantiates it (running _initialize), then
// calls three exports, each returning an i32:
//
//	wasmwsgi_init()   -> 0 app loaded | 1 app failed to load | 3 interpreter failed
//	wasmwsgi_freeze() -> objects made immortal (>= 0) | -1 failed (traceback logged)
//	wasmwsgi_handle() -> 0 request done | 1 or 2 request failed (traceback logged) | 3 not initialised
//	wasmwsgi_main()   -> python's exit status | -1 no arguments | -2 shim failed
//	                     (a child process, instead of wasmwsgi_init: see "Processes")
//
// wasmwsgi_freeze is called once, after wasmwsgi_init and the warm-up requests and
// right before the host keeps the memory as the app's snapshot. It collects garbage,
// then makes every live object immortal (python-wasm/immortal.patch: Py_INCREF and
// Py_DECREF skip an object whose count is >= 2^29) and gc.freeze()s it, turns adaptive
// instructions that failed to specialize into their generic forms, and fills the
// small-object allocator's partly used pools, so that requests served from the
// snapshot write only the memory they really change, and allocate from fresh pools.
//
// # Running a command
//
// For `wasmwsgi run` the host instantiates python.wasm in the same way, with the app's
// files, data folder, environment, outbound grants and limits, the process's stdin,
// stdout and stderr, and app_info carrying "argv". wasmwsgi_init then does not import
// the app: the shim puts the app's folders on sys.path as for a request and runs argv
// as python would (python's own options, then -c CODE, -m MODULE, a script relative
// to the app folder, or an interactive prompt), and ends the instance with proc_exit(status), where status is
// python's exit status masked to 0-255 (0, SystemExit's code, 1 after an uncaught
// exception). A wasmwsgi_init that returns instead failed before the command could
// run (1 with a traceback on stderr, 3 when the interpreter did not start). Neither
// wasmwsgi_freeze nor wasmwsgi_handle is called.
//
// Inside those calls the guest (the builtin C module _wasmwsgi and the Python shim
// _wasmwsgi_shim) calls back into the functions below. A failed request whose headers
// were not sent becomes a 500; one whose headers were sent aborts the connection so the
// client never mistakes a truncated body for a complete one.
//
// # Conventions
//
// Every pointer is an offset into the guest's exported memory and every length is an
// i32 byte count. The host checks each (ptr, len) range against the memory size before
// touching it and never reads or writes outside it. A range that does not fit, or a
// negative length, returns ErrBounds; nothing traps, nothing panics.
//
// Functions that return a value of unknown size take a buffer and its capacity: the
// buffer must lie in memory (else ErrBounds), and the host writes the value only if it
// fits and always returns its real length, so the guest
// retries with a larger buffer when the result exceeds its capacity. The host never
// allocates inside guest memory.
//
//	guest memory: [ ... | buf_ptr -> [ value (n bytes) | unused ] buf_ptr+buf_len | ... ]
//	result: n. If n > buf_len nothing was written.
//
// Results >= 0 are lengths or counts; results < 0 are the error codes below. A call
// made after the request's deadline (or after its client went away) does not return:
// the guest's export call ends with a wazero exit error instead.
//
// # Pairs encoding
//
// Lists of (name, value) byte strings (app settings, the CGI environ, response headers)
// are encoded as repeated little-endian length-prefixed fields:
//
//	[u32 len(name)][name bytes][u32 len(value)][value bytes] ... repeated
//
// Bytes are latin-1 on the Python side, which is how PEP 3333 maps HTTP bytes to str.
//
// # Functions
//
//	app_info(buf_ptr, buf_len i32) -> i32
//	    Writes the app's settings as pairs (AppInfo builds them), in this order:
//	      name           the app's name; only for `wasmwsgi run`, so that an
//	                     import's memory never names its app
//	      entrypoint     "module", "module:callable" (a dotted path),
//	                     "module:factory(literal args)" or "file.wsgi[:callable]",
//	                     relative to app_dir; empty for a Django project
//	      django_settings  only for a Django project folder: the settings module
//	                     its manage.py names; the guest loads WSGI_APPLICATION
//	      app_dir        guest path of the app folder, put first on sys.path
//	      site_packages  guest path put second on sys.path; only when the app has
//	                     a site-packages folder
//	      validate       "1": the app runs wrapped in wsgiref.validate; absent
//	                     otherwise
//	      isolation      "request" or "instance"; wsgi.run_once is False only
//	                     for "instance"
//	      argv           only for `wasmwsgi run`: python's arguments after the
//	                     interpreter's name, each followed by a NUL byte, as UTF-8
//	                     ("-c\x00print(1)\x00", "manage.py\x00migrate\x00"; empty
//	                     for an interactive prompt). See "Running a command".
//	      main           "1" for a child process (see "Processes"): wasmwsgi_main
//	                     runs WASI's command line, and the shim's init sets up
//	                     the sandbox without importing the app
//	      cwd            only for a child process: the folder it starts in
//	                     instead of app_dir
//	    Available in both wasmwsgi_init and wasmwsgi_handle.
//
//	environ_get(buf_ptr, buf_len i32) -> i32
//	    Writes the CGI variables of the current request as pairs (REQUEST_METHOD,
//	    SCRIPT_NAME, PATH_INFO, QUERY_STRING, SERVER_*, REMOTE_*, CONTENT_*, HTTP_*,
//	    REQUEST_URI, wsgi.url_scheme, wasmwsgi.request_id). ErrNoRequest outside
//	    wasmwsgi_handle. A warm-up request (one made before the snapshot is taken)
//	    also carries wasmwsgi.warmup = "1": the guest then does not reseed `random`,
//	    and reads no entropy of its own (see begin_app_code). The automatic warm-up's
//	    first and last requests carry wasmwsgi.auto_warmup = "first" or "last": with
//	    "last", a guest whose app's own module globals differ from what they were at
//	    "first" answers 500 with the header Wasmwsgi-State-Changed naming the first
//	    global that did, without calling the app (runtime.AppSpec.AutoWarmup). The
//	    guest removes both before the app sees the environ, and no client request can
//	    carry either.
//
//	input_read(buf_ptr, buf_len i32) -> i32
//	    Reads up to buf_len bytes of the request body into buf; returns the count, 0 at
//	    the end of the body. Never returns bytes past CONTENT_LENGTH. Blocks until data
//	    arrives, the body ends, or the request's deadline passes (ErrIO).
//
//	start_response(status_ptr, status_len, headers_ptr, headers_len i32) -> i32
//	    Sends the status line and headers. status is "NNN Reason" (three digits, a space,
//	    a reason of printable latin-1); headers are pairs. The host rejects (ErrInvalid)
//	    a malformed status, a header name that is not an RFC 9110 token, a value with
//	    CR, LF or another control character, and hop-by-hop headers (Connection,
//	    Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade). Callable once per
//	    request (ErrState after that). The guest calls it only when the first body bytes
//	    are ready or the body is known to be empty, which is what PEP 3333 requires.
//
//	body_write(buf_ptr, buf_len i32) -> i32
//	    Sends one chunk of the body and flushes it to the client. Returns how many bytes
//	    were accepted: fewer than buf_len when the app's own Content-Length has been
//	    reached (the guest stops iterating then). ErrState before start_response, ErrIO
//	    when the client has gone.
//
//	log_write(level, buf_ptr, buf_len i32) -> i32
//	    Writes one message (UTF-8) to the server log, tagged with the app and the
//	    request. level: 0 debug, 1 info, 2 warning, 3 error. Returns 0.
//
//	begin_app_code() -> 0
//	    Called by the shim in wasmwsgi_init once, right before the first code of the
//	    app's own runs (its site-packages' .pth files, then its import), and never
//	    again. It tells the host where an import's entropy stops being the shim's: in
//	    the import of an app whose snapshot is shared with its copies, entropy read
//	    before it (the hash secret, the seed of `random`) is the copies' shared
//	    entropy, and any read after it is fresh and makes the snapshot the app's own
//	    (docs/design.md, "One import for identical copies"). The first call counts;
//	    the app's code, which runs after it, can call it again to no effect. Outside
//	    such an import it does nothing.
//
// # Network
//
// Outbound TCP connections (and TLS over them) are opened by the host for the guest,
// under the operator's grants (package egress: deny by default; names resolved by the
// host, once, and the connection made to the very address checked; addresses that are
// not globally routable only through a grant naming them literally). The guest names
// a connection by a handle > 0. Timeouts are milliseconds: -1 waits until the
// request's deadline, 0 does not wait. Every wait also ends when the request ends
// (deadline or client gone); the guest then gets ErrIO, and its next host call exits.
// Only the calling request's goroutine waits: other requests run on. In request
// isolation every connection is closed when the request ends; in instance isolation
// connections live across the instance's requests and close when it is dropped.
// Per-request limits (open at once, opened, bytes in and out) give ErrLimit; in
// instance isolation "open at once" counts the connections earlier requests left open.
//
//	net_resolve(name_ptr, name_len, buf_ptr, buf_len i32) -> i32
//	    getaddrinfo, answered by the host: writes the addresses of name, each followed
//	    by "\n". An address is answered as it is; a name only when some grant names it
//	    (ErrDenied otherwise, and nothing is looked up). The addresses answered are
//	    remembered for the request, so connecting to one is checked under the name.
//
//	net_connect(host_ptr, host_len, port, timeout_ms i32) -> handle
//	    Opens a connection to host (a name or an address) and port; waits at most the
//	    smaller of timeout_ms and outbound.connect_timeout. ErrDenied at once when the
//	    destination is not granted (counted and logged), ErrRefused, ErrTimeout,
//	    ErrNotFound, ErrLimit.
//
//	net_send(handle, buf_ptr, buf_len, timeout_ms i32) -> i32
//	    Sends bytes; returns how many were sent (at least 1 unless buf_len is 0).
//	    Writes are never non-blocking: timeout_ms 0 waits like -1.
//
//	net_recv(handle, buf_ptr, buf_len, timeout_ms i32) -> i32
//	    Receives what has arrived, up to buf_len bytes, waiting for data at most
//	    timeout_ms: 0 is the end of the stream, ErrAgain when timeout_ms is 0 and
//	    nothing has arrived, ErrTimeout, ErrReset.
//
//	net_poll(list_ptr, list_len, timeout_ms i32) -> i32
//	    list is list_len/8 entries of [u32 handle][u32 events] (1 readable, 2
//	    writable). Waits until one is ready, then replaces each events field with the
//	    events ready (4: no such handle) and returns how many entries are ready.
//
//	    guest memory: [ list_ptr -> [h0][ev0][h1][ev1] ... ] ev fields rewritten
//
//	net_shutdown(handle, how i32) -> 0       how: 0 reading, 1 writing, 2 both
//	net_close(handle i32) -> 0
//	net_addr(handle, which, buf_ptr, buf_len i32) -> i32
//	    which 0: the peer's "address port"; 1: the local one; after net_tls, 2: the
//	    ALPN protocol, the TLS version and the cipher suite, one a line; 3: the
//	    server certificate's subject, issuer, alternative names, validity and serial,
//	    one "key\tvalue" a line; 4: the certificate's DER.
//
//	net_tls(handle, name_ptr, name_len, alpn_ptr, alpn_len, cas_ptr, cas_len, flags i32) -> 0
//	    Makes the connection TLS, before its first read: the host does the handshake
//	    with Go's crypto/tls, sends name as SNI and verifies the server's certificate
//	    for it against the system's roots, outbound.ca_file and the PEM certificates in
//	    cas (the app's own, possibly empty), offering the ALPN protocols in alpn (one a
//	    line). flags 1 (TLSNoVerify) accepts any certificate, the app's CERT_NONE;
//	    flags 2 (TLSNoNameCheck) verifies the chain but not the name. Either weakens
//	    only the app's own connection; the destination was checked at net_connect.
//	    Later net_send and net_recv carry plaintext.
//
//	net_error(buf_ptr, buf_len i32) -> i32
//	    Writes the message of the request's last failed net_* call, which names the
//	    destination and the reason (for a denial: "... is not granted to this app").
//
// # Processes
//
// A request (or a `wasmwsgi run` command) may start child processes when the operator
// grants the app limits.processes (0 by default, which grants none): python command
// lines, each run in a new instance of the app's interpreter as "Running a command"
// describes, with the app's files and grants, the parent's /tmp (the same files) and
// the memory limit. The parent waits in the call while the child runs to its end, so
// the two never run at once; the child's time is the parent's (the request's time
// limit ends both). limits.processes counts every child a request starts, its
// children's own included. An import and its warm-up start none.
//
// The child's instance gets the command line as WASI's arguments and the spec's
// environment as WASI's, and the host calls wasmwsgi_main: python's own start-up reads
// the options and PYTHON* variables (unless -E or -I), the shim's init sets the sandbox
// up (app_info "main", with "cwd"), and Py_RunMain runs the command and ends the
// interpreter, whose status is the child's.
//
//	proc_run(spec_ptr, spec_len, timeout_ms i32) -> i32
//	    Runs the command line spec describes (pairs): "argv" the whole command line,
//	    the program first, each argument followed by a NUL byte (the shim sends only
//	    python's); "env" the child's environment, each NAME=value followed by a NUL
//	    byte (absent: the app's [env]); "cwd" its working folder; "stdin" all it
//	    reads on its standard input; "stderr" = "stdout" merges its stderr into its
//	    stdout. Returns its exit status (0-255), or 256 plus a signal's number when
//	    it did not exit: 256+9 when it reached the memory limit, 256+6 when its
//	    instance trapped (the reason is appended to its stderr). ErrDenied when the
//	    app is granted no processes or an import calls it, ErrLimit when the request
//	    started limits.processes already, ErrInvalid for a malformed spec, ErrTimeout
//	    when timeout_ms (-1: none of its own) passed and the child was stopped.
//	    Each of stdout and stderr keeps at most 16 MiB; a write past that fails.
//
//	proc_output(which, buf_ptr, buf_len i32) -> i32
//	    Writes what the last child of proc_run wrote to stdout (which 1) or stderr
//	    (which 2), also after ErrTimeout; empty before any child.
//
// # Error codes
//
//	-1 ErrNoRequest  the function needs a request and none is in flight
//	-2 ErrBounds     a (ptr, len) range lies outside guest memory, or len < 0
//	-3 ErrInvalid    malformed argument (encoding, status, header)
//	-4 ErrState      call out of order (second start_response, body before headers)
//	-5 ErrIO         the client went away or the deadline passed
//	-6 ErrLimit      an argument exceeds a fixed limit (e.g. too many headers), or an
//	                 outbound limit was reached
//	-7 ErrDenied     the destination (or name) is not granted to the app
//	-8 ErrTimeout    the call's own timeout passed
//	-9 ErrAgain      nothing to read yet (timeout 0)
//	-10 ErrRefused   the destination refused the connection
//	-11 ErrNotFound  the name does not resolve
//	-12 ErrReset     the connection was reset or closed
//	-13 ErrBadHandle no open connection has that handle
package hostfuncs
