package runtime

import (
	"container/list"
	"sync"
)

// idleSet bounds the idle instances of all apps together (EngineConfig.MaxIdle): when
// one more would pass the bound, the instance that has waited longest, of whichever
// app, is closed. Busy apps keep their instances; the long tail of apps that are
// called now and then pays a restore from the snapshot on its next request instead of
// holding an instance's memory all the time.
//
// Each pool keeps its own list of idle instances; the set only orders them. Pools
// change the set only while they hold their own lock (pool, then set; the set never
// calls a pool), so an instance is in the set exactly while it is in its pool's list.
// The instances add returns are out of the set already, and the caller closes one only
// if its pool still holds it, taking it out there.
type idleSet struct {
	mu  sync.Mutex
	lru list.List // of *instance, the most recently idle at the front
	max int       // 0: no bound
}

// add records inst as the most recently idle and returns the instances to close to
// stay within the bound, oldest first. inst is never one of them.
func (s *idleSet) add(inst *instance) []*instance {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if inst.idleElem != nil {
		s.lru.Remove(inst.idleElem)
	}
	inst.idleElem = s.lru.PushFront(inst)
	var over []*instance
	for s.max > 0 && s.lru.Len() > s.max {
		old := s.lru.Remove(s.lru.Back()).(*instance)
		old.idleElem = nil
		over = append(over, old)
	}
	return over
}

// remove forgets inst: it was taken for a request or closed.
func (s *idleSet) remove(insts ...*instance) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inst := range insts {
		if inst.idleElem != nil {
			s.lru.Remove(inst.idleElem)
			inst.idleElem = nil
		}
	}
}

// full reports whether the set is at its bound, so that pre-warming one more instance
// would only close another.
func (s *idleSet) full() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max > 0 && s.lru.Len() >= s.max
}

// len returns how many idle instances the set holds.
func (s *idleSet) len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
