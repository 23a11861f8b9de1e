package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
	"github.com/certsync/certsync/state"
)

// TestSpillCodecCoversTypes fails when a type the spill codec writes
// gains a field: encodeUser and decodeUser must learn it, or a large
// plan would lose it on the way through its temporary file.
func TestSpillCodecCoversTypes(t *testing.T) {
	for _, tc := range []struct {
		v      any
		fields int
	}{
		{UserPlan{}, 20}, {TargetPlan{}, 19}, {state.Settled{}, 3}, {CertInfo{}, 8}, {ValueInfo{}, 4}, {CertVerdict{}, 6},
		{mapping.Rejection{}, 7}, {mapping.Withheld{}, 3}, {mapping.TargetChange{}, 6},
		{state.Record{}, 8}, {state.TargetRecord{}, 5},
	} {
		if n := reflect.TypeOf(tc.v).NumField(); n != tc.fields {
			t.Errorf("%T has %d fields, the spill codec (spill.go) writes %d: teach it the new ones", tc.v, n, tc.fields)
		}
	}
}

// TestSpillCodecRoundTrip: a user with every field set comes back from
// the file as it went in (nil and empty kept apart, times by instant and
// offset), but for a write error, of which only the text is kept.
func TestSpillCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 8, 30, 0, 5, time.FixedZone("", 3600))
	u := &UserPlan{Anchor: "a\x00b", Source: "ad", DN: "cn=é", Name: "n", Departed: true, OutOfScope: true,
		Accepted: []CertInfo{{Subject: "CN=x", Serial: "01", SHA256: "ab", NotBefore: at, NotAfter: at.Add(time.Hour), Attributes: []string{"userCertificate"}, Warnings: []string{}, SID: "S-1"}},
		Rejected: []mapping.Rejection{{Attribute: "a", Subject: "s", Serial: "1", SHA256: "h", Code: "expired", Reason: "r", NotBefore: at}},
		Withheld: []mapping.Withheld{{Attribute: "a", SHA256: "h", Reason: "r"}},
		Values:   []ValueInfo{{Attribute: "a", SHA256: "h", PKCS7: true, Certificates: []string{"c"}}},
		Targets: []*TargetPlan{{Target: cloudsink.TargetCertificateUserIDs, CloudID: "id", CloudName: "upn", Desired: []string{"d"},
			Change:  mapping.TargetChange{Add: []string{"a"}, Remove: []string{}, Final: []string{"f"}, Owned: []string{"o"}, Unowned: []string{"u"}, Dropped: []string{"x"}},
			Problem: "p", Unmatched: true, Skipped: true, Applied: true, Err: errors.New("boom"), Adopted: []string{"ad"}, Warning: "w",
			Certificates: []CertVerdict{{Subject: "s", Serial: "1", SHA256: "h", Verdict: VerdictUsed, Reason: "r", PolicyRejected: true}},
			limit:        10, adopt: true, retry: true, gone: true}},
		Problem: "problem",
		record: state.Record{Anchor: "a", Source: "ad", DN: "dn", Name: "n", Problem: "p", ProblemAt: at, UpdatedAt: at.UTC(),
			Targets: map[string]state.TargetRecord{"t1": {CloudID: "c", Values: []string{"v"}, Pending: []string{}, GoneSince: at}, "t0": {}}},
		hasRecord: true, reclaim: [][]string{nil, {"r"}}, accepted: 3, expiring: -1, matchKeys: []string{"m"}, lookup: true,
		mark: &state.Settled{Inputs: [32]byte{1, 2}, Until: at, NotAfter: []time.Time{at, {}}},
	}
	f := newFixture(t)
	a := f.agent()
	b, err := encodeUser(nil, u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.decodeUser(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Targets[0].Describe("v") == "" || got.Targets[0].Err.Error() != "boom" {
		t.Fatalf("target came back without its display or its error: %+v", got.Targets[0])
	}
	got.Targets[0].show, got.Targets[0].Err = nil, u.Targets[0].Err
	if !reflect.DeepEqual(got, u) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, u)
	}
	for i := range b {
		if _, err := a.decodeUser(b[:i]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", i, len(b))
		}
	}
}

// TestStreamedPlanMatchesHeldPlan runs the same passes over a directory
// of a few chunks twice, once holding the plan in memory and once
// streaming it through the temporary file: the plans, what is written to
// the cloud and the state must be the same, and the streamed plan must
// never hold more than about a chunk of users.
func TestStreamedPlanMatchesHeldPlan(t *testing.T) {
	if testing.Short() {
		t.Skip("issues a few thousand certificates")
	}
	n := 2*cloudChunk + 300
	start := time.Now()
	ca, err := pkitest.NewRootCA("Stream Test CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) []byte {
		c, _, err := ca.Issue(pkitest.LeafOptions{CommonName: cn})
		if err != nil {
			t.Fatal(err)
		}
		return c.Raw
	}
	var cloud []graphtest.User
	var users []mapping.SourceUser
	for i := range n {
		// Read in an order far from the report's (by name).
		mail := fmt.Sprintf("u%05d@x.test", (i*7919)%n)
		cloud = append(cloud, graphtest.User{ID: fmt.Sprintf("id-%05d", i), Mail: mail, UserPrincipalName: mail})
		users = append(users, mapping.SourceUser{Anchor: fmt.Sprintf("anchor-%05d", i), DN: "uid=" + mail, Attributes: map[string]string{"mail": mail},
			Values: []mapping.RawValue{{Attribute: mapping.AttrUserCertificate, Data: issue(mail)}}})
	}
	// Two directory users match one account, in different chunks.
	users[n-5].Attributes["mail"] = users[10].Attr("mail")
	// One certificate on two users, in different chunks: its value may sit
	// on one account only.
	shared := issue("shared")
	users[7].Values = append(users[7].Values, mapping.RawValue{Attribute: mapping.AttrUserCertificate, Data: shared})
	users[cloudChunk+7].Values = append(users[cloudChunk+7].Values, mapping.RawValue{Attribute: mapping.AttrUserCertificate, Data: shared})
	// No account for one user; another leaves the directory after the
	// first pass.
	users[3].Attributes["mail"] = "nobody@x.test"

	type outcome struct {
		plans  []string
		stats  []Stats
		guards []Guard
		state  []state.Record
		cloud  []graphtest.User
	}
	// collide: every hash of the plan index is equal, so every user is a
	// suspect, read back and compared: what a hash collision does.
	run := func(streamed, collide bool) (outcome, []*Plan) {
		f := newFixture(t, cloud...)
		f.ca = ca
		f.now = func() time.Time { return start }
		f.src.users = slices.Clone(users)
		var o outcome
		var plans []*Plan
		pass := func() {
			a := f.agent()
			// Its values may sit on one account only, as AD's
			// altSecurityIdentities'.
			a.attrs[0].unique = true
			if !streamed {
				a.spillAfter = 1 << 30
			}
			if collide {
				// And a small index run: the index goes to its file.
				a.indexMask, a.indexRun = 0, 300
			}
			p, err := a.Plan(context.Background(), PlanOptions{Reconcile: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Apply(context.Background(), p, 1); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(slices.Collect(p.Users()))
			if err != nil || p.UsersErr() != nil {
				t.Fatal(err, p.UsersErr())
			}
			o.plans = append(o.plans, string(b))
			o.stats, o.guards = append(o.stats, p.Stats), append(o.guards, p.Guard)
			plans = append(plans, p)
		}
		pass()
		f.src.users = slices.Delete(f.src.users, 20, 21)
		pass()
		err := f.store.ForEach(func(r state.Record) error {
			r.UpdatedAt = time.Time{}
			o.state = append(o.state, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		o.cloud = f.graph.Users()
		return o, plans
	}
	held, _ := run(false, false)
	streamed, plans := run(true, false)
	collided, _ := run(true, true)
	if !reflect.DeepEqual(held, collided) {
		t.Error("a plan whose index hashes all collide differs from the plan held in memory")
	}
	if held.stats[0].UsersChanged < n-10 || held.stats[0].UsersFailed != 4 || held.stats[0].UsersUnmatched != 1 || held.stats[1].UsersRemoving != 1 {
		t.Fatalf("the passes are not what the test means them to be: %+v", held.stats)
	}
	if !strings.Contains(held.plans[0], "match the same cloud user") || !strings.Contains(held.plans[0], "is wanted for 2 users") {
		t.Fatal("the first pass reports no conflict or no duplicate")
	}
	for i := range held.plans {
		if held.plans[i] != streamed.plans[i] {
			t.Errorf("pass %d: the streamed plan differs from the held one", i+1)
		}
	}
	if !reflect.DeepEqual(held.stats, streamed.stats) || !reflect.DeepEqual(held.guards, streamed.guards) {
		t.Errorf("stats or guard differ:\nheld     %+v %+v\nstreamed %+v %+v", held.stats, held.guards, streamed.stats, streamed.guards)
	}
	if !reflect.DeepEqual(held.state, streamed.state) {
		t.Errorf("the state files differ: %d and %d records", len(held.state), len(streamed.state))
		for i := range min(len(held.state), len(streamed.state)) {
			if !reflect.DeepEqual(held.state[i], streamed.state[i]) {
				t.Fatalf("first difference:\nheld     %+v\nstreamed %+v", held.state[i], streamed.state[i])
			}
		}
	}
	if !reflect.DeepEqual(held.cloud, streamed.cloud) {
		t.Error("the cloud differs")
	}
	for i, p := range plans {
		if !p.users.onFile() || len(p.users.mem) != 0 {
			t.Errorf("pass %d: the streamed plan kept its users in memory", i+1)
		}
		// A chunk being looked up or written, and the few users that
		// clash.
		if p.held > 2*cloudChunk+4 {
			t.Errorf("pass %d: the plan held %d users at once, more than a chunk", i+1, p.held)
		}
		_ = p.Close()
	}
}

// TestPlanIndexIsCompact: what a plan keeps of each user beyond its chunk
// is a run of index entries at most, the rest on file; the suspects come
// out the same either way.
func TestPlanIndexIsCompact(t *testing.T) {
	f := newFixture(t)
	a := f.agent()
	a.attrs[0].unique = true
	const n, run = 1000, 100
	index := func(run int) *planIndex {
		a.indexRun = run
		ix := a.newPlanIndex()
		t.Cleanup(func() { _ = ix.close() })
		ix.noClaims = true
		for i := range n {
			// Users 10 and 700 resolve to one account; 20 and 900 hold
			// one value.
			acct, value := i, i
			switch i {
			case 700:
				acct = 10
			case 900:
				value = 20
			}
			up := &UserPlan{Targets: []*TargetPlan{{Target: a.attrs[0].name, CloudID: fmt.Sprintf("id-%d", acct),
				Change: mapping.TargetChange{Add: []string{fmt.Sprintf("X509:<SKI>%040d", value)}}}}}
			if err := ix.note(a, up, n-1-i, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := ix.seal(); err != nil {
			t.Fatal(err)
		}
		return ix
	}
	held, spilled := index(0), index(run)
	if held.f != nil || spilled.f == nil || len(spilled.runs) != 2*n/run {
		t.Fatalf("file: %v held, %v spilled with %d runs; want none, one with %d runs", held.f != nil, spilled.f != nil, len(spilled.runs), 2*n/run)
	}
	if b := spilled.heldBytes(); b > (run+4)*16 {
		t.Fatalf("the spilled index holds %d bytes for %d users", b, n)
	}
	for list, want := range map[string][2]uint32{"accounts": {10, 700}, "values": {20, 900}} {
		for _, ix := range []*planIndex{held, spilled} {
			got := ix.accountSuspects(0)
			if list == "values" {
				got = ix.valueSuspects(0)
			}
			if len(got) != 1 || len(got[0]) != 2 || got[0][0].seq != want[0] || got[0][1].seq != want[1] || got[0][0].pos != n-1-want[0] {
				t.Fatalf("%s (on file %v): suspects %+v, want the users read %d and %d", list, ix.f != nil, got, want[0], want[1])
			}
		}
	}
}

// TestSpillReadsAnyUser: users read back one at a time or in ranges come
// back in place, whatever their position against the file's marks (one
// every markEvery users).
func TestSpillReadsAnyUser(t *testing.T) {
	f := newFixture(t)
	a := f.agent()
	a.spillAfter = 3
	s := a.newSpill()
	defer s.close()
	n := 3*markEvery + 5
	for i := range 4 * markEvery {
		// Names of different lengths, so users take different room.
		if err := s.put(&UserPlan{Anchor: fmt.Sprint(i), Name: strings.Repeat("x", i%7)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if !s.onFile() || s.len() != 4*markEvery || len(s.marks) != 4 {
		t.Fatalf("on file %v, %d users, %d marks; want a file, %d users, 4 marks", s.onFile(), s.len(), len(s.marks), 4*markEvery)
	}
	for i := range n {
		up, err := s.get(i)
		if err != nil || up.Anchor != fmt.Sprint(i) {
			t.Fatalf("get(%d) = %v, %v", i, up, err)
		}
	}
	for _, r := range [][2]int{{0, n}, {1, 2}, {markEvery - 1, markEvery + 1}, {2*markEvery + 3, n}, {5, 5}} {
		i := r[0]
		for up, err := range s.scan(r[0], r[1]) {
			if err != nil || up.Anchor != fmt.Sprint(i) {
				t.Fatalf("scan(%d, %d) at %d: %v, %v", r[0], r[1], i, up, err)
			}
			i++
		}
		if i != r[1] {
			t.Fatalf("scan(%d, %d) stopped at %d", r[0], r[1], i)
		}
	}
	if _, err := s.get(4 * markEvery); err == nil {
		t.Fatalf("get(%d) of %d users did not fail", 4*markEvery, 4*markEvery)
	}
}

// heldBytes is what the index holds in memory.
func (ix *planIndex) heldBytes() int {
	n := len(ix.claims) + cap(ix.held)
	for _, runs := range ix.suspectsOf {
		for _, r := range runs {
			n += len(r)
		}
	}
	return n * int(unsafe.Sizeof(ixEntry{}))
}
