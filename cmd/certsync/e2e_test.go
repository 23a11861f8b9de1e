package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// These tests run the real certsync binary against a real slapd and the
// Graph emulator, the way an admin runs it.

var certsyncBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certsync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	certsyncBin = filepath.Join(dir, "certsync")
	if out, err := exec.Command("go", "build", "-o", certsyncBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building certsync: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	stopSharedDC()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is one test's directory, cloud and configuration.
type world struct {
	t testing.TB
	// mailDomain is the domain of the users' mail, which their
	// certificates name (policy.identity); "" is example.test.
	mailDomain string
	dir        string
	cfg        string
	slapd      *ldaptest.Slapd
	graph      *graphtest.Server
	root       *pkitest.CA
	issuing    *pkitest.CA
	foreign    *pkitest.CA
	cloudIDs   map[string]string   // uid → cloud user id
	exo        *exotest.Server     // nil unless withExchange
	ldapCert   map[string][][]byte // uid → userCertificate values
	smime      map[string][][]byte // uid → userSMIMECertificate values (PKCS#7 blobs)
	boxIDs     map[string]string   // uid → mailbox ExternalDirectoryObjectId
}

type person struct {
	uid     string
	certs   int  // valid certificates to issue
	expired bool // add an expired one too
	inCloud bool
	handID  string // a certificateUserIds value an admin added by hand

	// Exchange side (withExchange).
	smime     int  // valid certificates in userSMIMECertificate (Outlook's PKCS#7)
	mailbox   bool // has a mailbox
	boxCopies bool // the mailbox already holds the user's LDAP certificates (as Entra Connect left them)
	boxOld    int  // certificates on the mailbox that are not in LDAP any more
	boxSynced bool // the mailbox is still synced from on-premises
}

const e2eFilter = "(&(objectClass=inetOrgPerson)(mail=*))"

// worldOption changes how newWorld sets up the cloud side.
type worldOption func(*worldSetup)

type worldSetup struct {
	certCredential bool
	exchange       string // "" none; else extra keys of cloud.exchange
	graphOff       bool
	slapdAccess    []string // slapd's access directives (ldaptest.SlapdOptions.Access)
	seedLDIF       string   // more entries for the directory
}

// certificateCredential makes the app authenticate with a client
// certificate (RSA, as azidentity requires) instead of a secret.
func certificateCredential(s *worldSetup) { s.certCredential = true }

// withExchange turns the Exchange target on, with extra keys for
// cloud.exchange (e.g. "adoptExisting: true"), and mounts the Exchange
// emulator beside Graph.
func withExchange(extra string) worldOption {
	return func(s *worldSetup) { s.exchange = "enabled: true, " + extra }
}

// withoutGraph turns the certificateUserIds target off.
func withoutGraph(s *worldSetup) { s.graphOff = true }

func newWorld(t testing.TB, people []person, extraConfig string, opts ...worldOption) *world {
	t.Helper()
	credential := "{method: secret, secretFile: secret}"
	w := &world{t: t, dir: t.TempDir(), cloudIDs: map[string]string{}, ldapCert: map[string][][]byte{}, smime: map[string][][]byte{}, boxIDs: map[string]string{}}
	var setup worldSetup
	for _, o := range opts {
		o(&setup)
	}
	root, err := pkitest.NewRootCA("E2E Root CA")
	if err != nil {
		t.Fatal(err)
	}
	w.root = root
	if w.issuing, err = root.NewIntermediate("E2E Issuing CA"); err != nil {
		t.Fatal(err)
	}
	if w.foreign, err = pkitest.NewRootCA("Foreign CA"); err != nil {
		t.Fatal(err)
	}
	var seed bytes.Buffer
	var cloud []graphtest.User
	for _, p := range people {
		lp := ldaptest.Person{UID: p.uid, CN: p.uid, SN: p.uid, Mail: p.uid + "@example.test"}
		for i := 0; i < p.certs; i++ {
			lp.UserCertificates = append(lp.UserCertificates, w.leaf(p.uid, time.Now().Add(-time.Duration(i+1)*time.Hour), false))
		}
		if p.expired {
			lp.UserCertificates = append(lp.UserCertificates, w.leaf(p.uid, time.Now().AddDate(-2, 0, 0), true))
		}
		w.ldapCert[p.uid] = lp.UserCertificates
		for i := 0; i < p.smime; i++ {
			der := w.leaf(p.uid, time.Now().Add(-time.Duration(i+1)*time.Minute), false)
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			blob, err := pkitest.DegeneratePKCS7(c, w.issuing.Cert)
			if err != nil {
				t.Fatal(err)
			}
			lp.SMIMECertificates = append(lp.SMIMECertificates, blob)
			w.smime[p.uid] = append(w.smime[p.uid], blob)
		}
		seed.Write(ldaptest.PersonLDIF("ou=people,dc=example,dc=test", lp))
		seed.WriteString("\n")
		if p.inCloud {
			u := graphtest.User{UserPrincipalName: p.uid + "@example.test", Mail: p.uid + "@example.test"}
			if p.handID != "" {
				u.CertificateUserIDs = []string{p.handID}
			}
			cloud = append(cloud, u)
		}
	}
	seed.WriteString(setup.seedLDIF)
	w.slapd = ldaptest.StartSlapd(t, ldaptest.SlapdOptions{SeedLDIF: seed.Bytes(), Access: setup.slapdAccess})
	gopts := graphtest.Options{Users: cloud, ClientSecret: "e2e-client-secret"}
	if setup.certCredential {
		appCert, appKey, err := root.Issue(pkitest.LeafOptions{CommonName: "certsync app", RSA: true, EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := pkitest.KeyPEM(appKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.dir, "app.pem"), append(pkitest.CertPEM(appCert), keyPEM...), 0o600); err != nil {
			t.Fatal(err)
		}
		gopts.ClientSecret, gopts.ClientCertificates = "", []*x509.Certificate{appCert}
		credential = "{method: certificate, certificateFile: app.pem}"
	}
	if w.graph, err = graphtest.Start(gopts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.graph.Close() })
	for _, u := range w.graph.Users() {
		w.cloudIDs[strings.TrimSuffix(u.Mail, "@example.test")] = u.ID
	}
	cloudExtra := ""
	if setup.exchange != "" {
		var boxes []exotest.Mailbox
		for _, p := range people {
			if !p.mailbox {
				continue
			}
			m := exotest.Mailbox{UserPrincipalName: p.uid + "@example.test", IsDirSynced: p.boxSynced}
			if p.boxCopies {
				m.UserCertificate = append(m.UserCertificate, w.ldapCert[p.uid]...)
			}
			for i := 0; i < p.boxOld; i++ {
				m.UserCertificate = append(m.UserCertificate, w.leaf(p.uid, time.Now().AddDate(0, -6, 0), false))
			}
			boxes = append(boxes, m)
		}
		if w.exo, err = exotest.Mount(w.graph, exotest.Options{Mailboxes: boxes}); err != nil {
			t.Fatal(err)
		}
		for _, m := range w.exo.Mailboxes() {
			w.boxIDs[strings.TrimSuffix(m.UserPrincipalName, "@example.test")] = m.ExternalDirectoryObjectID
		}
		cloudExtra += fmt.Sprintf("\n  exchange: {%s endpoint: \"%s\"}", setup.exchange, w.graph.URL())
	}
	if setup.graphOff {
		cloudExtra += "\n  certificateUserIds: {enabled: false}"
	}

	files := map[string][]byte{
		"issuing.pem":  pkitest.CertPEM(root.Cert, w.issuing.Cert),
		"ldap-ca.pem":  w.slapd.CAPEM,
		"ldap-pw":      []byte(w.slapd.AdminPassword),
		"graph-ca.pem": w.graph.CAPEM(),
		"secret":       []byte(w.graph.ClientSecret()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "%s"
  anchorAttribute: entryUUID
  pageSize: 7
  bind: {method: simple, username: "%s", passwordFile: ldap-pw}
  tls: {caFile: ldap-ca.pem}
cloud:
  tenantID: "%s"
  clientID: "%s"
  credential: %s
  graphEndpoint: "%s"
  authorityHost: "%s/"
  caFile: graph-ca.pem
  match: {sourceAttribute: mail, cloudProperty: mail}%s
policy:
  issuingCAFile: issuing.pem
state: {path: state/state.db}
log: {level: warn, format: json}
%s`, w.slapd.URL, w.slapd.BaseDN, e2eFilter, w.slapd.AdminDN, w.graph.TenantID(), w.graph.ClientID(), credential, w.graph.URL(), w.graph.URL(), cloudExtra, extraConfig)
	w.cfg = filepath.Join(w.dir, "agent.yaml")
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) leaf(uid string, notBefore time.Time, expired bool) []byte {
	w.t.Helper()
	domain := w.mailDomain
	if domain == "" {
		domain = "example.test"
	}
	o := pkitest.LeafOptions{CommonName: uid, Email: uid + "@" + domain, NotBefore: notBefore}
	if expired {
		o.NotAfter = notBefore.AddDate(1, 0, 0)
	}
	c, _, err := w.issuing.Issue(o)
	if err != nil {
		w.t.Fatal(err)
	}
	return c.Raw
}

// run runs certsync with the world's config and returns its exit code,
// stdout and stderr.
func (w *world) run(args ...string) (int, string, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append(append([]string{}, args...), "--config", w.cfg)
	cmd := exec.CommandContext(ctx, certsyncBin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		w.t.Fatalf("certsync %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// syncJSON runs `certsync sync --output json` and decodes the report.
func (w *world) syncJSON(wantCode int, args ...string) jsonReport {
	w.t.Helper()
	code, out, errOut := w.run(append([]string{"sync", "--output", "json"}, args...)...)
	if code != wantCode {
		w.t.Fatalf("certsync sync %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, wantCode, out, errOut)
	}
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		w.t.Fatalf("certsync sync %v: not JSON (%v):\n%s\nstderr:\n%s", args, err, out, errOut)
	}
	return r
}

// patches counts PATCH operations the emulator received (top level or in
// a $batch) since the last reset.
func (w *world) patches() (n int, users map[string]bool) {
	users = map[string]bool{}
	for _, r := range w.graph.Requests() {
		if r.Method == "PATCH" {
			n++
			users[r.Path] = true
		}
	}
	return n, users
}

func (w *world) cloudValues(uid string) []string {
	w.t.Helper()
	u, ok := w.graph.User(w.cloudIDs[uid])
	if !ok {
		w.t.Fatalf("no cloud user %s", uid)
	}
	return u.CertificateUserIDs
}

func (w *world) modify(uid string, mod func(*ldap.ModifyRequest)) {
	w.t.Helper()
	req := ldap.NewModifyRequest("uid="+uid+",ou=people,dc=example,dc=test", nil)
	mod(req)
	if err := w.slapd.Admin(w.t).Modify(req); err != nil {
		w.t.Fatalf("modify %s: %v", uid, err)
	}
}

func skiValues(t testing.TB, ders ...[]byte) []string {
	t.Helper()
	var out []string
	for _, d := range ders {
		c, err := mapping.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		b, err := mapping.Binding(c[0], mapping.BindingSKI)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func basicPeople() []person {
	return []person{
		{uid: "alice", certs: 1, inCloud: true},
		{uid: "bob", certs: 2, expired: true, inCloud: true},
		{uid: "carol", certs: 1, inCloud: true, handID: "X509:<PN>carol@example.test"},
		{uid: "dave", certs: 0, inCloud: true},
		{uid: "erin", certs: 1, inCloud: false},
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	r := w.syncJSON(2, "--dry-run", "--detailed-exitcode")
	if n, _ := w.patches(); n != 0 || w.graph.Writes() != 0 {
		t.Fatalf("dry run wrote to the cloud: %d PATCH, %d writes", n, w.graph.Writes())
	}
	if _, err := os.Stat(filepath.Join(w.dir, "state")); !os.IsNotExist(err) {
		t.Fatalf("dry run created the state directory (err %v)", err)
	}
	if !r.DryRun || r.Summary.UsersRead != 5 || r.Summary.UsersChanged != 3 || r.Summary.ValuesAdded != 4 {
		t.Fatalf("plan summary: %+v", r.Summary)
	}
	if r.Summary.UsersUnmatched != 1 || r.Summary.CertificatesRejected != 1 {
		t.Fatalf("unmatched/rejected: %+v", r.Summary)
	}
	byName := map[string]jsonUser{}
	for _, u := range r.Users {
		byName[u.Name] = u
	}
	bob := byName["bob@example.test"]
	if len(bob.Rejected) != 1 || bob.Rejected[0].Code != mapping.RejectExpired || bob.Rejected[0].SHA256 == "" || bob.Rejected[0].Serial == "" {
		t.Fatalf("bob's expired certificate not reported: %+v", bob.Rejected)
	}
	carol := byName["carol@example.test"]
	if len(carol.Targets) != 1 || len(carol.Targets[0].Add) != 1 || len(carol.Targets[0].Unowned) != 1 || carol.Targets[0].Status != statusPlanned {
		t.Fatalf("carol's plan: %+v", carol.Targets)
	}
	if erin := byName["erin@example.test"]; len(erin.Targets) != 1 || erin.Targets[0].Status != statusSkipped || !strings.Contains(erin.Targets[0].Problem, "no cloud user") {
		t.Fatalf("erin (not in the cloud): %+v", erin.Targets)
	}
}

func TestSyncAppliesThenNothingLeft(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	r := w.syncJSON(2, "--detailed-exitcode")
	if r.Summary.UsersChanged != 3 || r.Summary.ValuesAdded != 4 {
		t.Fatalf("summary: %+v", r.Summary)
	}
	if n, users := w.patches(); n != 3 || len(users) != 3 {
		t.Fatalf("want 3 PATCH for 3 users, got %d %v", n, users)
	}
	if got := w.cloudValues("alice"); len(got) != 1 || !strings.HasPrefix(got[0], "X509:<SKI>") {
		t.Fatalf("alice in the cloud: %v", got)
	}
	if got := w.cloudValues("bob"); len(got) != 2 {
		t.Fatalf("bob should have his 2 valid certificates, not the expired one: %v", got)
	}
	if got := w.cloudValues("carol"); len(got) != 2 || got[0] != "X509:<PN>carol@example.test" {
		t.Fatalf("carol's hand-made value must stay first, then certsync's: %v", got)
	}

	w.graph.ResetRequests()
	r = w.syncJSON(0, "--detailed-exitcode")
	if n, _ := w.patches(); n != 0 || r.Summary.UsersChanged != 0 {
		t.Fatalf("second sync: %d PATCH, summary %+v", n, r.Summary)
	}

	code, out, _ := w.run("status", "--output", "json")
	var st statusReport
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if st.LastPass == nil || st.LastPass.Result != "ok" || st.Users == 0 {
		t.Fatalf("status last pass: %+v", st)
	}
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0].Problem, "no cloud user") {
		t.Fatalf("status should list erin as a problem: %+v", st.Problems)
	}
}

func TestOneCertificateChangeMakesOneWrite(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	w.syncJSON(0)
	newCert := w.leaf("alice", time.Now().Add(-time.Minute), false)
	w.modify("alice", func(m *ldap.ModifyRequest) { m.Replace("userCertificate;binary", []string{string(newCert)}) })
	w.graph.ResetRequests()
	r := w.syncJSON(0)
	n, users := w.patches()
	if n != 1 || !users["/v1.0/users/"+w.cloudIDs["alice"]] {
		t.Fatalf("want exactly one PATCH, to alice; got %d %v", n, users)
	}
	if r.Summary.ValuesAdded != 1 || r.Summary.ValuesRemoved != 1 {
		t.Fatalf("summary: %+v", r.Summary)
	}
	if got, want := w.cloudValues("alice"), skiValues(t, newCert); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("alice: got %v, want %v", got, want)
	}
}

func TestUserLeavingFilterLosesOnlyCertsyncValues(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	w.syncJSON(0)
	w.modify("carol", func(m *ldap.ModifyRequest) { m.Delete("mail", nil) })
	w.graph.ResetRequests()
	r := w.syncJSON(0)
	if n, _ := w.patches(); n != 1 || r.Summary.ValuesRemoved != 1 {
		t.Fatalf("want one PATCH removing one value: %d, %+v", n, r.Summary)
	}
	if got := w.cloudValues("carol"); len(got) != 1 || got[0] != "X509:<PN>carol@example.test" {
		t.Fatalf("carol should keep only the admin's value: %v", got)
	}
	var departed bool
	for _, u := range r.Users {
		departed = departed || (u.Name == "carol@example.test" && u.Departed)
	}
	if !departed {
		t.Fatalf("carol not reported as departed: %+v", r.Users)
	}
}

func TestDeletionLimitAppliesNothing(t *testing.T) {
	w := newWorld(t, basicPeople(), "safety: {maxDeletes: 1, maxDeletePercent: unlimited}\n")
	w.syncJSON(0)
	for _, uid := range []string{"alice", "bob"} {
		w.modify(uid, func(m *ldap.ModifyRequest) { m.Delete("userCertificate;binary", nil) })
	}
	newCert := w.leaf("carol", time.Now().Add(-time.Minute), false)
	w.modify("carol", func(m *ldap.ModifyRequest) { m.Add("userCertificate;binary", []string{string(newCert)}) })
	w.graph.ResetRequests()
	r := w.syncJSON(1)
	if !r.Guard.Tripped || !strings.Contains(r.Guard.Reason, "maxDeletes") {
		t.Fatalf("guard: %+v", r.Guard)
	}
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("a refused plan wrote %d PATCH (not even carol's addition may go)", n)
	}
	if len(w.cloudValues("alice")) != 1 || len(w.cloudValues("bob")) != 2 {
		t.Fatal("values removed despite the deletion limit")
	}
	// --allow-deletes takes the number the dry run shows: bare, or below
	// what the pass would strip, it applies nothing.
	if code, _, errOut := w.run("sync", "--allow-deletes"); code != 1 || !strings.Contains(errOut, "--dry-run and pass the number") {
		t.Fatalf("bare --allow-deletes: exit %d, %s", code, errOut)
	}
	if code, _, errOut := w.run("sync", "--allow-deletes=1"); code != 1 || !strings.Contains(errOut, "more than --allow-deletes=1") {
		t.Fatalf("--allow-deletes=1 with 2 users to strip: exit %d, %s", code, errOut)
	}
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("a pass over its --allow-deletes bound wrote %d PATCH", n)
	}
	r = w.syncJSON(0, "--allow-deletes=2")
	if n, _ := w.patches(); n != 3 || r.Summary.UsersRemoving != 2 {
		t.Fatalf("with --allow-deletes: %d PATCH, %+v", n, r.Summary)
	}
	if len(w.cloudValues("alice")) != 0 || len(w.cloudValues("bob")) != 0 {
		t.Fatal("--allow-deletes did not remove")
	}
}

func TestSingleUserTouchesOnlyThatUser(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	w.syncJSON(0)
	for _, uid := range []string{"alice", "bob"} {
		c := w.leaf(uid, time.Now().Add(-time.Minute), false)
		w.modify(uid, func(m *ldap.ModifyRequest) { m.Add("userCertificate;binary", []string{string(c)}) })
	}
	w.graph.ResetRequests()
	code, out, errOut := w.run("sync", "--user", "bob", "--dry-run", "--output", "table")
	if n, _ := w.patches(); code != 0 || n != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, "+ X509:<SKI>") {
		t.Fatalf("--user --dry-run: exit %d, %d PATCH\n%s\n%s", code, n, out, errOut)
	}
	code, out, errOut = w.run("sync", "--user", "bob@example.test", "--output", "table")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, step := range []string{"found at uid=bob,ou=people", "accepted:", "rejected:", "cloud user:", "+ X509:<SKI>", "applied"} {
		if !strings.Contains(out, step) {
			t.Errorf("--user output lacks the step %q:\n%s", step, out)
		}
	}
	n, users := w.patches()
	if n != 1 || !users["/v1.0/users/"+w.cloudIDs["bob"]] {
		t.Fatalf("--user bob: want one PATCH to bob, got %d %v", n, users)
	}
	if len(w.cloudValues("alice")) != 1 {
		t.Fatal("alice changed by --user bob")
	}
	if code, _, errOut := w.run("sync", "--user", "nobody@example.test"); code != 1 || !strings.Contains(errOut, "nobody@example.test") {
		t.Fatalf("unknown user: exit %d, %s", code, errOut)
	}
}

func TestThrottlingDelaysButLosesNothing(t *testing.T) {
	var people []person
	for i := 0; i < 30; i++ {
		people = append(people, person{uid: fmt.Sprintf("user%02d", i), certs: 1, inCloud: true})
	}
	w := newWorld(t, people, "")
	w.graph.Throttle(6, time.Second)
	r := w.syncJSON(0)
	if r.Summary.UsersChanged != 30 || r.Summary.UsersFailed != 0 {
		t.Fatalf("summary: %+v", r.Summary)
	}
	throttled := 0
	for _, req := range w.graph.Requests() {
		if req.Status == 429 {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("the emulator throttled nothing: the test proves nothing")
	}
	for uid := range w.cloudIDs {
		if len(w.cloudValues(uid)) != 1 {
			t.Fatalf("%s lost its value under throttling", uid)
		}
	}
	w.graph.ResetRequests()
	w.syncJSON(0)
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("after the throttled pass, %d writes were still needed", n)
	}
}

func TestSecondAgentRefused(t *testing.T) {
	w := newWorld(t, basicPeople(), "schedule: {interval: 1h}\n")
	cmd := exec.Command(certsyncBin, "run", "--config", w.cfg)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Wait for the agent's first pass to land in the cloud.
	deadline := time.Now().Add(time.Minute)
	for w.graph.Writes() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's first pass did not finish:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, _, errOut := w.run("sync")
	if code != 1 || !strings.Contains(errOut, filepath.Join(w.dir, "state", "state.db")) {
		t.Fatalf("a second agent: exit %d, stderr %q; want a refusal naming the state file", code, errOut)
	}
	// Between passes the state file is readable.
	if code, out, errOut := w.run("status"); code != 0 {
		t.Fatalf("status while the agent runs: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v\n%s", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	w := newWorld(t, nil, "bogus: 1\n")
	code, _, errOut := w.run("sync")
	if code != 1 || !strings.Contains(errOut, "unknown key bogus") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestCloudRefusalIsReportedAndNotRecorded(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	// zed holds alice's certificate so that the cloud refuses it: the
	// identity check, which would refuse it first, is off here.
	w.replaceInConfig("  issuingCAFile: issuing.pem\n", "  issuingCAFile: issuing.pem\n  identity: off\n")
	w.syncJSON(0)
	// zed turns up with a copy of alice's certificate: the binding is
	// already alice's, and Graph keeps certificateUserIds unique per tenant.
	conn := w.slapd.Admin(t)
	res, err := conn.Search(ldap.NewSearchRequest("uid=alice,ou=people,dc=example,dc=test", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userCertificate;binary"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("reading alice: %v", err)
	}
	aliceCert := res.Entries[0].GetRawAttributeValues("userCertificate;binary")[0]
	add := ldap.NewAddRequest("uid=zed,ou=people,dc=example,dc=test", nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{"zed"})
	add.Attribute("cn", []string{"zed"})
	add.Attribute("sn", []string{"zed"})
	add.Attribute("mail", []string{"zed@example.test"})
	add.Attribute("userCertificate;binary", []string{string(aliceCert)})
	if err := conn.Add(add); err != nil {
		t.Fatal(err)
	}
	zed := w.graph.AddUser(graphtest.User{UserPrincipalName: "zed@example.test", Mail: "zed@example.test"})
	w.cloudIDs["zed"] = zed.ID

	for pass := 1; pass <= 2; pass++ {
		w.graph.ResetRequests()
		r := w.syncJSON(1)
		if r.Summary.UsersFailed != 1 {
			t.Fatalf("pass %d: want zed failed, summary %+v", pass, r.Summary)
		}
		var zedTarget *jsonTarget
		for _, u := range r.Users {
			if u.Name == "zed@example.test" {
				zedTarget = &u.Targets[0]
			}
		}
		if zedTarget == nil || zedTarget.Status != statusFailed || zedTarget.Problem == "" {
			t.Fatalf("pass %d: zed's target: %+v", pass, zedTarget)
		}
		if n, users := w.patches(); n != 1 || !users["/v1.0/users/"+zed.ID] {
			t.Fatalf("pass %d: one PATCH to zed (not retried within the pass), got %d %v", pass, n, users)
		}
		if got := w.cloudValues("zed"); len(got) != 0 {
			t.Fatalf("zed got values: %v", got)
		}
		if got := w.cloudValues("alice"); len(got) != 1 {
			t.Fatalf("alice's value was disturbed: %v", got)
		}
	}
	code, out, _ := w.run("status", "--output", "json")
	if code != 0 || !strings.Contains(out, "zed@example.test") {
		t.Fatalf("status should list zed's problem: %d\n%s", code, out)
	}
}

func TestCertificateCredential(t *testing.T) {
	w := newWorld(t, basicPeople(), "", certificateCredential)
	r := w.syncJSON(0)
	if r.Summary.UsersChanged != 3 || w.graph.Writes() != 3 {
		t.Fatalf("with a client certificate: %+v, %d writes", r.Summary, w.graph.Writes())
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(certsyncBin, "version").Output() // on stdout, for scripts
	if err != nil || !strings.HasPrefix(string(out), "certsync ") || !strings.Contains(string(out), "go1.") {
		t.Fatalf("certsync version: %v %q", err, out)
	}
}

func TestUnreachableDirectoryIsAFailedPass(t *testing.T) {
	w := newWorld(t, basicPeople(), "")
	cfg, err := os.ReadFile(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on.
	broken := strings.Replace(string(cfg), w.slapd.URL, "ldap://127.0.0.1:1", 1)
	if err := os.WriteFile(w.cfg, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := w.run("sync")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") || !strings.Contains(errOut, "nothing will be changed") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, out, _ := w.run("status", "--output", "json")
	var st statusReport
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.LastPass == nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if st.LastPass.Result != "failed" || !strings.Contains(st.LastPass.Error, "127.0.0.1:1") {
		t.Fatalf("status should show the failed pass and why: %+v", st.LastPass)
	}
}

func TestUnchangedPassSendsNoCloudRequest(t *testing.T) {
	people := []person{{uid: "alice", certs: 1, inCloud: true}, {uid: "bob", certs: 2, inCloud: true}, {uid: "dave", inCloud: true}}
	w := newWorld(t, people, "")
	w.syncJSON(0)
	w.graph.ResetRequests()
	r := w.syncJSON(0)
	if reqs := w.graph.Requests(); len(reqs) != 0 || r.Summary.UsersRead != 3 {
		t.Fatalf("a pass over an unchanged directory sent %d requests to the cloud (summary %+v): %+v", len(reqs), r.Summary, reqs)
	}
}

func TestReconcileRepairsHandEdits(t *testing.T) {
	people := []person{{uid: "alice", certs: 1, inCloud: true}, {uid: "bob", certs: 1, inCloud: true}}
	w := newWorld(t, people, "")
	w.syncJSON(0)
	want := w.cloudValues("alice")
	// Someone clears alice's values by hand in the cloud and adds one of
	// their own to bob.
	alice, _ := w.graph.User(w.cloudIDs["alice"])
	alice.CertificateUserIDs = nil
	w.graph.AddUser(alice)
	bob, _ := w.graph.User(w.cloudIDs["bob"])
	bob.CertificateUserIDs = append(bob.CertificateUserIDs, "X509:<PN>bob@example.test")
	w.graph.AddUser(bob)

	w.graph.ResetRequests()
	w.syncJSON(0)
	if n, _ := w.patches(); n != 0 {
		t.Fatalf("an ordinary pass only looks at users that changed on-prem, yet wrote %d", n)
	}
	r := w.syncJSON(0, "--reconcile")
	if n, users := w.patches(); n != 1 || !users["/v1.0/users/"+w.cloudIDs["alice"]] || r.Summary.ValuesAdded != 1 {
		t.Fatalf("--reconcile: want one PATCH restoring alice, got %d %v %+v", n, users, r.Summary)
	}
	if got := w.cloudValues("alice"); !mapping.SameSet(got, want) {
		t.Fatalf("alice: got %v, want %v", got, want)
	}
	if got := w.cloudValues("bob"); len(got) != 2 {
		t.Fatalf("bob's hand-added value must stay: %v", got)
	}
}

func TestLostAnswerLosesNothing(t *testing.T) {
	var people []person
	for i := 0; i < 30; i++ {
		people = append(people, person{uid: fmt.Sprintf("user%02d", i), certs: 1, inCloud: true})
	}
	w := newWorld(t, people, "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n")
	// Graph commits a batch of writes, then the connection drops: certsync
	// cannot know those writes landed.
	w.graph.DropWriteAnswers(1)
	code, out, errOut := w.run("sync", "--output", "json")
	dropped := 0
	for _, r := range w.graph.Requests() {
		if r.AnswerDropped {
			dropped++
		}
	}
	if dropped != 1 {
		t.Fatalf("the emulator dropped %d answers: the test proves nothing\n%s\n%s", dropped, out, errOut)
	}
	// certsync cannot know those writes landed: it must say the pass
	// failed for those users, not pass over it in silence.
	if code != 1 || !strings.Contains(errOut, "users failed") {
		t.Fatalf("the pass with a lost answer: exit %d, stderr %q", code, errOut)
	}
	// The next pass settles it without writing anything twice...
	w.syncJSON(0)
	for uid := range w.cloudIDs {
		if got := w.cloudValues(uid); len(got) != 1 {
			t.Fatalf("%s has %v after the lost answer", uid, got)
		}
	}
	// ...and certsync still knows every value as its own: when all the
	// certificates go, all the values go (every certificate gone at once
	// looks like lost read rights: it takes --allow-deletes).
	for uid := range w.cloudIDs {
		w.modify(uid, func(m *ldap.ModifyRequest) { m.Delete("userCertificate;binary", nil) })
	}
	r := w.syncJSON(0, "--allow-deletes=30")
	if r.Summary.ValuesRemoved != 30 {
		t.Fatalf("want all 30 values withdrawn, got %+v", r.Summary)
	}
	for uid := range w.cloudIDs {
		if got := w.cloudValues(uid); len(got) != 0 {
			t.Fatalf("%s kept %v: ownership was lost with the answer", uid, got)
		}
	}
}
