package main

import (
	"math/rand"
	"sync"
	"time"
)

// lockedSource is a rand.Source safe for concurrent use. fluxcd/pkg/runtime's
// interval jitter draws from one *rand.Rand at the end of every reconcile;
// given nil it builds one over a plain source, which is not safe when
// --concurrent reconciles finish together (the race detector caught it once
// runs got fast enough to overlap).
type lockedSource struct {
	mu  sync.Mutex
	src rand.Source64
}

func newLockedSource() *lockedSource {
	return &lockedSource{src: rand.NewSource(time.Now().UnixNano()).(rand.Source64)}
}

func (s *lockedSource) Int63() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src.Int63()
}

func (s *lockedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src.Uint64()
}

func (s *lockedSource) Seed(seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.src.Seed(seed)
}
