package ldapsrc

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestGSSAPIConfig(t *testing.T) {
	t.Setenv("KRB5_CONFIG", "/etc/certsync/krb5.conf"+string(pathListSeparator())+"/etc/krb5.conf")
	t.Setenv("KRB5CCNAME", "FILE:/run/certsync/krb5cc")
	gss := func(b Bind) Config {
		b.Method = "GSSAPI"
		return Config{URL: "ldap://dc01.example.com", BaseDN: "DC=example,DC=com", AnchorAttribute: "objectGUID", Bind: b}
	}
	envCCache := "/run/certsync/krb5cc"
	if runtime.GOOS == "windows" {
		envCCache = "" // SSPI: the logon session, not a cache file
	}
	tests := []struct {
		name string
		cfg  Config
		want Bind
	}{
		{"keytab, realm in the principal", gss(Bind{Username: "svc@EXAMPLE.COM", Keytab: "/etc/certsync/svc.keytab"}),
			Bind{Method: "gssapi", Username: "svc", Realm: "EXAMPLE.COM", Keytab: "/etc/certsync/svc.keytab",
				SPN: "ldap/dc01.example.com", Krb5Conf: "/etc/certsync/krb5.conf"}},
		{"keytab, realm apart, SPN from tls.serverName", func() Config {
			c := gss(Bind{Username: "svc", Realm: "EXAMPLE.COM", Keytab: "k", Krb5Conf: "/k5.conf"})
			c.URL, c.TLS.ServerName = "ldaps://10.0.0.5", "dc02.example.com"
			return c
		}(), Bind{Method: "gssapi", Username: "svc", Realm: "EXAMPLE.COM", Keytab: "k", SPN: "ldap/dc02.example.com", Krb5Conf: "/k5.conf"}},
		{"cache from the environment", gss(Bind{}),
			Bind{Method: "gssapi", CCache: envCCache, SPN: "ldap/dc01.example.com", Krb5Conf: "/etc/certsync/krb5.conf"}},
		{"cache named, FILE: dropped, explicit SPN", gss(Bind{CCache: "FILE:/tmp/cc", SPN: "LDAP/dc01.example.com"}),
			Bind{Method: "gssapi", CCache: "/tmp/cc", SPN: "LDAP/dc01.example.com", Krb5Conf: "/etc/certsync/krb5.conf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := tc.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Bind != tc.want {
				t.Errorf("bind\n got %#v\nwant %#v", cfg.Bind, tc.want)
			}
		})
	}
}

func pathListSeparator() rune {
	if runtime.GOOS == "windows" {
		return ';'
	}
	return ':'
}

func TestGSSAPIConfigErrors(t *testing.T) {
	ok := Config{URL: "ldaps://dc01.example.com", BaseDN: "dc=x", AnchorAttribute: "objectGUID",
		Bind: Bind{Method: "gssapi", Username: "svc", Keytab: "/k", Krb5Conf: "/k5"}}
	tests := []struct {
		name string
		tune func(*Bind, *Config)
		want string
	}{
		{"password with gssapi", func(b *Bind, _ *Config) { b.Password = "pw" }, "bind.password is not used by gssapi"},
		{"keytab without principal", func(b *Bind, _ *Config) { b.Username = "" }, "keytab /k needs bind.username"},
		{"keytab and cache", func(b *Bind, _ *Config) { b.CCache = "/cc" }, "bind.keytab or bind.ccache, not both"},
		{"empty realm", func(b *Bind, _ *Config) { b.Username = "svc@" }, `principal "svc@"`},
		{"two realms", func(b *Bind, _ *Config) { b.Username, b.Realm = "svc@A.COM", "B.COM" }, "names realm A.COM but bind.realm is B.COM"},
		{"IP server name", func(_ *Bind, c *Config) { c.URL = "ldaps://192.0.2.7" }, "192.0.2.7 is an IP address: set bind.spn"},
		{"SPN without host", func(b *Bind, _ *Config) { b.SPN = "ldap" }, `bind.spn "ldap"`},
		{"SPN with realm", func(b *Bind, _ *Config) { b.SPN = "ldap/dc01@EXAMPLE.COM" }, "no @REALM"},
		{"kernel keyring cache", func(b *Bind, _ *Config) { b.Keytab, b.CCache = "", "KEYRING:persistent:0" }, `"KEYRING:persistent:0": only FILE: caches`},
		{"keytab with simple", func(b *Bind, _ *Config) { b.Method, b.Password = "simple", "pw" }, "bind.keytab is set but bind.method is simple"},
		{"SPN with simple", func(b *Bind, _ *Config) { *b = Bind{Username: "u", Password: "p", SPN: "ldap/x"} }, "bind.spn is set but bind.method is simple"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.tune(&cfg.Bind, &cfg)
			if _, _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGSSAPIBindPrints(t *testing.T) {
	b := Bind{Method: "gssapi", Username: "svc", Keytab: "/etc/svc.keytab", SPN: "ldap/dc01"}
	for _, format := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(format, b); !strings.Contains(s, "/etc/svc.keytab") || !strings.Contains(s, "ldap/dc01") {
			t.Errorf("%s: %s", format, s)
		}
	}
}

// TestExplainKerberos covers the KDC answers the Samba tests cannot cause
// (a skewed clock, a disabled account) with the texts gokrb5 produces.
func TestExplainKerberos(t *testing.T) {
	tests := []struct {
		gokrb5 string
		is     error
		want   string
	}{
		{"[Root cause: KDC_Error] KDC_Error: AS Exchange Error: kerberos error response from KDC: KRB Error: (37) KRB_AP_ERR_SKEW Clock skew too great",
			ErrClockSkew, "fix time synchronisation"},
		{"KRB Error: (18) KDC_ERR_CLIENT_REVOKED Clients credentials have been revoked", ErrAccountUnusable, "refuses account svc@EXAMPLE.COM"},
		{"KRB Error: (23) KDC_ERR_KEY_EXPIRED Password has expired", ErrAccountUnusable, "password expired"},
		{"KRB Error: (31) KRB_AP_ERR_BAD_INTEGRITY Integrity check on decrypted field failed", ErrKerberosKeysMismatch, "the keys in keytab /k"},
		{"KRB Error: (7) KDC_ERR_S_PRINCIPAL_UNKNOWN Server not found", ErrSPNUnknown, "ldap/dc01.example.com"},
		{"KRB Error: (6) KDC_ERR_C_PRINCIPAL_UNKNOWN Client not found", ErrPrincipalUnknown, "svc@EXAMPLE.COM"},
		{"[Root cause: Networking_Error] failed to communicate with KDC. Attempts made with UDP (x) and then TCP (y)", ErrKDCUnreachable, "port 88"},
		{"[Root cause: KRBMessage_Handling_Error] cannot login, no user credentials available and no valid existing session", ErrCredentialCache, "expired"},
	}
	for _, tc := range tests {
		err := explainKerberos(errors.New(tc.gokrb5), "ldap/dc01.example.com", "svc@EXAMPLE.COM", "/k")
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.gokrb5) {
			t.Errorf("%s:\n got %v\nwant %v and %q", tc.gokrb5, err, tc.is, tc.want)
		}
	}
	other := errors.New("something else")
	if got := explainKerberos(other, "s", "w", ""); got != other {
		t.Errorf("unknown error rewritten: %v", got)
	}
}
