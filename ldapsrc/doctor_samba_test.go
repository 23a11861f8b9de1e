package ldapsrc_test

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// TestDoctorSamba runs Diagnose against the shared AD DC: good
// configurations (usn and DirSync tracking, CRLs published the way ADCS
// does) and broken ones.
func TestDoctorSamba(t *testing.T) {
	dc := sharedSamba(t)
	const dept = "doctor"
	adUsers(t, dc, dept, 3)
	const readerPassword = "Doctor-Passw0rd!rd"
	dc.AddUser(t, ldaptest.SambaUser{Name: "doctor-reader", Password: readerPassword})

	// A CA publishing a CRL under a CDP host object of its own, removed at
	// the end so that other tests reading the CDP container see theirs only.
	published, err := pkitest.NewRootCA("Doctor Issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	silent, err := pkitest.NewRootCA("Doctor Silent CA")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := published.CRL(pkitest.CRLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host := "CN=doctorhost,CN=CDP,CN=Public Key Services,CN=Services," + dc.ConfigDN
	addEntries(t, dc.Admin(t),
		addRequest(host, map[string][]string{"objectClass": {"container"}}),
		addRequest("CN=Doctor Issuing CA,"+host, map[string][]string{"objectClass": {"cRLDistributionPoint"}, "certificateRevocationList": {string(crl)}}))

	cfg := func(mode string, tune func(*ldapsrc.Config)) ldapsrc.Config {
		c := adConfig(dc, dept, mode)
		if tune != nil {
			tune(&c)
		}
		return c
	}
	tests := []struct {
		name string
		cfg  ldapsrc.Config
		opts ldapsrc.DoctorOptions
		want map[string]doctorWant
	}{
		{"good, usn, CRLs of every CA", cfg(ldapsrc.TrackAuto, nil),
			ldapsrc.DoctorOptions{CheckCRLs: true, IssuingCAs: []*x509.Certificate{published.Cert}}, map[string]doctorWant{
				"tls":        {ldapsrc.StatusOK, []string{"StartTLS", dc.ServerName}},
				"bind":       {ldapsrc.StatusOK, []string{"Administrator"}},
				"filter":     {ldapsrc.StatusOK, []string{"3 users", "doctor-0000@samba.test"}},
				"attributes": {ldapsrc.StatusOK, []string{"userCertificate: 3", "userSMIMECertificate: 0"}},
				"tracking":   {ldapsrc.StatusOK, []string{"auto resolves to usn", "highestCommittedUSN"}},
				"crl":        {ldapsrc.StatusOK, []string{"usable CRLs for CN=Doctor Issuing CA"}},
			}},
		{"good, LDAPS, DirSync as Administrator, a CA without CRL", cfg(ldapsrc.TrackDirSync, func(c *ldapsrc.Config) { c.URL = dc.LDAPSURL }),
			ldapsrc.DoctorOptions{CheckCRLs: true, IssuingCAs: []*x509.Certificate{published.Cert, silent.Cert}}, map[string]doctorWant{
				"tls":      {ldapsrc.StatusOK, []string{"LDAPS"}},
				"tracking": {ldapsrc.StatusOK, []string{"DirSync on " + dc.BaseDN + " works"}},
				"crl":      {ldapsrc.StatusWarn, []string{"publish"}},
			}},
		{"DirSync without the replication right", cfg(ldapsrc.TrackDirSync, func(c *ldapsrc.Config) {
			c.Bind = ldapsrc.Bind{Username: "doctor-reader@" + strings.ToLower(dc.Realm), Password: readerPassword}
		}), ldapsrc.DoctorOptions{}, map[string]doctorWant{
			"tracking": {ldapsrc.StatusFail, []string{"insufficient rights", "Replicating Directory Changes"}},
			"crl":      {ldapsrc.StatusSkip, nil},
		}},
		{"wrong password", cfg(ldapsrc.TrackAuto, func(c *ldapsrc.Config) { c.Bind.Password = "not-the-password" }),
			ldapsrc.DoctorOptions{CheckCRLs: true}, map[string]doctorWant{
				"bind": {ldapsrc.StatusFail, []string{"password"}},
			}},
		{"base DN that does not exist", cfg(ldapsrc.TrackAuto, func(c *ldapsrc.Config) { c.BaseDN = "OU=Nowhere," + dc.BaseDN }),
			ldapsrc.DoctorOptions{}, map[string]doctorWant{
				"base":     {ldapsrc.StatusFail, []string{"noSuchObject", "source.baseDN"}},
				"tracking": {ldapsrc.StatusSkip, nil},
				"crl":      {ldapsrc.StatusSkip, nil},
			}},
		{"attribute unknown to the schema", cfg(ldapsrc.TrackAuto, func(c *ldapsrc.Config) {
			c.CertificateAttributes = []string{"userCertificate", "noSuchCertAttribute"}
		}), ldapsrc.DoctorOptions{}, map[string]doctorWant{
			"attributes": {ldapsrc.StatusFail, []string{"attribute names"}},
			"crl":        {ldapsrc.StatusSkip, nil},
		}},
		{"wrong server name", cfg(ldapsrc.TrackAuto, func(c *ldapsrc.Config) { c.TLS.ServerName = "dc9." + strings.ToLower(dc.Realm) }),
			ldapsrc.DoctorOptions{}, map[string]doctorWant{
				"tls": {ldapsrc.StatusFail, []string{"source.tls.serverName", dc.ServerName}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ldapsrc.Diagnose(context.Background(), tc.cfg, tc.opts, zaptest.NewLogger(t))
			checkDoctorChecks(t, got, tc.want, dc.AdminPassword, readerPassword)
		})
	}
}

// doctorWant is the status a check must have and words its Fix (or, for
// ok and skip, its Detail) must hold.
type doctorWant struct {
	status string
	words  []string
}

// checkDoctorChecks compares got with want; checks want does not name must
// be ok before the first failure and skip after it. No check may show a
// password.
func checkDoctorChecks(t *testing.T, got []ldapsrc.Check, want map[string]doctorWant, secrets ...string) {
	t.Helper()
	names := []string{"dns", "tcp", "tls", "bind", "base", "filter", "attributes", "tracking", "crl"}
	var gotNames []string
	for _, c := range got {
		gotNames = append(gotNames, c.Name)
	}
	if !slices.Equal(gotNames, names) {
		t.Fatalf("checks %v, want %v", gotNames, names)
	}
	failed := false
	for _, c := range got {
		t.Logf("%-10s %-4s %s | fix: %s", c.Name, c.Status, c.Detail, c.Fix)
		for _, s := range secrets {
			if strings.Contains(c.Detail+c.Fix, s) {
				t.Errorf("%s shows a password", c.Name)
			}
		}
		w, named := want[c.Name]
		switch {
		case named:
		case failed:
			w.status = ldapsrc.StatusSkip
		default:
			w.status = ldapsrc.StatusOK
		}
		if c.Status != w.status {
			t.Errorf("%s: status %s, want %s (detail %q, fix %q)", c.Name, c.Status, w.status, c.Detail, c.Fix)
		}
		text := c.Fix
		if c.Status == ldapsrc.StatusOK || c.Status == ldapsrc.StatusSkip {
			text = c.Detail
		} else if c.Fix == "" {
			t.Errorf("%s: %s without a fix", c.Name, c.Status)
		}
		for _, word := range w.words {
			if !strings.Contains(text, word) {
				t.Errorf("%s: %q lacks %q", c.Name, text, word)
			}
		}
		if c.Status == ldapsrc.StatusFail && c.Name != "tracking" && c.Name != "crl" && c.Name != "attributes" {
			failed = true
		}
	}
}

// addEntries adds reqs in order and deletes them, in reverse order, when
// the test ends, so that tests reading the same container see their own.
func addEntries(t *testing.T, admin *ldap.Conn, reqs ...*ldap.AddRequest) {
	t.Helper()
	for i, req := range reqs {
		if err := admin.Add(req); err != nil {
			t.Fatalf("add %s: %v", req.DN, err)
		}
		t.Cleanup(func() {
			if err := admin.Del(ldap.NewDelRequest(reqs[i].DN, nil)); err != nil {
				t.Errorf("delete %s: %v", reqs[i].DN, err)
			}
		})
	}
}

func addRequest(dn string, attrs map[string][]string) *ldap.AddRequest {
	req := ldap.NewAddRequest(dn, nil)
	for name, vs := range attrs {
		req.Attribute(name, vs)
	}
	return req
}
