package egress

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// BenchmarkRoundTrip is one 100-byte round trip to an echo server on 127.0.0.1: through
// a Session as the host functions call it (Send, then Recv until the echo is whole),
// and on a plain net.Conn, in the same run.
func BenchmarkRoundTrip(b *testing.B) {
	port := testkit.StartTCP(b, testkit.Echo).Port
	msg, buf := make([]byte, 100), make([]byte, 100)
	ctx := context.Background()

	b.Run("session", func(b *testing.B) {
		p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
		s := NewSession(p, Config{})
		defer s.Close()
		h, err := s.Connect(ctx, "127.0.0.1", port, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Send(ctx, h, msg, time.Second); err != nil {
				b.Fatal(err)
			}
			for got := 0; got < len(msg); {
				n, err := s.Recv(ctx, h, buf[got:], time.Second)
				if err != nil || n == 0 {
					b.Fatal(n, err)
				}
				got += n
			}
		}
	})
	b.Run("net", func(b *testing.B) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
