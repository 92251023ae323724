package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestGunicornCorpus replays gunicorn's raw HTTP request corpus (63 valid, 74 invalid
// requests; see docs/corpus.md) against the real server over plain TCP. A valid request
// must reach the echo app in testdata/corpus-apps with the environ the corpus describes;
// an invalid one must get a 4xx (or a closed connection) and never reach the app.
// Where the server knowingly answers otherwise (net/http's parser, wasmwsgi's limits,
// gunicorn settings the corpus switches on), the case is listed in corpusDeviations with
// the outcome the harness observes and why; any other difference fails the test, and
// so does a listed deviation that no longer happens.
//
// The corpus lives outside the repository, at ../shared/corpora/gunicorn-requests from
// the repository root; without it (or without python3, which reads the expectation
// files) the test is skipped.
func TestGunicornCorpus(t *testing.T) {
	corpus := filepath.Join("..", "..", "..", "shared", "corpora", "gunicorn-requests")
	if st, err := os.Stat(corpus); err != nil || !st.IsDir() {
		t.Skipf("gunicorn request corpus not found at %s (the repository root's ../shared/corpora/gunicorn-requests): %v", corpus, err)
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH: it is needed to read the corpus's .py expectation files")
	}
	expect := corpusLoadExpectations(t, python, corpus)
	if len(expect.Valid) == 0 || len(expect.Invalid) == 0 {
		t.Fatalf("corpus at %s: %d valid and %d invalid expectations", corpus, len(expect.Valid), len(expect.Invalid))
	}
	apps, err := filepath.Abs("testdata/corpus-apps")
	if err != nil {
		t.Fatal(err)
	}
	grants, err := filepath.Abs("testdata/corpus.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := testkit.Start(t, apps, "--config", grants)
	h := &corpusHarness{t: t, s: s, addr: strings.TrimPrefix(s.Base, "http://")}

	seen := map[string]bool{}
	var validMatched, validWithHost, validDeviated, invalidRejected, invalidWithHost, invalidDeviated int
	var failures []string
	check := func(id, got string, cfg map[string]any) (matched bool) {
		seen[id] = true
		dev, listed := corpusDeviations[id]
		if listed && dev.kind == corpusConfig && len(cfg) == 0 {
			failures = append(failures, fmt.Sprintf("%s: listed as needing a gunicorn setting, but its .py file sets none", id))
		}
		switch {
		case got == "" && listed:
			failures = append(failures, fmt.Sprintf("%s: now matches the corpus; remove it from corpusDeviations", id))
		case got == "":
			return true
		case !listed:
			failures = append(failures, fmt.Sprintf("%s: %s", id, got))
		case got != dev.got:
			failures = append(failures, fmt.Sprintf("%s: %s\n\twant the documented deviation: %s", id, got, dev.got))
		}
		return false
	}

	for _, id := range corpusSortedKeys(expect.Valid) {
		exp := expect.Valid[id]
		data := corpusReadHTTP(t, filepath.Join(corpus, "valid", id+".http"))
		key := "valid/" + id
		hostless := corpusLacksHost(exp.Requests)
		if _, listed := corpusNeedsHost[key]; listed != hostless {
			failures = append(failures, fmt.Sprintf("%s: corpusNeedsHost is out of date (listed %v, HTTP/1.1 without Host %v)", key, listed, hostless))
		}
		var got string
		if hostless {
			got = h.checkHostless(exp.Requests, data)
		} else {
			got = h.checkValid(exp.Requests, data)
		}
		if check(key, got, exp.Cfg) {
			if hostless {
				validWithHost++
			} else {
				validMatched++
			}
		} else if corpusDeviations[key].got == got {
			validDeviated++
		}
	}
	for _, id := range corpusSortedKeys(expect.Invalid) {
		exp := expect.Invalid[id]
		data := corpusReadHTTP(t, filepath.Join(corpus, "invalid", id+".http"))
		key := "invalid/" + id
		got, hostAdded := h.checkInvalid(data)
		if hostAdded {
			invalidWithHost++
		}
		if check(key, got, exp.Cfg) {
			invalidRejected++
		} else if corpusDeviations[key].got == got {
			invalidDeviated++
		}
	}
	for id := range corpusDeviations {
		if !seen[id] {
			failures = append(failures, fmt.Sprintf("%s: listed in corpusDeviations but not in the corpus", id))
		}
	}
	for id := range corpusNeedsHost {
		if !seen[id] {
			failures = append(failures, fmt.Sprintf("%s: listed in corpusNeedsHost but not in the corpus", id))
		}
	}

	t.Logf("valid: %d/%d matched (%d as sent, %d once the Host header RFC 9112 requires is added), %d documented deviations",
		validMatched+validWithHost, len(expect.Valid), validMatched, validWithHost, validDeviated)
	t.Logf("invalid: %d/%d rejected with no call into the app, %d documented deviations (%d sent again with a Host header, past net/http's Host check)",
		invalidRejected, len(expect.Invalid), invalidDeviated, invalidWithHost)
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
}

// corpusDeviation is a corpus case where the server knowingly differs from gunicorn.
type corpusDeviation struct {
	got    string // the harness's summary of what happens, exactly
	kind   string // corpusNetHTTP, corpusPolicy, corpusConfig or corpusQuirk
	reason string
}

// Why a case deviates.
const (
	// corpusNetHTTP: Go's HTTP/1 server parses or frames it differently, and wasmwsgi
	// keeps net/http's behaviour.
	corpusNetHTTP = "net/http"
	// corpusPolicy: a choice of wasmwsgi's own (limits, header mapping, streamed bodies).
	corpusPolicy = "wasmwsgi"
	// corpusConfig: gunicorn itself gives the expected answer only with the non-default
	// setting the .py file names.
	corpusConfig = "cfg"
	// corpusQuirk: the corpus file itself is inconsistent.
	corpusQuirk = "corpus"
)

// corpusDeviations lists every case where the server's answer differs from the corpus's
// expectation, with the outcome exactly as the harness summarises it and why.
// docs/corpus.md has the same table. A "with Host:" outcome is that of the request sent
// again with a Host header (see corpusNeedsHost and checkInvalid).
var corpusDeviations = map[string]corpusDeviation{
	// Valid requests.
	"valid/009": {"with Host: status 501", corpusNetHTTP,
		`Transfer-Encoding "identity" (no longer a registered coding): net/http decodes only "chunked" and answers 501 (RFC 9112 §6.1)`},
	"valid/025": {"with Host: status 501", corpusNetHTTP,
		`Transfer-Encoding "gzip" then "chunked" in two fields: net/http accepts exactly one "chunked" and answers 501`},
	"valid/025_line": {"with Host: status 501", corpusNetHTTP,
		`Transfer-Encoding "gzip,chunked": net/http does not decode gzip and answers 501`},
	"valid/028": {"with Host: status 400", corpusConfig,
		"strip_header_spaces: whitespace before the colon must get a 400 (RFC 9112 §5.1), as in gunicorn's default (invalid/020)"},
	"valid/029": {"with Host: status 501", corpusNetHTTP,
		`Transfer-Encoding "identity" then "chunked": 501, as for valid/009`},
	"valid/030": {"with Host: status 501", corpusNetHTTP,
		`Transfer-Encoding "identity" then "chunked": 501, as for valid/009`},
	"valid/031compat": {`with Host: REQUEST_METHOD "-blargh"`, corpusConfig,
		"casefold_http_method: gunicorn upper-cases the method; wasmwsgi passes it as sent (methods are case-sensitive, RFC 9110 §9.1)"},
	"valid/099": {"status 400; 1 app calls for 0 echoes", corpusQuirk,
		"the file holds 8599 of the 17914 body bytes its Content-Length declares: at the end of the data the app's read fails and the server answers 400"},
	"valid/pp_01": {"status 400", corpusConfig,
		"proxy_protocol: wasmwsgi does not speak the PROXY protocol, so the PROXY line is a malformed request line"},
	"valid/pp_02": {"with Host: #1 status 400; #2 no response (closed)", corpusConfig,
		"proxy_protocol, as for valid/pp_01"},
	"valid/pp_04": {"status 400", corpusConfig,
		"proxy_protocol (version 2, binary), as for valid/pp_01"},
	"valid/pp_05": {"status 400", corpusConfig,
		"proxy_protocol (version 2, binary), as for valid/pp_01"},
	"valid/rfc9112_smuggle_gzip_chunked_01": {"status 501", corpusNetHTTP,
		`Transfer-Encoding "gzip, chunked": net/http decodes only "chunked" and answers 501`},
	"valid/rfc9112_smuggle_te_identity_chunked_01": {"status 501", corpusNetHTTP,
		`Transfer-Encoding "identity, chunked": 501, as for valid/009`},
	"valid/rfc9112_target_asterisk_options_01": {"status 200, not from the app", corpusNetHTTP,
		"net/http answers OPTIONS * itself (200, empty body) and calls no handler"},

	// Invalid requests.
	"invalid/003c": {"with Host: status 200; app called 1 times", corpusNetHTTP,
		`method "-bl": any token is a method (RFC 9110 §9.1); gunicorn refuses lowercase and short ones unless permit_unconventional_http_method (valid/031compat2)`},
	"invalid/006": {"status 200; app called 1 times", corpusPolicy,
		"request line of 4112 bytes: over gunicorn's default limit_request_line (4094), under wasmwsgi's 8 KiB target limit"},
	"invalid/007": {"status 200; app called 1 times", corpusPolicy,
		"header line of 8203 bytes: over gunicorn's default limit_request_field_size (8190); wasmwsgi bounds the header block (1 MiB, 100 lines), not each line"},
	"invalid/008": {"status 200; app called 1 times", corpusPolicy,
		"header lines of 8189 and 4108 bytes: over gunicorn's per-line limit (as for invalid/007)"},
	"invalid/010": {"with Host: status 200; app called 1 times", corpusConfig,
		"limit_request_field_size = 10"},
	"invalid/011": {"status 200; app called 1 times", corpusConfig,
		"limit_request_fields = 2"},
	"invalid/012": {"status 200; app called 1 times", corpusConfig,
		"limit_request_field_size = 98"},
	"invalid/013": {"with Host: status 200; app called 1 times", corpusConfig,
		"limit_request_field_size = 14 (net/http unfolds the obs-fold, as for invalid/obs_fold_01)"},
	"invalid/016": {"with Host: status 200; app called 1 times", corpusNetHTTP,
		`net/http parses the target "s://]ufd/:" as absolute-form: the app gets PATH_INFO "/:" and HTTP_HOST "]ufd"`},
	"invalid/017": {"with Host: status 200; app called 1 times", corpusPolicy,
		"header line of 8189 bytes: over gunicorn's per-line limit (as for invalid/007)"},
	"invalid/019": {"with Host: status 200; app called 1 times", corpusConfig,
		"forwarded_allow_ips: wasmwsgi never reads X-Forwarded-*, so conflicting ones are plain headers"},
	"invalid/040": {"status 200; app called 1 times", corpusConfig,
		`header_map = "refuse": wasmwsgi drops names with "_", like gunicorn's default (valid/040)`},
	"invalid/041": {"status 200; app called 1 times", corpusPolicy,
		`two Content-Type fields are joined with ",", as every repeated header is; gunicorn refuses them`},
	"invalid/chunked_01": {"with Host: status 400; app called 1 times", corpusPolicy,
		"bad chunk size: the body is streamed, so the error surfaces in the app's wsgi.input read and the server answers 400"},
	"invalid/chunked_02": {"with Host: status 400; app called 1 times", corpusPolicy,
		"net/http trims the tab before chunked and lets Transfer-Encoding override Content-Length; the unterminated body then fails while streamed (400)"},
	"invalid/chunked_03": {"status 501", corpusNetHTTP,
		`Transfer-Encoding with "chunked" twice: refused with 501 rather than 400; no app call`},
	"invalid/chunked_04": {"status 501", corpusNetHTTP,
		"four Transfer-Encoding fields: refused with 501 rather than 400; no app call"},
	"invalid/chunked_05": {"status 200; app called 1 times", corpusNetHTTP,
		"net/http ignores Transfer-Encoding on HTTP/1.0 (Go issue 12785): the app gets an empty body, then the connection closes"},
	"invalid/chunked_06": {"status 501", corpusNetHTTP,
		`Transfer-Encoding "chunked" then "gzip": refused with 501 rather than 400; no app call`},
	"invalid/chunked_07": {"with Host: status 200; app called 1 times", corpusConfig,
		`header_map = "refuse": Transfer_Encoding is dropped, as gunicorn's default does`},
	"invalid/chunked_08": {"status 501", corpusNetHTTP,
		`Transfer-Encoding "chunked" then "identity": refused with 501 rather than 400; no app call`},
	"invalid/chunked_09": {"with Host: status 200; app called 1 times", corpusNetHTTP,
		`net/http accepts whitespace after a chunk size ("0 ")`},
	"invalid/chunked_10": {"with Host: status 400; app called 1 times", corpusPolicy,
		"bad chunk size, found while streamed (as for invalid/chunked_01)"},
	"invalid/chunked_11": {"with Host: status 400; app called 1 times", corpusPolicy,
		"bare LF in a chunk size line, found while streamed (as for invalid/chunked_01)"},
	"invalid/chunked_12": {"with Host: status 400; app called 1 times", corpusPolicy,
		"chunk extension without a size, found while streamed (as for invalid/chunked_01)"},
	"invalid/chunked_13": {"with Host: status 400; app called 1 times", corpusPolicy,
		"empty chunk size, found while streamed (as for invalid/chunked_01)"},
	"invalid/chunked_14": {"with Host: status 400; app called 1 times", corpusPolicy,
		"bare CR in a chunk extension, found while streamed (as for invalid/chunked_01)"},
	"invalid/limit_header_default_01": {"status 200; app called 1 times", corpusPolicy,
		"header line of 8190 bytes: over gunicorn's per-line limit (as for invalid/007)"},
	"invalid/obs_fold_01": {"status 200; app called 1 times", corpusNetHTTP,
		"net/http replaces an obs-fold with a space, the other answer RFC 9112 §5.2 allows; gunicorn refuses it by default"},
	"invalid/rfc9110_trailer_forbidden_cl_01": {"status 200; app called 1 times", corpusPolicy,
		"trailer fields are read and dropped: PEP 3333 has no place for them, so a forbidden one never reaches the app"},
	"invalid/rfc9110_trailer_forbidden_host_01": {"status 200; app called 1 times", corpusPolicy,
		"a Host trailer is dropped like any trailer (as for invalid/rfc9110_trailer_forbidden_cl_01)"},
	"invalid/rfc9110_trailer_forbidden_te_01": {"status 200; app called 1 times", corpusPolicy,
		"a Transfer-Encoding trailer is dropped like any trailer (as for invalid/rfc9110_trailer_forbidden_cl_01)"},
	"invalid/rfc9112_chunked_missing_final_crlf_01": {"status 400; app called 1 times", corpusPolicy,
		"body ends before the last CRLF: found while streamed (as for invalid/chunked_01)"},
	"invalid/rfc9112_chunked_size_minus_sign_01": {"status 400; app called 1 times", corpusPolicy,
		"chunk size -5: found while streamed (as for invalid/chunked_01)"},
	"invalid/rfc9112_chunked_size_plus_sign_01": {"status 400; app called 1 times", corpusPolicy,
		"chunk size +5: found while streamed (as for invalid/chunked_01)"},
	"invalid/rfc9112_smuggle_cl_te_chunked_01": {"status 200; app called 1 times", corpusNetHTTP,
		"Content-Length and Transfer-Encoding: chunked: net/http drops Content-Length and decodes chunked (RFC 9112 §6.3 allows it) but keeps the connection open"},
	"invalid/rfc9112_target_authority_non_connect_01": {"status 200; app called 1 times", corpusNetHTTP,
		`net/http parses "example.com:443" as an absolute URI of scheme "example.com": the app gets PATH_INFO ""`},
	"invalid/version_02": {"status 505", corpusNetHTTP,
		"HTTP/2.0 in an HTTP/1 request line: 505 HTTP Version Not Supported rather than 400; no app call"},
}

// corpusNeedsHost lists the valid requests with an HTTP/1.1 request that carries no
// Host header. net/http answers that request 400, as RFC 9112 §3.2 requires. The
// harness checks that it never reaches the app, then sends the file again with
// "Host: corpus.test" after each such request line and compares everything else.
var corpusNeedsHost = map[string]struct{}{
	"valid/004": {}, "valid/005": {}, "valid/006": {}, "valid/007": {}, "valid/009": {},
	"valid/010": {}, "valid/011": {}, "valid/012": {}, "valid/013": {}, "valid/014": {},
	"valid/018": {}, "valid/021": {}, "valid/022": {}, "valid/023": {}, "valid/025": {},
	"valid/025_line": {}, "valid/028": {}, "valid/029": {}, "valid/030": {}, "valid/031": {},
	"valid/031compat": {}, "valid/031compat2": {}, "valid/100": {}, "valid/compat_obs_fold_huge": {},
	"valid/pp_02": {},
}

// corpusHost is the Host header the harness adds to HTTP/1.1 requests that lack one.
const corpusHost = "corpus.test"

// Timeouts of one exchange. The harness writes the request and waits. When the server
// says nothing for corpusQuiet it is waiting for bytes the corpus file does not have
// (valid/099, invalid/001, invalid/rfc9112_chunked_missing_final_crlf_01): the harness
// then closes its sending side, as if the file had ended, and waits again. corpusQuiet
// is far above the time an instance takes to answer, because closing the sending side
// early would cancel a request still in the app.
const (
	corpusQuiet       = 5 * time.Second
	corpusReadTimeout = 15 * time.Second
)

type corpusExpectations struct {
	Valid map[string]struct {
		Cfg      map[string]any
		Requests []corpusRequest
	}
	Invalid map[string]struct {
		Cfg   map[string]any
		Error string
	}
}

// corpusRequest is one request as a valid/NNN.py file describes it; strings hold bytes
// as latin-1 characters.
type corpusRequest struct {
	Method string
	URI    struct {
		Raw, Scheme, Path, Query, Fragment string
	}
	Version  []int
	Headers  [][2]string
	Body     string
	Trailers [][2]string
}

func corpusLoadExpectations(t *testing.T, python, corpus string) corpusExpectations {
	t.Helper()
	cmd := exec.Command(python, filepath.Join("testdata", "corpus_expect.py"), corpus)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/corpus_expect.py: %v\n%s", err, stderr.String())
	}
	var e corpusExpectations
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("testdata/corpus_expect.py output: %v", err)
	}
	return e
}

var corpusHexEscape = regexp.MustCompile(`\\x[0-9A-Fa-f]{2}`)

// corpusDecode turns a .http file into the bytes it stands for: real newlines are
// dropped, then the escapes \r\n, \0, \n, \t and \xHH are replaced, in that order.
func corpusDecode(raw []byte) []byte {
	b := bytes.ReplaceAll(raw, []byte("\n"), nil)
	for _, r := range []struct{ from, to string }{
		{`\r\n`, "\r\n"}, {`\0`, "\x00"}, {`\n`, "\n"}, {`\t`, "\t"},
	} {
		b = bytes.ReplaceAll(b, []byte(r.from), []byte(r.to))
	}
	return corpusHexEscape.ReplaceAllFunc(b, func(m []byte) []byte {
		v, _ := strconv.ParseUint(string(m[2:]), 16, 8)
		return []byte{byte(v)}
	})
}

func corpusReadHTTP(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return corpusDecode(raw)
}

func corpusSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// corpusLacksHost reports whether one of the requests is HTTP/1.1 without a Host header.
func corpusLacksHost(reqs []corpusRequest) bool {
	for _, r := range reqs {
		if corpusHostless(r) {
			return true
		}
	}
	return false
}

func corpusHostless(r corpusRequest) bool {
	if len(r.Version) != 2 || r.Version[0] != 1 || r.Version[1] != 1 {
		return false
	}
	for _, h := range r.Headers {
		if h[0] == "HOST" {
			return false
		}
	}
	return true
}

// corpusRequestLine finds HTTP/1.1 request lines, for adding a Host header after them.
// Only where a match ends matters, and a pipelined request may follow a body without a
// line break (valid/pp_02), so it is not anchored to the start of a line.
var corpusRequestLine = regexp.MustCompile(`[!-~]+ [^ \r\n]+ HTTP/1\.1\r\n`)

// corpusHarness sends raw requests to the server and summarises what came back.
type corpusHarness struct {
	t     *testing.T
	s     *testkit.Server
	addr  string
	fence int
}

// corpusExchange is what one connection gave back.
type corpusExchange struct {
	responses []corpusResponse
	end       string // why no further expected response came: "closed", "timeout", or ""
	extra     int    // bytes the server sent after the expected responses
	calls     int    // corpus-call markers the app logged meanwhile
}

type corpusResponse struct {
	status int
	line   string // the status as sent: "400 Bad Request: missing required Host header"
	body   []byte
	echo   map[string]any // the echo app's JSON, when the body is that
}

// exchange writes data on a new connection, reads up to n responses and then whatever
// else arrives until the server closes, and counts the app calls it caused.
func (h *corpusHarness) exchange(data []byte, n int) corpusExchange {
	t := h.t
	t.Helper()
	start := len(h.s.Log())
	var x corpusExchange
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	tcp := conn.(*net.TCPConn)
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(corpusReadTimeout))
	if _, err := conn.Write(data); err != nil {
		// The server may close before reading everything (after a 400): read what it sent.
		t.Logf("write: %v", err)
	}
	br := bufio.NewReader(conn)
	halfClosed := false
	// wait waits for the next byte from the server, closing the sending side once when
	// the server stays quiet.
	wait := func() error {
		_ = conn.SetReadDeadline(time.Now().Add(corpusQuiet))
		_, err := br.Peek(1)
		if corpusIsTimeout(err) && !halfClosed {
			halfClosed = true
			_ = tcp.CloseWrite()
			_ = conn.SetReadDeadline(time.Now().Add(corpusReadTimeout))
			_, err = br.Peek(1)
		}
		return err
	}
	for len(x.responses) < n {
		if err := wait(); err != nil {
			x.end = corpusEnd(err)
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(corpusReadTimeout))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			x.end = "unreadable response: " + err.Error()
			break
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := corpusResponse{status: resp.StatusCode, line: resp.Status, body: body}
		if err != nil {
			x.responses = append(x.responses, r)
			x.end = "truncated response body"
			break
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			_ = json.Unmarshal(body, &r.echo)
		}
		x.responses = append(x.responses, r)
	}
	if x.end == "" {
		if !halfClosed {
			_ = tcp.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(corpusReadTimeout))
		rest, err := io.ReadAll(br)
		x.extra = len(rest)
		if err != nil && corpusEnd(err) == "timeout" {
			x.end = "server kept the connection open"
		}
	}
	conn.Close()
	x.calls = h.callsSince(start)
	return x
}

// callsSince counts the app's corpus-call markers logged since log offset start. The
// app logs its marker before it answers, and the server closes a connection only after
// the handler returned, so every call of this exchange has been written to the server's
// stderr by now; a request to the health endpoint, whose access-log line comes after
// them in the same stream, proves they have also been read into s.Log().
func (h *corpusHarness) callsSince(start int) int {
	t := h.t
	t.Helper()
	h.fence++
	token := fmt.Sprintf("corpusfence%05d", h.fence)
	resp, err := http.Get(h.s.Base + "/_wasmwsgi/healthz?" + token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.s.Log()[start:], token) {
		if time.Now().After(deadline) {
			t.Fatalf("the access log never showed %s", token)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return len(corpusCallMarker.FindAllStringIndex(h.s.Log()[start:], -1))
}

var corpusCallMarker = regexp.MustCompile(`msg="corpus-call `)

func corpusIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func corpusEnd(err error) string {
	if corpusIsTimeout(err) {
		return "timeout"
	}
	return "closed"
}

// checkValid sends a valid corpus file and returns "" when every request reached the app
// as the corpus describes, else a summary of the differences.
func (h *corpusHarness) checkValid(reqs []corpusRequest, data []byte) string {
	x := h.exchange(data, len(reqs))
	var diffs []string
	for i, want := range reqs {
		prefix := ""
		if len(reqs) > 1 {
			prefix = fmt.Sprintf("#%d ", i+1)
		}
		if i >= len(x.responses) {
			diffs = append(diffs, prefix+"no response ("+x.end+")")
			break
		}
		for _, d := range corpusCompare(want, x.responses[i]) {
			diffs = append(diffs, prefix+d)
		}
	}
	if x.extra > 0 {
		diffs = append(diffs, "more bytes after the last expected response")
	}
	if x.end == "server kept the connection open" {
		diffs = append(diffs, x.end)
	}
	if echoes := corpusEchoes(x.responses); x.calls != echoes {
		diffs = append(diffs, fmt.Sprintf("%d app calls for %d echoes", x.calls, echoes))
	}
	return strings.Join(diffs, "; ")
}

// corpusEchoes counts the responses that came from the echo app.
func corpusEchoes(rs []corpusResponse) int {
	n := 0
	for _, r := range rs {
		if r.echo != nil {
			n++
		}
	}
	return n
}

// corpusHostRefusal is how net/http words its 400 for an HTTP/1.1 request without Host.
const corpusHostRefusal = "missing required Host header"

// checkHostless checks a valid corpus file holding an HTTP/1.1 request without Host.
// As sent, the responses before that request must match and that request must be
// refused without reaching the app (net/http's 400 for the missing Host, unless it finds
// something else wrong first). Then the file is sent again with a Host line added to
// each such request, and everything must match.
func (h *corpusHarness) checkHostless(reqs []corpusRequest, data []byte) string {
	k := 0
	for !corpusHostless(reqs[k]) {
		k++
	}
	x := h.exchange(data, k+1)
	var diffs []string
	for i := 0; i < k && i < len(x.responses); i++ {
		diffs = append(diffs, corpusCompare(reqs[i], x.responses[i])...)
	}
	if len(x.responses) > k && x.responses[k].status < 400 {
		diffs = append(diffs, fmt.Sprintf("as sent: status %d for the request without Host", x.responses[k].status))
	}
	if x.calls != corpusEchoes(x.responses) {
		diffs = append(diffs, "as sent: the request without Host reached the app")
	}
	if x.extra > 0 {
		diffs = append(diffs, "as sent: more bytes after the refusal")
	}
	withHost := make([]corpusRequest, len(reqs))
	for i, r := range reqs {
		withHost[i] = r
		if corpusHostless(r) {
			withHost[i].Headers = append(append([][2]string(nil), r.Headers...), [2]string{"HOST", corpusHost})
		}
	}
	added, ok := corpusAddHost(reqs, data)
	if !ok {
		return strings.Join(append(diffs, "cannot find the request lines to add Host to"), "; ")
	}
	if d := h.checkValid(withHost, added); d != "" {
		diffs = append(diffs, "with Host: "+d)
	}
	return strings.Join(diffs, "; ")
}

// corpusAddHost inserts a Host line after the request line of each HTTP/1.1 request
// that has none. ok is false when the request lines found do not pair with reqs.
func corpusAddHost(reqs []corpusRequest, data []byte) (out []byte, ok bool) {
	lines := corpusRequestLine.FindAllIndex(data, -1)
	j, last := 0, 0
	for _, r := range reqs {
		if len(r.Version) != 2 || r.Version[0] != 1 || r.Version[1] != 1 {
			continue
		}
		if j >= len(lines) {
			return nil, false
		}
		if corpusHostless(r) {
			out = append(out, data[last:lines[j][1]]...)
			out = append(out, "Host: "+corpusHost+"\r\n"...)
			last = lines[j][1]
		}
		j++
	}
	return append(out, data[last:]...), true
}

// checkInvalid sends an invalid corpus file and returns "" when the server refused it
// (a 4xx, or a closed connection) without calling the app, else what happened.
// net/http checks Host only after it parsed the whole header block, and before it
// reads any body, so a 400 for a missing Host says nothing about the defect the file is
// about: the file is then sent again with a Host line after its request line, and it
// is that answer which counts. hostAdded reports whether that happened.
func (h *corpusHarness) checkInvalid(data []byte) (got string, hostAdded bool) {
	x := h.exchange(data, 1)
	if len(x.responses) > 0 && x.calls == 0 && strings.Contains(x.responses[0].line, corpusHostRefusal) {
		loc := corpusRequestLine.FindIndex(data)
		if loc == nil || loc[0] != 0 {
			return "refused for its missing Host, and the harness cannot add one", false
		}
		added := append(append(append([]byte(nil), data[:loc[1]]...), "Host: "+corpusHost+"\r\n"...), data[loc[1]:]...)
		x = h.exchange(added, 1)
		hostAdded = true
	}
	outcome := "closed without a response"
	refused := x.end == "closed"
	if len(x.responses) > 0 {
		status := x.responses[0].status
		outcome = fmt.Sprintf("status %d", status)
		refused = status >= 400 && status <= 499
	} else if x.end != "closed" {
		outcome = "no response (" + x.end + ")"
	}
	if refused && x.calls == 0 {
		return "", hostAdded
	}
	if hostAdded {
		outcome = "with Host: " + outcome
	}
	if x.calls > 0 {
		outcome += fmt.Sprintf("; app called %d times", x.calls)
	}
	if x.extra > 0 {
		outcome += "; more bytes after the first response"
	}
	return outcome, hostAdded
}

// corpusCompare compares what the echo app saw with one expected request.
func corpusCompare(want corpusRequest, r corpusResponse) []string {
	if r.status != http.StatusOK {
		return []string{fmt.Sprintf("status %d", r.status)}
	}
	if r.echo == nil {
		return []string{"status 200, not from the app"}
	}
	env := map[string]string{}
	for k, v := range r.echo {
		if s, ok := v.(string); ok {
			env[k] = corpusLatin1(s)
		}
	}
	var diffs []string
	field := func(key, want string) {
		if got, ok := env[key]; !ok {
			diffs = append(diffs, "no "+key)
		} else if got != want {
			diffs = append(diffs, fmt.Sprintf("%s %s", key, corpusShort(got)))
		}
	}
	field("REQUEST_METHOD", corpusLatin1(want.Method))
	field("PATH_INFO", corpusUnquote(corpusLatin1(want.URI.Path)))
	field("QUERY_STRING", corpusLatin1(want.URI.Query))
	field("RAW_URI", corpusLatin1(want.URI.Raw))
	if len(want.Version) == 2 {
		field("SERVER_PROTOCOL", fmt.Sprintf("HTTP/%d.%d", want.Version[0], want.Version[1]))
	}
	wantEnv, chunked := corpusHeaderEnviron(want.Headers)
	var keys []string
	for k := range env {
		if strings.HasPrefix(k, "HTTP_") || k == "CONTENT_TYPE" || k == "CONTENT_LENGTH" {
			keys = append(keys, k)
		}
	}
	for k := range wantEnv {
		if _, ok := env[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, gok := env[k]
		w, wok := wantEnv[k]
		switch {
		case !gok:
			diffs = append(diffs, "no "+k)
		case !wok:
			diffs = append(diffs, "extra "+k)
		case got != w:
			diffs = append(diffs, fmt.Sprintf("%s %s", k, corpusShort(got)))
		}
	}
	if chunked && r.echo["wsgi.input_terminated"] != true {
		diffs = append(diffs, "chunked body without wsgi.input_terminated")
	}
	if got := env["body"]; got != corpusLatin1(want.Body) {
		diffs = append(diffs, fmt.Sprintf("body %d bytes %s", len(got), corpusShort(got)))
	}
	return diffs
}

// corpusHeaderEnviron maps expected headers to the environ keys PEP 3333 gives them, as
// wasmwsgi does: repeated headers joined with ",", names holding "_" dropped. The
// server consumes Transfer-Encoding (a chunked body arrives decoded, with
// wsgi.input_terminated), so it has no environ key; chunked reports whether it said
// chunked.
func corpusHeaderEnviron(headers [][2]string) (env map[string]string, chunked bool) {
	env = map[string]string{}
	for _, h := range headers {
		name, value := h[0], corpusLatin1(h[1])
		if strings.Contains(name, "_") {
			continue
		}
		if name == "TRANSFER-ENCODING" {
			chunked = chunked || strings.Contains(strings.ToLower(value), "chunked")
			continue
		}
		key := strings.ReplaceAll(name, "-", "_")
		if key != "CONTENT_TYPE" && key != "CONTENT_LENGTH" {
			key = "HTTP_" + key
		}
		if old, ok := env[key]; ok {
			value = old + "," + value
		}
		env[key] = value
	}
	return env, chunked
}

// corpusLatin1 turns a string of characters U+0000..U+00FF (bytes as the corpus and
// PEP 3333 write them) into those bytes.
func corpusLatin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			return s + " (not latin-1)"
		}
		b = append(b, byte(r))
	}
	return string(b)
}

// corpusUnquote percent-decodes a path; a "%" not followed by two hex digits stays.
func corpusUnquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func corpusShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "..."
	}
	return strconv.Quote(s)
}
