package agent

import (
	"runtime"
	"sync"

	"github.com/certsync/certsync/mapping"
)

// pipeline judges users on every core while the directory is read: Read
// hands users to add one by one (a page at a time, from its own
// goroutine), workers judge batches of them in parallel, and one
// goroutine files them with take in the order they were read, so a plan
// never depends on which worker finished first. Memory stays bounded:
// add waits when pipelineDepth batches per worker are in flight.
//
// take's first error stops everything: later users are not filed, and
// add returns the error so that the read stops too. close waits for every
// user handed over to be filed (or dropped after an error) and returns
// that error: the caller decides what the read means only after close.
type pipeline struct {
	// judge fills js[i] with the judgement of users[i], for one batch.
	judge func(users []mapping.SourceUser, js []judgement)
	take  func(mapping.SourceUser, judgement) error

	cur     *judgeBatch
	work    chan *judgeBatch // to the workers
	ordered chan *judgeBatch // to the filer, in read order
	done    sync.WaitGroup   // workers and filer

	mu  sync.Mutex // guards err
	err error
}

// judgeBatch is a run of users judged by one worker.
type judgeBatch struct {
	users  []mapping.SourceUser
	js     []judgement
	judged chan struct{} // closed when js is complete
}

const (
	// pipelineBatch users go to a worker at once: enough to make the hand-
	// over cheap, few enough to keep every core busy on a small page.
	pipelineBatch = 64
	// pipelineDepth batches per worker may wait to be judged or filed.
	pipelineDepth = 4
)

func newPipeline(judge func([]mapping.SourceUser, []judgement), take func(mapping.SourceUser, judgement) error) *pipeline {
	workers := runtime.GOMAXPROCS(0)
	pl := &pipeline{judge: judge, take: take,
		work: make(chan *judgeBatch, workers*pipelineDepth), ordered: make(chan *judgeBatch, workers*pipelineDepth)}
	for range workers {
		pl.done.Add(1)
		go func() {
			defer pl.done.Done()
			for b := range pl.work {
				b.js = make([]judgement, len(b.users))
				pl.judge(b.users, b.js)
				close(b.judged)
			}
		}()
	}
	pl.done.Add(1)
	go func() {
		defer pl.done.Done()
		for b := range pl.ordered {
			<-b.judged
			for i, u := range b.users {
				if pl.failed() != nil {
					break
				}
				if err := pl.take(u, b.js[i]); err != nil {
					pl.mu.Lock()
					pl.err = err
					pl.mu.Unlock()
				}
				// Filed: what was judged is the filer's to keep or drop.
				b.users[i], b.js[i] = mapping.SourceUser{}, judgement{}
			}
		}
	}()
	return pl
}

func (pl *pipeline) failed() error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.err
}

// add hands one user over; an error means filing failed and the read
// must stop.
func (pl *pipeline) add(u mapping.SourceUser) error {
	if err := pl.failed(); err != nil {
		return err
	}
	if pl.cur == nil {
		pl.cur = &judgeBatch{users: make([]mapping.SourceUser, 0, pipelineBatch), judged: make(chan struct{})}
	}
	pl.cur.users = append(pl.cur.users, u)
	if len(pl.cur.users) == pipelineBatch {
		pl.send()
	}
	return nil
}

func (pl *pipeline) send() {
	b := pl.cur
	pl.cur = nil
	pl.ordered <- b
	pl.work <- b
}

// close files what is left and waits; it returns take's first error.
func (pl *pipeline) close() error {
	if pl.cur != nil {
		pl.send()
	}
	close(pl.work)
	close(pl.ordered)
	pl.done.Wait()
	return pl.failed()
}
