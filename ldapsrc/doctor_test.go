package ldapsrc

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// wantCheck is what a test expects of one check: its status and words its
// Fix (or, for ok checks, its Detail) must contain.
type wantCheck struct {
	status string
	words  []string
}

// checkDoctor compares got with want by check name; checks not named in
// want must be ok, or skip when skipRest is set and a failure came before.
func checkDoctor(t *testing.T, got []Check, want map[string]wantCheck) {
	t.Helper()
	names := []string{"dns", "tcp", "tls", "bind", "base", "filter", "attributes", "tracking", "crl"}
	if gotNames := checkNames(got); !slices.Equal(gotNames, names) {
		t.Fatalf("checks %v, want %v", gotNames, names)
	}
	failed := ""
	for _, c := range got {
		t.Logf("%-10s %-4s %s | fix: %s", c.Name, c.Status, c.Detail, c.Fix)
		w, named := want[c.Name]
		switch {
		case named:
		case failed != "":
			w = wantCheck{status: StatusSkip}
		default:
			w = wantCheck{status: StatusOK}
		}
		if c.Status != w.status {
			t.Errorf("%s: status %s, want %s (detail %q, fix %q)", c.Name, c.Status, w.status, c.Detail, c.Fix)
		}
		text := c.Fix
		if c.Status == StatusOK || c.Status == StatusSkip {
			text = c.Detail
			if c.Fix != "" {
				t.Errorf("%s: %s with a fix %q", c.Name, c.Status, c.Fix)
			}
		} else if c.Fix == "" {
			t.Errorf("%s: %s without a fix", c.Name, c.Status)
		}
		for _, word := range w.words {
			if !strings.Contains(text, word) {
				t.Errorf("%s: %q lacks %q", c.Name, text, word)
			}
		}
		if c.Status == StatusFail && failed == "" && c.Name != "attributes" && c.Name != "tracking" && c.Name != "crl" {
			failed = c.Name
		}
	}
}

func checkNames(cs []Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestDoctorSlapd runs Diagnose against a real slapd with good and broken
// configurations.
func TestDoctorSlapd(t *testing.T) {
	const suffix = "dc=example,dc=test"
	ca, err := pkitest.NewRootCA("doctor people CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "d01", Email: "d01@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	var seed []byte
	for i := range 12 {
		p := ldaptest.Person{UID: fmt.Sprintf("d%02d", i), Mail: fmt.Sprintf("d%02d@example.test", i),
			Attributes: map[string][]string{"employeeType": {"staff"}}}
		switch i {
		case 1:
			p.UserCertificates = [][]byte{leaf.Raw}
		case 2:
			p.SMIMECertificates = [][]byte{leaf.Raw}
		}
		seed = append(seed, ldaptest.PersonLDIF("ou=people,"+suffix, p)...)
	}
	srv := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: suffix, SeedLDIF: seed})

	otherCA, err := pkitest.NewRootCA("not the slapd CA")
	if err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	otherPool.AddCert(otherCA.Cert)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "ldaps://" + closed.Addr().String()
	_ = closed.Close()
	ldapPort := strings.TrimPrefix(srv.URL, "ldap://127.0.0.1:")
	ldapsPort := strings.TrimPrefix(srv.LDAPSURL, "ldaps://127.0.0.1:")

	good := func(tune func(*Config)) Config {
		cfg := Config{
			URL:             srv.URL,
			BaseDN:          suffix,
			Filter:          "(employeeType=staff)",
			AnchorAttribute: "entryUUID",
			PageSize:        5,
			Bind:            Bind{Username: srv.AdminDN, Password: srv.AdminPassword},
			TLS:             TLS{RootCAs: srv.RootCAs},
			DialTimeout:     3 * time.Second,
			OpTimeout:       10 * time.Second,
		}
		if tune != nil {
			tune(&cfg)
		}
		return cfg
	}
	tests := []struct {
		name string
		cfg  Config
		opts DoctorOptions
		want map[string]wantCheck
	}{
		{"good StartTLS", good(nil), DoctorOptions{}, map[string]wantCheck{
			"tls":        {StatusOK, []string{"StartTLS", "ldaptest slapd CA", "127.0.0.1"}},
			"bind":       {StatusOK, []string{"dn:" + srv.AdminDN}},
			"filter":     {StatusOK, []string{"12 users", "d00@example.test", "d04@example.test"}},
			"attributes": {StatusOK, []string{"userCertificate: 1", "userSMIMECertificate: 1"}},
			"tracking":   {StatusOK, []string{"auto resolves to modifyTimestamp"}},
			"crl":        {StatusSkip, []string{"not asked"}},
		}},
		{"good LDAPS, counting stops", good(func(c *Config) { c.URL = srv.LDAPSURL }), DoctorOptions{MaxCount: 5, Sample: 2}, map[string]wantCheck{
			"tls":    {StatusOK, []string{"LDAPS"}},
			"filter": {StatusOK, []string{"more than 5", "first: d00@example.test, d01@example.test"}},
			"crl":    {StatusSkip, nil},
		}},
		{"wrong password", good(func(c *Config) { c.Bind.Password = "wrong" }), DoctorOptions{}, map[string]wantCheck{
			"bind": {StatusFail, []string{"password"}},
		}},
		{"wrong CA", good(func(c *Config) { c.TLS.RootCAs = otherPool }), DoctorOptions{}, map[string]wantCheck{
			"tls": {StatusFail, []string{"set source.tls.caFile", "ldaptest slapd CA"}},
		}},
		{"wrong server name", good(func(c *Config) { c.TLS.ServerName = "dc1.example.test" }), DoctorOptions{}, map[string]wantCheck{
			"tls": {StatusFail, []string{"source.tls.serverName", "127.0.0.1", "localhost"}},
		}},
		{"nothing listens", good(func(c *Config) { c.URL = closedURL }), DoctorOptions{}, map[string]wantCheck{
			"tcp": {StatusFail, []string{"636", "389", "firewall"}},
		}},
		{"unresolvable host", good(func(c *Config) { c.URL = "ldaps://no-such-dc.invalid" }), DoctorOptions{}, map[string]wantCheck{
			"dns": {StatusFail, []string{"cannot resolve no-such-dc.invalid", "FQDN"}},
		}},
		{"ldaps:// on the StartTLS port", good(func(c *Config) { c.URL = "ldaps://127.0.0.1:" + ldapPort }), DoctorOptions{}, map[string]wantCheck{
			"tls": {StatusFail, []string{"use ldap://"}},
		}},
		{"ldap:// on the LDAPS port", good(func(c *Config) { c.URL = "ldap://127.0.0.1:" + ldapsPort }), DoctorOptions{}, map[string]wantCheck{
			"tls": {StatusFail, []string{"ldaps://"}},
		}},
		{"bad base", good(func(c *Config) { c.BaseDN = "ou=nowhere," + suffix }), DoctorOptions{}, map[string]wantCheck{
			"base":     {StatusFail, []string{"noSuchObject", "source.baseDN"}},
			"tracking": {StatusSkip, []string{"base"}},
			"crl":      {StatusSkip, []string{"not asked"}},
		}},
		{"filter matches nobody", good(func(c *Config) { c.Filter = "(employeeType=nobody)" }), DoctorOptions{}, map[string]wantCheck{
			"filter":     {StatusWarn, []string{"source.filter"}},
			"attributes": {StatusSkip, []string{"no users in scope"}},
			"crl":        {StatusSkip, nil},
		}},
		{"nobody in scope has certificates", good(func(c *Config) { c.Filter = "(uid=d1*)" }), DoctorOptions{}, map[string]wantCheck{
			"filter":     {StatusOK, []string{"2 users", "d10@example.test, d11@example.test"}},
			"attributes": {StatusWarn, []string{"read rights", "userCertificate and userSMIMECertificate"}},
			"crl":        {StatusSkip, nil},
		}},
		{"attribute unknown to the schema", good(func(c *Config) {
			c.CertificateAttributes = []string{"userCertificate", "noSuchCertAttribute"}
		}), DoctorOptions{}, map[string]wantCheck{
			"attributes": {StatusFail, []string{"attribute names"}},
			"crl":        {StatusSkip, nil},
		}},
		{"usn tracking on OpenLDAP", good(func(c *Config) { c.ChangeTracking = TrackUSN }), DoctorOptions{}, map[string]wantCheck{
			"tracking": {StatusFail, []string{"source.changeTracking"}},
			"crl":      {StatusSkip, nil},
		}},
		{"no CRL container on OpenLDAP", good(nil), DoctorOptions{CheckCRLs: true}, map[string]wantCheck{
			"crl": {StatusFail, []string{"revocation checking off"}},
		}},
		{"invalid configuration", good(func(c *Config) { c.BaseDN = "" }), DoctorOptions{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diagnose(context.Background(), tc.cfg, tc.opts, zaptest.NewLogger(t))
			for _, c := range got {
				if strings.Contains(c.Detail+c.Fix, srv.AdminPassword) {
					t.Errorf("%s: the password shows: %+v", c.Name, c)
				}
			}
			if tc.want == nil {
				if len(got) == 0 || got[0].Name != "config" || got[0].Status != StatusFail || !strings.Contains(got[0].Detail, "baseDN") {
					t.Fatalf("want a config failure naming baseDN first, got %+v", got)
				}
				for _, c := range got[1:] {
					if c.Status != StatusSkip {
						t.Errorf("%s: %s after an invalid configuration", c.Name, c.Status)
					}
				}
				return
			}
			checkDoctor(t, got, tc.want)
		})
	}
}

// TestDoctorDeadline: a server that accepts connections and never answers
// costs the tls step its deadline, not a hang.
func TestDoctorDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg := Config{URL: "ldap://" + ln.Addr().String(), BaseDN: "dc=example,dc=test", AnchorAttribute: "entryUUID",
		Bind: Bind{Username: "cn=x", Password: "y"}, DialTimeout: 300 * time.Millisecond}
	got := Diagnose(context.Background(), cfg, DoctorOptions{}, zaptest.NewLogger(t))
	checkDoctor(t, got, map[string]wantCheck{"tls": {StatusFail, []string{"ldaps://"}}})
	if !strings.Contains(got[2].Detail, "no answer within 300ms") {
		t.Errorf("tls detail %q does not say the deadline passed", got[2].Detail)
	}
}

func TestDoctorADBindData(t *testing.T) {
	tests := []struct {
		msg, code, fixWord string
	}{
		{`LDAP Result Code 49 "Invalid Credentials": 80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563`, "52e", "password"},
		{`80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563`, "775", "unlock"},
		{`80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563`, "533", "enable"},
		{`invalid credentials`, "", ""},
	}
	for _, tc := range tests {
		code := adBindData(tc.msg)
		if code != tc.code {
			t.Errorf("adBindData(%q) = %q, want %q", tc.msg, code, tc.code)
			continue
		}
		_, fix, known := adBindReason(code)
		if known != (tc.fixWord != "") || !strings.Contains(fix, tc.fixWord) {
			t.Errorf("adBindReason(%q) = %q, %v", code, fix, known)
		}
	}
}

func TestDoctorSchemaNames(t *testing.T) {
	tests := []struct {
		def  string
		want []string
	}{
		{"( 2.5.4.36 NAME 'userCertificate' DESC 'RFC4523: X.509 user certificate' EQUALITY certificateExactMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.8 )", []string{"userCertificate"}},
		{"( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519' SUP name )", []string{"cn", "commonName"}},
		{"( 1.2.840.113556.1.4.2 NAME 'objectGUID' SYNTAX '1.3.6.1.4.1.1466.115.121.1.40' SINGLE-VALUE NO-USER-MODIFICATION )", []string{"objectGUID"}},
		{"( 1.2.3 DESC 'no name' )", nil},
		{"( 1.2.3 NAME ( 'a' ", nil},
		{"( 1.2.3 NAME 'unterminated", nil},
	}
	for _, tc := range tests {
		if got := schemaNames(tc.def); !slices.Equal(got, tc.want) {
			t.Errorf("schemaNames(%q) = %q, want %q", tc.def, got, tc.want)
		}
	}
}

// FuzzSchemaNames: attributeTypes values come from the directory.
func FuzzSchemaNames(f *testing.F) {
	f.Add("( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )")
	f.Add("( 2.5.4.36 NAME 'userCertificate' SYNTAX 1.3.6.1.4.1.1466.115.121.1.8 )")
	f.Add(" NAME (")
	f.Add(" NAME '")
	f.Add(" NAME '0 '00000") // once returned a name with a space
	f.Fuzz(func(t *testing.T, def string) {
		for _, n := range schemaNames(def) {
			if n == "" || strings.ContainsAny(n, "' ") {
				t.Errorf("schemaNames(%q) returned %q", def, n)
			}
		}
	})
}
