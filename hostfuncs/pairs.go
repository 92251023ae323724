package hostfuncs

import (
	"encoding/binary"
	"errors"
)

// Pair is one (name, value) entry of the pairs encoding (see the package doc).
type Pair struct {
	Name, Value string
}

// errMalformed reports pairs data that does not follow the encoding.
var errMalformed = errors.New("malformed pairs encoding")

// AppendPairs appends the pairs encoding of ps to dst.
func AppendPairs(dst []byte, ps []Pair) []byte {
	for _, p := range ps {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p.Name)))
		dst = append(dst, p.Name...)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p.Value)))
		dst = append(dst, p.Value...)
	}
	return dst
}

// DecodePairs decodes the pairs encoding, copying the bytes out of b. It accepts at most
// max pairs and returns errMalformed for truncated or trailing data.
func DecodePairs(b []byte, max int) ([]Pair, error) {
	var ps []Pair
	for len(b) > 0 {
		if len(ps) == max {
			return nil, errTooMany
		}
		name, rest, ok := field(b)
		if !ok {
			return nil, errMalformed
		}
		value, rest, ok := field(rest)
		if !ok {
			return nil, errMalformed
		}
		ps = append(ps, Pair{Name: name, Value: value})
		b = rest
	}
	return ps, nil
}

func field(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return "", nil, false
	}
	return string(b[:n]), b[n:], true
}
