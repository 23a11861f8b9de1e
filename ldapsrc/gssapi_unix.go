//go:build !windows

package ldapsrc

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
)

// defaultCCache is MIT Kerberos' default: $KRB5CCNAME, else the user's
// file in /tmp.
func defaultCCache() string {
	if env := os.Getenv("KRB5CCNAME"); env != "" {
		return env
	}
	return fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
}

// logonClient is the client without a keytab: the credential cache, filled
// by kinit, k5start or sssd outside certsync.
func (s *Source) logonClient(ctx context.Context, _ *x509.Certificate) (gssapiClient, string, error) {
	return s.ccacheClient(ctx)
}
