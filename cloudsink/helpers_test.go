package cloudsink

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

const testSecret = "certsync-test-secret"

// tenantUsers makes n cloud-only users with mixed-case mail, an immutable
// ID each and one certificateUserIds value each. User 7 has a quote in its
// mail and user 8 a plus sign, which OData and URLs both care about.
func tenantUsers(n int) []graphtest.User {
	out := make([]graphtest.User, n)
	for i := range out {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			panic(err)
		}
		mail := fmt.Sprintf("User%02d@Contoso.Example", i)
		switch i {
		case 7:
			mail = "Fiona.O'Brien@Contoso.Example"
		case 8:
			mail = "ops+certs@Contoso.Example"
		}
		out[i] = graphtest.User{
			UserPrincipalName:     fmt.Sprintf("user%02d@contoso.example", i),
			Mail:                  mail,
			OnPremisesImmutableID: base64.StdEncoding.EncodeToString(raw),
			CertificateUserIDs:    []string{fmt.Sprintf("X509:<PN>user%02d@contoso.example", i)},
		}
	}
	return out
}

func startEmulator(t *testing.T, opts graphtest.Options) *graphtest.Server {
	t.Helper()
	opts.Logger = zaptest.NewLogger(t).Named("emulator")
	srv, err := graphtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// secretGraph is the sink as certsync builds it, with a real client-secret
// credential, pointed at the emulator. cfg's Credential, Endpoint and
// RootCAs are filled in; a zero Backoff becomes 10ms to keep tests short.
func secretGraph(t *testing.T, srv *graphtest.Server, cfg GraphConfig) *Graph {
	t.Helper()
	cfg.Credential = secretCredential(t, srv)
	return graphFor(t, srv, cfg)
}

// secretCredential is a real client-secret credential against srv.
func secretCredential(t *testing.T, srv *graphtest.Server) azcore.TokenCredential {
	t.Helper()
	cred, err := NewCredential(CredentialConfig{
		Method:        MethodSecret,
		TenantID:      srv.TenantID(),
		ClientID:      srv.ClientID(),
		Secret:        srv.ClientSecret(),
		AuthorityHost: srv.URL(),
		RootCAs:       srv.RootCAs(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func graphFor(t *testing.T, srv *graphtest.Server, cfg GraphConfig) *Graph {
	t.Helper()
	cfg.Endpoint = srv.URL()
	cfg.RootCAs = srv.RootCAs()
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	g, err := NewGraph(cfg, zaptest.NewLogger(t).Named("graph"))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// clientCert issues an RSA client certificate (azidentity takes RSA only)
// and returns it with the PEM of certificate and key.
func clientCert(t *testing.T, ca *pkitest.CA, name string) (*x509.Certificate, []byte) {
	t.Helper()
	cert, key, err := ca.Issue(pkitest.LeafOptions{CommonName: name, RSA: true})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pkitest.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, append(pkitest.CertPEM(cert), keyPEM...)
}

// graphRequests splits the emulator's log: $batch envelopes, the items in
// them by method, and requests to /v1.0 outside any $batch.
type graphRequests struct {
	envelopes []graphtest.Request
	items     map[string][]graphtest.Request
	direct    []graphtest.Request
	perBatch  map[string]int
}

func splitRequests(reqs []graphtest.Request) graphRequests {
	out := graphRequests{items: map[string][]graphtest.Request{}, perBatch: map[string]int{}}
	for _, r := range reqs {
		switch {
		case r.InBatch:
			out.items[r.Method] = append(out.items[r.Method], r)
			out.perBatch[r.BatchID]++
		case r.Path == "/v1.0/$batch":
			out.envelopes = append(out.envelopes, r)
		case len(r.Path) > 5 && r.Path[:6] == "/v1.0/":
			out.direct = append(out.direct, r)
		}
	}
	return out
}
