//go:build !release

package demo

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

const (
	baseDN       = "DC=contoso,DC=com"
	bindDN       = "CN=svc-certsync,OU=Service Accounts,DC=contoso,DC=com"
	bindPassword = "demo-password"
)

// writeConfig writes the agent's configuration file into dir, with the
// CA, password and client secret files it names, and returns its path.
func writeConfig(dir, ldapURL string, w *world, g *graphtest.Server, exo *exotest.Server) (string, error) {
	files := map[string][]byte{
		"issuing-cas.pem":   pkitest.CertPEM(w.root.Cert, w.issuing.Cert),
		"ldap-ca.pem":       pkitest.CertPEM(w.root.Cert),
		"ldap-password":     []byte(bindPassword + "\n"),
		"graph-ca.pem":      g.CAPEM(),
		"app-client-secret": []byte(g.ClientSecret() + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", fmt.Errorf("writing the demo's %s: %w", name, err)
		}
	}
	// One credential for both targets; Exchange mailboxes are found by
	// mail (cloud.exchange.match's default).
	yaml := fmt.Sprintf(`source:
  url: %s
  baseDN: "%s"
  filter: "(&(objectCategory=person)(objectClass=user)(mail=*))"
  anchorAttribute: objectGUID
  bind: {method: simple, username: "%s", passwordFile: ldap-password}
  tls: {caFile: ldap-ca.pem}
cloud:
  tenantID: "%s"
  clientID: "%s"
  credential: {method: secret, secretFile: app-client-secret}
  graphEndpoint: "%s"
  authorityHost: "%s/"
  caFile: graph-ca.pem
  match: {sourceAttribute: objectGUID, cloudProperty: onPremisesImmutableId}
  certificateUserIds: {enabled: true, bindings: [SKI]}
  exchange: {enabled: true, endpoint: "%s"}
policy:
  issuingCAFile: issuing-cas.pem
state: {path: state.db}
log: {level: error, format: console}
`, ldapURL, baseDN, bindDN, g.TenantID(), g.ClientID(), g.URL(), g.URL(), exo.URL())
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return "", fmt.Errorf("writing the demo's configuration: %w", err)
	}
	return path, nil
}
