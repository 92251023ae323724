// A minimal Node.js (>= 20, node:wasi) host for python.wasm: it provides the "wasmwsgi"
// import module described in hostfuncs/doc.go, starts the reactor the way runtime/
// does (_initialize, wasmwsgi_init, wasmwsgi_handle), serves one GET request and
// prints the response body on stdout.
//
//   node node_host.mjs --wasm python.wasm --stdlib DIR --app DIR [--path /] [--query q]
//
// DIR for --stdlib is stdlib.zip extracted; it and the app folder are mounted at the
// guest paths runtime/ uses (/usr/local/lib/python3.11 and /app), and a fresh
// temporary folder at /tmp. The guest environment is empty, as for an app without an
// [env] table. Exit status: 0 for a 2xx answer, 1 otherwise.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { WASI } from "node:wasi";

const ERR_NO_REQUEST = -1;
const ERR_BOUNDS = -2;
const ERR_INVALID = -3;
const ERR_STATE = -4;
const ERR_DENIED = -7;

function parseArgs(argv) {
  const opts = { path: "/", query: "" };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith("--") || value === undefined) {
      usage(`unexpected argument ${JSON.stringify(key)}`);
    }
    opts[key.slice(2)] = value;
    i++;
  }
  for (const need of ["wasm", "stdlib", "app"]) {
    if (!opts[need]) usage(`--${need} is required`);
  }
  return opts;
}

function usage(why) {
  process.stderr.write(
    `node_host: ${why}\n` +
      "usage: node node_host.mjs --wasm python.wasm --stdlib DIR --app DIR [--path /] [--query q]\n",
  );
  process.exit(2);
}

// The pairs encoding: [u32 len(name)][name][u32 len(value)][value] ..., little-endian,
// strings as latin-1.
function encodePairs(pairs) {
  const parts = [];
  for (const [k, v] of pairs) {
    for (const s of [k, v]) {
      const b = Buffer.from(s, "latin1");
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

function decodePairs(buf) {
  const out = [];
  let i = 0;
  while (i + 4 <= buf.length) {
    const kl = buf.readUInt32LE(i);
    const k = buf.subarray(i + 4, i + 4 + kl).toString("latin1");
    i += 4 + kl;
    const vl = buf.readUInt32LE(i);
    const v = buf.subarray(i + 4, i + 4 + vl).toString("latin1");
    i += 4 + vl;
    out.push([k, v]);
  }
  return out;
}

const opts = parseArgs(process.argv.slice(2));
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "micro-node-"));

const appInfo = [
  ["name", "micro"],
  ["entrypoint", "app"],
  ["app_dir", "/app"],
];
if (fs.existsSync(path.join(opts.app, "site-packages"))) {
  appInfo.push(["site_packages", "/app/site-packages"]);
}
const environ = [
  ["REQUEST_METHOD", "GET"],
  ["SCRIPT_NAME", ""],
  ["PATH_INFO", opts.path],
  ["QUERY_STRING", opts.query],
  ["SERVER_NAME", "localhost"],
  ["SERVER_PORT", "80"],
  ["SERVER_PROTOCOL", "HTTP/1.1"],
  ["REMOTE_ADDR", "127.0.0.1"],
  ["REQUEST_URI", opts.path + (opts.query ? "?" + opts.query : "")],
  ["wsgi.url_scheme", "http"],
];

let memory = null;
let inRequest = false;
let status = null;
const body = [];

// view returns guest memory [ptr, ptr+len) or null when the range does not fit.
function view(ptr, len) {
  const mem = new Uint8Array(memory.buffer);
  if (len < 0 || ptr < 0 || ptr + len > mem.length) return null;
  return mem.subarray(ptr, ptr + len);
}

// fill writes value into the guest's buffer when it fits and returns its real length.
function fill(value, ptr, len) {
  const dst = view(ptr, len);
  if (dst === null) return ERR_BOUNDS;
  if (value.length <= len) dst.set(value);
  return value.length;
}

const wasmwsgi = {
  app_info: (ptr, len) => fill(encodePairs(appInfo), ptr, len),
  environ_get: (ptr, len) => (inRequest ? fill(encodePairs(environ), ptr, len) : ERR_NO_REQUEST),
  input_read: (ptr, len) => {
    if (!inRequest) return ERR_NO_REQUEST;
    return view(ptr, len) === null ? ERR_BOUNDS : 0; // GET: the body is empty
  },
  start_response: (sp, sl, hp, hl) => {
    if (!inRequest) return ERR_NO_REQUEST;
    const s = view(sp, sl);
    const h = view(hp, hl);
    if (s === null || h === null) return ERR_BOUNDS;
    if (status !== null) return ERR_STATE;
    const text = Buffer.from(s).toString("latin1");
    if (!/^\d{3} /.test(text)) return ERR_INVALID;
    status = text;
    decodePairs(Buffer.from(h));
    return 0;
  },
  body_write: (ptr, len) => {
    if (!inRequest) return ERR_NO_REQUEST;
    const b = view(ptr, len);
    if (b === null) return ERR_BOUNDS;
    if (status === null) return ERR_STATE;
    body.push(Buffer.from(b));
    return len;
  },
  log_write: (level, ptr, len) => {
    const b = view(ptr, len);
    if (b === null) return ERR_BOUNDS;
    process.stderr.write(`guest log [${level}]: ${Buffer.from(b).toString("utf8")}\n`);
    return 0;
  },
  begin_app_code: () => 0,
};
// Outbound connections and child processes: granted to no one here, as in a server
// whose operator granted no destination (hostfuncs/doc.go, "Network").
for (const name of ["net_connect", "net_send", "net_recv", "net_poll", "net_shutdown", "net_close",
  "net_tls", "net_resolve", "net_addr", "net_error", "proc_run", "proc_output"]) {
  wasmwsgi[name] = () => ERR_DENIED;
}

const wasi = new WASI({
  version: "preview1",
  args: ["python"],
  env: {},
  preopens: {
    "/usr/local/lib/python3.11": opts.stdlib,
    "/app": opts.app,
    "/tmp": scratch,
  },
  returnOnExit: true,
});

try {
  const module = await WebAssembly.compile(fs.readFileSync(opts.wasm));
  const instance = await WebAssembly.instantiate(module, {
    wasi_snapshot_preview1: wasi.wasiImport,
    wasmwsgi,
  });
  memory = instance.exports.memory;
  wasi.initialize(instance); // runs _initialize

  const init = instance.exports.wasmwsgi_init();
  if (init !== 0) {
    process.stderr.write(`node_host: wasmwsgi_init returned ${init} (1: the app failed to load, 3: the interpreter failed)\n`);
    process.exitCode = 1;
  } else {
    inRequest = true;
    const rc = instance.exports.wasmwsgi_handle();
    inRequest = false;
    if (rc !== 0) {
      process.stderr.write(`node_host: wasmwsgi_handle returned ${rc}\n`);
    }
    process.stdout.write(Buffer.concat(body));
    process.exitCode = rc === 0 && status !== null && status.startsWith("2") ? 0 : 1;
    if (status !== null && !status.startsWith("2")) {
      process.stderr.write(`node_host: the app answered ${status}\n`);
    }
  }
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
