package ldapsrc

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping"
)

// Config says where the directory is, what to read and how to connect.
type Config struct {
	// URL is ldaps://host[:port] or ldap://host[:port]. ldap:// always
	// upgrades with StartTLS before anything else is sent: certsync never
	// binds or reads over a plain connection.
	URL string
	// BaseDN is where users are searched (subtree). Required.
	BaseDN string
	// Filter selects the users certsync manages; default (objectClass=*).
	Filter string
	// AnchorAttribute is the user's immutable key: "objectGUID" (Active
	// Directory; 16 bytes, given as standard base64), "entryUUID"
	// (OpenLDAP) or another text attribute. Required.
	AnchorAttribute string
	// IdentityAttributes are read into SourceUser.Attributes (lower-cased
	// keys, first value); default mail, userPrincipalName, sAMAccountName,
	// uid.
	IdentityAttributes []string
	// CertificateAttributes hold the certificate values; default
	// userCertificate, userSMIMECertificate.
	CertificateAttributes []string
	// PageSize is the paged-results page size; default 500. Active
	// Directory returns at most 1000 entries a page whatever is asked.
	PageSize int
	// ChangeTracking is how incremental reads find changed users: auto
	// (default), usn, dirsync, modifyTimestamp or full (see Track*).
	ChangeTracking string
	// ChangeNotification is whether Watch listens for the directory's
	// change notifications: auto (default, when the server offers them) or
	// off.
	ChangeNotification string
	Bind               Bind
	TLS                TLS
	// DialTimeout bounds connecting plus the TLS handshake; default 10s.
	DialTimeout time.Duration
	// OpTimeout bounds each LDAP operation (a bind, one page of a search);
	// default 2m.
	OpTimeout time.Duration
	// Limits caps the certificate bytes one user may bring (see Limits).
	Limits Limits
}

// Limits caps what certsync reads of one entry's certificate values. A
// value or entry beyond them is not passed on: its user is reported with
// the value's attribute and size (SourceUser.Unread) and changed in no
// way, so a value too large to read never looks like a certificate that
// left. They also bound what the certificate parser is ever given.
//
// go-ldap reads each LDAP message whole before certsync sees it, and its
// only bound is a process-wide variable of go-asn1-ber (2 GiB by default)
// that a library must not change under its host; a search's messages are
// one entry each, so these caps, checked as each entry arrives, and the
// page size bound what certsync keeps.
type Limits struct {
	// MaxValueBytes caps one certificate value; default 65,536 (AD caps
	// userSMIMECertificate at 32,768; a certificate chain bag is a few KiB).
	MaxValueBytes int
	// MaxValueBytesByAttribute overrides MaxValueBytes for the named
	// certificate attributes (case-insensitive).
	MaxValueBytesByAttribute map[string]int
	// MaxEntryBytes caps all certificate values of one entry together;
	// default 1 MiB.
	MaxEntryBytes int
}

// Bounds of Limits: below MinValueBytes no real certificate fits, above
// MaxValueBytesLimit the certificate parser refuses the value anyway.
const (
	DefaultMaxValueBytes = 64 << 10
	DefaultMaxEntryBytes = 1 << 20
	MinValueBytes        = 4 << 10
	MaxValueBytesLimit   = 1 << 20
	MaxEntryBytesLimit   = 16 << 20
)

// withDefaults fills in the defaults and checks the bounds; key names the
// settings section in errors.
func (l Limits) withDefaults(key string) (Limits, error) {
	if l.MaxValueBytes == 0 {
		l.MaxValueBytes = DefaultMaxValueBytes
	}
	if l.MaxEntryBytes == 0 {
		l.MaxEntryBytes = DefaultMaxEntryBytes
	}
	check := func(k string, v int) error {
		if v < MinValueBytes || v > MaxValueBytesLimit {
			return fmt.Errorf("%s.%s: %d is outside %d..%d bytes", key, k, v, MinValueBytes, MaxValueBytesLimit)
		}
		return nil
	}
	if err := check("maxValueBytes", l.MaxValueBytes); err != nil {
		return l, err
	}
	for a, v := range l.MaxValueBytesByAttribute {
		if err := check("maxValueBytesByAttribute."+a, v); err != nil {
			return l, err
		}
	}
	if l.MaxEntryBytes < l.MaxValueBytes || l.MaxEntryBytes > MaxEntryBytesLimit {
		return l, fmt.Errorf("%s.maxEntryBytes: %d is outside %d (maxValueBytes)..%d bytes", key, l.MaxEntryBytes, l.MaxValueBytes, MaxEntryBytesLimit)
	}
	return l, nil
}

// Bind is how certsync authenticates to the directory. Either way the
// connection is TLS first (LDAPS or StartTLS).
type Bind struct {
	// Method is "simple" (the default) or "gssapi" (Kerberos).
	Method string
	// Username is, for simple, the bind DN or UPN. For gssapi it is the
	// client principal (svc-certsync or svc-certsync@EXAMPLE.COM); required
	// with a keytab, otherwise it may stay empty to use whoever the
	// credential cache (or, on Windows, the service's logon) holds.
	Username string
	// Password is for simple binds only.
	Password string
	// Keytab is the keytab file of the gssapi principal. Empty: the
	// credential cache (CCache) on Unix, the process's own logon (SSPI) on
	// Windows.
	Keytab string
	// CCache is the credential cache read when there is no keytab; default
	// $KRB5CCNAME, then /tmp/krb5cc_<uid>. FILE: caches only.
	CCache string
	// Realm is the principal's realm; default the one in Username, then
	// krb5.conf's default_realm.
	Realm string
	// SPN is the directory's service principal; default
	// ldap/<TLS server name> (the URL's host unless tls.serverName is set).
	SPN string
	// Krb5Conf is the Kerberos configuration (realms, KDCs); default
	// $KRB5_CONFIG, then /etc/krb5.conf. Not needed with SSPI.
	Krb5Conf string
}

// String leaves the password out, so a Bind or Config printed with %v
// never reveals it.
func (b Bind) String() string {
	pw := ""
	if b.Password != "" {
		pw = "<redacted>"
	}
	if b.Method != bindGSSAPI {
		return fmt.Sprintf("{Method:%s Username:%s Password:%s}", b.Method, b.Username, pw)
	}
	return fmt.Sprintf("{Method:%s Username:%s Password:%s Keytab:%s CCache:%s Realm:%s SPN:%s Krb5Conf:%s}",
		b.Method, b.Username, pw, b.Keytab, b.CCache, b.Realm, b.SPN, b.Krb5Conf)
}

// GoString keeps %#v from printing the password too.
func (b Bind) GoString() string { return "ldapsrc.Bind" + b.String() }

// TLS configures certificate verification of the directory server.
type TLS struct {
	// RootCAs verifies the server certificate; nil means the system pool.
	RootCAs *x509.CertPool
	// ServerName is the name checked against the certificate; default the
	// URL's host.
	ServerName string
	// InsecureSkipVerify turns verification off. Never in production.
	InsecureSkipVerify bool
}

const (
	defaultFilter      = "(objectClass=*)"
	defaultPageSize    = 500
	defaultDialTimeout = 10 * time.Second
	defaultOpTimeout   = 2 * time.Minute
	bindSimple         = "simple"
	bindGSSAPI         = "gssapi"
)

func defaultIdentityAttributes() []string {
	return []string{"mail", "userPrincipalName", "sAMAccountName", "uid"}
}

func defaultCertificateAttributes() []string {
	return []string{mapping.AttrUserCertificate, mapping.AttrUserSMIMECertificate}
}

// endpoint is the parsed URL: where to dial and whether TLS starts at once.
type endpoint struct {
	addr        string // host:port
	host        string
	implicitTLS bool // ldaps://
}

// withDefaults fills in defaults and checks the configuration, so that
// mistakes show at Open with the key named rather than as a server error.
func (c Config) withDefaults() (Config, endpoint, error) {
	var ep endpoint
	if c.URL == "" {
		return c, ep, fmt.Errorf("ldapsrc: config: url is required (ldaps://host or ldap://host)")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, ep, fmt.Errorf("ldapsrc: config: url %q: %w", c.URL, err)
	}
	port := u.Port()
	switch strings.ToLower(u.Scheme) {
	case "ldaps":
		ep.implicitTLS = true
		if port == "" {
			port = ldap.DefaultLdapsPort
		}
	case "ldap":
		if port == "" {
			port = ldap.DefaultLdapPort
		}
	default:
		return c, ep, fmt.Errorf("ldapsrc: config: url %q: scheme must be ldaps or ldap (StartTLS)", c.URL)
	}
	ep.host = u.Hostname()
	if ep.host == "" {
		return c, ep, fmt.Errorf("ldapsrc: config: url %q has no host", c.URL)
	}
	ep.addr = net.JoinHostPort(ep.host, port)

	if c.BaseDN == "" {
		return c, ep, fmt.Errorf("ldapsrc: config: baseDN is required")
	}
	if _, err := ldap.ParseDN(c.BaseDN); err != nil {
		return c, ep, fmt.Errorf("ldapsrc: config: baseDN %q: %w", c.BaseDN, err)
	}
	if c.Filter == "" {
		c.Filter = defaultFilter
	}
	if _, err := ldap.CompileFilter(c.Filter); err != nil {
		return c, ep, fmt.Errorf("ldapsrc: config: filter %q: %w", c.Filter, err)
	}
	if c.AnchorAttribute == "" {
		return c, ep, fmt.Errorf("ldapsrc: config: anchorAttribute is required (objectGUID for Active Directory, entryUUID for OpenLDAP)")
	}
	if len(c.IdentityAttributes) == 0 {
		c.IdentityAttributes = defaultIdentityAttributes()
	}
	if len(c.CertificateAttributes) == 0 {
		c.CertificateAttributes = defaultCertificateAttributes()
	}
	for _, a := range append(append([]string{c.AnchorAttribute}, c.IdentityAttributes...), c.CertificateAttributes...) {
		if a == "" || strings.ContainsAny(a, "; ,()*=") {
			return c, ep, fmt.Errorf("ldapsrc: config: attribute name %q: want a plain name without options", a)
		}
	}
	switch {
	case c.PageSize < 0:
		return c, ep, fmt.Errorf("ldapsrc: config: pageSize %d is negative", c.PageSize)
	case c.PageSize == 0:
		c.PageSize = defaultPageSize
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = defaultOpTimeout
	}
	if c.TLS.ServerName == "" {
		c.TLS.ServerName = ep.host
	}
	if c.Limits, err = c.Limits.withDefaults("ldapsrc: config: limits"); err != nil {
		return c, ep, err
	}
	if c.Bind, err = c.Bind.withDefaults(c.TLS.ServerName); err != nil {
		return c, ep, err
	}
	if c.ChangeTracking, err = normalizeTracking(c); err != nil {
		return c, ep, err
	}
	return c, ep, nil
}
