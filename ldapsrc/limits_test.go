package ldapsrc_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// Values larger than the source's limits are not passed on (so the
// certificate parser never sees them) but reported with the attribute and
// the size, through a real slapd: a 4 MB value of nested indefinite-length
// BER (what made smallstep/pkcs7 overflow its stack), an entry whose
// values together pass maxEntryBytes, beside a user read as usual.
func TestReadLeavesValuesOverTheLimitsUnread(t *testing.T) {
	ca, err := pkitest.NewRootCA("limits CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	deep := bytes.Repeat([]byte{0x30, 0x80}, 2_000_000) // 4,000,000 bytes, 2,000,000 levels
	part := bytes.Repeat([]byte{0x04}, 40<<10)
	staff := map[string][]string{"employeeType": {"staff"}}
	people := []ldaptest.Person{
		{UID: "ok", Mail: "ok@example.test", UserCertificates: [][]byte{leaf.Raw}, Attributes: staff},
		{UID: "deep", Mail: "deep@example.test", SMIMECertificates: [][]byte{deep}, UserCertificates: [][]byte{leaf.Raw}, Attributes: staff},
		{UID: "many", Mail: "many@example.test", SMIMECertificates: [][]byte{append([]byte{1}, part...), append([]byte{2}, part...), append([]byte{3}, part...)}, Attributes: staff},
	}
	var seed []byte
	for _, p := range people {
		seed = append(seed, ldaptest.PersonLDIF(peopleDN, p)...)
	}
	s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: suffix, SeedLDIF: seed})
	srv := server{url: s.URL, roots: s.RootCAs, bindDN: s.AdminDN, password: s.AdminPassword}
	cfg := srv.config()
	cfg.Limits = ldapsrc.Limits{MaxValueBytesByAttribute: map[string]int{"usersmimecertificate": 48 << 10}, MaxEntryBytes: 100 << 10}
	src := srv.open(t, cfg)

	got := map[string]mapping.SourceUser{}
	if _, err := src.Read(context.Background(), ldapsrc.ReadRequest{}, func(u mapping.SourceUser) error {
		got[u.Attr("uid")] = u
		return nil
	}); err != nil {
		t.Fatalf("Read: %v", err)
	}
	for _, tc := range []struct {
		uid        string
		values     int
		unread     int
		wantReason []string
	}{
		{"ok", 1, 0, nil},
		{"deep", 1, 1, []string{"userSMIMECertificate value of 4000000 bytes", "49152 bytes", "maxValueBytes"}},
		{"many", 0, 3, []string{"122883 bytes together", "102400 bytes", "maxEntryBytes", "userSMIMECertificate value of 40961 bytes"}},
	} {
		u, ok := got[tc.uid]
		if !ok {
			t.Errorf("%s was not read", tc.uid)
			continue
		}
		if len(u.Values) != tc.values || len(u.Unread) != tc.unread {
			t.Errorf("%s: %d values, %d unread; want %d and %d", tc.uid, len(u.Values), len(u.Unread), tc.values, tc.unread)
			continue
		}
		for _, v := range u.Values {
			if len(v.Data) > 48<<10 {
				t.Errorf("%s: a %d-byte value was passed on", tc.uid, len(v.Data))
			}
		}
		for _, want := range tc.wantReason {
			if !strings.Contains(u.Unread[0].Reason, want) {
				t.Errorf("%s: reason %q does not say %q", tc.uid, u.Unread[0].Reason, want)
			}
		}
	}
	// What was passed on evaluates as usual; the deep value never reached
	// the parser.
	ev := mapping.Evaluate(got["deep"].Values, mapping.Policy{IssuingCAs: []*x509.Certificate{ca.Cert}}, leaf.NotBefore)
	if len(ev.Accepted) != 1 {
		t.Errorf("deep's readable certificate: %+v", ev)
	}
}
