package mapping

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestADCSCertificateMappings checks the strong mappings of certificates
// AD CS issued, found in public test data, against what the sources say
// of them (testdata/README.md): the issuer as AD stores it, and the serial
// bytes reversed. Each row keeps the evidence as its source prints it (the
// issuer as certutil displays it, the serial as certutil displays it) and
// the mapping written out by hand from KB5014754's rule; the test checks
// both that the rule turns the evidence into the mapping and that certsync
// writes exactly that mapping.
func TestADCSCertificateMappings(t *testing.T) {
	tests := []struct {
		name string
		cert *x509.Certificate
		// Evidence, as the source shows it.
		displayedIssuer string // last RDN first, as certutil shows it
		displayedSerial string // big-endian hex, as certutil shows it
		// The values, written out.
		issuerSerial string
		ski          string // "" when not checked
	}{
		{
			name:            "SSSD test_cert2_der (AD CS User template, ad.devel)",
			cert:            readPEMCert(t, "testdata/adcs-sssd-user.pem"),
			displayedIssuer: "CN=ad-AD-SERVER-CA,DC=ad,DC=devel",
			displayedSerial: "612288C20000000002A6",
			issuerSerial:    "X509:<I>DC=devel,DC=ad,CN=ad-AD-SERVER-CA<SR>a60200000000c2882261",
			ski:             "X509:<SKI>49ACADE06530C4CEA009035BAD4A7B495EC96CB4",
		},
		{
			name:            "CZERTAINLY PyADCS test dump, RequestID 92 (AD CS WebServer template, CN encoded first)",
			cert:            readTBSPrefix(t, "testdata/adcs-3key-webserver.prefix.b64"),
			displayedIssuer: "O=3Key Company s.r.o., CN=Demo MS Sub CA",
			displayedSerial: "180000005c361831d4fb7ac06f00000000005c",
			issuerSerial:    "X509:<I>CN=Demo MS Sub CA,O=3Key Company s.r.o.<SR>5c00000000006fc07afbd43118365c00000018",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kbRule(tc.displayedIssuer, tc.displayedSerial); got != tc.issuerSerial {
				t.Fatalf("the evidence by KB5014754's rule gives %q, the row says %q", got, tc.issuerSerial)
			}
			got, err := Binding(tc.cert, BindingIssuerSerial)
			if err != nil {
				t.Fatal(err)
			}
			// AD compares altSecurityIdentities case-insensitively; certsync
			// writes the serial in lower case, as Entra's documentation does.
			if got != tc.issuerSerial {
				t.Errorf("ISSUER-SERIAL = %q, want %q", got, tc.issuerSerial)
			}
			if tc.ski == "" {
				return
			}
			if got, err := Binding(tc.cert, BindingSKI); err != nil || got != tc.ski {
				t.Errorf("SKI = %q, %v; want %q", got, err, tc.ski)
			}
		})
	}
}

// kbRule is KB5014754's manual mapping as an admin applies it to
// certutil's display: the issuer's RDNs reversed and joined without
// spaces, the serial's bytes reversed (lower-case here).
func kbRule(displayedIssuer, displayedSerial string) string {
	rdns := strings.Split(displayedIssuer, ",")
	for i := range rdns {
		rdns[i] = strings.TrimSpace(rdns[i])
	}
	slices.Reverse(rdns)
	b, err := hex.DecodeString(displayedSerial)
	if err != nil {
		return "bad serial: " + err.Error()
	}
	slices.Reverse(b)
	return "X509:<I>" + strings.Join(rdns, ",") + "<SR>" + hex.EncodeToString(b)
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// readTBSPrefix reads the serial and issuer from the intact start of a
// certificate whose end is lost: Certificate and TBSCertificate headers,
// version, serial, signature algorithm, issuer.
func readTBSPrefix(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// Skip the two SEQUENCE headers (4-byte lengths: 30 82 xx xx).
	if len(der) < 8 || der[0] != 0x30 || der[4] != 0x30 {
		t.Fatalf("%s: not the start of a certificate", path)
	}
	rest := der[8:]
	var version asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &version); err != nil || version.Tag != 0 {
		t.Fatalf("%s: version: %v", path, err)
	}
	serial := new(big.Int)
	if rest, err = asn1.Unmarshal(rest, &serial); err != nil {
		t.Fatalf("%s: serial: %v", path, err)
	}
	var sigAlg, issuer asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &sigAlg); err != nil {
		t.Fatalf("%s: signature algorithm: %v", path, err)
	}
	if _, err = asn1.Unmarshal(rest, &issuer); err != nil {
		t.Fatalf("%s: issuer: %v", path, err)
	}
	return &x509.Certificate{SerialNumber: serial, RawIssuer: issuer.FullBytes}
}
