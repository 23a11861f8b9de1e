package ldapsrc_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
)

// A user read asks for page N+1 while fn still holds page N, and a read
// stopped with a page in flight waits for it and releases the server's
// result set with the cookie the server expects. The in-memory directory
// shows every paged request it gets ("size/cookie"; its cookie is the
// offset of the next entry): 25 staff in pages of 10.
func TestUserReadFetchesOnePageAhead(t *testing.T) {
	d := newDataset(t)
	errStop := errors.New("sink is full")
	tests := []struct {
		name string
		// At its at-th call, fn waits until the server is asked for the
		// page after cookie ahead, then fails (fail), cancels the read's
		// ctx (cancel), or goes on.
		at     int
		ahead  string
		hold   bool // the server holds that page back until the read's ctx ends
		fail   bool
		cancel bool

		wantErr   error
		wantCalls int
		wantPaged []string
		wantStats ldapsrc.Stats
	}{
		{name: "page 2 is asked for while fn holds page 1", at: 1, ahead: "10",
			wantCalls: staff, wantPaged: []string{"10/", "10/10", "10/20"},
			wantStats: ldapsrc.Stats{Entries: staff, Pages: 3, Operations: 3}},
		{name: "the last page is asked for while fn holds page 2", at: 11, ahead: "20",
			wantCalls: staff, wantPaged: []string{"10/", "10/10", "10/20"},
			wantStats: ldapsrc.Stats{Entries: staff, Pages: 3, Operations: 3}},
		// Page 2 was served: the server now expects its cookie, not page 1's.
		{name: "fn fails on page 1 with page 2 in flight", at: 1, ahead: "10", fail: true,
			wantErr: errStop, wantCalls: 1, wantPaged: []string{"10/", "10/10", "0/20"},
			wantStats: ldapsrc.Stats{Entries: 1, Pages: 1, Operations: 3}},
		// The page in flight was the last: the server keeps nothing to release.
		{name: "fn fails on page 2 with the last page in flight", at: 11, ahead: "20", fail: true,
			wantErr: errStop, wantCalls: 11, wantPaged: []string{"10/", "10/10", "10/20"},
			wantStats: ldapsrc.Stats{Entries: 11, Pages: 2, Operations: 3}},
		// Page 2 never arrived: page 1's cookie is the last one received.
		{name: "ctx cancelled with page 2 held back", at: 1, ahead: "10", hold: true, cancel: true,
			wantErr: context.Canceled, wantCalls: 1, wantPaged: []string{"10/", "10/10", "0/10"},
			wantStats: ldapsrc.Stats{Entries: 2, Pages: 1, Operations: 3}},
		{name: "ctx cancelled with the last page held back", at: 11, ahead: "20", hold: true, cancel: true,
			wantErr: context.Canceled, wantCalls: 11, wantPaged: []string{"10/", "10/10", "10/20", "0/20"},
			wantStats: ldapsrc.Stats{Entries: 12, Pages: 2, Operations: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var paged []string
			asked := make(chan struct{})
			var once sync.Once // the read after the test asks again
			srv := startMemory(t, d, false, func(o *ldaptest.MemoryOptions) {
				o.Searching = func(p *ldap.ControlPaging) {
					if p == nil {
						return // the rootDSE
					}
					mu.Lock()
					paged = append(paged, fmt.Sprintf("%d/%s", p.PagingSize, p.Cookie))
					mu.Unlock()
					if p.PagingSize > 0 && string(p.Cookie) == tc.ahead {
						once.Do(func() {
							close(asked)
							if tc.hold {
								<-ctx.Done()
							}
						})
					}
				}
			})
			s := srv.open(t, srv.config())
			before := runtime.NumGoroutine()

			calls := 0
			st, err := s.Users(ctx, func(mapping.SourceUser) error {
				calls++
				if calls != tc.at {
					return nil
				}
				select {
				case <-asked:
				case <-time.After(10 * time.Second):
					return fmt.Errorf("the server was not asked for the page after cookie %q while fn held user %d", tc.ahead, calls)
				}
				switch {
				case tc.fail:
					return errStop
				case tc.cancel:
					cancel()
				}
				return nil
			})
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Users: %v, want %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls {
				t.Errorf("fn called %d times, want %d", calls, tc.wantCalls)
			}
			if st != tc.wantStats {
				t.Errorf("Stats %+v, want %+v", st, tc.wantStats)
			}
			// The abandon is the read's last request: Users has returned.
			mu.Lock()
			got := slices.Clone(paged)
			mu.Unlock()
			if !slices.Equal(got, tc.wantPaged) {
				t.Errorf("paged requests %q, want %q", got, tc.wantPaged)
			}
			// Nothing of the read goes on after it returned.
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after the read, %d before", n, before)
			}
			// The connection is still good for the next read.
			if got, _ := readAll(t, s); len(got) != staff {
				t.Errorf("read again: %d users, want %d", len(got), staff)
			}
		})
	}
}
