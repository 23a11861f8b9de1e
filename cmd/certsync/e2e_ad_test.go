package main

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// These tests run the real binary against a real Samba AD domain
// controller. Provisioning one takes seconds, so the package shares one;
// each test keeps to its own users by a department value in its filter.

var sharedDC struct {
	once sync.Once
	dc   *ldaptest.Samba
	dir  string
	err  error
}

// domainController returns the package's DC, provisioning it on first use.
// A DC that does not come up fails the test: it is never skipped.
func domainController(t testing.TB) *ldaptest.Samba {
	t.Helper()
	sharedDC.once.Do(func() {
		sharedDC.dir, sharedDC.err = os.MkdirTemp("", "certsync-e2e-dc-")
		if sharedDC.err == nil {
			sharedDC.dc, sharedDC.err = ldaptest.LaunchSamba(sharedDC.dir, ldaptest.SambaOptions{})
		}
	})
	if sharedDC.err != nil {
		t.Fatalf("Samba AD DC: %v", sharedDC.err)
	}
	return sharedDC.dc
}

func stopSharedDC() {
	if sharedDC.dc != nil {
		_ = sharedDC.dc.Stop()
	}
	if sharedDC.dir != "" {
		_ = os.RemoveAll(sharedDC.dir)
	}
}

// adWorld is one test's users on the shared DC, their cloud twins, and a
// configuration as an admin would write it for Active Directory: objectGUID
// anchor, matched to onPremisesImmutableId.
type adWorld struct {
	*world
	dc      *ldaptest.Samba
	dept    string
	dns     map[string]string   // name → DN
	guids   map[string][]byte   // name → objectGUID
	certs   map[string][][]byte // name → userCertificate values
	bindYML string
	extra   string
	// More keys of source, cloud and policy, e.g. "changeTracking:
	// dirsync", taken by the next writeConfig.
	sourceKeys, cloudKeys, policyKeys []string
}

type adPerson struct {
	name  string
	certs int
	smime int // certificates in userSMIMECertificate, as Outlook's PKCS#7
}

func newADWorld(t testing.TB, dc *ldaptest.Samba, people []adPerson, bind, extra string) *adWorld {
	t.Helper()
	w := &adWorld{world: &world{t: t, dir: t.TempDir(), cloudIDs: map[string]string{}}, dc: dc,
		dept: fmt.Sprintf("e2e-%d", time.Now().UnixNano()), dns: map[string]string{}, guids: map[string][]byte{}, certs: map[string][][]byte{}, bindYML: bind, extra: extra}
	w.mailDomain = w.dept + ".test"
	root, err := pkitest.NewRootCA("AD E2E Root CA")
	if err != nil {
		t.Fatal(err)
	}
	w.root = root
	if w.issuing, err = root.NewIntermediate("AD E2E Issuing CA"); err != nil {
		t.Fatal(err)
	}
	var users []ldaptest.SambaUser
	for _, p := range people {
		u := ldaptest.SambaUser{Name: w.dept + "-" + p.name, Mail: p.name + "@" + w.dept + ".test",
			Attributes: map[string][]string{"department": {w.dept}}}
		for i := 0; i < p.certs; i++ {
			u.UserCertificates = append(u.UserCertificates, w.leaf(p.name, time.Now().Add(-time.Duration(i+1)*time.Hour), false))
		}
		for i := 0; i < p.smime; i++ {
			c, err := x509.ParseCertificate(w.leaf(p.name, time.Now().Add(-time.Duration(i+1)*time.Minute), false))
			if err != nil {
				t.Fatal(err)
			}
			blob, err := pkitest.DegeneratePKCS7(c, w.issuing.Cert)
			if err != nil {
				t.Fatal(err)
			}
			u.SMIMECertificates = append(u.SMIMECertificates, blob)
		}
		users = append(users, u)
		w.certs[p.name] = u.UserCertificates
	}
	var cloud []graphtest.User
	for i, a := range dc.AddUsers(t, users) {
		name := people[i].name
		w.dns[name], w.guids[name] = a.DN, a.GUID
		cloud = append(cloud, graphtest.User{UserPrincipalName: name + "@" + w.dept + ".test", Mail: name + "@" + w.dept + ".test",
			OnPremisesImmutableID: base64.StdEncoding.EncodeToString(a.GUID)})
	}
	if w.graph, err = graphtest.Start(graphtest.Options{Users: cloud, ClientSecret: "e2e-client-secret"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.graph.Close() })
	for _, u := range w.graph.Users() {
		w.cloudIDs[strings.TrimSuffix(u.Mail, "@"+w.dept+".test")] = u.ID
	}
	files := map[string][]byte{
		"issuing.pem":  pkitest.CertPEM(root.Cert, w.issuing.Cert),
		"ldap-ca.pem":  dc.CAPEM,
		"ldap-pw":      []byte(dc.AdminPassword),
		"graph-ca.pem": w.graph.CAPEM(),
		"secret":       []byte(w.graph.ClientSecret()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.cfg = filepath.Join(w.dir, "agent.yaml")
	w.writeConfig(dc.URL)
	return w
}

// writeConfig (re)writes the configuration for the DC at url.
func (w *adWorld) writeConfig(url string) {
	w.t.Helper()
	bind := w.bindYML
	if bind == "" {
		bind = fmt.Sprintf(`{method: simple, username: "%s", passwordFile: ldap-pw}`, w.dc.AdminUser)
	}
	keys := func(ks []string) string {
		var b strings.Builder
		for _, k := range ks {
			b.WriteString("\n  " + k)
		}
		return b.String()
	}
	cfg := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "(&(objectCategory=person)(objectClass=user)(department=%s))"%s
  bind: %s
  tls: {caFile: ldap-ca.pem, serverName: %s}
cloud:
  tenantID: "%s"
  clientID: "%s"
  credential: {method: secret, secretFile: secret}
  graphEndpoint: "%s"
  authorityHost: "%s/"
  caFile: graph-ca.pem%s
policy:
  issuingCAFile: issuing.pem%s
state: {path: state/state.db}
log: {level: warn, format: json}
%s`, url, w.dc.BaseDN, w.dept, keys(w.sourceKeys), bind, w.dc.ServerName, w.graph.TenantID(), w.graph.ClientID(), w.graph.URL(), w.graph.URL(), keys(w.cloudKeys), keys(w.policyKeys), w.extra)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *adWorld) certOf(name string) []byte { return w.certs[name][0] }

func (w *adWorld) newCert(name string) []byte {
	return w.leaf(name, time.Now().Add(-time.Minute), false)
}

func TestADIncrementalPasses(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"ann", 1, 1}, {"ben", 1, 0}, {"cat", 1, 0}}, "", "")

	r := w.syncJSON(0, "--incremental")
	if r.Mode != "full" || !strings.Contains(r.FullReason, "no change-tracking watermark") || r.Summary.UsersChanged != 3 {
		t.Fatalf("first pass: mode %s (%q), %d changed; want a full read publishing 3 users", r.Mode, r.FullReason, r.Summary.UsersChanged)
	}
	// ann's Outlook PKCS#7 in userSMIMECertificate counts as well as her
	// ADCS certificate.
	if got := w.cloudValues("ann"); len(got) != 2 {
		t.Fatalf("ann in the cloud: %v, want 2 bindings (userCertificate and userSMIMECertificate)", got)
	}
	// People see the objectGUID the way AD tools print it.
	g := w.guids["ann"]
	wantGUID := fmt.Sprintf("%x-%x-%x-%x-%x", []byte{g[3], g[2], g[1], g[0]}, []byte{g[5], g[4]}, []byte{g[7], g[6]}, g[8:10], g[10:])
	if ann, _ := userByName(r, "ann@"+w.dept+".test"); ann.AnchorGUID != wantGUID || ann.Anchor != base64.StdEncoding.EncodeToString(g) {
		t.Fatalf("ann's anchor: %q / %q, want GUID %s and its base64", ann.AnchorGUID, ann.Anchor, wantGUID)
	}

	// Nothing changed: no full search, no cloud request, a handful of
	// LDAP operations.
	w.graph.ResetRequests()
	r = w.syncJSON(0, "--incremental")
	if r.Mode != "incremental" || r.Summary.UsersRead != 0 || len(w.graph.Requests()) != 0 {
		t.Fatalf("no-change pass: mode %s (%q), %d users read, %d cloud requests; want incremental, 0, 0", r.Mode, r.FullReason, r.Summary.UsersRead, len(w.graph.Requests()))
	}
	if ops := r.Summary.LDAPOperations; ops == 0 || ops > 5 {
		t.Fatalf("no-change pass cost %d LDAP operations, want a handful", ops)
	}
	if code, out, _ := w.run("status", "--output", "table"); code != 0 || !strings.Contains(out, "last full read") || !strings.Contains(out, "read only what changed") || !strings.Contains(out, "incremental mode") {
		t.Fatalf("status after an incremental pass (exit %d):\n%s", code, out)
	}

	// One certificate replaced: exactly that user is read and written once.
	fresh := w.newCert("ben")
	dc.SetCertificates(t, w.dns["ben"], "userCertificate", [][]byte{fresh})
	w.graph.ResetRequests()
	r = w.syncJSON(0, "--incremental")
	if n, users := w.patches(); r.Mode != "incremental" || r.Summary.UsersRead != 1 || n != 1 || len(users) != 1 {
		t.Fatalf("change pass: mode %s, %d users read, %d PATCH to %v; want incremental, 1, 1", r.Mode, r.Summary.UsersRead, n, users)
	}
	if got, want := w.cloudValues("ben"), skiValues(t, fresh); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("ben in the cloud: %v, want %v", got, want)
	}

	// A deleted user: an incremental uSNChanged read cannot see it; the
	// next full read withdraws its values.
	dc.DeleteUser(t, w.dns["cat"])
	r = w.syncJSON(0, "--incremental")
	if r.Mode != "incremental" || len(w.cloudValues("cat")) != 1 {
		t.Fatalf("usn pass after a delete: mode %s, cat has %v; want incremental and cat untouched", r.Mode, w.cloudValues("cat"))
	}
	r = w.syncJSON(0)
	if r.Mode != "full" || r.Summary.UsersRemoving != 1 || len(w.cloudValues("cat")) != 0 {
		t.Fatalf("full pass after a delete: mode %s, %d removing, cat has %v", r.Mode, r.Summary.UsersRemoving, w.cloudValues("cat"))
	}
	if len(w.cloudValues("ann")) != 2 || len(w.cloudValues("ben")) != 1 {
		t.Fatal("the full pass touched users still in the directory")
	}
}

func TestADDirSyncReportsDeletions(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"dan", 1, 0}, {"eve", 1, 0}}, "", "")
	w.sourceKeys = []string{"changeTracking: dirsync"}
	w.writeConfig(dc.URL)
	if r := w.syncJSON(0, "--incremental"); r.Mode != "full" || r.Summary.UsersChanged != 2 {
		t.Fatalf("first pass: mode %s, %d changed", r.Mode, r.Summary.UsersChanged)
	}
	dc.DeleteUser(t, w.dns["eve"])
	r := w.syncJSON(0, "--incremental")
	if r.Mode != "incremental" || r.Summary.UsersRemoving != 1 || len(w.cloudValues("eve")) != 0 {
		t.Fatalf("dirsync pass after a delete: mode %s (%q), %d removing, eve has %v; want incremental withdrawing eve's value",
			r.Mode, r.FullReason, r.Summary.UsersRemoving, w.cloudValues("eve"))
	}
	if len(w.cloudValues("dan")) != 1 {
		t.Fatal("dan lost his value")
	}
}

// A DC restored from backup keeps its name but gets a new invocationId;
// a second DC provisioned with the same name is exactly that.
func TestADRestoredDCForcesFullRead(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"fay", 1, 0}}, "", "")
	w.syncJSON(0, "--incremental")
	if r := w.syncJSON(0, "--incremental"); r.Mode != "incremental" {
		t.Fatalf("second pass: mode %s (%q), want incremental", r.Mode, r.FullReason)
	}
	restored := ldaptest.StartSamba(t, ldaptest.SambaOptions{})
	if err := os.WriteFile(filepath.Join(w.dir, "ldap-ca.pem"), append(append([]byte{}, dc.CAPEM...), restored.CAPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "ldap-pw"), []byte(restored.AdminPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(restored.URL)
	// The restored DC does not have fay, so the full read plans to
	// withdraw her value; the plan says why it read everything.
	r := w.syncJSON(0, "--incremental", "--dry-run")
	if r.Mode != "full" || !strings.Contains(r.FullReason, "invocationId") {
		t.Fatalf("pass against the restored DC: mode %s, reason %q; want a full read naming the invocationId", r.Mode, r.FullReason)
	}
}

// publishCRL writes crl to a cRLDistributionPoint object of the DC's
// configuration partition, where ADCS publishes it.
func (w *adWorld) publishCRL(caName string, crl []byte) {
	w.t.Helper()
	admin := w.dc.Admin(w.t)
	host := "CN=" + w.dept + ",CN=CDP,CN=Public Key Services,CN=Services," + w.dc.ConfigDN
	if err := admin.Add(&ldap.AddRequest{DN: host, Attributes: []ldap.Attribute{{Type: "objectClass", Vals: []string{"container"}}}}); err != nil &&
		!ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		w.t.Fatalf("add %s: %v", host, err)
	}
	dn := "CN=" + caName + "," + host
	err := admin.Add(&ldap.AddRequest{DN: dn, Attributes: []ldap.Attribute{
		{Type: "objectClass", Vals: []string{"cRLDistributionPoint"}},
		{Type: "certificateRevocationList", Vals: []string{string(crl)}},
	}})
	if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace("certificateRevocationList", []string{string(crl)})
		err = admin.Modify(req)
	}
	if err != nil {
		w.t.Fatalf("publish CRL at %s: %v", dn, err)
	}
}

func TestADRevokedCertificateRejected(t *testing.T) {
	dc := domainController(t)
	w := newADWorld(t, dc, []adPerson{{"gus", 1, 0}, {"hal", 1, 0}}, "", "")
	w.policyKeys = []string{"checkRevocation: true"}
	w.writeConfig(dc.URL)
	// Other tests' CAs publish their CRLs to the same DC: a CA without a
	// CRL is handled by revocationUnavailable (keep), with a warning.
	r := w.syncJSON(0, "--incremental")
	if r.Summary.UsersChanged != 2 {
		t.Fatalf("first pass: %d users changed, want 2", r.Summary.UsersChanged)
	}
	for _, u := range r.Users {
		if len(u.Accepted) != 1 || len(u.Accepted[0].Warnings) == 0 {
			t.Fatalf("%s: accepted %+v; want its certificate kept with a warning that no CRL was found", u.Name, u.Accepted)
		}
	}

	gus, err := x509.ParseCertificate(w.certOf("gus"))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := w.issuing.CRL(pkitest.CRLOptions{Number: 2, Revoked: []pkitest.Revoked{{Serial: gus.SerialNumber, Reason: pkitest.ReasonKeyCompromise}}})
	if err != nil {
		t.Fatal(err)
	}
	w.publishCRL(w.issuing.Cert.Subject.CommonName, crl)

	// No user changed in the directory, but the CRL did: the pass reads
	// everyone again and withdraws the revoked certificate.
	r = w.syncJSON(0, "--incremental")
	if r.Mode != "full" || !strings.Contains(r.FullReason, "CRL") {
		t.Fatalf("pass after a new CRL: mode %s (%q); want a full read because of the CRL", r.Mode, r.FullReason)
	}
	var rejected *jsonRejected
	for _, u := range r.Users {
		if u.Name == "gus@"+w.dept+".test" && len(u.Rejected) == 1 {
			rejected = &u.Rejected[0]
		}
	}
	if rejected == nil || rejected.Code != "revoked" || !strings.Contains(rejected.Reason, "keyCompromise") {
		t.Fatalf("gus's certificate: %+v; want it rejected as revoked (keyCompromise)", rejected)
	}
	if len(w.cloudValues("gus")) != 0 || len(w.cloudValues("hal")) != 1 {
		t.Fatalf("cloud: gus %v, hal %v; want gus's value withdrawn and hal's kept", w.cloudValues("gus"), w.cloudValues("hal"))
	}
}

// An admin's Kerberos set-up: a service account, its keytab exported from
// the DC, StartTLS, no password anywhere.
func TestADKerberosBind(t *testing.T) {
	dc := domainController(t)
	svc := fmt.Sprintf("svc%d", time.Now().UnixNano()%1_000_000_000)
	dc.AddUser(t, ldaptest.SambaUser{Name: svc, Password: "Svc-Passw0rd!" + svc})
	keytab := dc.ExportKeytab(t, svc+"@"+dc.Realm)
	bind := fmt.Sprintf(`{method: gssapi, username: "%s@%s", keytabFile: "%s", krb5ConfFile: "%s"}`, svc, dc.Realm, keytab, dc.Krb5Conf)
	w := newADWorld(t, dc, []adPerson{{"ivy", 1, 0}}, bind, "")
	r := w.syncJSON(0)
	if r.Summary.UsersRead != 1 || r.Summary.UsersChanged != 1 || len(w.cloudValues("ivy")) != 1 {
		t.Fatalf("Kerberos pass: %+v, ivy has %v", r.Summary, w.cloudValues("ivy"))
	}

	// A keytab for another principal is a clear error naming the file.
	other := fmt.Sprintf(`{method: gssapi, username: "nobody@%s", keytabFile: "%s", krb5ConfFile: "%s"}`, dc.Realm, keytab, dc.Krb5Conf)
	w.bindYML = other
	w.writeConfig(dc.URL)
	code, _, errOut := w.run("sync", "--output", "json")
	if code != 1 || !strings.Contains(errOut, keytab) || !strings.Contains(errOut, "nobody") {
		t.Fatalf("wrong principal: exit %d, stderr %s; want exit 1 naming the keytab and the principal", code, errOut)
	}
}
