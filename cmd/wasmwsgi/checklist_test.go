package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestChecklist covers the PEP 3333 rules of shared/WSGI-CHECKLIST.md that
// TestServeWSGI does not already check, each subtest named by its rule id. (Covered
// there: R1 write callable, R2/R4 exc_info replacement, R3 start_response inside the
// generator, R6 CR/LF, B2 empty chunks, B4 single-chunk Content-Length, B5 str and
// non-iterable results, E1-E3, E5; R7 hop-by-hop and I5 chunk sizes are in
// hostile_test.go.)
func TestChecklist(t *testing.T) {
	s := testkit.Start(t, testApps(t))
	app := s.Base + "/wsgitest"
	addr := strings.TrimPrefix(s.Base, "http://")

	t.Run("R4 second start_response without exc_info is a 500", func(t *testing.T) {
		if r := get(t, app+"/twice"); r.status != 500 {
			t.Errorf("status %d, body %q", r.status, r.body)
		}
	})

	t.Run("R5 exc_info after headers re-raises and aborts", func(t *testing.T) {
		r := get(t, app+"/excinfo-late")
		if r.status != 200 || r.err == nil || strings.Contains(r.body, "unreachable") {
			t.Errorf("status %d, body %q, read error %v: want a truncated 200", r.status, r.body, r.err)
		}
	})

	t.Run("R6 status code reaches the client", func(t *testing.T) {
		// The reason phrase is net/http's: see the README.
		if r := get(t, app+"/status?299+Custom+Reason"); r.status != 299 {
			t.Errorf("status %d", r.status)
		}
	})

	closeCount := func(t *testing.T, token string) int {
		t.Helper()
		s.WaitLog(t, "close-called token="+token)
		time.Sleep(100 * time.Millisecond) // a second close would be logged by now
		return strings.Count(s.Log(), "close-called token="+token+"\n") +
			strings.Count(s.Log(), "close-called token="+token+"\"")
	}
	t.Run("B1 close() exactly once on every path", func(t *testing.T) {
		for _, mode := range []string{"", "raise", "cl", "head", "disconnect"} {
			token := fmt.Sprintf("b1%s%d", mode, time.Now().UnixNano())
			url := app + "/close?" + token
			switch mode {
			case "head":
				req, _ := http.NewRequest(http.MethodHead, url, nil)
				do(t, req)
			case "disconnect":
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "GET /wsgitest/close?%s&slow HTTP/1.1\r\nHost: x\r\n\r\n", token)
				buf := make([]byte, 200)
				_, _ = c.Read(buf) // the first tick arrived: the app is iterating
				c.Close()
			default:
				get(t, url+"&"+mode)
			}
			if n := closeCount(t, token); n != 1 {
				t.Errorf("mode %q: close() called %d times", mode, n)
			}
		}
	})

	t.Run("B3 Content-Length honoured both ways", func(t *testing.T) {
		r := get(t, app+"/content-length?8&9")
		if r.body != "abcdefgh" || r.err != nil {
			t.Errorf("CL 8 with 9 bytes: body %q err %v; want the first 8 bytes", r.body, r.err)
		}
		start := time.Now()
		r = get(t, app+"/content-length?10&5")
		if r.err == nil || time.Since(start) > 10*time.Second {
			t.Errorf("CL 10 with 5 bytes: body %q err %v after %v; want a short read, never a hang", r.body, r.err, time.Since(start))
		}
	})

	t.Run("B4 no body for HEAD, 204 and 304", func(t *testing.T) {
		for _, c := range []struct{ method, status string }{
			{http.MethodHead, "200+OK"}, {http.MethodGet, "204+No+Content"}, {http.MethodGet, "304+Not+Modified"},
		} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "%s /wsgitest/status?%s HTTP/1.1\r\nHost: x\r\n\r\nGET /wsgitest/counter HTTP/1.1\r\nHost: x\r\n\r\n", c.method, c.status)
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			req, _ := http.NewRequest(c.method, "/", nil)
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if len(resp.TransferEncoding) > 0 {
				t.Errorf("%s %s: Transfer-Encoding %v", c.method, c.status, resp.TransferEncoding)
			}
			// Had a body been sent, it would be read here as the next response.
			next, err := http.ReadResponse(br, nil)
			if err != nil || next.StatusCode != 200 {
				t.Errorf("%s %s: the next response is not clean: %v", c.method, c.status, err)
			}
			conn.Close()
		}
	})

	t.Run("B6 each chunk is sent before the next is produced", func(t *testing.T) {
		resp, err := http.Get(app + "/slow-stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 5)
		start := time.Now()
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
			t.Fatalf("first chunk %q %v", buf, err)
		}
		first := time.Since(start)
		rest, _ := io.ReadAll(resp.Body)
		second := time.Since(start)
		if string(rest) != "second" || second-first < 300*time.Millisecond {
			t.Errorf("first chunk after %v, second after %v: the first was held back", first, second)
		}
	})

	t.Run("B7 exception before output: 500 with Content-Length and Connection: close", func(t *testing.T) {
		r := get(t, app+"/raise")
		if r.status != 500 || r.header.Get("Content-Length") == "" {
			t.Errorf("status %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /wsgitest/raise HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || !resp.Close {
			t.Errorf("500 without Connection: close (%v)", err)
		}
	})

	t.Run("B8 wsgi.file_wrapper", func(t *testing.T) {
		r := get(t, app+"/file-wrapper")
		if r.body != "file contents served by wsgi.file_wrapper\n" {
			t.Errorf("body %q", r.body)
		}
		s.WaitLog(t, "file-wrapper-closed=True")
	})

	t.Run("I1 never read past CONTENT_LENGTH, even with a pipelined request", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "POST /wsgitest/read-modes?n HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello worldGET /wsgitest/counter HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != `["hel", "lo world", "", ""]` {
			t.Errorf("reads: %s", body)
		}
		next, err := http.ReadResponse(br, nil)
		if err != nil || next.StatusCode != 200 {
			t.Errorf("pipelined request: %v", err)
		}
	})

	t.Run("I2 read(), read(-1), read(None) return the rest; exhausted is b''", func(t *testing.T) {
		for mode, want := range map[string]string{"none": `["abc", ""]`, "minus": `["abc", ""]`} {
			req, _ := http.NewRequest(http.MethodPost, app+"/read-modes?"+mode, strings.NewReader("abc"))
			if r := do(t, req); r.body != want {
				t.Errorf("%s: %s, want %s", mode, r.body, want)
			}
		}
	})

	t.Run("I3 readlines(hint)", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, app+"/read-modes?7", strings.NewReader("one\ntwo\nthree\n"))
		if r := do(t, req); r.body != `["one\n", "two\n"]` {
			t.Errorf("readlines(7): %s", r.body)
		}
	})

	t.Run("I4 an unread body is not parsed as the next request", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		smuggled := "GET /wsgitest/twice HTTP/1.1\r\nHost: x\r\n\r\n"
		fmt.Fprintf(c, "POST /wsgitest/ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /wsgitest/counter HTTP/1.1\r\nHost: x\r\n\r\n", len(smuggled), smuggled)
		br := bufio.NewReader(c)
		var got []string
		for i := 0; i < 3; i++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			b, _ := io.ReadAll(resp.Body)
			got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, b))
		}
		if len(got) != 2 || got[0] != "200 did not read the body" || got[1] != "200 1" {
			t.Errorf("responses %q: the body was parsed as a request", got)
		}
	})

	t.Run("I6 100-continue only when the app reads", func(t *testing.T) {
		for _, c := range []struct {
			path      string
			wantFirst string
		}{
			{"/wsgitest/read-modes?none", "HTTP/1.1 100 Continue"},
			{"/wsgitest/ignore-body", "HTTP/1.1 200 OK"},
		} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", c.path)
			br := bufio.NewReader(conn)
			line, _ := br.ReadString('\n')
			if strings.TrimSpace(line) != c.wantFirst {
				t.Errorf("%s: first line %q, want %q", c.path, line, c.wantFirst)
			}
			if strings.Contains(line, "100") {
				io.WriteString(conn, "abc")
				for {
					l, err := br.ReadString('\n')
					if err != nil || strings.HasPrefix(l, "HTTP/1.1 200") {
						break
					}
				}
			}
			conn.Close()
		}
	})

	t.Run("E4 QUERY_STRING always present, CONTENT_* without HTTP_", func(t *testing.T) {
		m := echoOf(t, get(t, app+"/echo"))
		if q, ok := m["QUERY_STRING"]; !ok || q != "" {
			t.Errorf("QUERY_STRING = %v, %v", q, ok)
		}
		for _, k := range []string{"SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s missing", k)
			}
		}
	})
}
