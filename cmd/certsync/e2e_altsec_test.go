package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// These tests run the real binary against the shared Samba DC with the
// altSecurityIdentities target alone: no cloud section, no credential.

const altsec = "ad.altSecurityIdentities"

// writeADOnlyConfig writes a configuration whose only target is
// altSecurityIdentities; bind "" binds as the domain's administrator.
func (w *adWorld) writeADOnlyConfig(bind, policyKeys string) {
	w.t.Helper()
	if bind == "" {
		bind = fmt.Sprintf(`{method: simple, username: "%s", passwordFile: ldap-pw}`, w.dc.AdminUser)
	}
	cfg := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "(&(objectCategory=person)(objectClass=user)(department=%s))"
  bind: %s
  tls: {caFile: ldap-ca.pem, serverName: %s}
  altSecurityIdentities: {enabled: true}
policy:
  issuingCAFile: issuing.pem%s
state: {path: state/state.db}
log: {level: warn, format: json}
`, w.dc.URL, w.dc.BaseDN, w.dept, bind, w.dc.ServerName, policyKeys)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// issue makes a certificate of the world's issuing CA for name.
func (w *adWorld) issue(name string, o pkitest.LeafOptions) []byte {
	w.t.Helper()
	o.CommonName, o.Email = name, name+"@"+w.mailDomain
	c, _, err := w.issuing.Issue(o)
	if err != nil {
		w.t.Fatal(err)
	}
	return c.Raw
}

func (w *adWorld) altsec(name string) []string {
	w.t.Helper()
	return w.dc.Values(w.t, w.dns[name], ldapsrc.AttrAltSecurityIdentities)
}

// certutilMapping is the KB5014754 issuer+serial mapping of der as an
// admin derives it from certutil's display of the certificate (made here
// from openssl's, which shows the issuer the same way): the issuer shown
// leaf-first with ", " becomes RDNs in encoding order joined by ",", and
// the serial's bytes are written last first.
func certutilMapping(t *testing.T, der []byte) string {
	t.Helper()
	cmd := exec.Command("openssl", "x509", "-inform", "DER", "-noout", "-issuer", "-serial", "-nameopt", "RFC2253")
	cmd.Stdin = strings.NewReader(string(der))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	var issuer, serial string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v, ok := strings.CutPrefix(line, "issuer="); ok {
			issuer = v
		}
		if v, ok := strings.CutPrefix(line, "serial="); ok {
			serial = v
		}
	}
	rdns := strings.Split(issuer, ",")
	slices.Reverse(rdns)
	// certutil shows the INTEGER's content bytes, with the 00 that keeps a
	// serial whose top bit is set positive; openssl leaves it out.
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	if strings.IndexByte("89ABCDEFabcdef", serial[0]) >= 0 {
		serial = "00" + serial
	}
	var rev strings.Builder
	for i := len(serial); i >= 2; i -= 2 {
		rev.WriteString(strings.ToLower(serial[i-2 : i]))
	}
	return "X509:<I>" + strings.Join(rdns, ",") + "<SR>" + rev.String()
}

func TestADAltSecurityIdentities(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"ann", 0, 0}, {"ben", 1, 0}, {"cat", 0, 0}, {"fay", 0, 0}, {"gus", 0, 0}, {"hal", 0, 0}, {"ivy", 0, 0}, {"jay", 0, 0}, {"lee", 0, 0}}, "", "")
	sid := func(name string) string {
		s, err := ldapsrc.FormatSID(dc.RawValue(t, w.dns[name], "objectSid"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// ann: KB5014754's own example serial (certutil shows
	// 2b0000000011ac0000000012), and an admin's Kerberos and weak mappings.
	kbSerial, _ := new(big.Int).SetString("2b0000000011ac0000000012", 16)
	ann := w.issue("ann", pkitest.LeafOptions{Serial: kbSerial})
	dc.SetCertificates(t, w.dns["ann"], "userCertificate", [][]byte{ann})
	admin := []string{"Kerberos:ann@" + dc.Realm, "X509:<I>O=certsync test,CN=AD E2E Issuing CA<S>O=certsync test,CN=ann"}
	dc.SetValues(t, w.dns["ann"], ldapsrc.AttrAltSecurityIdentities, admin)
	// cat: a certificate that expires during the test.
	catExpires := time.Now().Add(40 * time.Second)
	cat := w.issue("cat", pkitest.LeafOptions{NotBefore: time.Now().Add(-time.Hour), NotAfter: catExpires})
	dc.SetCertificates(t, w.dns["cat"], "userCertificate", [][]byte{cat})
	// fay: six logon certificates, one more than maxValues.
	var fay [][]byte
	for i := range 6 {
		fay = append(fay, w.issue("fay", pkitest.LeafOptions{NotBefore: time.Now().Add(-time.Duration(i+1) * time.Hour)}))
	}
	dc.SetCertificates(t, w.dns["fay"], "userCertificate", fay)
	// gus and hal: one certificate on both.
	shared := w.issue("gus", pkitest.LeafOptions{})
	dc.SetCertificates(t, w.dns["gus"], "userCertificate", [][]byte{shared})
	dc.SetCertificates(t, w.dns["hal"], "userCertificate", [][]byte{shared})
	// ivy: a certificate AD CS bound to ann's SID; jay: one bound to his
	// own, which needs no mapping.
	ivy := w.issue("ivy", pkitest.LeafOptions{Extensions: []pkix.Extension{pkitest.SIDExtension(sid("ann"))}})
	dc.SetCertificates(t, w.dns["ivy"], "userCertificate", [][]byte{ivy})
	jay := w.issue("jay", pkitest.LeafOptions{Extensions: []pkix.Extension{pkitest.SIDExtension(sid("jay"))}})
	dc.SetCertificates(t, w.dns["jay"], "userCertificate", [][]byte{jay})
	// lee: his mapping already sits on kay, an entry outside the filter.
	lee := w.issue("lee", pkitest.LeafOptions{})
	dc.SetCertificates(t, w.dns["lee"], "userCertificate", [][]byte{lee})
	kay, _ := dc.AddUser(t, ldaptest.SambaUser{Name: w.dept + "-kay"})
	dc.SetValues(t, kay, ldapsrc.AttrAltSecurityIdentities, []string{certutilMapping(t, lee)})
	w.writeADOnlyConfig("", "\n  checkRevocation: true")

	// The dry run writes nothing; the duplicates make it exit 1.
	name := func(n string) string { return n + "@" + w.dept + ".test" }
	r := w.syncJSON(1, "--dry-run")
	if got := w.altsec("ann"); !slices.Equal(got, admin) {
		t.Fatalf("dry run wrote: ann has %v", got)
	}
	if l, _ := userByName(r, name("lee")); !strings.Contains(targetOf(l, altsec).Problem, "already held by "+kay) {
		t.Fatalf("dry run for lee: %+v; want his mapping refused, naming %s", targetOf(l, altsec), kay)
	}
	r = w.syncJSON(1)
	user := func(r jsonReport, n string) jsonUser {
		t.Helper()
		u, ok := userByName(r, name(n))
		if !ok {
			t.Fatalf("%s is not in the report", n)
		}
		return u
	}

	t.Run("exact format, admin values kept and flagged", func(t *testing.T) {
		want := certutilMapping(t, ann)
		if want != "X509:<I>O=certsync test,CN=AD E2E Issuing CA<SR>1200000000ac11000000002b" {
			t.Fatalf("certutil-style mapping %q", want)
		}
		if got := w.altsec("ann"); !slices.Equal(got, append(slices.Clone(admin), want)) {
			t.Fatalf("ann's altSecurityIdentities: %q, want the admin's two values and %q", got, want)
		}
		at := targetOf(user(r, "ann"), altsec)
		if at.Status != "applied" || !slices.Equal(at.Add, []string{want}) || !slices.Equal(at.Unowned, admin) {
			t.Fatalf("ann's report: %+v", at)
		}
		code, out, _ := w.run("sync", "--dry-run", "--output", "table", "--user", name("ann"))
		if code != 0 || !strings.Contains(out, "WEAK mapping") || !strings.Contains(out, "Kerberos principal mapping") {
			t.Fatalf("table for ann (exit %d) does not flag the weak and Kerberos values:\n%s", code, out)
		}
	})
	t.Run("a sixth value is refused and reported", func(t *testing.T) {
		at := targetOf(user(r, "fay"), altsec)
		if got := w.altsec("fay"); len(got) != 5 || len(at.Dropped) != 1 || len(at.Add) != 5 {
			t.Fatalf("fay holds %d values, report %+v; want 5 written and 1 dropped", len(got), at)
		}
	})
	t.Run("a certificate on two users is the one's it names (policy.identity)", func(t *testing.T) {
		if at := targetOf(user(r, "gus"), altsec); len(w.altsec("gus")) != 1 || at.Status != "applied" {
			t.Fatalf("gus: holds %v, report %+v; want his certificate's mapping", w.altsec("gus"), at)
		}
		hal := user(r, "hal")
		if len(w.altsec("hal")) != 0 || len(hal.Rejected) != 1 || hal.Rejected[0].Code != mapping.RejectIdentityMismatch {
			t.Fatalf("hal: holds %v, rejected %+v; want gus's certificate rejected for him", w.altsec("hal"), hal.Rejected)
		}
	})
	t.Run("a value another entry holds is refused, naming it", func(t *testing.T) {
		at := targetOf(user(r, "lee"), altsec)
		if len(w.altsec("lee")) != 0 || !strings.Contains(at.Problem, "already held by "+kay) || len(dc.Values(t, kay, ldapsrc.AttrAltSecurityIdentities)) != 1 {
			t.Fatalf("lee holds %v, report %+v", w.altsec("lee"), at)
		}
	})
	t.Run("SID extension", func(t *testing.T) {
		iv := user(r, "ivy")
		if len(iv.Rejected) != 1 || iv.Rejected[0].Code != "sid-mismatch" || !strings.Contains(iv.Rejected[0].Reason, sid("ann")) || len(w.altsec("ivy")) != 0 {
			t.Fatalf("ivy: rejected %+v, holds %v; want her certificate rejected as ann's", iv.Rejected, w.altsec("ivy"))
		}
		if len(w.altsec("jay")) != 0 {
			t.Fatalf("jay holds %v; a certificate bound to his own SID needs no mapping", w.altsec("jay"))
		}
		// Reported: strongly mapped by its SID, in JSON and in the table.
		if j := user(w.syncJSON(0, "--dry-run", "--user", name("jay")), "jay"); len(j.Accepted) != 1 || j.Accepted[0].SID != sid("jay") {
			t.Fatalf("jay's accepted certificate: %+v; want its SID reported", j.Accepted)
		}
		if code, out, _ := w.run("sync", "--dry-run", "--output", "table", "--user", name("jay")); code != 0 || !strings.Contains(out, "SID extension "+sid("jay")+": this account's") {
			t.Fatalf("table for jay (exit %d):\n%s", code, out)
		}
	})
	t.Run("a second pass writes nothing", func(t *testing.T) {
		before := map[string][]string{}
		for n := range w.dns {
			before[n] = w.altsec(n)
		}
		r2 := w.syncJSON(1) // gus and hal still conflict
		if r2.Summary.UsersChanged != 0 || r2.Summary.ValuesAdded != 0 {
			t.Fatalf("second pass: %+v", r2.Summary)
		}
		for n := range w.dns {
			if !slices.Equal(before[n], w.altsec(n)) {
				t.Fatalf("%s changed: %v → %v", n, before[n], w.altsec(n))
			}
		}
	})

	t.Run("revoked and expired withdrawn behind the guard", func(t *testing.T) {
		benCert, err := x509.ParseCertificate(w.certOf("ben"))
		if err != nil {
			t.Fatal(err)
		}
		if len(w.altsec("ben")) != 1 || len(w.altsec("cat")) != 1 {
			t.Fatalf("before: ben %v, cat %v", w.altsec("ben"), w.altsec("cat"))
		}
		crl, err := w.issuing.CRL(pkitest.CRLOptions{Number: 2, Revoked: []pkitest.Revoked{{Serial: benCert.SerialNumber, Reason: pkitest.ReasonKeyCompromise}}})
		if err != nil {
			t.Fatal(err)
		}
		w.publishCRL(w.issuing.Cert.Subject.CommonName, crl)
		// cat's certificate expires 40 s after it was issued.
		time.Sleep(time.Until(catExpires.Add(time.Second)))
		code, out, _ := w.run("sync", "--dry-run", "--output", "table")
		if !strings.Contains(out, "stops the smart card") {
			t.Fatalf("dry run (exit %d) does not warn about logons:\n%s", code, out)
		}
		if r := w.syncJSON(1); !r.Guard.Tripped || len(w.altsec("ben")) != 1 {
			t.Fatalf("guard %+v; ben %v; want the pass refused", r.Guard, w.altsec("ben"))
		}
		r := w.syncJSON(1, "--allow-deletes=2")
		if len(w.altsec("ben")) != 0 || len(w.altsec("cat")) != 0 {
			t.Fatalf("after: ben %v, cat %v; want both withdrawn", w.altsec("ben"), w.altsec("cat"))
		}
		if b := user(r, "ben"); len(b.Rejected) != 1 || b.Rejected[0].Code != "revoked" {
			t.Fatalf("ben: %+v", b.Rejected)
		}
		if c := user(r, "cat"); len(c.Rejected) != 1 || c.Rejected[0].Code != "expired" {
			t.Fatalf("cat: %+v", c.Rejected)
		}
		if got := w.altsec("ann"); len(got) != 3 {
			t.Fatalf("ann lost values: %v", got)
		}
	})
}

// A service account that may read users but not write their
// altSecurityIdentities gets a clear per-user error; nothing changes.
func TestADAltSecurityIdentitiesWithoutWriteRight(t *testing.T) {
	dc := domainController(t)
	svc := fmt.Sprintf("ro%d", time.Now().UnixNano()%1_000_000_000)
	pw := "Ro-Passw0rd!" + svc
	dc.AddUser(t, ldaptest.SambaUser{Name: svc, Password: pw})
	w := newADWorld(t, dc, []adPerson{{"kim", 1, 0}}, "", "")
	admin := []string{"Kerberos:kim@" + dc.Realm}
	dc.SetValues(t, w.dns["kim"], ldapsrc.AttrAltSecurityIdentities, admin)
	if err := os.WriteFile(filepath.Join(w.dir, "ro-pw"), []byte(pw), 0o600); err != nil {
		t.Fatal(err)
	}
	w.writeADOnlyConfig(fmt.Sprintf(`{method: simple, username: "%s@%s", passwordFile: ro-pw}`, svc, strings.ToLower(dc.Realm)), "")
	r := w.syncJSON(1)
	at := targetOf(r.Users[0], altsec)
	if at.Status != "failed" || !strings.Contains(at.Problem, "nsufficient") || !strings.Contains(at.Problem, w.dns["kim"]) {
		t.Fatalf("report %+v; want a failed write naming the entry and the missing right", at)
	}
	if got := w.altsec("kim"); !slices.Equal(got, admin) {
		t.Fatalf("kim holds %v, want only the admin's %v", got, admin)
	}
	if code, out, _ := w.run("status", "--output", "table"); code != 0 || !strings.Contains(out, "nsufficient") {
		t.Fatalf("status (exit %d) does not show the failure:\n%s", code, out)
	}
	// doctor finds it before any pass: allowedAttributesEffective.
	code, out, _ := w.run("doctor")
	if code != 1 || !strings.Contains(out, "FAIL  directory  altSecurityIdentities") || !strings.Contains(out, "may not write altSecurityIdentities") || !strings.Contains(out, "dsacls") {
		t.Fatalf("doctor (exit %d) does not name the missing right:\n%s", code, out)
	}
	// The administrator may: the same check passes, and no cloud check
	// runs for a configuration without a cloud target.
	w.writeADOnlyConfig("", "")
	code, out, _ = w.run("doctor")
	if code != 0 || !strings.Contains(out, "OK    directory  altSecurityIdentities") || strings.Contains(out, "credential") {
		t.Fatalf("doctor as administrator (exit %d):\n%s", code, out)
	}
}

// OpenLDAP has no altSecurityIdentities: a source anchored by entryUUID
// cannot enable the target, and certsync says so when it loads the file.
func TestAltSecurityIdentitiesRefusedOnOpenLDAP(t *testing.T) {
	w := &world{t: t, dir: t.TempDir()}
	w.cfg = filepath.Join(w.dir, "agent.yaml")
	ca, err := pkitest.NewRootCA("refused")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": pkitest.CertPEM(ca.Cert), "pw": []byte("x")} {
		if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `source:
  url: ldaps://ldap.example.test
  baseDN: "dc=example,dc=test"
  anchorAttribute: entryUUID
  bind: {method: simple, username: "cn=certsync,dc=example,dc=test", passwordFile: pw}
  altSecurityIdentities: {enabled: true}
policy: {issuingCAFile: ca.pem}
state: {path: state.db}
`
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := w.run("sync", "--dry-run")
	if code != 1 || !strings.Contains(errOut, "needs Active Directory") || !strings.Contains(errOut, "source.altSecurityIdentities") {
		t.Fatalf("exit %d, stderr %s; want exit 1 naming the key and why", code, errOut)
	}
}

// The AD target judges logon fitness itself: a smart-card-logon-only
// certificate, which policy.extendedKeyUsages (emailProtection, clientAuth
// by default) refuses for Entra ID, is mapped in altSecurityIdentities; an
// S/MIME-only one goes to Entra ID and not to altSecurityIdentities. The
// report shows each target's verdict.
func TestADAltSecurityIdentitiesLogonEKU(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"sam", 0, 0}, {"eve", 0, 0}}, "", "")
	smartCardLogon := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	sam := w.issue("sam", pkitest.LeafOptions{UnknownEKUs: []asn1.ObjectIdentifier{smartCardLogon}})
	dc.SetCertificates(t, w.dns["sam"], "userCertificate", [][]byte{sam})
	eve := w.issue("eve", pkitest.LeafOptions{EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	dc.SetCertificates(t, w.dns["eve"], "userCertificate", [][]byte{eve})
	w.sourceKeys = []string{"altSecurityIdentities: {enabled: true}"}
	w.writeConfig(dc.URL)

	// The dry run's table says it in words, for both.
	code, out, _ := w.run("sync", "--dry-run", "--output", "table")
	if code != 0 || !regexp.MustCompile(altsec+`:\s+used CN=sam`).MatchString(out) || !strings.Contains(out, "fit for logon (smartCardLogon)") ||
		!regexp.MustCompile(altsec+`:\s+refused CN=eve`).MatchString(out) {
		t.Fatalf("table (exit %d) does not show the per-target verdicts:\n%s", code, out)
	}

	r := w.syncJSON(0)
	name := func(n string) string { return n + "@" + w.dept + ".test" }
	s, _ := userByName(r, name("sam"))
	if got, want := w.altsec("sam"), []string{certutilMapping(t, sam)}; !slices.Equal(got, want) {
		t.Fatalf("sam's altSecurityIdentities: %q, want %q", got, want)
	}
	if got := w.cloudValues("sam"); len(got) != 0 {
		t.Fatalf("sam in Entra ID: %q; policy.extendedKeyUsages refuses the smart card there", got)
	}
	if len(s.Rejected) != 1 || s.Rejected[0].Code != "eku" {
		t.Fatalf("sam's rejections: %+v; want the policy's EKU verdict", s.Rejected)
	}
	if c := targetOf(s, altsec).Certificates; len(c) != 1 || c[0].Verdict != "used" || !c[0].PolicyRejected || !strings.Contains(c[0].Reason, "smartCardLogon") {
		t.Fatalf("sam's altSecurityIdentities verdict: %+v", c)
	}
	e, _ := userByName(r, name("eve"))
	if got := w.altsec("eve"); len(got) != 0 {
		t.Fatalf("eve's altSecurityIdentities: %q; an S/MIME-only certificate is not fit for logon", got)
	}
	if got := w.cloudValues("eve"); len(got) != 1 {
		t.Fatalf("eve in Entra ID: %q; want her binding", got)
	}
	if c := targetOf(e, altsec).Certificates; len(c) != 1 || c[0].Verdict != "refused" || c[0].PolicyRejected || !strings.Contains(c[0].Reason, "not fit for logon") {
		t.Fatalf("eve's altSecurityIdentities verdict: %+v", c)
	}
}

// Turning the target off leaves what certsync wrote in place (a removed
// mapping stops a smart card) and reports it on every full pass, with the
// command that withdraws it; `sync --withdraw` then removes certsync's
// values, and only them, behind the deletion limit and after a dry run.
func TestADAltSecurityIdentitiesDisable(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"dan", 1, 0}, {"flo", 1, 0}}, "", "")
	admin := []string{"Kerberos:dan@" + dc.Realm}
	dc.SetValues(t, w.dns["dan"], ldapsrc.AttrAltSecurityIdentities, admin)
	w.sourceKeys = []string{"altSecurityIdentities: {enabled: true}"}
	w.writeConfig(dc.URL)
	w.syncJSON(0)
	mapped := map[string][]string{"dan": w.altsec("dan"), "flo": w.altsec("flo")}
	if len(mapped["dan"]) != 2 || len(mapped["flo"]) != 1 {
		t.Fatalf("first pass: %v", mapped)
	}
	graphBefore := w.cloudValues("flo")

	// Off: nothing is removed, and the pass says what stays and how to
	// withdraw it.
	w.sourceKeys = []string{"altSecurityIdentities: {enabled: false}"}
	w.writeConfig(dc.URL)
	r := w.syncJSON(0)
	for n, want := range mapped {
		if got := w.altsec(n); !slices.Equal(got, want) {
			t.Fatalf("after turning the target off, %s holds %q, want %q kept", n, got, want)
		}
	}
	if len(r.Orphaned) != 1 || r.Orphaned[0].Target != altsec || r.Orphaned[0].Users != 2 || !strings.Contains(r.Orphaned[0].Withdraw, "--withdraw "+altsec) {
		t.Fatalf("orphaned: %+v; want 2 users of %s with the withdraw command", r.Orphaned, altsec)
	}
	if code, out, _ := w.run("sync", "--output", "table"); code != 0 || !strings.Contains(out, "sync --withdraw "+altsec) {
		t.Fatalf("table (exit %d) does not say how to withdraw:\n%s", code, out)
	}

	// The dry run shows every removal and what it stops; the limit (10%
	// of 2 users) refuses the real pass until it is allowed.
	code, out, _ := w.run("sync", "--withdraw", altsec, "--dry-run", "--output", "table")
	if code != 1 || !strings.Contains(out, "- "+mapped["flo"][0]) || !strings.Contains(out, "stops the smart card") || !strings.Contains(out, "Deletion limit") {
		t.Fatalf("withdraw dry run (exit %d):\n%s", code, out)
	}
	if r := w.syncJSON(1, "--withdraw", altsec); !r.Guard.Tripped || len(w.altsec("flo")) != 1 {
		t.Fatalf("guard %+v, flo %q; want the withdrawal refused by the limit", r.Guard, w.altsec("flo"))
	}
	r = w.syncJSON(0, "--withdraw", altsec, "--allow-deletes=2")
	if got := w.altsec("flo"); len(got) != 0 {
		t.Fatalf("flo holds %q after the withdrawal", got)
	}
	if got := w.altsec("dan"); !slices.Equal(got, admin) {
		t.Fatalf("dan holds %q after the withdrawal, want only the admin's %q", got, admin)
	}
	if got := w.cloudValues("flo"); !slices.Equal(got, graphBefore) {
		t.Fatalf("Entra ID changed for flo: %q → %q", graphBefore, got)
	}
	// Nothing of the target is left to report, and a normal pass writes
	// nothing back.
	if r = w.syncJSON(0); len(r.Orphaned) != 0 || r.Summary.ValuesAdded != 0 || len(w.altsec("flo")) != 0 {
		t.Fatalf("after the withdrawal: orphaned %+v, summary %+v, flo %q", r.Orphaned, r.Summary, w.altsec("flo"))
	}
}
