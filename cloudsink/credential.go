package cloudsink

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Credential methods.
const (
	MethodSecret           = "secret"
	MethodCertificate      = "certificate"
	MethodManagedIdentity  = "managedIdentity"
	MethodWorkloadIdentity = "workloadIdentity"
)

// CredentialConfig says how certsync authenticates to Entra ID as an app.
type CredentialConfig struct {
	Method   string // MethodSecret, MethodCertificate, MethodManagedIdentity or MethodWorkloadIdentity
	TenantID string
	ClientID string // for managedIdentity: a user-assigned identity's client ID ("" = system-assigned)
	// Secret is the client secret (method secret), already read from its
	// file or environment variable by the caller. Never logged.
	Secret string
	// CertificatePEM holds the certificate(s) and the RSA private key
	// (method certificate), in any form azidentity.ParseCertificates takes.
	CertificatePEM []byte
	// TokenFile is the federated token file (method workloadIdentity);
	// "" = AZURE_FEDERATED_TOKEN_FILE.
	TokenFile string
	// AuthorityHost overrides the environment's authority, e.g. with an
	// emulator: an https URL without a path. "" = the environment's.
	AuthorityHost string
	// RootCAs, when set, is the trust used for TLS to the authority instead
	// of the system's (for an overriding authority with a private CA).
	RootCAs     *x509.CertPool
	Environment string // "" = global
}

// String keeps secrets out of logs and error messages.
func (c CredentialConfig) String() string {
	return fmt.Sprintf("{Method:%s TenantID:%s ClientID:%s Secret:%s CertificatePEM:%s TokenFile:%s AuthorityHost:%s Environment:%s}",
		c.Method, c.TenantID, c.ClientID, redacted(c.Secret != ""), redacted(len(c.CertificatePEM) > 0), c.TokenFile, c.AuthorityHost, c.Environment)
}

// GoString keeps secrets out of %#v too.
func (c CredentialConfig) GoString() string { return "cloudsink.CredentialConfig" + c.String() }

func redacted(set bool) string {
	if set {
		return "[REDACTED]"
	}
	return `""`
}

// NewCredential builds the azidentity credential every cloud target
// shares. With an authority override, instance discovery is off (it would
// ask login.microsoft.com about a host it does not know) and TLS trusts
// RootCAs.
func NewCredential(cfg CredentialConfig) (azcore.TokenCredential, error) {
	envName, ep, err := environmentOrDefault(cfg.Environment)
	if err != nil {
		return nil, err
	}
	authority := ep.Authority
	override := cfg.AuthorityHost != ""
	if override {
		u, err := parseOverride("authority host", cfg.AuthorityHost)
		if err != nil {
			return nil, err
		}
		authority = u.String() + "/"
	}
	opts := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: authority}}
	if cfg.RootCAs != nil {
		opts.Transport = &http.Client{Transport: newTransport(cfg.RootCAs)}
	}
	need := func(fields ...string) error {
		for i := 0; i < len(fields); i += 2 {
			if fields[i+1] == "" {
				return fmt.Errorf("cloudsink: credential method %s needs %s", cfg.Method, fields[i])
			}
		}
		return nil
	}
	var cred azcore.TokenCredential
	switch cfg.Method {
	case MethodSecret:
		if err := need("a tenant ID", cfg.TenantID, "a client ID", cfg.ClientID, "a client secret", cfg.Secret); err != nil {
			return nil, err
		}
		cred, err = azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.Secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: override,
		})
	case MethodCertificate:
		if err := need("a tenant ID", cfg.TenantID, "a client ID", cfg.ClientID); err != nil {
			return nil, err
		}
		if len(cfg.CertificatePEM) == 0 {
			return nil, errors.New("cloudsink: credential method certificate needs the certificate and its private key (PEM)")
		}
		certs, key, perr := azidentity.ParseCertificates(cfg.CertificatePEM, nil)
		if perr != nil {
			return nil, fmt.Errorf("cloudsink: client certificate: %w", perr)
		}
		if _, ok := key.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("cloudsink: client certificate: the private key is %T; Entra certificate credentials take RSA keys only", key)
		}
		cred, err = azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: override,
		})
	case MethodManagedIdentity:
		// The managed identity endpoint is local to the host; the authority
		// and its trust do not apply.
		mo := &azidentity.ManagedIdentityCredentialOptions{}
		if cfg.ClientID != "" {
			mo.ID = azidentity.ClientID(cfg.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	case MethodWorkloadIdentity:
		if err := need("a tenant ID", cfg.TenantID, "a client ID", cfg.ClientID); err != nil {
			return nil, err
		}
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: override,
			TenantID: cfg.TenantID, ClientID: cfg.ClientID, TokenFilePath: cfg.TokenFile,
		})
	default:
		return nil, fmt.Errorf("cloudsink: unknown credential method %q (valid: %s, %s, %s, %s)", cfg.Method, MethodSecret, MethodCertificate, MethodManagedIdentity, MethodWorkloadIdentity)
	}
	if err != nil {
		return nil, fmt.Errorf("cloudsink: %s credential for tenant %q in %s: %w", cfg.Method, cfg.TenantID, envName, err)
	}
	return cred, nil
}

// newTransport is an HTTP transport with explicit timeouts, trusting roots
// when given (nil: the system's).
func newTransport(roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bounds a hung answer without an http.Client.Timeout, which would
		// also cut the SDK's Retry-After waits short.
		ResponseHeaderTimeout: 2 * time.Minute,
	}
}
