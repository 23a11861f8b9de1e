//go:build !release

package demo

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldapmem"
	"github.com/certsync/certsync/mapping/pkitest"
)

// world is everything the demo seeds: the PKI, the directory entries, the
// Entra ID users and mailboxes, and what the mailboxes must hold.
type world struct {
	root, issuing, foreign *pkitest.CA
	people                 int // directory users, the service account left out
	entries                []ldapmem.Entry
	cloudUsers             []graphtest.User
	mailboxes              []exotest.Mailbox
	// boxesBefore and boxesAfter are what each mailbox holds before the
	// sync and must hold after it, keyed by lower-case UPN; boxNotes say
	// why, for people.
	boxesBefore, boxesAfter map[string]mailbox
	boxNotes                map[string]string
	cases                   []string // "name: what it shows", for the introduction
}

// user is one seeded person: what the directory holds and how the
// cloud side looks.
type user struct {
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
	// wantCert and wantSMime are the values the mailbox must hold after the
	// sync, byte for byte: DER certificates, or the PKCS#7 blob whole
	// (boxCerts are not added to them: say them again).
	wantCert, wantSMime [][]byte
	boxNote             string // shown beside the mailbox after the sync
}

// buildWorld generates the PKI and the people listUsers describes, as
// directory entries, cloud users and mailboxes.
func buildWorld() (*world, error) {
	w := &world{boxesBefore: map[string]mailbox{}, boxesAfter: map[string]mailbox{}, boxNotes: map[string]string{}}
	var err error
	if w.root, err = pkitest.NewRootCA("Contoso Root CA"); err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	if w.issuing, err = w.root.NewIntermediate("Contoso Issuing CA 1"); err != nil {
		return nil, fmt.Errorf("issuing CA: %w", err)
	}
	if w.foreign, err = pkitest.NewRootCA("Fabrikam Root CA"); err != nil {
		return nil, fmt.Errorf("foreign CA: %w", err)
	}
	users, err := listUsers(w, time.Now())
	if err != nil {
		return nil, fmt.Errorf("users' certificates: %w", err)
	}
	w.people = len(users)
	w.entries = append(w.entries, ldapmem.Entry{DN: bindDN, Attributes: map[string][][]byte{
		"objectClass": {[]byte("user")}, "sAMAccountName": {[]byte("svc-certsync")},
	}})
	for _, u := range users {
		guid := make([]byte, 16)
		if _, err := rand.Read(guid); err != nil {
			return nil, fmt.Errorf("objectGUID: %w", err)
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
		w.entries = append(w.entries, ldapmem.Entry{DN: "CN=" + u.name + ",OU=People," + baseDN, Attributes: attrs})
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
		w.boxesBefore[mail] = mailbox{userCert: u.boxCerts}
		w.boxesAfter[mail] = mailbox{userCert: u.wantCert, smime: u.wantSMime}
		w.boxNotes[mail] = u.boxNote
	}
	return w, nil
}

// listUsers lists the cases the demo shows, one person each.
func listUsers(w *world, now time.Time) ([]user, error) {
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
	// PKCS#7 carrying the user's certificate and its issuing CA, with BER
	// indefinite lengths; it returns the blob and the certificate's DER.
	outlook := func(name string) ([]byte, []byte) {
		c, key, err := w.issuing.Issue(issued(name))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return nil, nil
		}
		p7, err := pkitest.SignedPKCS7(c, key, w.issuing.Cert)
		if err == nil {
			p7, err = pkitest.ToBER(p7)
		}
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
	carolP7, _ := outlook("carol")
	quinnP7, _ := outlook("quinn")
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

	users := []user{
		{name: "alice", certs: alice, inCloud: true, wantCert: alice, comment: "one valid certificate"},
		{name: "bob", certs: bob, inCloud: true, wantCert: bob, comment: "two valid certificates"},
		{name: "carol", smime: [][]byte{carolP7}, inCloud: true, wantSMime: [][]byte{carolP7},
			comment: "Outlook-style PKCS#7 S/MIME blob (BER, with its issuing CA): lands whole on exchange.UserSMimeCertificate",
			boxNote: "Outlook's PKCS#7 from userSMIMECertificate, byte for byte, as Outlook reads it back"},
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
		{name: "quinn", certs: quinn, smime: [][]byte{quinnP7}, inCloud: true, wantCert: quinn, wantSMime: [][]byte{quinnP7},
			comment: "a certificate in each attribute: one on each mailbox attribute"},
		{name: "rupert", inCloud: true, comment: "no certificates"},
		{name: "sybil", certs: sybil, inCloud: true, wantCert: sybil},
		{name: "trent", certs: trent, inCloud: true, noMailbox: true, comment: "an Entra ID user without a mailbox: Graph only"},
		{name: "victor", certs: [][]byte{victor[0], leaf(w.issuing, victorOld)}, inCloud: true, wantCert: victor, comment: "one valid, one expired"},
		{name: "walter", certs: [][]byte{w.issuing.Cert.Raw}, inCloud: true, comment: "a CA certificate as value"},
		{name: "yvonne", smime: [][]byte{yP7}, inCloud: true, wantSMime: [][]byte{yP7}, comment: "PKCS#7 with two certificates: two bindings, the blob whole on exchange.UserSMimeCertificate"},
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return users, nil
}
