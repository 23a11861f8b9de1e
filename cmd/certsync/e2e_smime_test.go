package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// smimeCase is one user's userSMIMECertificate as Outlook (or a tool)
// left it, and what must come of it.
type smimeCase struct {
	name     string
	blob     []byte // the directory value
	leaf     []byte // the end-entity certificate bound in Graph
	whole    bool   // the blob lands on UserSMimeCertificate byte for byte
	rejected string // the rejection code expected, if any (the blob is then withheld)
}

// smimeCases builds the S/MIME scenarios under issuing (signed by root,
// which alone the policy trusts, so a leaf's issuing CA is found in its
// own bag or nowhere): an Outlook-signed blob, BER; a degenerate bag,
// root first; a bag with one certificate Go cannot parse; two leaves, one
// from a stranger CA.
func smimeCases(t testing.TB, root, issuing, foreign *pkitest.CA, mail func(string) string) []smimeCase {
	t.Helper()
	outlook := func(name string) (leaf, blob []byte) {
		c, key, err := issuing.Issue(pkitest.LeafOptions{CommonName: name, Email: mail(name), NotBefore: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		signed, err := pkitest.SignedPKCS7(c, key, issuing.Cert, root.Cert)
		if err != nil {
			t.Fatal(err)
		}
		if blob, err = pkitest.ToBER(signed); err != nil {
			t.Fatal(err)
		}
		return c.Raw, blob
	}
	annLeaf, annBlob := outlook("ann")
	benLeaf, _ := outlook("ben")
	cidLeaf, _ := outlook("cid")
	deeLeaf, _ := outlook("dee")
	stranger, _, err := foreign.Issue(pkitest.LeafOptions{CommonName: "dee", Email: mail("dee")})
	if err != nil {
		t.Fatal(err)
	}
	return []smimeCase{
		{name: "ann", blob: annBlob, leaf: annLeaf, whole: true},
		{name: "ben", blob: pkitest.Bag(true, root.Cert.Raw, benLeaf, issuing.Cert.Raw), leaf: benLeaf, whole: true},
		{name: "cid", blob: pkitest.Bag(true, cidLeaf, pkitest.Unparseable(), issuing.Cert.Raw), leaf: cidLeaf, rejected: "malformed"},
		{name: "dee", blob: pkitest.Bag(false, deeLeaf, stranger.Raw, issuing.Cert.Raw), leaf: deeLeaf, rejected: "untrusted"},
	}
}

// checkSMIME checks one case after a pass: the mailbox, the Graph
// bindings and the report.
func checkSMIME(t *testing.T, w *world, r jsonReport, c smimeCase, reportName string) {
	t.Helper()
	_, smime := w.mailbox(c.name)
	switch {
	case !c.whole && len(smime) != 0:
		t.Errorf("%s: UserSMimeCertificate holds %d values, want none (the blob has a failing certificate)", c.name, len(smime))
	case c.whole && (len(smime) != 1 || smime[0] != b64s([][]byte{c.blob})[0]):
		t.Errorf("%s: UserSMimeCertificate is not the directory's blob byte for byte (%d values)", c.name, len(smime))
	}
	if got, want := w.cloudValues(c.name), skiValues(t, c.leaf); !sameSet(got, want) {
		t.Errorf("%s: certificateUserIds %v, want %v (Graph binds each certificate)", c.name, got, want)
	}
	u, ok := userByName(r, reportName)
	if !ok {
		t.Fatalf("%s is not in the report", reportName)
	}
	if c.whole == (len(u.Withheld) == 1) {
		t.Errorf("%s: withheld %+v", c.name, u.Withheld)
	}
	if c.rejected != "" && (len(u.Rejected) != 1 || u.Rejected[0].Code != c.rejected) {
		t.Errorf("%s: rejected %+v, want one %s", c.name, u.Rejected, c.rejected)
	}
	if c.whole {
		sum := sha256.Sum256(c.blob)
		if len(u.Values) != 1 || u.Values[0].SHA256 != hex.EncodeToString(sum[:]) || u.Values[0].Form != "pkcs7" {
			t.Errorf("%s: report values %+v, want the blob as pkcs7", c.name, u.Values)
		}
	}
}

// S/MIME as Outlook leaves it in the directory, through the binary: slapd,
// Graph and Exchange emulators.
func TestExchangeSMIMEBlobs(t *testing.T) {
	people := []person{
		{uid: "ann", inCloud: true, mailbox: true},
		{uid: "ben", inCloud: true, mailbox: true},
		{uid: "cid", inCloud: true, mailbox: true},
		{uid: "dee", inCloud: true, mailbox: true},
	}
	w := newWorld(t, people, "", withExchange(""))
	if err := os.WriteFile(filepath.Join(w.dir, "issuing.pem"), pkitest.CertPEM(w.root.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := smimeCases(t, w.root, w.issuing, w.foreign, func(uid string) string { return uid + "@example.test" })
	for _, c := range cases {
		w.modify(c.name, func(m *ldap.ModifyRequest) { m.Replace("userSMIMECertificate", []string{string(c.blob)}) })
	}

	r := w.syncJSON(0)
	for _, c := range cases {
		checkSMIME(t, w, r, c, c.name+"@example.test")
	}

	// --user shows the blob by its certificates and says it goes whole.
	_, out, _ := w.run("sync", "--dry-run", "--reconcile", "--user", "ann@example.test", "--output", "table")
	for _, want := range []string{"value:", "userSMIMECertificate PKCS#7 of 1 certificate", "published as it is"} {
		if !strings.Contains(out, want) {
			t.Errorf("--user table lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = w.run("sync", "--dry-run", "--user", "cid@example.test", "--output", "table")
	if !strings.Contains(out, "withheld:") || !strings.Contains(out, "certificate 2 does not parse") {
		t.Errorf("--user table does not say why cid's blob is withheld:\n%s", out)
	}

	// Settled: nothing more to do.
	w.exo.ResetRequests()
	w.graph.ResetRequests()
	w.syncJSON(0)
	if n := len(w.exo.Requests()) + len(w.graph.Requests()); n != 0 {
		t.Fatalf("a second pass sent %d requests", n)
	}
}

// The same S/MIME values on a Samba AD DC: Samba stores and returns
// userSMIMECertificate as AD does (no ;binary), and the objectGUID
// anchor matches Graph's onPremisesImmutableId.
func TestADExchangeSMIMEBlobs(t *testing.T) {
	names := []string{"ann", "ben", "cid", "dee"}
	var people []adPerson
	for _, n := range names {
		people = append(people, adPerson{name: n, certs: 0})
	}
	w := newADWorld(t, domainController(t), people, "", "")
	foreign, err := pkitest.NewRootCA("AD E2E Foreign CA")
	if err != nil {
		t.Fatal(err)
	}
	mail := func(n string) string { return n + "@" + w.dept + ".test" }
	cases := smimeCases(t, w.root, w.issuing, foreign, mail)
	for _, c := range cases {
		w.dc.SetCertificates(t, w.dns[c.name], "userSMIMECertificate", [][]byte{c.blob})
	}
	var boxes []exotest.Mailbox
	for _, n := range names {
		boxes = append(boxes, exotest.Mailbox{UserPrincipalName: mail(n)})
	}
	if w.exo, err = exotest.Mount(w.graph, exotest.Options{Mailboxes: boxes}); err != nil {
		t.Fatal(err)
	}
	w.boxIDs = map[string]string{}
	for _, m := range w.exo.Mailboxes() {
		w.boxIDs[strings.TrimSuffix(m.UserPrincipalName, "@"+w.dept+".test")] = m.ExternalDirectoryObjectID
	}
	if err := os.WriteFile(filepath.Join(w.dir, "issuing.pem"), pkitest.CertPEM(w.root.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	w.cloudKeys = []string{fmt.Sprintf(`exchange: {enabled: true, endpoint: "%s"}`, w.graph.URL())}
	w.writeConfig(w.dc.URL)

	r := w.syncJSON(0)
	for _, c := range cases {
		// The blob read back from Samba is the one written, byte for byte.
		if got := w.dc.RawValue(t, w.dns[c.name], "userSMIMECertificate"); string(got) != string(c.blob) {
			t.Fatalf("%s: Samba returns another userSMIMECertificate than was written", c.name)
		}
		checkSMIME(t, w.world, r, c, mail(c.name))
	}
}
