package cloudsink

import (
	"fmt"
	"slices"
	"strings"
)

// Settings is the connection part of the configuration's cloud section:
// which Microsoft cloud, which tenant and app, how the app authenticates,
// and the overrides tests use. The targets' own keys (certificateUserIds,
// exchange) belong to the targets.
type Settings struct {
	Environment   string             `yaml:"environment"`
	TenantID      string             `yaml:"tenantID"`
	ClientID      string             `yaml:"clientID"`
	Credential    CredentialSettings `yaml:"credential"`
	GraphEndpoint string             `yaml:"graphEndpoint"`
	AuthorityHost string             `yaml:"authorityHost"`
	// CAFile is an extra trusted CA, added to the system's roots.
	CAFile string `yaml:"caFile"`
	// DangerouslyAllowedHosts lets the endpoint overrides (graphEndpoint,
	// authorityHost, exchange.endpoint) point at these hosts besides
	// loopback and the environment's own: they receive the app's tokens.
	DangerouslyAllowedHosts []string `yaml:"dangerouslyAllowedHosts"`
}

// CheckOverride checks one endpoint override of these settings (see
// CheckOverrideHost); key names it in errors ("cloud.graphEndpoint").
func (s Settings) CheckOverride(key, raw string) (EndpointHost, error) {
	if err := CheckEndpoint(raw); err != nil {
		return EndpointHost{}, fmt.Errorf("%s: %w", key, err)
	}
	h, err := CheckOverrideHost(s.Environment, raw, s.DangerouslyAllowedHosts)
	if err != nil {
		return h, fmt.Errorf("%s: %w", key, err)
	}
	return h, nil
}

// CredentialSettings says where the app's credential comes from. Secrets
// are never in the file itself: only the names of files or variables.
type CredentialSettings struct {
	Method          string `yaml:"method"`
	CertificateFile string `yaml:"certificateFile"`
	SecretFile      string `yaml:"secretFile"`
	SecretEnv       string `yaml:"secretEnv"`
	TokenFile       string `yaml:"tokenFile"`
}

// Environments lists the Microsoft clouds certsync knows by name.
func Environments() []string { return environmentNames() }

// CredentialMethods lists the credential methods.
func CredentialMethods() []string {
	return []string{MethodSecret, MethodCertificate, MethodManagedIdentity, MethodWorkloadIdentity}
}

// GraphMatchProperties are the user properties the Graph sink finds
// accounts by (besides their id).
func GraphMatchProperties() []string {
	return []string{"onPremisesImmutableId", "mail", "userPrincipalName"}
}

// ExchangeMatchProperties are the properties the Exchange sink finds
// mailboxes by (besides their id).
func ExchangeMatchProperties() []string { return []string{"mail", "userPrincipalName"} }

// CheckEndpoint checks an endpoint override: an https URL with a host and
// nothing but a port after it.
func CheckEndpoint(raw string) error {
	if _, err := parseOverride("endpoint", raw); err != nil {
		return fmt.Errorf("%q is not an https URL with a host and no path (the Microsoft identity library refuses anything else)", raw)
	}
	return nil
}

// Defaults fills in what the file left out.
func (s *Settings) Defaults() {
	if s.Environment == "" {
		s.Environment = "global"
	}
	if s.Credential.Method == "" {
		s.Credential.Method = MethodSecret
	}
}

// Validate checks every key but the files' readability, which the
// configuration's loader checks; key names the section in errors
// ("cloud").
func (s Settings) Validate(key string) error {
	if !slices.Contains(Environments(), s.Environment) {
		return fmt.Errorf("%s.environment: %q is not one of %s", key, s.Environment, strings.Join(Environments(), ", "))
	}
	if s.TenantID == "" {
		return fmt.Errorf("%s.tenantID: required", key)
	}
	c := s.Credential
	if s.ClientID == "" && c.Method != MethodManagedIdentity {
		return fmt.Errorf("%s.clientID: required", key)
	}
	switch c.Method {
	case MethodSecret:
		switch {
		case c.SecretFile == "" && c.SecretEnv == "":
			return fmt.Errorf("%s.credential.secretFile: required (or %s.credential.secretEnv); secrets are never written in the config file", key, key)
		case c.SecretFile != "" && c.SecretEnv != "":
			return fmt.Errorf("%s.credential.secretFile: set only one of secretFile and secretEnv", key)
		}
	case MethodCertificate:
		if c.CertificateFile == "" {
			return fmt.Errorf("%s.credential.certificateFile: required", key)
		}
	case MethodManagedIdentity, MethodWorkloadIdentity:
	default:
		return fmt.Errorf("%s.credential.method: %q is not one of %s", key, c.Method, strings.Join(CredentialMethods(), ", "))
	}
	for _, o := range []struct{ key, val string }{{"graphEndpoint", s.GraphEndpoint}, {"authorityHost", s.AuthorityHost}} {
		if o.val == "" {
			continue
		}
		if _, err := s.CheckOverride(key+"."+o.key, o.val); err != nil {
			return err
		}
	}
	return nil
}
