package ldapsrc

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, ep, err := Config{URL: "ldap://DC01.contoso.com", BaseDN: "DC=contoso,DC=com", AnchorAttribute: "objectGUID",
		Bind: Bind{Username: "svc@contoso.com", Password: "pw"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if ep.addr != "DC01.contoso.com:389" || ep.implicitTLS || cfg.TLS.ServerName != "DC01.contoso.com" {
		t.Errorf("endpoint %+v server name %q", ep, cfg.TLS.ServerName)
	}
	if cfg.Filter != "(objectClass=*)" || cfg.PageSize != 500 || cfg.DialTimeout != 10*time.Second ||
		cfg.OpTimeout != 2*time.Minute || cfg.Bind.Method != "simple" ||
		strings.Join(cfg.IdentityAttributes, ",") != "mail,userPrincipalName,sAMAccountName,uid" ||
		strings.Join(cfg.CertificateAttributes, ",") != "userCertificate,userSMIMECertificate" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	_, ep, err = Config{URL: "ldaps://[::1]", BaseDN: "dc=x", AnchorAttribute: "entryUUID",
		Bind: Bind{Username: "u", Password: "p"}}.withDefaults()
	if err != nil || ep.addr != "[::1]:636" || !ep.implicitTLS {
		t.Errorf("ldaps://[::1]: %+v, %v", ep, err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{URL: "ldaps://dc01", BaseDN: "dc=x", AnchorAttribute: "objectGUID", Bind: Bind{Username: "u", Password: "p"}}
	tests := []struct {
		name string
		tune func(*Config)
		want string
	}{
		{"no url", func(c *Config) { c.URL = "" }, "url is required"},
		{"plain scheme", func(c *Config) { c.URL = "http://dc01" }, "scheme must be ldaps or ldap"},
		{"no host", func(c *Config) { c.URL = "ldaps://" }, "has no host"},
		{"no base", func(c *Config) { c.BaseDN = "" }, "baseDN is required"},
		{"bad base", func(c *Config) { c.BaseDN = "not a dn" }, `baseDN "not a dn"`},
		{"bad filter", func(c *Config) { c.Filter = "(uid=a" }, `filter "(uid=a"`},
		{"no anchor", func(c *Config) { c.AnchorAttribute = "" }, "anchorAttribute is required"},
		{"option in name", func(c *Config) { c.CertificateAttributes = []string{"userCertificate;binary"} }, "without options"},
		{"negative page", func(c *Config) { c.PageSize = -1 }, "pageSize -1"},
		{"unknown bind method", func(c *Config) { c.Bind.Method = "ntlm" }, `bind method "ntlm" is not supported (simple or gssapi)`},
		{"empty password", func(c *Config) { c.Bind.Password = "" }, "needs a username and a password"},
		{"value cap too small", func(c *Config) { c.Limits.MaxValueBytes = 100 }, "limits.maxValueBytes: 100 is outside"},
		{"value cap too large", func(c *Config) { c.Limits.MaxValueBytes = 2 << 20 }, "limits.maxValueBytes: 2097152 is outside"},
		{"attribute cap too large", func(c *Config) {
			c.Limits.MaxValueBytesByAttribute = map[string]int{"userSMIMECertificate": 4 << 20}
		}, "maxValueBytesByAttribute.userSMIMECertificate: 4194304 is outside"},
		{"entry cap below value cap", func(c *Config) { c.Limits.MaxEntryBytes = 8 << 10 }, "limits.maxEntryBytes: 8192 is outside"},
		{"entry cap too large", func(c *Config) { c.Limits.MaxEntryBytes = 1 << 30 }, "limits.maxEntryBytes: 1073741824 is outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.tune(&cfg)
			if _, _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBindNeverPrintsPassword(t *testing.T) {
	cfg := Config{URL: "ldaps://dc01", Bind: Bind{Username: "svc", Password: "hunter2"}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, cfg); strings.Contains(s, "hunter2") {
			t.Errorf("%s prints the password: %s", format, s)
		}
	}
	if s := fmt.Sprint(cfg.Bind); !strings.Contains(s, "svc") || !strings.Contains(s, "<redacted>") {
		t.Errorf("Bind prints %s", s)
	}
}
