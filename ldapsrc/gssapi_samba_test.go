package ldapsrc_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
)

// TestGSSAPISamba binds with Kerberos to the shared Samba DC: keytabs
// exported from the DC, a credential cache filled by kinit, and each way
// the bind can fail, which must name what to fix.
func TestGSSAPISamba(t *testing.T) {
	dc := sharedSamba(t)
	const dept = "gssapi"
	added, anchors := adUsers(t, dc, dept, 3)

	// A service account with a password (so it has keys), outside the
	// filter, and one that is deleted after its keytab was exported.
	const svcPassword = "Svc-Passw0rd!gss"
	dc.AddUser(t, ldaptest.SambaUser{Name: "svc-gss", Password: svcPassword})
	goneDN, _ := dc.AddUser(t, ldaptest.SambaUser{Name: "svc-gone", Password: svcPassword})
	rekeyDN, _ := dc.AddUser(t, ldaptest.SambaUser{Name: "svc-rekey", Password: svcPassword})
	svcKeytab := dc.ExportKeytab(t, "svc-gss@"+dc.Realm)
	adminKeytab := dc.ExportKeytab(t, dc.AdminUser)
	goneKeytab := dc.ExportKeytab(t, "svc-gone@"+dc.Realm)
	rekeyKeytab := dc.ExportKeytab(t, "svc-rekey@"+dc.Realm)
	dc.DeleteUser(t, goneDN)
	setPassword(t, dc, rekeyDN, "Other-Passw0rd!gss")

	ccache := filepath.Join(t.TempDir(), "krb5cc")
	kinit := exec.Command("kinit", "-k", "-t", svcKeytab, "-c", "FILE:"+ccache, "svc-gss@"+dc.Realm)
	kinit.Env = append(os.Environ(), "KRB5_CONFIG="+dc.Krb5Conf)
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit (Debian package krb5-user) for the credential-cache case: %v\n%s", err, out)
	}

	// A krb5.conf whose KDC is a closed port.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	_ = closed.Close()
	deadConf := filepath.Join(t.TempDir(), "krb5.conf")
	if err := os.WriteFile(deadConf, []byte("[libdefaults]\n default_realm = "+dc.Realm+
		"\n dns_lookup_kdc = false\n udp_preference_limit = 1\n[realms]\n "+dc.Realm+" = {\n  kdc = "+deadAddr+"\n }\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	base := func(url string, b ldapsrc.Bind) ldapsrc.Config {
		cfg := adConfig(dc, dept, ldapsrc.TrackFull)
		cfg.URL = url
		b.Method = "gssapi"
		if b.Krb5Conf == "" {
			b.Krb5Conf = dc.Krb5Conf
		}
		cfg.Bind = b
		return cfg
	}

	t.Run("binds and reads", func(t *testing.T) {
		tests := []struct {
			name string
			cfg  ldapsrc.Config
		}{
			{"keytab, StartTLS, principal with realm", base(dc.URL, ldapsrc.Bind{Username: "svc-gss@" + dc.Realm, Keytab: svcKeytab})},
			{"keytab, LDAPS, realm apart", base(dc.LDAPSURL, ldapsrc.Bind{Username: "svc-gss", Realm: dc.Realm, Keytab: svcKeytab})},
			{"Administrator keytab, realm from krb5.conf", base(dc.URL, ldapsrc.Bind{Username: "Administrator", Keytab: adminKeytab})},
			{"credential cache", base(dc.URL, ldapsrc.Bind{CCache: "FILE:" + ccache})},
			{"credential cache of the named principal", base(dc.LDAPSURL, ldapsrc.Bind{Username: "svc-gss", CCache: ccache})},
			{"explicit SPN", base(dc.URL, ldapsrc.Bind{Username: "svc-gss@" + dc.Realm, Keytab: svcKeytab, SPN: "ldap/" + dc.ServerName})},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s, err := ldapsrc.Open(context.Background(), tc.cfg, zaptest.NewLogger(t))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				got := map[string]mapping.SourceUser{}
				if _, err := s.Users(context.Background(), func(u mapping.SourceUser) error {
					got[u.Anchor] = u
					return nil
				}); err != nil {
					t.Fatalf("Users: %v", err)
				}
				if len(got) != len(anchors) {
					t.Fatalf("read %d users, want %d", len(got), len(anchors))
				}
				for i, a := range anchors {
					u, ok := got[a]
					if !ok || u.DN != added[i].DN || len(u.Values) != 1 || u.Values[0].Attribute != mapping.AttrUserCertificate {
						t.Errorf("user %s: %+v", added[i].DN, u)
					}
				}
			})
		}
	})

	t.Run("the environment gives krb5.conf and the cache", func(t *testing.T) {
		t.Setenv("KRB5_CONFIG", dc.Krb5Conf)
		t.Setenv("KRB5CCNAME", "FILE:"+ccache)
		cfg := base(dc.URL, ldapsrc.Bind{})
		cfg.Bind.Krb5Conf = ""
		s, err := ldapsrc.Open(context.Background(), cfg, zaptest.NewLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		_ = s.Close()
	})

	t.Run("failures name the cause", func(t *testing.T) {
		tests := []struct {
			name  string
			cfg   ldapsrc.Config
			is    error
			parts []string
		}{
			{"keytab missing", base(dc.URL, ldapsrc.Bind{Username: "svc-gss", Keytab: "/nonexistent/svc.keytab"}),
				ldapsrc.ErrKeytab, []string{"/nonexistent/svc.keytab", "svc-gss@" + dc.Realm}},
			{"not a keytab", base(dc.URL, ldapsrc.Bind{Username: "svc-gss", Keytab: dc.CAFile}),
				ldapsrc.ErrKeytab, []string{dc.CAFile, "not a readable keytab"}},
			{"principal not in keytab", base(dc.URL, ldapsrc.Bind{Username: "svc-gss", Keytab: adminKeytab}),
				ldapsrc.ErrKeytab, []string{adminKeytab, "no keys for svc-gss@" + dc.Realm, "Administrator@" + dc.Realm}},
			{"principal deleted from the domain", base(dc.URL, ldapsrc.Bind{Username: "svc-gone", Keytab: goneKeytab}),
				ldapsrc.ErrPrincipalUnknown, []string{"svc-gone@" + dc.Realm, "KDC_ERR_C_PRINCIPAL_UNKNOWN"}},
			{"password changed since the keytab", base(dc.URL, ldapsrc.Bind{Username: "svc-rekey", Keytab: rekeyKeytab}),
				ldapsrc.ErrKerberosKeysMismatch, []string{rekeyKeytab, "svc-rekey@" + dc.Realm}},
			{"KDC unreachable", base(dc.URL, ldapsrc.Bind{Username: "svc-gss", Keytab: svcKeytab, Krb5Conf: deadConf}),
				ldapsrc.ErrKDCUnreachable, []string{deadAddr, "svc-gss@" + dc.Realm}},
			{"SPN unknown", base(dc.URL, ldapsrc.Bind{Username: "svc-gss", Keytab: svcKeytab, SPN: "ldap/nosuch." + strings.ToLower(dc.Realm)}),
				ldapsrc.ErrSPNUnknown, []string{"ldap/nosuch.samba.test", "bind.spn"}},
			{"krb5.conf missing", base(dc.URL, ldapsrc.Bind{Username: "svc-gss", Keytab: svcKeytab, Krb5Conf: "/nonexistent/krb5.conf"}),
				ldapsrc.ErrKrb5Conf, []string{"/nonexistent/krb5.conf"}},
			{"credential cache missing", base(dc.URL, ldapsrc.Bind{CCache: "/nonexistent/krb5cc"}),
				ldapsrc.ErrCredentialCache, []string{"/nonexistent/krb5cc", "kinit"}},
			{"cache of another principal", base(dc.URL, ldapsrc.Bind{Username: "Administrator", CCache: ccache}),
				ldapsrc.ErrCredentialCache, []string{ccache, "svc-gss@" + dc.Realm, "Administrator"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s, err := ldapsrc.Open(context.Background(), tc.cfg, zaptest.NewLogger(t))
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded")
				}
				t.Logf("error: %v", err)
				if !errors.Is(err, tc.is) {
					t.Errorf("error is not %v: %v", tc.is, err)
				}
				for _, p := range tc.parts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error lacks %q: %v", p, err)
					}
				}
			})
		}
	})
}

// setPassword resets dn's password as Administrator, which changes its
// Kerberos keys.
func setPassword(t *testing.T, dc *ldaptest.Samba, dn, pw string) {
	t.Helper()
	var enc []byte
	for _, r := range `"` + pw + `"` {
		enc = append(enc, byte(r), 0) // ASCII passwords: UTF-16LE is one zero byte more
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{string(enc)})
	if err := dc.Admin(t).Modify(req); err != nil {
		t.Fatalf("reset password of %s: %v", dn, err)
	}
}
