package memimage

import (
	"sync"
	"time"
)

// Spares keeps the memories of closed instances for new instances to take, so that a
// new instance writes into pages its process has mapped already instead of mapping its
// Image afresh. Every page a guest first touches in a fresh mapping costs a page fault,
// and on a virtual machine more; a Flask app's first request in a new instance spends
// most of its time there (docs/design.md, "Spare memories").
//
// A spare fits an Image whose memories map the same file at their start (the same
// layered base, or the same image file) and whose memory is asked for with the same
// limit. Take makes it equal to the Image first (Restored.rebase): the pages any guest
// wrote get the Image's content, and so do the pages a layered Image holds itself, so
// nothing of an earlier guest, of this app or another, is left.
//
// At most max spares are kept, each for at most ttl: a spare is the process's memory,
// held for whichever app needs an instance next, and lets go of it when none does.
type Spares struct {
	mu     sync.Mutex
	free   []*spare // the most recently put last
	max    int
	ttl    time.Duration
	closed bool
}

type spare struct {
	m     *Restored
	timer *time.Timer
}

// NewSpares keeps up to max spare memories, each for up to ttl.
func NewSpares(max int, ttl time.Duration) *Spares {
	return &Spares{max: max, ttl: ttl}
}

// Put keeps m for Take, or releases it: when it cannot be made another Image's (it
// grew past its Image, hit its limit, or was never mapped), or max spares are kept
// already (the oldest is released then). No guest code may run on m any more: its
// module is closed.
func (s *Spares) Put(m *Restored) {
	if s == nil || !m.spareable() {
		m.Release()
		return
	}
	sp := &spare{m: m}
	s.mu.Lock()
	if s.closed || s.max <= 0 {
		s.mu.Unlock()
		m.Release()
		return
	}
	s.free = append(s.free, sp)
	sp.timer = time.AfterFunc(s.ttl, func() { s.expire(sp) })
	var drop *spare
	if len(s.free) > s.max {
		drop = s.free[0]
		s.free = s.free[1:]
		drop.timer.Stop()
	}
	s.mu.Unlock()
	if drop != nil {
		drop.m.Release()
	}
}

// Take returns a spare memory made equal to img, for a memory of img up to limit
// (what NewRestored(img, limit) would make), or nil when none fits. Allocate maps
// nothing for it. img's files are mapped for copying first, so that a failure of
// img's own (the process at vm.max_map_count) costs no spare.
func (s *Spares) Take(img *Image, limit uint64, pm *PageMap) *Restored {
	if s == nil || pm == nil || img.views() != nil {
		return nil
	}
	for {
		s.mu.Lock()
		var sp *spare
		for i := len(s.free) - 1; i >= 0; i-- {
			if s.free[i].m.fits(img, limit) {
				sp = s.free[i]
				s.free = append(s.free[:i], s.free[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		if sp == nil {
			return nil
		}
		sp.timer.Stop()
		if err := sp.m.rebase(img, pm); err == nil {
			return sp.m
		}
		sp.m.Release()
	}
}

// expire releases sp once it has waited ttl, unless it was taken since.
func (s *Spares) expire(sp *spare) {
	s.mu.Lock()
	found := false
	for i, f := range s.free {
		if f == sp {
			s.free = append(s.free[:i], s.free[i+1:]...)
			found = true
			break
		}
	}
	s.mu.Unlock()
	if found {
		sp.m.Release()
	}
}

// Len returns how many spare memories are kept.
func (s *Spares) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.free)
}

// Close releases every spare; later Puts release their memory at once.
func (s *Spares) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	free := s.free
	s.free, s.closed = nil, true
	s.mu.Unlock()
	for _, sp := range free {
		sp.timer.Stop()
		sp.m.Release()
	}
}

// mappedFile identifies the file a memory maps at its start. A file on disk is told by
// device and inode: a memory that maps the file holds it open, so while the memory
// exists no other file can get its inode number, and a snapshot file is never changed
// once written (Open). Its times would not do: a copy of an app taking the file as its
// own snapshot (a hard link) changes its ctime. A memfd is told by the Image that
// holds it (New). layered tells a layered image's base from an image file.
type mappedFile struct {
	dev, ino uint64
	memfd    *Image
	size     int64
	layered  bool
}

// spareable reports whether m may be made another Image's: it maps a file at its
// start, and its guests saw exactly its Image's size of it.
func (m *Restored) spareable() bool {
	return m.err == nil && m.mapped != nil && m.under != (mappedFile{}) && !m.hit && m.size == m.img.size
}

// fits reports whether m may become img's memory with the limit asked.
func (m *Restored) fits(img *Image, limit uint64) bool {
	return m.under == img.under && m.limitAsked == limit && m.size == img.size
}
