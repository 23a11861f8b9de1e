package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
)

// A directory read that cannot see what it must see removes nothing
// (High 1 of the security review): the service account losing read
// rights on the certificate attributes or on the anchor, on slapd (an
// ACL) and on Samba (a deny ACE), is a failed pass with a clear error and
// not a single cloud write. Unreadable anchors void the read; certificate
// attributes nobody in scope shows trip the deletion guard with the cause
// (whatever its limits), since only --allow-deletes can say that every
// certificate really left.

const readerDN = "cn=reader,dc=example,dc=test"

// withReader adds a service account cn=reader to the directory and
// slapd's access rules: deny names what reader may not read.
func withReader(deny string) worldOption {
	return func(s *worldSetup) {
		s.seedLDIF += "dn: " + readerDN + "\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: reader-secret\n\n"
		s.slapdAccess = []string{
			fmt.Sprintf(`attrs=%s by dn.exact="%s" none by * read`, deny, readerDN),
			"* by * read",
		}
	}
}

// bindAs makes the configuration bind as dn with password.
func (w *world) bindAs(dn, password string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, "reader-pw"), []byte(password), 0o600); err != nil {
		w.t.Fatal(err)
	}
	w.replaceInConfig(fmt.Sprintf(`username: "%s", passwordFile: ldap-pw`, w.slapd.AdminDN),
		fmt.Sprintf(`username: "%s", passwordFile: reader-pw`, dn))
}

func TestLostReadRightsRemoveNothing(t *testing.T) {
	for _, tc := range []struct {
		name, deny string
		want       string // in the error
	}{
		{"certificate attributes", "userCertificate,userSMIMECertificate", "no user in scope shows a certificate attribute to this account"},
		{"anchor", "entryUUID", "show no usable entryUUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No deletion limits: the guard's verdict on absence does not depend on them.
			w := newWorld(t, basicPeople(), "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n", withReader(tc.deny))
			w.syncJSON(0) // as the rootdn: everything published
			before := w.cloudSnapshot()
			w.bindAs(readerDN, "reader-secret")
			w.graph.ResetRequests()
			for _, args := range [][]string{{"sync"}, {"sync", "--reconcile"}, {"sync", "--incremental"}} {
				code, out, errOut := w.run(append(args, "--output", "json")...)
				if code != 1 || !strings.Contains(out+errOut, tc.want) {
					t.Fatalf("%v without read rights on %s: exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", args, tc.deny, code, tc.want, out, errOut)
				}
			}
			if n, _ := w.patches(); n != 0 {
				t.Fatalf("%d PATCH sent by passes that could not read %s", n, tc.deny)
			}
			w.sameCloud("after the passes without read rights", before)
		})
	}
}

func TestADLostReadRightsRemoveNothing(t *testing.T) {
	dc := domainController(t)
	svc := fmt.Sprintf("rd%d", time.Now().UnixNano()%1_000_000_000)
	const pw = "Reader-Passw0rd!"
	dc.AddUser(t, ldaptest.SambaUser{Name: svc, Password: pw})
	w := newADWorld(t, dc, []adPerson{{"kim", 1, 1}, {"lee", 1, 0}, {"max", 0, 0}}, "", "")
	w.syncJSON(0)
	before := w.cloudSnapshot()

	if err := os.WriteFile(filepath.Join(w.dir, "reader-pw"), []byte(pw), 0o600); err != nil {
		t.Fatal(err)
	}
	w.bindYML = fmt.Sprintf(`{method: simple, username: "%s@%s", passwordFile: reader-pw}`, svc, strings.ToLower(dc.Realm))
	w.writeConfig(dc.URL)
	w.syncJSON(0) // the reader sees what the admin sees: nothing to do
	var dns []string
	for _, dn := range w.dns {
		dns = append(dns, dn)
	}
	dc.DenyRead(t, svc, []string{"userCertificate", "userSMIMECertificate"}, dns...)
	w.graph.ResetRequests()
	code, out, errOut := w.run("sync", "--output", "json")
	if code != 1 || !strings.Contains(out+errOut, "no user in scope shows a certificate attribute to this account") {
		t.Fatalf("without read rights: exit %d, want 1 and the cause\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("%d PATCH sent by a pass that could not read the certificates", n)
	}
	w.sameCloud("after a pass without read rights", before)
}

// Most published users losing every certificate in one pass is what a
// lost read right looks like even when the account still sees some: the
// pass asks for --allow-deletes whatever the deletion limits allow.
func TestSuddenDropAsksForAllowDeletes(t *testing.T) {
	w := newWorld(t, basicPeople(), "safety: {maxDeletes: 100, maxDeletePercent: 100}\n")
	w.syncJSON(0)
	for _, uid := range []string{"alice", "bob"} {
		w.modify(uid, func(m *ldap.ModifyRequest) { m.Delete("userCertificate;binary", nil) })
	}
	w.graph.ResetRequests()
	r := w.syncJSON(1)
	if !r.Guard.Tripped || !strings.Contains(r.Guard.Reason, "2 of the 3 users certsync publishes for came back without any certificate") {
		t.Fatalf("guard: %+v; want it tripped by the sudden drop", r.Guard)
	}
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("%d PATCH sent by a refused plan", n)
	}
	r = w.syncJSON(0, "--allow-deletes=2")
	if r.Summary.UsersRemoving != 2 || len(w.cloudValues("alice")) != 0 {
		t.Fatalf("with --allow-deletes: %+v, alice %v", r.Summary, w.cloudValues("alice"))
	}
}
