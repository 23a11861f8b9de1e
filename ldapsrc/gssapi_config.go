package ldapsrc

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// withDefaults checks the bind settings of one method and fills in the
// gssapi defaults. serverName is the TLS server name, the host of the
// default SPN.
func (b Bind) withDefaults(serverName string) (Bind, error) {
	switch strings.ToLower(b.Method) {
	case "", bindSimple:
		b.Method = bindSimple
		if b.Username == "" || b.Password == "" {
			// An empty password would be an unauthenticated bind that many
			// servers accept as anonymous: refuse it rather than read nothing.
			return b, fmt.Errorf("ldapsrc: config: simple bind needs a username and a password")
		}
		for _, kv := range [][2]string{{"keytab", b.Keytab}, {"ccache", b.CCache}, {"realm", b.Realm}, {"spn", b.SPN}, {"krb5Conf", b.Krb5Conf}} {
			if kv[1] != "" {
				return b, fmt.Errorf("ldapsrc: config: bind.%s is set but bind.method is simple (set bind.method: gssapi for Kerberos)", kv[0])
			}
		}
		return b, nil
	case bindGSSAPI:
		b.Method = bindGSSAPI
	default:
		return b, fmt.Errorf("ldapsrc: config: bind method %q is not supported (simple or gssapi)", b.Method)
	}

	if b.Password != "" {
		return b, fmt.Errorf("ldapsrc: config: bind.password is not used by gssapi binds: give bind.keytab, or leave it empty to use the credential cache")
	}
	if b.Keytab != "" && b.Username == "" {
		return b, fmt.Errorf("ldapsrc: config: gssapi bind with keytab %s needs bind.username, the principal whose keys it holds", b.Keytab)
	}
	if b.Keytab != "" && b.CCache != "" {
		return b, fmt.Errorf("ldapsrc: config: gssapi bind: set bind.keytab or bind.ccache, not both")
	}
	if i := strings.LastIndex(b.Username, "@"); i >= 0 {
		name, realm := b.Username[:i], b.Username[i+1:]
		if name == "" || realm == "" {
			return b, fmt.Errorf("ldapsrc: config: gssapi principal %q: want name or name@REALM", b.Username)
		}
		if b.Realm != "" && b.Realm != realm {
			return b, fmt.Errorf("ldapsrc: config: gssapi principal %q names realm %s but bind.realm is %s", b.Username, realm, b.Realm)
		}
		b.Username, b.Realm = name, realm
	}
	if b.SPN == "" {
		if net.ParseIP(serverName) != nil {
			// The KDC knows the DC by name only; ldap/<IP> never resolves.
			return b, fmt.Errorf("ldapsrc: config: gssapi bind: the server name %s is an IP address: set bind.spn (ldap/<DC host name>) or tls.serverName", serverName)
		}
		b.SPN = "ldap/" + serverName
	}
	if !strings.Contains(b.SPN, "/") || strings.Contains(b.SPN, "@") {
		return b, fmt.Errorf("ldapsrc: config: bind.spn %q: want service/host, e.g. ldap/dc01.example.com (no @REALM)", b.SPN)
	}
	if b.Krb5Conf == "" {
		b.Krb5Conf = defaultKrb5Conf()
	}
	if b.Keytab == "" {
		if b.CCache == "" {
			b.CCache = defaultCCache()
		}
		if b.CCache != "" {
			path, err := ccachePath(b.CCache)
			if err != nil {
				return b, err
			}
			b.CCache = path
		}
	}
	return b, nil
}

// defaultKrb5Conf is the first file of $KRB5_CONFIG (a list, as MIT
// Kerberos reads it), else /etc/krb5.conf.
func defaultKrb5Conf() string {
	if env := os.Getenv("KRB5_CONFIG"); env != "" {
		if first := filepath.SplitList(env)[0]; first != "" {
			return first
		}
	}
	return "/etc/krb5.conf"
}

// ccachePath turns a credential cache name (FILE:/path or /path) into the
// file gokrb5 reads; the other cache types live in the kernel or a daemon
// and cannot be read as a file.
func ccachePath(name string) (string, error) {
	i := strings.Index(name, ":")
	// A one-letter prefix is a Windows drive, not a cache type.
	if i <= 1 {
		return name, nil
	}
	typ, rest := name[:i], name[i+1:]
	if strings.EqualFold(typ, "FILE") && rest != "" {
		return rest, nil
	}
	return "", fmt.Errorf("ldapsrc: config: credential cache %q: only FILE: caches can be read (run kinit -c FILE:/path and set bind.ccache or KRB5CCNAME, or give bind.keytab)", name)
}
