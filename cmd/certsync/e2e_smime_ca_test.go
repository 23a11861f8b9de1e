package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/mapping/pkitest"
)

// setSmimeConfigs counts Set-SmimeConfig calls Exchange received.
func (w *world) setSmimeConfigs() int {
	n := 0
	for _, r := range w.exo.Requests() {
		if strings.EqualFold(r.Cmdlet, "Set-SmimeConfig") {
			n++
		}
	}
	return n
}

// The trusted-CA collection through the binary: the dry run shows it
// and writes nothing, the pass sets it once, later passes leave it, a
// changed CA file changes it, and a store Exchange would refuse is
// refused before sending.
func TestExchangeTrustedCACollection(t *testing.T) {
	people := []person{{uid: "dora", certs: 1, mailbox: true}}
	w := newWorld(t, people, "", withExchange("smimeIssuingCAs: true,"), withoutGraph)
	wantCAs := [][]byte{w.root.Cert.Raw, w.issuing.Cert.Raw}

	r := w.syncJSON(2, "--dry-run", "--detailed-exitcode")
	if w.exo.Writes() != 0 || w.exo.SmimeIssuingCA() != nil {
		t.Fatalf("the dry run wrote to Exchange (%d writes)", w.exo.Writes())
	}
	if len(r.Tenant) != 1 || r.Tenant[0].Setting != "SMIMECertificateIssuingCA" || r.Tenant[0].Status != "planned" || len(r.Tenant[0].Add) != 2 {
		t.Fatalf("dry run's tenant changes: %+v; want the collection planned with the 2 CAs", r.Tenant)
	}
	_, table, _ := w.run("sync", "--dry-run", "--output", "table")
	if !strings.Contains(table, "Tenant exchange SMIMECertificateIssuingCA: planned") || !strings.Contains(table, "E2E Issuing CA") {
		t.Fatalf("the table does not show the planned collection:\n%s", table)
	}

	r = w.syncJSON(0)
	if len(r.Tenant) != 1 || r.Tenant[0].Status != "applied" || w.setSmimeConfigs() != 1 {
		t.Fatalf("first pass: tenant %+v, %d Set-SmimeConfig; want it applied once", r.Tenant, w.setSmimeConfigs())
	}
	held, err := cloudsink.ParseSST(w.exo.SmimeIssuingCA())
	if err != nil || !cloudsink.SameCertificates(held, wantCAs) {
		t.Fatalf("Exchange holds %d certificates (%v), want the CA file's 2", len(held), err)
	}

	if _, lines, out := w.doctor(); !strings.HasPrefix(lines["cloud exchange trust"], "OK") {
		t.Errorf("doctor after the collection was set: %q\n%s", lines["cloud exchange trust"], out)
	}

	// Unchanged: read once (a new process), never written again.
	w.exo.ResetRequests()
	r = w.syncJSON(0, "--detailed-exitcode")
	if len(r.Tenant) != 0 || w.setSmimeConfigs() != 0 {
		t.Fatalf("second pass: tenant %+v, %d Set-SmimeConfig; want nothing", r.Tenant, w.setSmimeConfigs())
	}

	// An administrator's Windows export of the same CAs is in line too.
	w.exo.SetSmimeIssuingCA(cloudsink.WriteSST([][]byte{w.issuing.Cert.Raw, w.root.Cert.Raw}))
	w.syncJSON(0)
	if w.setSmimeConfigs() != 0 {
		t.Fatal("the same CAs in another order were written again")
	}

	// A CA added to the file is added to the collection.
	extra, err := pkitest.NewRootCA("E2E Second Root")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "issuing.pem"), pkitest.CertPEM(w.root.Cert, w.issuing.Cert, extra.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.syncJSON(0)
	if len(r.Tenant) != 1 || len(r.Tenant[0].Add) != 1 || !strings.Contains(r.Tenant[0].Add[0], "E2E Second Root") || w.setSmimeConfigs() != 1 {
		t.Fatalf("after a CA was added: tenant %+v, %d Set-SmimeConfig", r.Tenant, w.setSmimeConfigs())
	}
	held, _ = cloudsink.ParseSST(w.exo.SmimeIssuingCA())
	if !cloudsink.SameCertificates(held, append(slices.Clone(wantCAs), extra.Cert.Raw)) {
		t.Fatalf("Exchange holds %d certificates, want 3", len(held))
	}
}

// A CA file Exchange would refuse: said before anything is sent, the
// pass fails, the users are still published.
func TestExchangeTrustedCACollectionTooLarge(t *testing.T) {
	people := []person{{uid: "emil", certs: 1, mailbox: true}}
	w := newWorld(t, people, "", withExchange("smimeIssuingCAs: true,"), withoutGraph)
	certs := []*x509.Certificate{w.root.Cert, w.issuing.Cert}
	for len(certs) < 200 {
		ca, err := pkitest.NewRootCA("E2E filler CA")
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, ca.Cert)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "issuing.pem"), pkitest.CertPEM(certs...), 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.syncJSON(0, "--dry-run")
	if len(r.Tenant) != 1 || r.Tenant[0].Status != "failed" || !strings.Contains(r.Tenant[0].Problem, "70000") {
		t.Fatalf("dry run's tenant changes: %+v; want the size refused", r.Tenant)
	}
	r = w.syncJSON(1)
	if !strings.Contains(r.Error, "70000") || w.setSmimeConfigs() != 0 || w.exo.SmimeIssuingCA() != nil {
		t.Fatalf("pass error %q, %d Set-SmimeConfig; want the size named and nothing sent", r.Error, w.setSmimeConfigs())
	}
	if got, _ := w.mailbox("emil"); len(got) != 1 {
		t.Fatalf("emil's mailbox holds %d certificates; the users are published all the same", len(got))
	}
}
