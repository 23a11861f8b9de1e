package ldapsrc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// TestCRLsSamba publishes a base and a delta CRL to the configuration
// partition of a real AD DC the way ADCS does, reads them back through the
// derived CDP base, and judges users read from the same DC with them.
func TestCRLsSamba(t *testing.T) {
	dc := sharedSamba(t)
	p := newCRLPKI(t)
	admin := dc.Admin(t)
	cdp := "CN=CDP,CN=Public Key Services,CN=Services," + dc.ConfigDN
	host := "CN=crlhost," + cdp
	issuing := "CN=Issuing CA," + host
	broken := "CN=Broken CA," + host
	// Active Directory takes the attribute names without ";binary".
	addEntries(t, admin,
		addRequest(host, map[string][]string{"objectClass": {"container"}}),
		addRequest(issuing, map[string][]string{"objectClass": {"cRLDistributionPoint"},
			"certificateRevocationList": {string(p.base)}, "deltaRevocationList": {string(p.delta)}}),
		addRequest(broken, map[string][]string{"objectClass": {"cRLDistributionPoint"},
			"certificateRevocationList": {"not a CRL"}}))

	const dept = "crltest"
	for name, c := range map[string][]byte{"alice": p.alice.Raw, "bob": p.bob.Raw, "carol": p.carol.Raw} {
		dc.AddUser(t, ldaptest.SambaUser{Name: "crl-" + name, UserCertificates: [][]byte{c},
			Attributes: map[string][]string{"department": {dept}}})
	}
	src := openAD(t, adConfig(dc, dept, ldapsrc.TrackFull), zaptest.NewLogger(t))

	entries, err := src.CRLs(context.Background(), ldapsrc.CRLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkCRLEntries(t, entries, []ldapsrc.CRLEntry{
		{DN: issuing, CA: "Issuing CA", Base: [][]byte{p.base}, Delta: [][]byte{p.delta}},
		{DN: broken, CA: "Broken CA", Base: [][]byte{[]byte("not a CRL")}},
	})

	// The users as the agent reads them, judged with those CRLs.
	certs := map[string][]byte{}
	if _, err := src.Users(context.Background(), func(u mapping.SourceUser) error {
		if len(u.Values) != 1 {
			t.Errorf("%s: %d values, want 1", u.DN, len(u.Values))
			return nil
		}
		certs[strings.TrimPrefix(u.Attr("sAMAccountName"), "crl-")] = u.Values[0].Data
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	verdicts, problems := p.verdicts(t, entries, certs)
	p.checkRevocationVerdicts(t, verdicts)
	if len(problems) != 1 || problems[0].CA != "" || problems[0].Unavailable ||
		!strings.HasPrefix(problems[0].String(), broken+" certificateRevocationList: not a CRL: ") {
		t.Errorf("problems = %q, want the broken CA's value named", problems)
	}

	// The CA publishes a new base CRL revoking carol and drops the delta:
	// the next read sees it.
	newBase, err := p.ca.CRL(pkitest.CRLOptions{Number: 7, ThisUpdate: p.now.Add(-time.Minute), NextUpdate: p.now.Add(24 * time.Hour),
		Revoked: []pkitest.Revoked{{Serial: p.carol.SerialNumber, Reason: pkitest.ReasonAffiliationChanged}}})
	if err != nil {
		t.Fatal(err)
	}
	mod := ldap.NewModifyRequest(issuing, nil)
	mod.Replace("certificateRevocationList", []string{string(newBase)})
	mod.Delete("deltaRevocationList", nil)
	if err := admin.Modify(mod); err != nil {
		t.Fatalf("modify %s: %v", issuing, err)
	}
	if entries, err = src.CRLs(context.Background(), ldapsrc.CRLOptions{}); err != nil {
		t.Fatal(err)
	}
	verdicts, _ = p.verdicts(t, entries, certs)
	if !strings.HasPrefix(verdicts["carol"], "revoked: ") || !strings.HasSuffix(verdicts["carol"], ", CRL 7") || verdicts["bob"] != "accepted" {
		t.Errorf("after republishing: carol %q, bob %q", verdicts["carol"], verdicts["bob"])
	}
}
