package hostfuncs

import (
	"errors"
	"fmt"
	"strings"
)

// MaxHeaders is the most response headers one start_response may carry.
const MaxHeaders = 1000

var errTooMany = errors.New("too many entries")

// Status is a validated WSGI status line.
type Status struct {
	Code   int    // 100..999
	Reason string // may be empty; printable latin-1 only
}

func (s Status) String() string { return fmt.Sprintf("%03d %s", s.Code, s.Reason) }

// ParseStatus validates a WSGI status string: three digits, a space, then a reason phrase
// of HTAB, SP, visible ASCII or latin-1 bytes 0x80-0xFF. Anything else, CR and LF
// included, is rejected so that no app can inject into the status line.
func ParseStatus(b []byte) (Status, error) {
	if len(b) < 4 || b[3] != ' ' {
		return Status{}, fmt.Errorf("status %q must look like \"200 OK\"", clip(b))
	}
	code := 0
	for _, c := range b[:3] {
		if c < '0' || c > '9' {
			return Status{}, fmt.Errorf("status %q must start with a three-digit code", clip(b))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return Status{}, fmt.Errorf("status code %03d is below 100", code)
	}
	for _, c := range b[4:] {
		if !fieldValueByte(c) {
			return Status{}, fmt.Errorf("status %q contains control character 0x%02x", clip(b), c)
		}
	}
	return Status{Code: code, Reason: string(b[4:])}, nil
}

// hopByHop lists the headers that belong to one connection and that a WSGI application
// must not set (PEP 3333, "Other HTTP Features"); the server owns them.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true,
	"proxy-authorization": true, "proxy-connection": true, "te": true, "trailer": true,
	"trailers": true, "transfer-encoding": true, "upgrade": true,
}

// ParseHeaders decodes and validates response headers in the pairs encoding.
func ParseHeaders(b []byte) ([]Pair, error) {
	hs, err := DecodePairs(b, MaxHeaders)
	if errors.Is(err, errTooMany) {
		return nil, fmt.Errorf("more than %d response headers", MaxHeaders)
	}
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		if err := CheckHeader(h.Name, h.Value); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// CheckHeader validates one response header: the name is an RFC 9110 token and not a
// hop-by-hop header, the value has no CR, LF, NUL or other control character but HTAB.
func CheckHeader(name, value string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if !tokenByte(name[i]) {
			return fmt.Errorf("header name %q contains 0x%02x, which is not allowed in a token", clip([]byte(name)), name[i])
		}
	}
	if hopByHop[strings.ToLower(name)] {
		return fmt.Errorf("header %q is hop-by-hop and belongs to the server (PEP 3333)", name)
	}
	for i := 0; i < len(value); i++ {
		if !fieldValueByte(value[i]) {
			return fmt.Errorf("value of header %q contains control character 0x%02x", name, value[i])
		}
	}
	return nil
}

func fieldValueByte(c byte) bool {
	return c == '\t' || (c >= 0x20 && c != 0x7f)
}

// IsToken reports whether s is a non-empty RFC 9110 token, the grammar of a header name.
func IsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return s != ""
}

func tokenByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// clip shortens a value quoted in an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
