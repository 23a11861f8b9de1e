package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// TestPipelineKeepsReadOrder: workers finish in any order, users are
// filed in the order read; the first filing error stops filing, reaches
// the reader through add, and comes back from close.
func TestPipelineKeepsReadOrder(t *testing.T) {
	// More than the pipeline holds in flight, so add sees a filing error.
	const n = 40*pipelineBatch + 7
	stop := errors.New("state unreadable")
	for _, tt := range []struct {
		name   string
		failAt int // -1: never
	}{{"all filed", -1}, {"filing fails", pipelineBatch + 3}} {
		t.Run(tt.name, func(t *testing.T) {
			var filed []string
			pl := newPipeline(func(us []mapping.SourceUser, js []judgement) {
				for i, u := range us {
					time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
					js[i] = judgement{ev: mapping.Evaluation{Rejected: []mapping.Rejection{{Reason: u.Anchor}}}}
				}
			}, func(u mapping.SourceUser, j judgement) error {
				ev := j.ev
				if ev.Rejected[0].Reason != u.Anchor {
					t.Errorf("user %s filed with the judgement of %s", u.Anchor, ev.Rejected[0].Reason)
				}
				if len(filed) == tt.failAt {
					return stop
				}
				filed = append(filed, u.Anchor)
				return nil
			})
			addErr := error(nil)
			for i := range n {
				if addErr = pl.add(mapping.SourceUser{Anchor: fmt.Sprint(i)}); addErr != nil {
					break
				}
			}
			err := pl.close()
			want := n
			if tt.failAt >= 0 {
				want = tt.failAt
				if !errors.Is(err, stop) || !errors.Is(addErr, stop) {
					t.Fatalf("close: %v, add: %v; want the filing error from both", err, addErr)
				}
			} else if err != nil || addErr != nil {
				t.Fatalf("close: %v, add: %v", err, addErr)
			}
			if len(filed) != want {
				t.Fatalf("filed %d users, want %d", len(filed), want)
			}
			for i, a := range filed {
				if a != fmt.Sprint(i) {
					t.Fatalf("user %d filed as the %dth", i, len(filed[:i]))
				}
			}
		})
	}
}

// TestPassRemembersChains: a pass writes the chains it verified to the
// state file (more than two batches: two through the writer goroutine,
// the rest at the end), and a dry run's read-only snapshot is never
// written to.
func TestPassRemembersChains(t *testing.T) {
	var cloud []graphtest.User
	for i := range 2*chainFlush + 3 {
		cloud = append(cloud, graphtest.User{Mail: fmt.Sprintf("u%d@x.test", i)})
	}
	f := newFixture(t, cloud...)
	for _, c := range cloud {
		u, _ := f.user(c.Mail, 1)
		f.src.users = append(f.src.users, u)
	}
	p := f.pass(context.Background())
	if p.Stats.UsersChanged != len(cloud) {
		t.Fatalf("%d users changed, want %d", p.Stats.UsersChanged, len(cloud))
	}
	for _, u := range f.src.users {
		if _, ok, err := f.store.Chain(sha256.Sum256(u.Values[0].Data)); !ok || err != nil {
			t.Fatalf("the chain of %s was not remembered (%v)", u.DN, err)
		}
	}
	// A dry run: the state file read-only. Its plan uses the chains and
	// writes none.
	path := f.store.Path()
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := state.Open(path, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	f.store = ro
	extra, _ := f.user("new@x.test", 1)
	f.src.users = append(f.src.users, extra)
	a := f.agent()
	if m := a.newChainMemo(time.Now()); m == nil || m.write {
		t.Fatalf("a read-only state's memo %+v: want one that reads and never writes", m)
	}
	if _, err := a.Plan(context.Background(), PlanOptions{}); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if _, ok, _ := ro.Chain(sha256.Sum256(extra.Values[0].Data)); ok {
		t.Fatal("a read-only plan remembered a chain")
	}
}

// countingChains counts the chain lookups a memo makes in the store.
type countingChains struct {
	*state.Store
	lookups int
}

func (c *countingChains) Chain(sum [sha256.Size]byte) (state.Chain, bool, error) {
	c.lookups++
	return c.Store.Chain(sum)
}

// A pass that starts with no chain remembered (a first pass) does not
// look its certificates up in the store; once chains are there, it does
// and uses them.
func TestChainMemoAsksOnlyAStoreWithChains(t *testing.T) {
	f := newFixture(t)
	st := &countingChains{Store: f.store}
	a := f.agent()
	a.store = st
	now := time.Now()
	sum := sha256.Sum256([]byte("a certificate"))
	m := a.newChainMemo(now)
	if _, ok := m.VerifiedChain(sum); ok || st.lookups != 0 {
		t.Fatalf("an empty store: found %v after %d lookups; want none and no lookup", ok, st.lookups)
	}
	m.stop()
	if err := st.PutChains(map[[sha256.Size]byte]state.Chain{sum: {From: now, Until: now.Add(time.Hour), Expires: now.Add(time.Hour)}}, false, now); err != nil {
		t.Fatal(err)
	}
	m = a.newChainMemo(now)
	defer m.stop()
	if _, ok := m.VerifiedChain(sum); !ok || st.lookups != 1 {
		t.Fatalf("a store with the chain: found %v after %d lookups; want it after one", ok, st.lookups)
	}
}
