package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping/pkitest"
)

// S/MIME as Outlook leaves it in the directory, through the binary: slapd,
// Graph and Exchange emulators. The policy trusts only the root, so a
// leaf's issuing CA is found in its own bag or nowhere.
func TestExchangeSMIMEBlobs(t *testing.T) {
	people := []person{
		{uid: "ann", inCloud: true, mailbox: true}, // an Outlook-signed blob, BER
		{uid: "ben", inCloud: true, mailbox: true}, // a degenerate bag, root first
		{uid: "cid", inCloud: true, mailbox: true}, // a bag with one certificate Go cannot parse
		{uid: "dee", inCloud: true, mailbox: true}, // two leaves, one from a stranger
	}
	w := newWorld(t, people, "", withExchange(""))
	if err := os.WriteFile(filepath.Join(w.dir, "issuing.pem"), pkitest.CertPEM(w.root.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	// outlook issues a leaf under the issuing CA and signs a message with
	// it carrying the chain, BER-encoded, as Outlook publishes.
	outlook := func(uid string) (leaf, blob []byte) {
		c, key, err := w.issuing.Issue(pkitest.LeafOptions{CommonName: uid, Email: uid + "@example.test", NotBefore: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		signed, err := pkitest.SignedPKCS7(c, key, w.issuing.Cert, w.root.Cert)
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
	benBlob := pkitest.Bag(true, w.root.Cert.Raw, benLeaf, w.issuing.Cert.Raw)
	cidLeaf, _ := outlook("cid")
	cidBlob := pkitest.Bag(true, cidLeaf, pkitest.Unparseable(), w.issuing.Cert.Raw)
	deeLeaf, _ := outlook("dee")
	stranger, _, err := w.foreign.Issue(pkitest.LeafOptions{CommonName: "dee", Email: "dee@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	deeBlob := pkitest.Bag(false, deeLeaf, stranger.Raw, w.issuing.Cert.Raw)
	for uid, blob := range map[string][]byte{"ann": annBlob, "ben": benBlob, "cid": cidBlob, "dee": deeBlob} {
		w.modify(uid, func(m *ldap.ModifyRequest) { m.Replace("userSMIMECertificate", []string{string(blob)}) })
	}

	r := w.syncJSON(0)
	for _, tc := range []struct {
		uid      string
		want     []byte // the mailbox's UserSMimeCertificate; nil: nothing
		binding  []byte // the certificate bound in Graph
		withheld bool
		rejected string // the rejection code expected, if any
	}{
		{uid: "ann", want: annBlob, binding: annLeaf},
		{uid: "ben", want: benBlob, binding: benLeaf},
		{uid: "cid", binding: cidLeaf, withheld: true, rejected: "malformed"},
		{uid: "dee", binding: deeLeaf, withheld: true, rejected: "untrusted"},
	} {
		_, smime := w.mailbox(tc.uid)
		switch {
		case tc.want == nil && len(smime) != 0:
			t.Errorf("%s: UserSMimeCertificate holds %d values, want none (the blob has a failing certificate)", tc.uid, len(smime))
		case tc.want != nil && (len(smime) != 1 || smime[0] != b64s([][]byte{tc.want})[0]):
			t.Errorf("%s: UserSMimeCertificate is not the directory's blob byte for byte (%d values)", tc.uid, len(smime))
		}
		if got, want := w.cloudValues(tc.uid), skiValues(t, tc.binding); !sameSet(got, want) {
			t.Errorf("%s: certificateUserIds %v, want %v (Graph binds each certificate)", tc.uid, got, want)
		}
		u, _ := userByName(r, tc.uid+"@example.test")
		if tc.withheld != (len(u.Withheld) == 1) {
			t.Errorf("%s: withheld %+v", tc.uid, u.Withheld)
		}
		if tc.rejected != "" && (len(u.Rejected) != 1 || u.Rejected[0].Code != tc.rejected) {
			t.Errorf("%s: rejected %+v, want one %s", tc.uid, u.Rejected, tc.rejected)
		}
		if tc.want != nil {
			sum := sha256.Sum256(tc.want)
			if len(u.Values) != 1 || u.Values[0].SHA256 != hex.EncodeToString(sum[:]) || u.Values[0].Form != "pkcs7" {
				t.Errorf("%s: report values %+v, want the blob as pkcs7", tc.uid, u.Values)
			}
		}
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
