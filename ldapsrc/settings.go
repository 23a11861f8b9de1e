package ldapsrc

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Settings is one directory as the configuration file describes it (an
// element of sources, or the single source). Config is what Open takes;
// the configuration's loader turns Settings into a Config, reading the
// secret and CA files.
type Settings struct {
	// Name identifies the directory in state records, watermarks, reports
	// and logs. It must stay the same for the life of the state file:
	// records remember the source they came from by it.
	Name            string `yaml:"name"`
	URL             string `yaml:"url"`
	BaseDN          string `yaml:"baseDN"`
	Filter          string `yaml:"filter"`
	AnchorAttribute string `yaml:"anchorAttribute"`
	PageSize        int    `yaml:"pageSize"`
	ChangeTracking  string `yaml:"changeTracking"`
	// ChangeNotification: auto listens for the directory's change
	// notifications (AD's notification control, OpenLDAP's syncrepl) and
	// starts an incremental pass within seconds of a change; off polls only.
	ChangeNotification string       `yaml:"changeNotification"`
	Bind               BindSettings `yaml:"bind"`
	TLS                TLSSettings  `yaml:"tls"`
	// Limits caps a certificate value and an entry's certificate values
	// (see Limits); zero keeps the defaults.
	Limits LimitSettings `yaml:"limits"`
	// AltSecurityIdentities is the target that writes strong certificate
	// mappings back to this directory's users (Active Directory only).
	AltSecurityIdentities AltSecuritySettings `yaml:"altSecurityIdentities"`
}

// BindSettings is how certsync authenticates (see Bind).
type BindSettings struct {
	Method       string `yaml:"method"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
	PasswordEnv  string `yaml:"passwordEnv"`
	// Kerberos (method gssapi).
	KeytabFile   string `yaml:"keytabFile"`
	CCacheFile   string `yaml:"ccacheFile"`
	Realm        string `yaml:"realm"`
	SPN          string `yaml:"spn"`
	Krb5ConfFile string `yaml:"krb5ConfFile"`
}

// LimitSettings is Limits in the configuration file.
type LimitSettings struct {
	MaxValueBytes            int            `yaml:"maxValueBytes"`
	MaxValueBytesByAttribute map[string]int `yaml:"maxValueBytesByAttribute"`
	MaxEntryBytes            int            `yaml:"maxEntryBytes"`
}

// Limits is what Config takes.
func (l LimitSettings) Limits() Limits {
	return Limits(l)
}

// TLSSettings is how the directory's certificate is checked (see TLS).
type TLSSettings struct {
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
	// The name is loud on purpose: turning verification off must stand out
	// in any review of the file.
	DangerouslySkipVerify bool `yaml:"dangerouslySkipCertificateVerification"`
}

// DefaultSourceName names the one directory of a configuration that does
// not name it.
const DefaultSourceName = "default"

// DefaultFilter is the configuration's default filter: Active Directory
// users with a mail address.
const DefaultFilter = "(&(objectCategory=person)(objectClass=user)(mail=*))"

// TrackingModes lists the values of changeTracking.
func TrackingModes() []string {
	return []string{TrackAuto, TrackUSN, TrackDirSync, TrackTimestamp, TrackFull}
}

// BindMethods lists the values of bind.method.
func BindMethods() []string { return []string{bindSimple, bindGSSAPI} }

// Defaults fills in what the file left out.
func (s *Settings) Defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&s.Name, DefaultSourceName)
	def(&s.AnchorAttribute, "objectGUID")
	def(&s.Filter, DefaultFilter)
	if s.PageSize == 0 {
		s.PageSize = defaultPageSize
	}
	def(&s.Bind.Method, bindSimple)
	def(&s.ChangeTracking, TrackAuto)
	def(&s.ChangeNotification, WatchAuto)
	s.AltSecurityIdentities.Defaults()
}

// sourceName is what a source name may be: short, stable text that reads
// well in logs and state records.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks every key; key names the section in errors ("source",
// "sources[1]"), and path resolves a file name from the configuration
// against its directory, so a typo in a file name fails at start-up.
func (s Settings) Validate(key string, path func(string) string) error {
	if !sourceName.MatchString(s.Name) {
		return fmt.Errorf("%s.name: %q: use letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit", key, s.Name)
	}
	if s.URL == "" {
		return fmt.Errorf("%s.url: required (ldaps://host or ldap://host, which always uses StartTLS)", key)
	}
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return fmt.Errorf("%s.url: %q is not an ldap:// or ldaps:// URL with a host", key, s.URL)
	}
	if s.BaseDN == "" {
		return fmt.Errorf("%s.baseDN: required", key)
	}
	if _, err := ldap.ParseDN(s.BaseDN); err != nil {
		return fmt.Errorf("%s.baseDN: %q is not a DN: %v", key, s.BaseDN, err)
	}
	if _, err := ldap.CompileFilter(s.Filter); err != nil {
		return fmt.Errorf("%s.filter: %q is not an LDAP filter: %v", key, s.Filter, err)
	}
	if s.AnchorAttribute == "" || strings.ContainsAny(s.AnchorAttribute, "; ,()*=") {
		return fmt.Errorf("%s.anchorAttribute: %q is not an attribute name", key, s.AnchorAttribute)
	}
	if s.PageSize < 1 || s.PageSize > 1000 {
		return fmt.Errorf("%s.pageSize: %d is outside 1..1000 (AD caps a page at 1000)", key, s.PageSize)
	}
	if !slices.ContainsFunc(TrackingModes(), func(m string) bool { return strings.EqualFold(m, s.ChangeTracking) }) {
		return fmt.Errorf("%s.changeTracking: %q is not one of %s", key, s.ChangeTracking, strings.Join(TrackingModes(), ", "))
	}
	if !slices.Contains(WatchModes(), s.ChangeNotification) {
		return fmt.Errorf("%s.changeNotification: %q is not one of %s", key, s.ChangeNotification, strings.Join(WatchModes(), ", "))
	}
	if _, err := s.Limits.Limits().withDefaults(key + ".limits"); err != nil {
		return err
	}
	if err := s.Bind.validate(key+".bind", path); err != nil {
		return err
	}
	if err := s.AltSecurityIdentities.validate(key+".altSecurityIdentities", s); err != nil {
		return err
	}
	return readable(key+".tls.caFile", s.TLS.CAFile, path)
}

func (b BindSettings) validate(key string, path func(string) string) error {
	switch b.Method {
	case bindSimple:
		if b.Username == "" {
			return fmt.Errorf("%s.username: required for method simple", key)
		}
		switch {
		case b.PasswordFile == "" && b.PasswordEnv == "":
			return fmt.Errorf("%s.passwordFile: required (or %s.passwordEnv); secrets are never written in the config file", key, key)
		case b.PasswordFile != "" && b.PasswordEnv != "":
			return fmt.Errorf("%s.passwordFile: set only one of passwordFile and passwordEnv", key)
		}
		for _, k := range []struct{ key, val string }{{"keytabFile", b.KeytabFile}, {"ccacheFile", b.CCacheFile}, {"realm", b.Realm}, {"spn", b.SPN}, {"krb5ConfFile", b.Krb5ConfFile}} {
			if k.val != "" {
				return fmt.Errorf("%s.%s: only used with method gssapi", key, k.key)
			}
		}
		return nil
	case bindGSSAPI:
		// Without a keytab the process's Kerberos credential cache is used
		// (on Windows, the service account's own logon).
		if b.PasswordFile != "" || b.PasswordEnv != "" {
			return fmt.Errorf("%s.passwordFile: not used with method gssapi (use keytabFile or the credential cache)", key)
		}
		if b.KeytabFile != "" && b.Username == "" {
			return fmt.Errorf("%s.username: required with keytabFile: the principal to take from the keytab (svc-certsync@CONTOSO.COM)", key)
		}
		if err := readable(key+".keytabFile", b.KeytabFile, path); err != nil {
			return err
		}
		return readable(key+".krb5ConfFile", b.Krb5ConfFile, path)
	}
	return fmt.Errorf("%s.method: %q is not one of %s", key, b.Method, strings.Join(BindMethods(), ", "))
}

// readable checks that a configured file can be opened now; "" is fine
// (the key is optional).
func readable(key, file string, path func(string) string) error {
	if file == "" {
		return nil
	}
	f, err := os.Open(path(file))
	if err != nil {
		return fmt.Errorf("%s: cannot read: %v", key, err)
	}
	return f.Close()
}
