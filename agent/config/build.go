package config

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// MappingPolicy is the policy section as mapping takes it, with the
// trusted CAs read from their file.
func (c *Config) MappingPolicy() (mapping.Policy, error) {
	cas, err := c.ReadCerts("policy.issuingCAFile", c.Policy.IssuingCAFile)
	if err != nil {
		return mapping.Policy{}, err
	}
	return mapping.Policy{
		IssuingCAs:      cas,
		RequireSKI:      *c.Policy.RequireSKI,
		ExtKeyUsages:    c.ExtKeyUsageList(),
		SkipExpired:     *c.Policy.SkipExpired,
		MaxCertificates: c.Policy.MaxCertificates,
		// The revocation set itself is read from the directories at each
		// pass (and kept until the CAs publish again).
		CheckRevocation:       c.Policy.CheckRevocation,
		RevocationUnavailable: c.Policy.RevocationUnavailable,
		Identity:              c.Policy.Identity,
	}, nil
}

// LDAPConfig is source i as ldapsrc opens it, with its password and CA
// read from their files; identity and certificates are the attributes the
// targets need read.
func (c *Config) LDAPConfig(i int, identity, certificates []string) (ldapsrc.Config, error) {
	s := c.Sources[i]
	var pw Secret
	var err error
	if s.Bind.Method == "simple" {
		if pw, err = c.LDAPPassword(i); err != nil {
			return ldapsrc.Config{}, err
		}
	}
	var roots *x509.CertPool
	if s.TLS.CAFile != "" {
		if roots, err = c.ReadCertPool(c.sourceKey(i)+".tls.caFile", s.TLS.CAFile); err != nil {
			return ldapsrc.Config{}, err
		}
	}
	return ldapsrc.Config{
		URL:                   s.URL,
		BaseDN:                s.BaseDN,
		Filter:                s.Filter,
		AnchorAttribute:       s.AnchorAttribute,
		IdentityAttributes:    identity,
		CertificateAttributes: certificates,
		PageSize:              s.PageSize,
		ChangeTracking:        s.ChangeTracking,
		ChangeNotification:    s.ChangeNotification,
		Limits:                s.Limits.Limits(),
		Bind: ldapsrc.Bind{Method: s.Bind.Method, Username: s.Bind.Username, Password: pw.Reveal(),
			Keytab: c.Path(s.Bind.KeytabFile), CCache: c.Path(s.Bind.CCacheFile), Realm: s.Bind.Realm, SPN: s.Bind.SPN, Krb5Conf: c.Path(s.Bind.Krb5ConfFile)},
		TLS: ldapsrc.TLS{RootCAs: roots, ServerName: s.TLS.ServerName, InsecureSkipVerify: s.TLS.DangerouslySkipVerify},
	}, nil
}

// Credential builds the one credential both cloud services use (it caches
// a token per resource) and the trust for their TLS.
func (c *Config) Credential() (azcore.TokenCredential, *x509.CertPool, error) {
	cl := c.Cloud
	var roots *x509.CertPool
	if cl.CAFile != "" {
		// Added to the system's roots, not instead of them: the file may
		// name a proxy's or an emulator's CA, and the real login and Graph
		// hosts must still verify.
		extra, err := c.ReadCerts("cloud.caFile", cl.CAFile)
		if err != nil {
			return nil, nil, err
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		for _, cert := range extra {
			roots.AddCert(cert)
		}
	}
	cc := cloudsink.CredentialConfig{
		Method: cl.Credential.Method, TenantID: cl.TenantID, ClientID: cl.ClientID,
		TokenFile: c.Path(cl.Credential.TokenFile), AuthorityHost: cl.AuthorityHost, RootCAs: roots, Environment: cl.Environment,
	}
	switch cl.Credential.Method {
	case cloudsink.MethodSecret:
		sec, err := c.ClientSecret()
		if err != nil {
			return nil, nil, err
		}
		cc.Secret = sec.Reveal()
	case cloudsink.MethodCertificate:
		pem, err := os.ReadFile(c.Path(cl.Credential.CertificateFile))
		if err != nil {
			return nil, nil, fmt.Errorf("cloud.credential.certificateFile: %w", err)
		}
		cc.CertificatePEM = pem
	}
	cred, err := cloudsink.NewCredential(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("cloud.credential: %w", err)
	}
	return cred, roots, nil
}
