package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
)

// Directory faults in the middle of a full read (issue 9): the connection
// cut in the middle of a search page by a proxy the test controls, and
// slapd restarted at the same moment. Users the read never reached must
// not look departed: the pass fails with a clear error and sends no
// cloud write at all; the next pass settles everything. (Lost read rights
// and unreadable anchors: e2e_sight_test.go.)
func TestDirectoryFaultsMidPageRemoveNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action func(w *world, p *ldaptest.Proxy) func()
	}{
		{"connection cut", func(_ *world, p *ldaptest.Proxy) func() { return p.Cut }},
		{"slapd restarted", func(w *world, _ *ldaptest.Proxy) func() {
			return func() {
				if err := w.slapd.Restart(); err != nil {
					w.t.Error(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var people []person
			for i := 0; i < 40; i++ {
				people = append(people, person{uid: fmt.Sprintf("d%02d", i), certs: 1, inCloud: true})
			}
			// No deletion limits: the guard must not be what saves the day.
			w := newWorld(t, people, "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n")
			proxy := ldaptest.StartProxy(t, strings.TrimPrefix(w.slapd.URL, "ldap://"))
			w.replaceInConfig("url: "+w.slapd.URL, "url: "+proxy.URL())
			w.syncJSON(0)
			full := proxy.Sent() // what one full pass reads, handshakes included
			before := w.cloudSnapshot()
			// Work for the pass to do: one user renews, one loses hers.
			renewed := w.leaf("d01", time.Now().Add(-time.Minute), false)
			w.modify("d01", func(m *ldap.ModifyRequest) { m.Replace("userCertificate;binary", []string{string(renewed)}) })
			w.modify("d02", func(m *ldap.ModifyRequest) { m.Delete("userCertificate;binary", nil) })

			w.graph.ResetRequests()
			proxy.Trigger(full/2, tc.action(w, proxy))
			code, out, errOut := w.run("sync", "--output", "json")
			if proxy.Fired() != 1 {
				t.Fatalf("the fault never fired (a pass reads %d bytes): the test proves nothing", full)
			}
			if code != 1 || !strings.Contains(errOut, "nothing will be changed") {
				t.Fatalf("a pass whose read was cut: exit %d, want 1 and a clear error\nstdout:\n%s\nstderr:\n%s", code, campaignTail(out), campaignTail(errOut))
			}
			t.Logf("%s after %d of %d bytes: %s", tc.name, full/2, full, lastLine(errOut))
			if n, _ := w.patches(); n != 0 {
				t.Fatalf("%d PATCH sent by a pass whose read was cut", n)
			}
			w.sameCloud("after the cut pass", before)

			// The next pass, uncut, does what there was to do.
			r := w.syncJSON(0)
			if r.Summary.ValuesAdded != 1 || r.Summary.ValuesRemoved != 2 {
				t.Fatalf("the pass after the fault: %+v", r.Summary)
			}
			if got := w.cloudValues("d01"); len(got) != 1 || got[0] != skiValues(t, renewed)[0] || len(w.cloudValues("d02")) != 0 {
				t.Fatalf("d01 %v, d02 %v", got, w.cloudValues("d02"))
			}
			w.sameCloud("after the next pass", before, "d01", "d02")
		})
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestADRestartedMidPageRemovesNothing restarts the Samba DC while
// certsync reads the middle of a page of users (once: a restart takes
// seconds). The pass fails with a clear error and writes nothing; the
// next one, against the DC back up, does the work.
func TestADRestartedMidPageRemovesNothing(t *testing.T) {
	dc := domainController(t)
	var people []adPerson
	for i := 0; i < 24; i++ {
		people = append(people, adPerson{fmt.Sprintf("r%02d", i), 1, 0})
	}
	w := newADWorld(t, dc, people, "", "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n")
	w.sourceKeys = []string{"pageSize: 5"}
	proxy := ldaptest.StartProxy(t, strings.TrimPrefix(dc.URL, "ldap://"))
	w.writeConfig(proxy.URL())
	w.syncJSON(0)
	full := proxy.Sent()
	before := w.cloudSnapshot()
	admin := dc.Admin(t)
	req := ldap.NewModifyRequest(w.dns["r03"], nil)
	req.Delete("userCertificate", nil)
	if err := admin.Modify(req); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()

	w.graph.ResetRequests()
	var restart time.Duration
	proxy.Trigger(full/2, func() {
		start := time.Now()
		if err := dc.Restart(); err != nil {
			t.Errorf("restarting samba: %v\n%s", err, dc.LogTail())
		}
		restart = time.Since(start)
	})
	code, out, errOut := w.run("sync", "--output", "json")
	if proxy.Fired() != 1 {
		t.Fatalf("the restart never fired (a pass reads %d bytes): the test proves nothing", full)
	}
	if code != 1 || !strings.Contains(errOut, "nothing will be changed") {
		t.Fatalf("a pass whose DC restarted mid-read: exit %d, want 1 and a clear error\nstdout:\n%s\nstderr:\n%s", code, campaignTail(out), campaignTail(errOut))
	}
	t.Logf("samba restarted (in %s) after %d of %d bytes: %s", restart, full/2, full, lastLine(errOut))
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("%d PATCH sent by a pass whose DC restarted mid-read", n)
	}
	w.sameCloud("after the restart pass", before)

	r := w.syncJSON(0)
	if r.Summary.ValuesRemoved != 1 || len(w.cloudValues("r03")) != 0 {
		t.Fatalf("the pass after the restart: %+v, r03 %v", r.Summary, w.cloudValues("r03"))
	}
	w.sameCloud("after the next pass", before, "r03")
}
