package cloudsink

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

func TestEnvironmentEndpoints(t *testing.T) {
	cases := []struct {
		name, graph, authority string
	}{
		{"global", "https://graph.microsoft.com", "https://login.microsoftonline.com/"},
		{"usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us/"},
		{"usgovdod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us/"},
		{"china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep, err := EnvironmentEndpoints(c.name)
			if err != nil || ep.Graph != c.graph || ep.Authority != c.authority {
				t.Errorf("EnvironmentEndpoints(%q) = %+v, %v", c.name, ep, err)
			}
		})
	}
	for _, bad := range []string{"", "Global", "germany", "azurecloud"} {
		_, err := EnvironmentEndpoints(bad)
		if err == nil || !strings.Contains(err.Error(), "global, usgov, usgovdod, china") || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("EnvironmentEndpoints(%q): %v, want an error naming it and the valid ones", bad, err)
		}
	}
}

func TestNewCredentialRefusals(t *testing.T) {
	ca, err := pkitest.NewRootCA("refusals")
	if err != nil {
		t.Fatal(err)
	}
	_, rsaPEM := clientCert(t, ca, "rsa")
	ecCert, ecKey, err := ca.Issue(pkitest.LeafOptions{CommonName: "ec"})
	if err != nil {
		t.Fatal(err)
	}
	ecKeyPEM, err := pkitest.KeyPEM(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := append(pkitest.CertPEM(ecCert), ecKeyPEM...)
	ok := CredentialConfig{Method: MethodSecret, TenantID: "t", ClientID: "c", Secret: "s"}
	with := func(f func(*CredentialConfig)) CredentialConfig {
		c := ok
		f(&c)
		return c
	}
	cases := []struct {
		name string
		cfg  CredentialConfig
		want string // substring of the error; "" = accepted
	}{
		{"secret", ok, ""},
		{"secret in usgov", with(func(c *CredentialConfig) { c.Environment = "usgov" }), ""},
		{"unknown method", with(func(c *CredentialConfig) { c.Method = "password" }), "unknown credential method"},
		{"unknown environment", with(func(c *CredentialConfig) { c.Environment = "moon" }), "unknown environment"},
		{"secret without secret", with(func(c *CredentialConfig) { c.Secret = "" }), "client secret"},
		{"secret without tenant", with(func(c *CredentialConfig) { c.TenantID = "" }), "tenant ID"},
		{"http authority", with(func(c *CredentialConfig) { c.AuthorityHost = "http://127.0.0.1:1" }), "https"},
		{"authority with path", with(func(c *CredentialConfig) { c.AuthorityHost = "https://127.0.0.1:1/adfs" }), "path"},
		{"certificate", CredentialConfig{Method: MethodCertificate, TenantID: "t", ClientID: "c", CertificatePEM: rsaPEM}, ""},
		{"certificate without PEM", CredentialConfig{Method: MethodCertificate, TenantID: "t", ClientID: "c"}, "private key"},
		{"certificate with EC key", CredentialConfig{Method: MethodCertificate, TenantID: "t", ClientID: "c", CertificatePEM: ecPEM}, "RSA"},
		{"certificate garbage", CredentialConfig{Method: MethodCertificate, TenantID: "t", ClientID: "c", CertificatePEM: []byte("nope")}, "client certificate"},
		{"managed identity", CredentialConfig{Method: MethodManagedIdentity, ClientID: "c"}, ""},
		{"workload identity", CredentialConfig{Method: MethodWorkloadIdentity, TenantID: "t", ClientID: "c", TokenFile: "/var/run/secrets/token"}, ""},
		{"workload identity without client", CredentialConfig{Method: MethodWorkloadIdentity, TenantID: "t"}, "client ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred, err := NewCredential(c.cfg)
			if c.want == "" {
				if err != nil || cred == nil {
					t.Fatalf("NewCredential: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewCredential: %v, want an error about %q", err, c.want)
			}
		})
	}
}

func TestCredentialConfigRedacts(t *testing.T) {
	c := CredentialConfig{Method: MethodSecret, TenantID: "t", ClientID: "c", Secret: "hunter2-secret", CertificatePEM: []byte("-----BEGIN PRIVATE KEY-----")}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), c.String()} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "PRIVATE KEY") || !strings.Contains(s, "REDACTED") {
			t.Errorf("formatted config leaks or hides nothing: %s", s)
		}
	}
}

// TestCredentialScopes checks the token request reaches the emulator with
// each environment's Graph scope, as it would reach that cloud's Entra.
func TestCredentialScopes(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret})
	for _, env := range []string{"global", "usgov", "usgovdod", "china"} {
		t.Run(env, func(t *testing.T) {
			cred, err := NewCredential(CredentialConfig{Method: MethodSecret, TenantID: srv.TenantID(), ClientID: srv.ClientID(), Secret: testSecret,
				AuthorityHost: srv.URL(), RootCAs: srv.RootCAs(), Environment: env})
			if err != nil {
				t.Fatal(err)
			}
			ep, _ := EnvironmentEndpoints(env)
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{ep.Graph + "/.default"}})
			if err != nil || tok.Token == "" {
				t.Fatalf("GetToken: %v", err)
			}
			g := graphFor(t, srv, GraphConfig{Credential: cred, Environment: env})
			if _, err := g.Lookup(context.Background(), []Lookup{{Key: "k", Property: "mail", Value: "a@b.example"}}); err != nil {
				t.Fatalf("Lookup through the %s scope: %v", env, err)
			}
		})
	}
}

func TestNewGraphRefusals(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret})
	cred := secretCredential(t, srv)
	cases := []struct {
		name string
		cfg  GraphConfig
		want string
	}{
		{"no credential", GraphConfig{}, "no credential"},
		{"unknown environment", GraphConfig{Credential: cred, Environment: "mars"}, "unknown environment"},
		{"http endpoint", GraphConfig{Credential: cred, Endpoint: "http://127.0.0.1:8443"}, "https"},
		{"endpoint with /v1.0", GraphConfig{Credential: cred, Endpoint: srv.URL() + "/v1.0"}, "without a path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewGraph(c.cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewGraph: %v, want an error about %q", err, c.want)
			}
		})
	}
}
