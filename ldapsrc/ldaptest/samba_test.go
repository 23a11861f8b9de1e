package ldaptest_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// TestStartSamba runs one DC and checks everything the harness promises on
// it: the subtests share it because provisioning takes seconds.
func TestStartSamba(t *testing.T) {
	s := ldaptest.StartSamba(t, ldaptest.SambaOptions{})
	if s.ServerName != "dc1.samba.test" || s.Realm != "SAMBA.TEST" || s.BaseDN != "DC=samba,DC=test" ||
		s.ConfigDN != "CN=Configuration,DC=samba,DC=test" || s.AdminUser != "Administrator@SAMBA.TEST" {
		t.Errorf("names: %q %q %q %q %q", s.ServerName, s.Realm, s.BaseDN, s.ConfigDN, s.AdminUser)
	}
	ca, err := pkitest.NewRootCA("people CA")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("rootDSE over StartTLS", func(t *testing.T) {
		conn, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.StartTLS(&tls.Config{RootCAs: s.RootCAs, ServerName: s.ServerName, MinVersion: tls.VersionTLS12}); err != nil {
			t.Fatalf("StartTLS: %v", err)
		}
		if err := conn.Bind(s.AdminUser, s.AdminPassword); err != nil {
			t.Fatalf("bind: %v", err)
		}
		res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"dnsHostName", "defaultNamingContext", "configurationNamingContext"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("rootDSE: %v", err)
		}
		e := res.Entries[0]
		if e.GetAttributeValue("dnsHostName") != s.ServerName || e.GetAttributeValue("defaultNamingContext") != s.BaseDN ||
			e.GetAttributeValue("configurationNamingContext") != s.ConfigDN {
			t.Errorf("rootDSE %q %q %q", e.GetAttributeValue("dnsHostName"), e.GetAttributeValue("defaultNamingContext"),
				e.GetAttributeValue("configurationNamingContext"))
		}
	})

	t.Run("certificate names the DC, localhost and 127.0.0.1", func(t *testing.T) {
		for _, name := range []string{s.ServerName, "localhost", "127.0.0.1"} {
			conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: s.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}))
			if err != nil {
				t.Errorf("LDAPS as %s: %v", name, err)
				continue
			}
			_ = conn.Close()
		}
		if pem, err := os.ReadFile(s.CAFile); err != nil || !bytes.Equal(pem, s.CAPEM) {
			t.Errorf("CAFile %s: %v", s.CAFile, err)
		}
	})

	t.Run("users", func(t *testing.T) {
		cert := leaf(t, ca, "alice")
		p7, err := pkitest.DegeneratePKCS7(cert)
		if err != nil {
			t.Fatal(err)
		}
		dn, guid := s.AddUser(t, ldaptest.SambaUser{Name: "alice", Mail: "alice@samba.test",
			UserCertificates: [][]byte{cert.Raw}, SMIMECertificates: [][]byte{p7}})
		if dn != "CN=alice,OU=People,DC=samba,DC=test" || len(guid) != 16 {
			t.Fatalf("AddUser: dn %q guid %x", dn, guid)
		}
		admin := s.Admin(t)
		get := func() *ldap.Entry {
			res, err := admin.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
				"(objectClass=user)", []string{"objectGUID", "sAMAccountName", "userPrincipalName", "mail", "userCertificate", "userSMIMECertificate"}, nil))
			if err != nil || len(res.Entries) != 1 {
				t.Fatalf("read %s: %v", dn, err)
			}
			return res.Entries[0]
		}
		e := get()
		if !bytes.Equal(e.GetRawAttributeValue("objectGUID"), guid) || e.GetAttributeValue("sAMAccountName") != "alice" ||
			e.GetAttributeValue("userPrincipalName") != "alice@samba.test" || e.GetAttributeValue("mail") != "alice@samba.test" {
			t.Errorf("entry %s: guid %x sam %q upn %q mail %q", dn, e.GetRawAttributeValue("objectGUID"),
				e.GetAttributeValue("sAMAccountName"), e.GetAttributeValue("userPrincipalName"), e.GetAttributeValue("mail"))
		}
		// AD names the attribute without ;binary, unlike OpenLDAP.
		if got := e.GetRawAttributeValues("userCertificate"); len(got) != 1 || !bytes.Equal(got[0], cert.Raw) {
			t.Errorf("userCertificate: %d values", len(got))
		}
		if got := e.GetRawAttributeValues("userSMIMECertificate"); len(got) != 1 || !bytes.Equal(got[0], p7) {
			t.Errorf("userSMIMECertificate: %d values", len(got))
		}

		second := leaf(t, ca, "alice2")
		s.SetCertificates(t, dn, "userCertificate", [][]byte{cert.Raw, second.Raw})
		if got := get().GetRawAttributeValues("userCertificate"); len(got) != 2 {
			t.Errorf("after SetCertificates: %d values, want 2", len(got))
		}
		s.SetCertificates(t, dn, "userSMIMECertificate", nil)
		if got := get().GetRawAttributeValues("userSMIMECertificate"); len(got) != 0 {
			t.Errorf("after clearing: %d userSMIMECertificate values", len(got))
		}

		var bulk []ldaptest.SambaUser
		for i := range 50 {
			bulk = append(bulk, ldaptest.SambaUser{Name: fmt.Sprintf("bulk%03d", i), UserCertificates: [][]byte{cert.Raw}})
		}
		added := s.AddUsers(t, bulk)
		seen := map[string]bool{}
		for i, a := range added {
			if a.DN != s.UserDN(bulk[i]) || len(a.GUID) != 16 || seen[string(a.GUID)] {
				t.Errorf("AddUsers[%d] = %q %x", i, a.DN, a.GUID)
			}
			seen[string(a.GUID)] = true
		}

		s.DeleteUser(t, dn)
		res, err := admin.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", nil, nil))
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Errorf("after DeleteUser: %v, %d entries", err, len(res.Entries))
		}
	})

	t.Run("kerberos with an exported keytab", func(t *testing.T) {
		kinit, err := exec.LookPath("kinit")
		if err != nil {
			t.Fatal("kinit not found: apt-get install krb5-user")
		}
		s.AddUser(t, ldaptest.SambaUser{Name: "svc-certsync", Password: "Svc-Passw0rd!x"})
		for _, principal := range []string{s.AdminUser, "svc-certsync@" + s.Realm} {
			kt := s.ExportKeytab(t, principal)
			cmd := exec.Command(kinit, "-k", "-t", kt, principal)
			cmd.Env = append(os.Environ(), "KRB5_CONFIG="+s.Krb5Conf, "KRB5CCNAME=FILE:"+filepath.Join(t.TempDir(), "cc"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("kinit -k -t %s %s against %s: %v\n%s", kt, principal, s.KDCAddr, err, out)
			}
		}
	})
}
