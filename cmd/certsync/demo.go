package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

func newDemoCommand() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded directory and Graph emulator",
		Long: `Starts an in-process LDAP directory seeded with a generated PKI and 20 users
covering the interesting cases, and an in-process Microsoft Graph emulator; then
prints the dry-run plan, applies it, and runs a second pass that changes nothing.
Nothing outside a temporary directory is touched.`,
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

	cfgPath, err := writeDemoConfig(dir, dirSrv.URL, world, graph)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	p, err := newPipeline(cfg, zap.NewNop())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	fmt.Fprintf(out, "certsync demo: %d directory users at %s, Microsoft Graph emulator at %s\n", len(world.entries), dirSrv.URL, graph.URL())
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
	}{
		{"1. Dry run: what would change (nothing is written)", true},
		{"2. Sync: apply the plan", false},
		{"3. Second sync: nothing left to change", false},
	}
	var writes []int
	for i, s := range steps {
		fmt.Fprintf(out, "=== %s ===\n\n", s.title)
		before := graph.Writes()
		plan, passErr := p.runPass(ctx, passOptions{dryRun: s.dryRun})
		if plan == nil {
			return fmt.Errorf("demo: step %d: %w", i+1, passErr)
		}
		if err := writeTable(out, plan, s.dryRun); err != nil {
			return err
		}
		if passErr != nil {
			return fmt.Errorf("demo: step %d: %w", i+1, passErr)
		}
		writes = append(writes, graph.Writes()-before)
		fmt.Fprintf(out, "Graph write requests in this step: %d\n\n", writes[i])
		if i == 2 && (plan.Stats.UsersChanged != 0 || writes[i] != 0) {
			return fmt.Errorf("demo: the second sync still had %d users to change and made %d writes", plan.Stats.UsersChanged, writes[i])
		}
	}
	if writes[0] != 0 || writes[1] == 0 {
		return fmt.Errorf("demo: unexpected writes: dry run %d, sync %d", writes[0], writes[1])
	}
	fmt.Fprintln(out, "Demo finished: the dry run wrote nothing, the sync published the valid certificates, the second sync changed nothing.")
	return nil
}

const (
	demoBaseDN       = "DC=contoso,DC=com"
	demoBindDN       = "CN=svc-certsync,OU=Service Accounts,DC=contoso,DC=com"
	demoBindPassword = "demo-password"
)

type demoWorld struct {
	root, issuing, foreign *pkitest.CA
	entries                []ldaptest.Entry
	cloudUsers             []graphtest.User
	cases                  []string // "name: what it shows", for the introduction
}

func writeDemoConfig(dir, ldapURL string, w *demoWorld, g *graphtest.Server) (string, error) {
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
policy:
  issuingCAFile: issuing-cas.pem
state: {path: state.db}
log: {level: error, format: console}
`, ldapURL, demoBaseDN, demoBindDN, g.TenantID(), g.ClientID(), g.URL(), g.URL())
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
	synced   bool     // still synced by Entra Connect: Graph refuses writes
	cloudIDs []string // certificateUserIds already in the cloud
	noMail   bool
	comment  string
}

func buildDemoWorld() (*demoWorld, error) {
	w := &demoWorld{}
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
		if u.inCloud {
			w.cloudUsers = append(w.cloudUsers, graphtest.User{
				UserPrincipalName: mail, Mail: mail, OnPremisesImmutableID: base64.StdEncoding.EncodeToString(guid),
				OnPremisesSyncEnabled: u.synced, CertificateUserIDs: u.cloudIDs,
			})
		}
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
	carolCert, carolKey, err := w.issuing.Issue(issued("carol"))
	if err != nil {
		return nil, err
	}
	carolP7, err := pkitest.SignedPKCS7(carolCert, carolKey, w.issuing.Cert)
	if err != nil {
		return nil, err
	}
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

	users := []demoUser{
		{name: "alice", certs: [][]byte{leaf(w.issuing, issued("alice"))}, inCloud: true, comment: "one valid certificate"},
		{name: "bob", certs: [][]byte{leaf(w.issuing, bobOld), leaf(w.issuing, issued("bob"))}, inCloud: true, comment: "two valid certificates"},
		{name: "carol", smime: [][]byte{carolP7}, inCloud: true, comment: "Outlook-style PKCS#7 S/MIME blob"},
		{name: "dave", certs: [][]byte{leaf(w.issuing, expired)}, inCloud: true, comment: "expired"},
		{name: "erin", certs: [][]byte{leaf(w.issuing, noSKI)}, inCloud: true, comment: "no Subject Key Identifier"},
		{name: "frank", certs: [][]byte{leaf(w.foreign, issued("frank"))}, inCloud: true, comment: "issued by a foreign CA"},
		{name: "grace", certs: many, inCloud: true, comment: "17 valid certificates: 15 kept, 10 bindings fit"},
		{name: "heidi", certs: [][]byte{leaf(w.issuing, issued("heidi"))}, inCloud: true, synced: true, comment: "still synced by Entra Connect"},
		{name: "ivan", certs: [][]byte{leaf(w.issuing, issued("ivan"))}, comment: "no cloud account"},
		{name: "judy", certs: [][]byte{leaf(w.issuing, serverOnly)}, inCloud: true, comment: "wrong extended key usage"},
		{name: "mallory", certs: [][]byte{[]byte("this is not a certificate")}, inCloud: true, comment: "garbage value"},
		{name: "niaj", certs: [][]byte{leaf(w.issuing, future)}, inCloud: true, comment: "not yet valid"},
		{name: "olivia", certs: [][]byte{olivia}, smime: [][]byte{olivia}, inCloud: true, comment: "same certificate in both attributes"},
		{name: "peggy", certs: [][]byte{leaf(w.issuing, issued("peggy"))}, inCloud: true, cloudIDs: []string{"X509:<PN>peggy@contoso.com"}, comment: "a value an admin added by hand"},
		{name: "rupert", inCloud: true, comment: "no certificates"},
		{name: "sybil", certs: [][]byte{leaf(w.issuing, issued("sybil"))}, inCloud: true},
		{name: "trent", certs: [][]byte{leaf(w.issuing, issued("trent"))}, inCloud: true},
		{name: "victor", certs: [][]byte{leaf(w.issuing, issued("victor")), leaf(w.issuing, victorOld)}, inCloud: true, comment: "one valid, one expired"},
		{name: "walter", certs: [][]byte{w.issuing.Cert.Raw}, inCloud: true, comment: "a CA certificate as value"},
		{name: "yvonne", smime: [][]byte{yP7}, inCloud: true, comment: "PKCS#7 with two certificates"},
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return users, nil
}
