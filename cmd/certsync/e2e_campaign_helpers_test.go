package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	bolt "go.etcd.io/bbolt"

	"github.com/certsync/certsync/cloudsink/faulttest"
)

// The campaigns (issue 9) run in short form in the test command; with
// CERTSYNC_CAMPAIGN=full they run at the scale the issue asks for and log
// their figures (go test -v -run Campaign ./cmd/certsync).
const campaignEnv = "CERTSYNC_CAMPAIGN"

// campaignScale is short in the ordinary test run and full when
// CERTSYNC_CAMPAIGN=full.
func campaignScale(short, full int) int {
	if os.Getenv(campaignEnv) == "full" {
		return full
	}
	return short
}

// campaignSeed is CERTSYNC_CAMPAIGN_SEED, or the clock; the test logs it
// so a failing run can be repeated.
func campaignSeed(t testing.TB) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(campaignEnv + "_SEED"); s != "" {
		if _, err := fmt.Sscan(s, &seed); err != nil {
			t.Fatalf("%s_SEED=%q: %v", campaignEnv, s, err)
		}
	}
	t.Logf("seed %d (repeat with %s_SEED=%d)", seed, campaignEnv, seed)
	return seed
}

// campaignPeople are n users, each with one certificate, a cloud account
// and a mailbox; every seventh has a value an admin added by hand.
func campaignPeople(n int) []person {
	people := make([]person, n)
	for i := range people {
		people[i] = person{uid: fmt.Sprintf("c%05d", i), certs: 1, inCloud: true, mailbox: true}
		if i%7 == 0 {
			people[i].handID = fmt.Sprintf("X509:<PN>c%05d@example.test", i)
		}
	}
	return people
}

// behindFront puts a faulttest front before the world's Graph and
// Exchange emulators and points the configuration at it (the authority
// stays the emulator's: tokens are not the storm's subject).
func (w *world) behindFront(opts faulttest.Options) *faulttest.Front {
	w.t.Helper()
	f, err := faulttest.Serve(w.graph, w.graph.URL(), opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = f.Close() })
	w.replaceInConfig(fmt.Sprintf("graphEndpoint: %q", w.graph.URL()), fmt.Sprintf("graphEndpoint: %q", f.URL()))
	if w.exo != nil {
		w.replaceInConfig(fmt.Sprintf("endpoint: \"%s\"}", w.graph.URL()), fmt.Sprintf("endpoint: \"%s\"}", f.URL()))
	}
	if err := os.WriteFile(filepath.Join(w.dir, "graph-ca.pem"), append(w.graph.CAPEM(), f.CAPEM()...), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return f
}

// expectedCloud is what the cloud must hold for the directory as the test
// wrote it: per Graph user its hand value then the bindings of its
// certificates, per mailbox the certificates themselves (base64).
func (w *world) expectedCloud(people []person) (graph, boxes map[string][]string) {
	w.t.Helper()
	graph, boxes = map[string][]string{}, map[string][]string{}
	for _, p := range people {
		var want []string
		if p.handID != "" {
			want = append(want, p.handID)
		}
		graph[p.uid] = append(want, skiValues(w.t, w.ldapCert[p.uid]...)...)
		if p.mailbox {
			boxes[p.uid] = []string{}
			for _, c := range w.ldapCert[p.uid] {
				boxes[p.uid] = append(boxes[p.uid], base64.StdEncoding.EncodeToString(c))
			}
		}
	}
	return graph, boxes
}

// cloudDiff compares the cloud with expectedCloud's answer and returns one
// line per difference and the number of expected values missing.
func (w *world) cloudDiff(graph, boxes map[string][]string) (diffs []string, lost int) {
	w.t.Helper()
	for uid, want := range graph {
		got := w.cloudValues(uid)
		if !sameSet(got, want) {
			diffs = append(diffs, fmt.Sprintf("%s certificateUserIds %v, want %v", uid, got, want))
		}
		lost += missing(got, want)
	}
	for uid, want := range boxes {
		got, _ := w.mailbox(uid)
		if !sameSet(got, want) {
			diffs = append(diffs, fmt.Sprintf("%s UserCertificate %d values, want %d", uid, len(got), len(want)))
		}
		lost += missing(got, want)
	}
	return diffs, lost
}

func missing(got, want []string) int {
	n := 0
	for _, v := range want {
		if !slices.Contains(got, v) {
			n++
		}
	}
	return n
}

// writeAudit replays the writes the emulators applied, in order, from the
// cloud's first state: a value added to an account that already held it
// before (added twice), or a write that set a collection to exactly what
// it held (a redundant write), is something written twice.
type writeAudit struct {
	twice     []string // account/attribute/value added more than once
	redundant int
	writes    int
}

func auditWrites(initial map[string][]string, writes []faulttest.Write) writeAudit {
	var a writeAudit
	held := map[string][]string{}
	for k, v := range initial {
		held[k] = slices.Clone(v)
	}
	added := map[string]int{}
	for _, wr := range writes {
		a.writes++
		key := wr.Service + "/" + wr.Account + "/" + wr.Attribute
		before := held[key]
		if sameSet(before, wr.Values) {
			a.redundant++
		}
		for _, v := range wr.Values {
			if !slices.Contains(before, v) {
				added[key+"/"+v]++
				if added[key+"/"+v] == 2 {
					a.twice = append(a.twice, key+"/"+shortValue(v))
				}
			}
		}
		held[key] = slices.Clone(wr.Values)
	}
	return a
}

func shortValue(v string) string {
	if len(v) > 40 {
		return v[:40] + "…"
	}
	return v
}

// initialWrites is the cloud's state before the first write, keyed as
// auditWrites keys it.
func (w *world) initialWrites(people []person) map[string][]string {
	out := map[string][]string{}
	for _, p := range people {
		if p.handID != "" {
			out["graph/"+w.cloudIDs[p.uid]+"/certificateUserIds"] = []string{p.handID}
		}
	}
	return out
}

// checkStateFile opens the state file read-only and runs bbolt's own
// consistency check over it.
func (w *world) checkStateFile() error {
	path := filepath.Join(w.dir, "state", "state.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt check of %s: %s", path, strings.Join(errs, "; "))
		}
		return nil
	})
}

// withdrawAll removes every certificate from the directory and runs passes
// allowed to delete (at most maxPasses, until one ends clean): certsync
// must take back every value it ever published (proof it still knows them
// as its own) and leave the hand values. It returns what differs from
// that.
func (w *world) withdrawAll(people []person, maxPasses int) []string {
	w.t.Helper()
	conn := w.slapd.Admin(w.t)
	stripped := 0 // the bound --allow-deletes takes
	for _, p := range people {
		if len(w.ldapCert[p.uid]) == 0 {
			continue
		}
		stripped++
		req := ldapModify(p.uid)
		req.Delete("userCertificate;binary", nil)
		if err := conn.Modify(req); err != nil {
			w.t.Fatalf("removing %s's certificates: %v", p.uid, err)
		}
		w.ldapCert[p.uid] = nil
	}
	for pass := 1; ; pass++ {
		code, out, errOut := w.run("sync", fmt.Sprintf("--allow-deletes=%d", stripped), "--output", "json")
		if code == 0 {
			break
		}
		if code != 1 || pass == maxPasses {
			w.t.Fatalf("withdrawing pass %d: exit %d\n%s\n%s", pass, code, campaignTail(out), campaignTail(errOut))
		}
	}
	graph, boxes := w.expectedCloud(people)
	diffs, _ := w.cloudDiff(graph, boxes)
	return diffs
}

// campaignTail is the end of a long output, for failure messages.
func campaignTail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

func ldapModify(uid string) *ldap.ModifyRequest {
	return ldap.NewModifyRequest("uid="+uid+",ou=people,dc=example,dc=test", nil)
}
