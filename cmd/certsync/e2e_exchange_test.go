package main

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink"
)

// Exchange Online through the real binary: slapd, the Graph emulator and
// the Exchange emulator mounted on it, one azidentity credential for both.

func b64s(ders [][]byte) []string {
	var out []string
	for _, d := range ders {
		out = append(out, base64.StdEncoding.EncodeToString(d))
	}
	return out
}

func (w *world) mailbox(uid string) (userCert, smime []string) {
	w.t.Helper()
	m, ok := w.exo.Mailbox(w.boxIDs[uid])
	if !ok {
		w.t.Fatalf("no mailbox %s", uid)
	}
	return b64s(m.UserCertificate), b64s(m.UserSMimeCertificate)
}

// setMailboxCmdlets counts the Set-Mailbox calls Exchange received.
func (w *world) setMailboxCmdlets() (n int, identities []string) {
	for _, r := range w.exo.Requests() {
		if r.Cmdlet == "Set-Mailbox" {
			n++
			identities = append(identities, r.Identity)
		}
	}
	return n, identities
}

func userByName(r jsonReport, name string) (jsonUser, bool) {
	for _, u := range r.Users {
		if u.Name == name {
			return u, true
		}
	}
	return jsonUser{}, false
}

func targetOf(u jsonUser, target string) jsonTarget {
	for _, t := range u.Targets {
		if t.Target == target {
			return t
		}
	}
	return jsonTarget{}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// cutoverPeople are mailboxes as Entra Connect leaves them: amy's holds her
// current certificate and an old one no longer in the directory; bea's is
// empty; cal has nothing in the directory any more but an old certificate
// on his mailbox.
func cutoverPeople() []person {
	return []person{
		{uid: "amy", certs: 1, mailbox: true, boxCopies: true, boxOld: 1},
		{uid: "bea", certs: 1, smime: 1, mailbox: true},
		{uid: "cal", mailbox: true, boxOld: 1},
	}
}

// Without adoptExisting, what Entra Connect left stays: it is reported as
// not certsync's, and only the missing certificates are added.
func TestExchangeCutoverKeepsWhatItFinds(t *testing.T) {
	w := newWorld(t, cutoverPeople(), "", withExchange(""), withoutGraph)
	amyBefore, _ := w.mailbox("amy")

	r := w.syncJSON(0, "--dry-run", "--reconcile")
	if w.exo.Writes() != 0 {
		t.Fatalf("dry run wrote %d times to Exchange", w.exo.Writes())
	}
	// amy's mailbox already holds what she should have, and an old
	// certificate certsync did not publish: shown, kept, nothing written.
	amy, ok := userByName(r, "amy@example.test")
	if !ok {
		t.Fatalf("amy, whose mailbox holds a certificate certsync did not publish, is not in the plan: %+v", r.Users)
	}
	if tp := targetOf(amy, cloudsink.TargetUserCertificate); len(tp.Add)+len(tp.Remove)+len(tp.Adopted) != 0 || !sameSet(tp.Unowned, amyBefore) || tp.Status != statusUnchanged {
		t.Fatalf("amy's plan: %+v; want nothing to change and both values reported as not certsync's", tp)
	}
	bea, ok := userByName(r, "bea@example.test")
	if !ok {
		t.Fatalf("bea is not in the plan: %+v", r.Users)
	}
	if tp := targetOf(bea, cloudsink.TargetUserCertificate); !sameSet(tp.Add, b64s(w.ldapCert["bea"])) || tp.Status != statusPlanned {
		t.Fatalf("bea's UserCertificate plan: %+v", tp)
	}
	if tp := targetOf(bea, cloudsink.TargetUserSMimeCertificate); !sameSet(tp.Add, b64s(w.smime["bea"])) {
		t.Fatalf("bea's UserSMimeCertificate plan: %+v; want her Outlook certificate", tp)
	}
	// Without adoptExisting certsync wants nothing for cal and never
	// touches what is on his mailbox, so it does not look him up at all.
	if cal, ok := userByName(r, "cal@example.test"); ok {
		t.Fatalf("cal, for whom certsync wants nothing, is in the plan: %+v", cal)
	}

	w.syncJSON(0)
	if got, _ := w.mailbox("amy"); !sameSet(got, amyBefore) {
		t.Fatalf("amy's mailbox = %d values, want the %d Entra Connect left", len(got), len(amyBefore))
	}
	got, smime := w.mailbox("bea")
	if !sameSet(got, b64s(w.ldapCert["bea"])) || !sameSet(smime, b64s(w.smime["bea"])) {
		t.Fatalf("bea's mailbox: %d/%d values", len(got), len(smime))
	}
	if got, _ := w.mailbox("cal"); len(got) != 1 {
		t.Fatalf("cal's old certificate was removed without adoptExisting")
	}

	// Settled: the next pass asks Exchange nothing at all.
	w.exo.ResetRequests()
	w.syncJSON(0)
	if reqs := w.exo.Requests(); len(reqs) != 0 {
		t.Fatalf("second pass sent %d Exchange requests, want 0: %+v", len(reqs), reqs)
	}
}

// With adoptExisting, certsync takes over what it finds: it keeps what it
// would publish itself and removes the rest, behind the deletion guard.
func TestExchangeCutoverAdopts(t *testing.T) {
	w := newWorld(t, cutoverPeople(), "", withExchange("adoptExisting: true,"), withoutGraph)

	// Two users would lose values; with nobody in the state yet the
	// guard stops the plan, as it should at a cutover.
	r := w.syncJSON(1, "--dry-run", "--reconcile")
	if !r.Guard.Tripped || r.Guard.UsersRemoving != 2 {
		t.Fatalf("guard: %+v; want it tripped by 2 users", r.Guard)
	}
	amy, _ := userByName(r, "amy@example.test")
	tp := targetOf(amy, cloudsink.TargetUserCertificate)
	if len(tp.Adopted) != 2 || len(tp.Remove) != 1 || slices.Contains(tp.Remove, b64s(w.ldapCert["amy"])[0]) {
		t.Fatalf("amy's plan: adopted %d, remove %d; want both adopted and the old one removed", len(tp.Adopted), len(tp.Remove))
	}
	cal, _ := userByName(r, "cal@example.test")
	if tp := targetOf(cal, cloudsink.TargetUserCertificate); len(tp.Adopted) != 1 || len(tp.Remove) != 1 {
		t.Fatalf("cal's plan: %+v; want his old certificate adopted and removed", tp)
	}
	table := func() string {
		_, out, _ := w.run("sync", "--dry-run", "--reconcile", "--output", "table")
		return out
	}()
	if !strings.Contains(table, "adopted") {
		t.Fatalf("the table does not show adopted values:\n%s", table)
	}

	w.syncJSON(0, "--reconcile", "--allow-deletes=2")
	if got, _ := w.mailbox("amy"); !sameSet(got, b64s(w.ldapCert["amy"])) {
		t.Fatalf("amy's mailbox holds %d values, want only her current certificate", len(got))
	}
	if got, _ := w.mailbox("cal"); len(got) != 0 {
		t.Fatalf("cal's mailbox holds %d values, want none", len(got))
	}
	before := w.exo.Writes()
	w.syncJSON(0)
	if w.exo.Writes() != before {
		t.Fatal("the second sync wrote to Exchange")
	}
}

func TestExchangeFifteenNewest(t *testing.T) {
	w := newWorld(t, []person{{uid: "dan", certs: 20, mailbox: true}}, "", withExchange(""), withoutGraph)
	r := w.syncJSON(0)
	got, _ := w.mailbox("dan")
	// Certificates are issued newest first.
	if want := b64s(w.ldapCert["dan"][:15]); !sameSet(got, want) {
		t.Fatalf("dan's mailbox holds %d values, want the 15 newest", len(got))
	}
	dan, _ := userByName(r, "dan@example.test")
	over := 0
	for _, rj := range dan.Rejected {
		if rj.Code == "over-limit" {
			over++
		}
	}
	if over != 5 {
		t.Fatalf("dan: %d certificates reported over the limit, want 5", over)
	}
}

func TestExchangeSyncedOrMissingMailboxIsReportedNotWritten(t *testing.T) {
	w := newWorld(t, []person{{uid: "eli", certs: 1, mailbox: true, boxSynced: true}, {uid: "fay", certs: 1, mailbox: true}, {uid: "gus", certs: 1}}, "", withExchange(""), withoutGraph)
	for pass := 1; pass <= 2; pass++ {
		// Neither is a failure: the pass exits 0.
		r := w.syncJSON(0)
		gus, _ := userByName(r, "gus@example.test")
		if tp := targetOf(gus, cloudsink.TargetUserCertificate); tp.Status != statusSkipped || !strings.Contains(tp.Problem, "no mailbox") {
			t.Fatalf("pass %d: gus (no mailbox): %+v; want skipped, naming the missing mailbox", pass, tp)
		}
		if r.Summary.UsersUnmatched != 1 || r.Summary.UsersSkipped != 1 || r.Summary.UsersFailed != 0 {
			t.Fatalf("pass %d: %d unmatched, %d skipped, %d failed; want gus unmatched and eli skipped", pass, r.Summary.UsersUnmatched, r.Summary.UsersSkipped, r.Summary.UsersFailed)
		}
		eli, _ := userByName(r, "eli@example.test")
		tp := targetOf(eli, cloudsink.TargetUserCertificate)
		if tp.Status != statusSkipped || !strings.Contains(strings.ToLower(tp.Problem), "synced") {
			t.Fatalf("pass %d: eli's target %+v; want skipped as synced", pass, tp)
		}
		if n, ids := w.setMailboxCmdlets(); n != 1 || strings.Contains(strings.Join(ids, " "), "eli") {
			t.Fatalf("pass %d: Set-Mailbox calls %d %v; want only fay's, once", pass, n, ids)
		}
	}
	if got, _ := w.mailbox("fay"); len(got) != 1 {
		t.Fatal("fay was not published next to the synced mailbox")
	}
}

func TestExchangeThrottlingDelaysButLosesNothing(t *testing.T) {
	var people []person
	for _, uid := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		people = append(people, person{uid: uid, certs: 1, mailbox: true})
	}
	w := newWorld(t, people, "", withExchange(""), withoutGraph)
	w.exo.Throttle(8, time.Second)
	w.syncJSON(0)
	throttled := 0
	for _, r := range w.exo.Requests() {
		if r.Status == 429 {
			throttled++
		}
	}
	if throttled != 8 {
		t.Fatalf("%d requests were throttled, want 8", throttled)
	}
	for _, p := range people {
		if got, _ := w.mailbox(p.uid); !sameSet(got, b64s(w.ldapCert[p.uid])) {
			t.Fatalf("%s's mailbox holds %d values after the storm", p.uid, len(got))
		}
	}
}

// Both targets at once: certificate sign-in bindings in Entra ID and the
// S/MIME certificates on the mailbox, from one pass.
func TestGraphAndExchangeTogether(t *testing.T) {
	w := newWorld(t, []person{{uid: "gil", certs: 1, smime: 1, inCloud: true, mailbox: true}}, "", withExchange(""))
	w.syncJSON(0)
	if got := w.cloudValues("gil"); len(got) != 2 {
		t.Fatalf("gil's certificateUserIds = %v, want 2 bindings", got)
	}
	uc, sm := w.mailbox("gil")
	if !sameSet(uc, b64s(w.ldapCert["gil"])) || !sameSet(sm, b64s(w.smime["gil"])) {
		t.Fatalf("gil's mailbox: %d/%d values", len(uc), len(sm))
	}
	w.graph.ResetRequests()
	w.exo.ResetRequests()
	w.syncJSON(0)
	if len(w.graph.Requests())+len(w.exo.Requests()) != 0 {
		t.Fatal("a second pass over an unchanged directory called the cloud")
	}
}
