package agent

import (
	"crypto/sha256"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// chainStore is a Store that remembers verified certificate chains
// (state.Store; a dry run without a state file has none).
type chainStore interface {
	Chain(sum [sha256.Size]byte) (state.Chain, bool, error)
	HasChains() (bool, error)
	PutChains(chains map[[sha256.Size]byte]state.Chain, prune bool, now time.Time) error
	Writable() bool
}

// chainFlush is how many new chains are held before they are written:
// a first pass over a large directory never holds them all. Chains are
// keyed by their certificate's hash, so each write lands all over the
// bucket; PutChains writes them a bounded number of pages a transaction
// (state's dirtyBudget), which 64 chains about fill once the bucket is
// large: about 1,600 to 3,200 commits at 100,000 users, which the writer
// goroutine makes while the directory is still being read.
const chainFlush = 64

// chainMemo is mapping.ChainMemo over the state file: a pass reads the
// chains earlier passes verified and, unless the store is read-only (a
// dry run), writes those it verified itself, chainFlush at a time, from
// a goroutine of its own, so that no judging worker waits for a commit.
// It is a cache: a read or write that fails is logged once and the pass
// goes on verifying.
type chainMemo struct {
	store chainStore // non-nil
	now   time.Time  // the pass's start: prunes chains of certificates expired before it
	log   *zap.Logger
	write bool
	// none: the store held no chain when the pass began (a first pass),
	// so it is not asked: only this pass's own chains could be there, and
	// those it verified already. A first pass over a large directory
	// would otherwise look up every certificate in a bucket it is
	// filling, mapping pages all over it.
	none bool

	// queue takes full batches to the writer (when write); a worker
	// waits only when one batch is already waiting there.
	queue   chan map[[sha256.Size]byte]state.Chain
	writer  sync.WaitGroup
	stopped sync.Once

	mu      sync.Mutex // guards the fields below
	pending map[[sha256.Size]byte]state.Chain
	wrote   bool // something was written: prune at the end
	failed  bool // a read or write failed: logged, memo off
}

// newChainMemo returns nil (verify every time) when the store keeps no
// chains.
func (a *Agent) newChainMemo(now time.Time) *chainMemo {
	cs, ok := a.store.(chainStore)
	if !ok {
		return nil
	}
	m := &chainMemo{store: cs, now: now, log: a.log, write: cs.Writable(), pending: map[[sha256.Size]byte]state.Chain{}}
	if has, err := cs.HasChains(); err != nil {
		m.fail("reading remembered certificate chains failed; verifying every certificate", err)
	} else {
		m.none = !has
	}
	if m.write {
		m.queue = make(chan map[[sha256.Size]byte]state.Chain, 1)
		m.writer.Add(1)
		go func() {
			defer m.writer.Done()
			for chains := range m.queue {
				m.put(chains, false)
			}
		}()
	}
	return m
}

// stop ends the writer once what was queued is written. Every memo must
// be stopped (flush does it).
func (m *chainMemo) stop() {
	if m == nil || !m.write {
		return
	}
	m.stopped.Do(func() {
		close(m.queue)
		m.writer.Wait()
	})
}

// memo is m as mapping takes it: a nil *chainMemo must be a nil interface.
func (m *chainMemo) memo() mapping.ChainMemo {
	if m == nil {
		return nil
	}
	return m
}

func (m *chainMemo) VerifiedChain(sum [sha256.Size]byte) (mapping.VerifiedChain, bool) {
	m.mu.Lock()
	if m.failed {
		m.mu.Unlock()
		return mapping.VerifiedChain{}, false
	}
	c, ok := m.pending[sum]
	m.mu.Unlock()
	if !ok && !m.none {
		var err error
		if c, ok, err = m.store.Chain(sum); err != nil {
			m.fail("reading remembered certificate chains failed; verifying every certificate", err)
			return mapping.VerifiedChain{}, false
		}
	}
	return mapping.VerifiedChain{CAs: c.CAs, From: c.From, Until: c.Until, Expires: c.Expires}, ok
}

func (m *chainMemo) RememberChain(sum [sha256.Size]byte, vc mapping.VerifiedChain) {
	if !m.write {
		return
	}
	m.mu.Lock()
	if m.failed {
		m.mu.Unlock()
		return
	}
	m.pending[sum] = state.Chain{CAs: vc.CAs, From: vc.From, Until: vc.Until, Expires: vc.Expires}
	var full map[[sha256.Size]byte]state.Chain
	if len(m.pending) >= chainFlush {
		full, m.pending = m.pending, map[[sha256.Size]byte]state.Chain{}
		m.wrote = true
	}
	m.mu.Unlock()
	if full != nil {
		m.queue <- full
	}
}

// flush writes what is queued and held and, when this pass wrote
// anything, forgets the chains of certificates that have expired. It
// stops the memo: no chain may be remembered after it.
func (m *chainMemo) flush() {
	if m == nil || !m.write {
		return
	}
	m.stop()
	m.mu.Lock()
	rest, prune := m.pending, m.wrote || len(m.pending) > 0
	m.pending = map[[sha256.Size]byte]state.Chain{}
	failed := m.failed
	m.mu.Unlock()
	if prune && !failed {
		m.put(rest, true)
	}
}

func (m *chainMemo) put(chains map[[sha256.Size]byte]state.Chain, prune bool) {
	if err := m.store.PutChains(chains, prune, m.now); err != nil {
		m.fail("remembering verified certificate chains failed; the next pass verifies them again", err)
	}
}

func (m *chainMemo) fail(msg string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.failed {
		m.failed = true
		m.log.Warn(msg, zap.Error(err))
	}
}
