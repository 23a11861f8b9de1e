//go:build windows

package ldapsrc

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/go-ldap/ldap/v3/gssapi"
	"go.uber.org/zap"
)

// defaultCCache is empty: on Windows the logon session holds the tickets,
// reached through SSPI, unless bind.ccache names a file.
func defaultCCache() string { return "" }

// logonClient is the client without a keytab: a credential cache file when
// one is configured, otherwise the service account's own logon through
// SSPI, with the TLS channel bound to the server certificate so domain
// controllers that enforce LDAP channel binding accept it.
func (s *Source) logonClient(ctx context.Context, peer *x509.Certificate) (gssapiClient, string, error) {
	if s.cfg.Bind.CCache != "" {
		return s.ccacheClient(ctx)
	}
	var (
		c   *gssapi.SSPIClient
		err error
	)
	if peer != nil {
		c, err = gssapi.NewSSPIClientWithChannelBinding(peer)
	} else {
		c, err = gssapi.NewSSPIClient()
	}
	if err != nil {
		return nil, "", fmt.Errorf("ldapsrc: gssapi: acquire the credentials of this process's logon (SSPI): %w", err)
	}
	if s.cfg.Bind.Username != "" {
		s.log.Info("ldapsrc: gssapi bind uses the service's own logon (SSPI); bind.username is only checked against a keytab",
			zap.String("username", s.cfg.Bind.Username))
	}
	return c, "the service's logon (SSPI)", nil
}
