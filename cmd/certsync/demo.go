package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

func newDemoCommand() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded directory, Graph and Exchange Online emulator",
		Long: `Starts an in-process LDAP directory seeded with a generated PKI and users
covering the interesting cases, and an in-process emulator of both cloud
targets: Microsoft Graph (certificate sign-in bindings in certificateUserIds)
and Exchange Online (the S/MIME certificates on each mailbox). It then prints
the dry-run plan, applies it, checks what every mailbox holds, and runs a
second pass that changes nothing. Nothing outside a temporary directory is
touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (config, PKI, state) and print its path")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, keep bool) error {
	dir, err := os.MkdirTemp("", "certsync-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if keep {
		fmt.Fprintf(out, "Demo files are kept in %s\n\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	world, err := buildDemoWorld()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	tlsCert, err := world.root.ServerTLS("127.0.0.1", "localhost")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	dirSrv, err := ldaptest.StartMemory(ctx, ldaptest.MemoryOptions{
		TLS:    &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
		BindDN: demoBindDN, BindPassword: demoBindPassword, Entries: world.entries,
	})
	if err != nil {
		return fmt.Errorf("demo: directory: %w", err)
	}
	defer dirSrv.Close()
	graph, err := graphtest.Start(graphtest.Options{Users: world.cloudUsers, ClientSecret: rand.Text()})
	if err != nil {
		return fmt.Errorf("demo: Graph emulator: %w", err)
	}
	defer graph.Close()
	exo, err := exotest.Mount(graph, exotest.Options{Mailboxes: world.mailboxes})
	if err != nil {
		return fmt.Errorf("demo: Exchange emulator: %w", err)
	}

	cfgPath, err := writeDemoConfig(dir, dirSrv.URL, world, graph, exo)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	p, err := newRunner(cfg, zap.NewNop())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	fmt.Fprintf(out, "certsync demo: %d directory users at %s\n", world.people, dirSrv.URL)
	fmt.Fprintf(out, "Two cloud targets, emulated at %s:\n", graph.URL())
	fmt.Fprintln(out, "  Microsoft Graph   graph.certificateUserIds: certificate sign-in bindings (SKI) on each Entra ID user")
	fmt.Fprintln(out, "  Exchange Online   exchange.UserCertificate, exchange.UserSMimeCertificate: the certificates Outlook")
	fmt.Fprintf(out, "                    finds in the address book, on %d mailboxes (at most %d per attribute)\n", len(world.mailboxes), exotest.MaxValues)
	fmt.Fprintln(out, "Exchange values are whole certificates, shown by subject, serial and sha256.")
	fmt.Fprintf(out, "Trusted issuing CAs: %s, %s. A foreign CA (%s) issued some certificates too.\n\n",
		world.root.Cert.Subject.CommonName, world.issuing.Cert.Subject.CommonName, world.foreign.Cert.Subject.CommonName)
	fmt.Fprintln(out, "The users and what each shows:")
	for _, c := range world.cases {
		fmt.Fprintln(out, "  "+c)
	}
	fmt.Fprintln(out)

	steps := []struct {
		title  string
		dryRun bool
		// boxes is what every mailbox must hold once the step is done.
		boxes map[string]demoMailbox
	}{
		{"1. Dry run: what would change (nothing is written)", true, world.boxesBefore},
		{"2. Sync: apply the plan", false, world.boxesAfter},
		{"3. Second sync: nothing left to change", false, world.boxesAfter},
	}
	type counts struct{ graph, exchange int }
	var writes []counts
	for i, s := range steps {
		fmt.Fprintf(out, "=== %s ===\n\n", s.title)
		before := counts{graph.Writes(), setMailboxCalls(exo)}
		plan, passErr := p.Pass(ctx, agent.PassOptions{DryRun: s.dryRun})
		if plan == nil {
			return fmt.Errorf("demo: step %d: %w", i+1, passErr)
		}
		if err := report.WriteTable(out, plan, s.dryRun); err != nil {
			return err
		}
		if passErr != nil {
			return fmt.Errorf("demo: step %d: %w", i+1, passErr)
		}
		writes = append(writes, counts{graph.Writes() - before.graph, setMailboxCalls(exo) - before.exchange})
		fmt.Fprintf(out, "Graph write requests in this step: %d\n", writes[i].graph)
		fmt.Fprintf(out, "Exchange Set-Mailbox requests in this step: %d\n\n", writes[i].exchange)
		if i == 1 {
			writeMailboxes(out, exo, world.boxNotes)
		}
		if err := checkMailboxes(exo, s.boxes); err != nil {
			return fmt.Errorf("demo: step %d: the mailboxes do not hold what they should: %w", i+1, err)
		}
		if i == 2 && (plan.Stats.UsersChanged != 0 || writes[i] != (counts{})) {
			return fmt.Errorf("demo: the second sync still had %d users to change and made %d Graph writes and %d Set-Mailbox requests",
				plan.Stats.UsersChanged, writes[i].graph, writes[i].exchange)
		}
	}
	if writes[0] != (counts{}) {
		return fmt.Errorf("demo: the dry run wrote: %d Graph writes, %d Set-Mailbox requests", writes[0].graph, writes[0].exchange)
	}
	if writes[1].graph == 0 || writes[1].exchange == 0 {
		return fmt.Errorf("demo: the sync wrote too little: %d Graph writes, %d Set-Mailbox requests", writes[1].graph, writes[1].exchange)
	}
	if refused := refusedSetMailbox(exo); len(refused) > 0 {
		return fmt.Errorf("demo: Exchange refused Set-Mailbox for %s", strings.Join(refused, ", "))
	}
	fmt.Fprintln(out, "Demo finished: the dry run wrote nothing to either target, the sync published the valid certificates")
	fmt.Fprintln(out, "to Graph and to the mailboxes (each mailbox holds what it should), the second sync changed nothing.")
	return nil
}

// demoMailbox is what one mailbox holds: DER certificates per attribute.
type demoMailbox struct {
	userCert, smime [][]byte
}

// setMailboxCalls counts the Set-Mailbox requests Exchange received,
// refused ones included: a dry run must not even try.
func setMailboxCalls(exo *exotest.Server) int {
	n := 0
	for _, r := range exo.Requests() {
		if r.Cmdlet == "Set-Mailbox" {
			n++
		}
	}
	return n
}

func refusedSetMailbox(exo *exotest.Server) []string {
	var out []string
	for _, r := range exo.Requests() {
		if r.Cmdlet == "Set-Mailbox" && r.Status != 200 {
			out = append(out, fmt.Sprintf("%s (HTTP %d %s)", r.Identity, r.Status, r.ErrorType))
		}
	}
	return out
}

// checkMailboxes compares every mailbox in the emulator with want, keyed
// by lower-case user principal name.
func checkMailboxes(exo *exotest.Server, want map[string]demoMailbox) error {
	var errs []error
	boxes := exo.Mailboxes()
	if len(boxes) != len(want) {
		errs = append(errs, fmt.Errorf("%d mailboxes, want %d", len(boxes), len(want)))
	}
	for _, m := range boxes {
		w, ok := want[strings.ToLower(m.UserPrincipalName)]
		if !ok {
			errs = append(errs, fmt.Errorf("mailbox %s: not one the demo made", m.UserPrincipalName))
			continue
		}
		for _, a := range []struct {
			name      string
			got, want [][]byte
		}{{"UserCertificate", m.UserCertificate, w.userCert}, {"UserSMimeCertificate", m.UserSMimeCertificate, w.smime}} {
			if !sameDERSet(a.got, a.want) {
				errs = append(errs, fmt.Errorf("mailbox %s: %s holds %d values, not the %d the demo expects", m.UserPrincipalName, a.name, len(a.got), len(a.want)))
			}
		}
	}
	return errors.Join(errs...)
}

func sameDERSet(a, b [][]byte) bool {
	key := func(vs [][]byte) []string {
		out := make([]string, 0, len(vs))
		for _, v := range vs {
			out = append(out, string(v))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// writeMailboxes shows what each mailbox holds, as Outlook would find it.
func writeMailboxes(out io.Writer, exo *exotest.Server, notes map[string]string) {
	fmt.Fprintln(out, "Exchange Online mailboxes after the sync (UserCertificate / UserSMimeCertificate values):")
	for _, m := range exo.Mailboxes() {
		line := fmt.Sprintf("  %-8s %2d / %d", m.Identity, len(m.UserCertificate), len(m.UserSMimeCertificate))
		if n := notes[strings.ToLower(m.UserPrincipalName)]; n != "" {
			line += "   " + n
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintln(out)
}

const (
	demoBaseDN       = "DC=contoso,DC=com"
	demoBindDN       = "CN=svc-certsync,OU=Service Accounts,DC=contoso,DC=com"
	demoBindPassword = "demo-password"
)

type demoWorld struct {
	root, issuing, foreign *pkitest.CA
	people                 int // directory users, the service account left out
	entries                []ldaptest.Entry
	cloudUsers             []graphtest.User
	mailboxes              []exotest.Mailbox
	// boxesBefore and boxesAfter are what each mailbox holds before the
	// sync and must hold after it, keyed by lower-case UPN; boxNotes say
	// why, for people.
	boxesBefore, boxesAfter map[string]demoMailbox
	boxNotes                map[string]string
	cases                   []string // "name: what it shows", for the introduction
}

func writeDemoConfig(dir, ldapURL string, w *demoWorld, g *graphtest.Server, exo *exotest.Server) (string, error) {
	files := map[string][]byte{
		"issuing-cas.pem":   pkitest.CertPEM(w.root.Cert, w.issuing.Cert),
		"ldap-ca.pem":       pkitest.CertPEM(w.root.Cert),
		"ldap-password":     []byte(demoBindPassword + "\n"),
		"graph-ca.pem":      g.CAPEM(),
		"app-client-secret": []byte(g.ClientSecret() + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", err
		}
	}
	// One credential for both targets; Exchange mailboxes are found by
	// mail (cloud.exchange.match's default).
	yaml := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "(&(objectCategory=person)(objectClass=user)(mail=*))"
  anchorAttribute: objectGUID
  bind: {method: simple, username: "%s", passwordFile: ldap-password}
  tls: {caFile: ldap-ca.pem}
cloud:
  tenantID: "%s"
  clientID: "%s"
  credential: {method: secret, secretFile: app-client-secret}
  graphEndpoint: "%s"
  authorityHost: "%s/"
  caFile: graph-ca.pem
  match: {sourceAttribute: objectGUID, cloudProperty: onPremisesImmutableId}
  certificateUserIds: {enabled: true, bindings: [SKI]}
  exchange: {enabled: true, endpoint: "%s"}
policy:
  issuingCAFile: issuing-cas.pem
state: {path: state.db}
log: {level: error, format: console}
`, ldapURL, demoBaseDN, demoBindDN, g.TenantID(), g.ClientID(), g.URL(), g.URL(), exo.URL())
	path := filepath.Join(dir, "agent.yaml")
	return path, os.WriteFile(path, []byte(yaml), 0o600)
}

// demoUser is one seeded person: what the directory holds and how the
// cloud side looks.
type demoUser struct {
	name     string // sAMAccountName; mail is name@contoso.com
	certs    [][]byte
	smime    [][]byte
	inCloud  bool
	synced   bool     // still synced by Entra Connect: Graph and Exchange refuse writes
	cloudIDs []string // certificateUserIds already in the cloud
	noMail   bool
	comment  string

	// Exchange Online: every cloud user has a mailbox unless noMailbox.
	noMailbox bool
	boxCerts  [][]byte // UserCertificate values already there, as Entra Connect left them
	// wantCert and wantSMime are the DER certificates the mailbox must hold
	// after the sync (boxCerts are not added to them: say them again).
	wantCert, wantSMime [][]byte
	boxNote             string // shown beside the mailbox after the sync
}

func buildDemoWorld() (*demoWorld, error) {
	w := &demoWorld{boxesBefore: map[string]demoMailbox{}, boxesAfter: map[string]demoMailbox{}, boxNotes: map[string]string{}}
	var err error
	if w.root, err = pkitest.NewRootCA("Contoso Root CA"); err != nil {
		return nil, err
	}
	if w.issuing, err = w.root.NewIntermediate("Contoso Issuing CA 1"); err != nil {
		return nil, err
	}
	if w.foreign, err = pkitest.NewRootCA("Fabrikam Root CA"); err != nil {
		return nil, err
	}
	users, err := demoUsers(w, time.Now())
	if err != nil {
		return nil, err
	}
	w.people = len(users)
	w.entries = append(w.entries, ldaptest.Entry{DN: demoBindDN, Attributes: map[string][][]byte{
		"objectClass": {[]byte("user")}, "sAMAccountName": {[]byte("svc-certsync")},
	}})
	for _, u := range users {
		guid := make([]byte, 16)
		if _, err := rand.Read(guid); err != nil {
			return nil, err
		}
		mail := u.name + "@contoso.com"
		attrs := map[string][][]byte{
			"objectClass":       {[]byte("top"), []byte("person"), []byte("organizationalPerson"), []byte("user")},
			"objectCategory":    {[]byte("person")},
			"cn":                {[]byte(u.name)},
			"sAMAccountName":    {[]byte(u.name)},
			"userPrincipalName": {[]byte(mail)},
			"objectGUID":        {guid},
		}
		if !u.noMail {
			attrs["mail"] = [][]byte{[]byte(mail)}
		}
		if len(u.certs) > 0 {
			attrs["userCertificate"] = u.certs
		}
		if len(u.smime) > 0 {
			attrs["userSMIMECertificate"] = u.smime
		}
		w.entries = append(w.entries, ldaptest.Entry{DN: "CN=" + u.name + ",OU=People," + demoBaseDN, Attributes: attrs})
		if u.comment != "" {
			w.cases = append(w.cases, fmt.Sprintf("%-8s %s", u.name, u.comment))
		}
		if !u.inCloud {
			continue
		}
		w.cloudUsers = append(w.cloudUsers, graphtest.User{
			UserPrincipalName: mail, Mail: mail, OnPremisesImmutableID: base64.StdEncoding.EncodeToString(guid),
			OnPremisesSyncEnabled: u.synced, CertificateUserIDs: u.cloudIDs,
		})
		if u.noMailbox {
			continue
		}
		w.mailboxes = append(w.mailboxes, exotest.Mailbox{UserPrincipalName: mail, IsDirSynced: u.synced, UserCertificate: u.boxCerts})
		w.boxesBefore[mail] = demoMailbox{userCert: u.boxCerts}
		w.boxesAfter[mail] = demoMailbox{userCert: u.wantCert, smime: u.wantSMime}
		w.boxNotes[mail] = u.boxNote
	}
	return w, nil
}

// demoUsers lists the cases the demo shows, one person each.
func demoUsers(w *demoWorld, now time.Time) ([]demoUser, error) {
	var firstErr error
	leaf := func(ca *pkitest.CA, o pkitest.LeafOptions) []byte {
		c, _, err := ca.Issue(o)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if c == nil {
			return nil
		}
		return c.Raw
	}
	issued := func(name string) pkitest.LeafOptions {
		return pkitest.LeafOptions{CommonName: name, Email: name + "@contoso.com"}
	}
	// outlook is what Outlook publishes in userSMIMECertificate: a signed
	// PKCS#7 carrying the user's certificate; it returns the blob and the
	// certificate's DER.
	outlook := func(name string) ([]byte, []byte) {
		c, key, err := w.issuing.Issue(issued(name))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return nil, nil
		}
		p7, err := pkitest.SignedPKCS7(c, key, w.issuing.Cert)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return p7, c.Raw
	}
	expired := issued("dave")
	expired.NotBefore, expired.NotAfter = now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)
	victorOld := issued("victor")
	victorOld.NotBefore, victorOld.NotAfter = now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)
	future := issued("niaj")
	future.NotBefore = now.AddDate(0, 1, 0)
	noSKI := issued("erin")
	noSKI.NoSKI = true
	serverOnly := issued("judy")
	serverOnly.EKUs = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

	var many [][]byte
	for i := 0; i < 17; i++ {
		o := issued("grace")
		o.NotBefore = now.AddDate(0, 0, -30+i)
		many = append(many, leaf(w.issuing, o))
	}
	carolP7, carolCert := outlook("carol")
	quinnP7, quinnSMime := outlook("quinn")
	y1, _, err := w.issuing.Issue(issued("yvonne"))
	if err != nil {
		return nil, err
	}
	y2, _, err := w.issuing.Issue(issued("yvonne"))
	if err != nil {
		return nil, err
	}
	yP7, err := pkitest.DegeneratePKCS7(y1, y2)
	if err != nil {
		return nil, err
	}
	olivia := leaf(w.issuing, issued("olivia"))
	bobOld := issued("bob")
	bobOld.NotBefore = now.AddDate(0, -6, 0)
	heidiPrev := issued("heidi")
	heidiPrev.NotBefore = now.AddDate(-1, 0, 0)
	heidiBox := [][]byte{leaf(w.issuing, heidiPrev)} // her certificate before the renewal
	kateOld := issued("kate")
	kateOld.NotBefore, kateOld.NotAfter = now.AddDate(-3, 0, 0), now.AddDate(-1, 0, 0)
	kateGone := leaf(w.issuing, kateOld) // on her mailbox, no longer in the directory

	one := func(name string) [][]byte { return [][]byte{leaf(w.issuing, issued(name))} }
	alice, heidi, kate, peggy := one("alice"), one("heidi"), one("kate"), one("peggy")
	bob := [][]byte{leaf(w.issuing, issued("bob")), leaf(w.issuing, bobOld)}
	quinn, sybil, trent, victor := one("quinn"), one("sybil"), one("trent"), one("victor")

	users := []demoUser{
		{name: "alice", certs: alice, inCloud: true, wantCert: alice, comment: "one valid certificate"},
		{name: "bob", certs: bob, inCloud: true, wantCert: bob, comment: "two valid certificates"},
		{name: "carol", smime: [][]byte{carolP7}, inCloud: true, wantSMime: [][]byte{carolCert},
			comment: "Outlook-style PKCS#7 S/MIME blob: its certificate lands in exchange.UserSMimeCertificate",
			boxNote: "Outlook's PKCS#7 from userSMIMECertificate, unpacked to its certificate"},
		{name: "dave", certs: [][]byte{leaf(w.issuing, expired)}, inCloud: true, comment: "expired"},
		{name: "erin", certs: [][]byte{leaf(w.issuing, noSKI)}, inCloud: true, comment: "no Subject Key Identifier"},
		{name: "frank", certs: [][]byte{leaf(w.foreign, issued("frank"))}, inCloud: true, comment: "issued by a foreign CA"},
		{name: "grace", certs: many, inCloud: true, wantCert: many[2:],
			comment: "17 valid certificates: 15 kept, 10 bindings fit in Graph, all 15 on the mailbox (Exchange's limit)",
			boxNote: "the 15 newest: the most Exchange holds per attribute"},
		{name: "heidi", certs: heidi, inCloud: true, synced: true, boxCerts: heidiBox, wantCert: heidiBox,
			comment: "still synced by Entra Connect, her renewal not on her mailbox yet: reported by both targets, nothing written",
			boxNote: "synced from on-premises (IsDirSynced): untouched, as Entra Connect wrote it"},
		{name: "ivan", certs: one("ivan"), comment: "no cloud account and no mailbox"},
		{name: "judy", certs: [][]byte{leaf(w.issuing, serverOnly)}, inCloud: true, comment: "wrong extended key usage"},
		{name: "kate", certs: kate, inCloud: true, boxCerts: [][]byte{kate[0], kateGone}, wantCert: [][]byte{kate[0], kateGone},
			comment: "mailbox as Entra Connect left it: her certificate and an old one gone from the directory (both kept: not certsync's)",
			boxNote: "Entra Connect's two values, both still there: certsync removes only what it published"},
		{name: "mallory", certs: [][]byte{[]byte("this is not a certificate")}, inCloud: true, comment: "garbage value"},
		{name: "niaj", certs: [][]byte{leaf(w.issuing, future)}, inCloud: true, comment: "not yet valid"},
		{name: "olivia", certs: [][]byte{olivia}, smime: [][]byte{olivia}, inCloud: true, wantCert: [][]byte{olivia}, wantSMime: [][]byte{olivia},
			comment: "same certificate in both attributes: one binding, on both mailbox attributes"},
		{name: "peggy", certs: peggy, inCloud: true, cloudIDs: []string{"X509:<PN>peggy@contoso.com"}, wantCert: peggy, comment: "a value an admin added by hand"},
		{name: "quinn", certs: quinn, smime: [][]byte{quinnP7}, inCloud: true, wantCert: quinn, wantSMime: [][]byte{quinnSMime},
			comment: "a certificate in each attribute: one on each mailbox attribute"},
		{name: "rupert", inCloud: true, comment: "no certificates"},
		{name: "sybil", certs: sybil, inCloud: true, wantCert: sybil},
		{name: "trent", certs: trent, inCloud: true, noMailbox: true, comment: "an Entra ID user without a mailbox: Graph only"},
		{name: "victor", certs: [][]byte{victor[0], leaf(w.issuing, victorOld)}, inCloud: true, wantCert: victor, comment: "one valid, one expired"},
		{name: "walter", certs: [][]byte{w.issuing.Cert.Raw}, inCloud: true, comment: "a CA certificate as value"},
		{name: "yvonne", smime: [][]byte{yP7}, inCloud: true, wantSMime: [][]byte{y1.Raw, y2.Raw}, comment: "PKCS#7 with two certificates: both on exchange.UserSMimeCertificate"},
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return users, nil
}
