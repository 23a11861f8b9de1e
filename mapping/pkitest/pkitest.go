package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/smallstep/pkcs7"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewRootCA makes a self-signed CA valid from five years ago for ten more.
func NewRootCA(commonName string) (*CA, error) {
	return newCA(commonName, nil)
}

// NewIntermediate makes a CA signed by ca.
func (ca *CA) NewIntermediate(commonName string) (*CA, error) {
	return newCA(commonName, ca)
}

func newCA(commonName string, parent *CA) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pkitest: CA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("pkitest: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"certsync test"}},
		// Far enough back that test leaves dated years ago (expired ones)
		// still fall inside their CA's validity.
		NotBefore:             now.AddDate(-5, 0, 0),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("pkitest: create CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pkitest: parse CA %q: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LeafOptions describes an end-entity certificate. Zero values give a
// currently valid S/MIME + client-auth certificate with an SKI.
type LeafOptions struct {
	CommonName string
	Email      string   // also the rfc822Name SAN
	DNSNames   []string // for TLS server certificates
	IPs        []net.IP
	NotBefore  time.Time // default: an hour ago
	NotAfter   time.Time // default: NotBefore + one year
	NoSKI      bool      // leave out the Subject Key Identifier
	// RSA makes an RSA-2048 key instead of P-256 (azidentity's client
	// certificate credential takes RSA keys only).
	RSA bool
	// EKUs default to emailProtection + clientAuth unless UnknownEKUs are
	// given; set NoEKU for none.
	EKUs  []x509.ExtKeyUsage
	NoEKU bool
	// UnknownEKUs are EKUs crypto/x509 has no constant for, such as
	// smart-card logon (1.3.6.1.4.1.311.20.2.2).
	UnknownEKUs []asn1.ObjectIdentifier
	// Serial overrides the random serial number.
	Serial *big.Int
	// SubjectNames are added to the subject (emailAddress, ...).
	SubjectNames []pkix.AttributeTypeAndValue
	// Extensions are added as they are (SIDExtension, ...).
	Extensions []pkix.Extension
	// SHA1 signs the certificate with SHA-1 (ECDSA-SHA1 or SHA1-RSA, as
	// the CA's key is), as old CAs did.
	SHA1 bool
}

// Issue signs a new end-entity certificate and returns it with its key.
func (ca *CA) Issue(o LeafOptions) (*x509.Certificate, crypto.Signer, error) {
	var key crypto.Signer
	var err error
	if o.RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pkitest: leaf key: %w", err)
	}
	nb := o.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	na := o.NotAfter
	if na.IsZero() {
		na = nb.AddDate(1, 0, 0)
	}
	ekus := o.EKUs
	if len(ekus) == 0 && !o.NoEKU && len(o.UnknownEKUs) == 0 {
		ekus = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageClientAuth}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, fmt.Errorf("pkitest: serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1))
	if o.Serial != nil {
		serial = o.Serial
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		ExtraExtensions:    o.Extensions,
		Subject:            pkix.Name{CommonName: o.CommonName, Organization: []string{"certsync test"}, ExtraNames: o.SubjectNames},
		NotBefore:          nb,
		NotAfter:           na,
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        ekus,
		UnknownExtKeyUsage: o.UnknownEKUs,
		DNSNames:           o.DNSNames,
		IPAddresses:        o.IPs,
		AuthorityKeyId:     ca.Cert.SubjectKeyId,
	}
	if o.Email != "" {
		tmpl.EmailAddresses = []string{o.Email}
	}
	if !o.NoSKI {
		tmpl.SubjectKeyId = keyID(key.Public())
	} else {
		// Go fills in an SKI for CA certificates only, but be explicit.
		tmpl.SubjectKeyId = nil
	}
	if o.SHA1 {
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA1
		if _, ok := ca.Key.Public().(*rsa.PublicKey); ok {
			tmpl.SignatureAlgorithm = x509.SHA1WithRSA
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pkitest: issue %q: %w", o.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pkitest: parse %q: %w", o.CommonName, err)
	}
	return cert, key, nil
}

// ServerTLS issues a TLS server certificate for the given host names and
// IP addresses (strings that parse as IPs become IP SANs).
func (ca *CA) ServerTLS(hosts ...string) (tls.Certificate, error) {
	o := LeafOptions{CommonName: "server", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if len(hosts) > 0 {
		o.CommonName = hosts[0]
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			o.IPs = append(o.IPs, ip)
		} else {
			o.DNSNames = append(o.DNSNames, h)
		}
	}
	cert, key, err := ca.Issue(o)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// CertPEM encodes certificates as PEM.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pkitest: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DegeneratePKCS7 wraps certificates in a certificates-only SignedData, the
// form many tools write to userSMIMECertificate.
func DegeneratePKCS7(certs ...*x509.Certificate) ([]byte, error) {
	var raw []byte
	for _, c := range certs {
		raw = append(raw, c.Raw...)
	}
	p7, err := pkcs7.DegenerateCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("pkitest: degenerate PKCS#7: %w", err)
	}
	return p7, nil
}

// SignedPKCS7 makes a SignedData signed by leaf's key and carrying the leaf
// and its chain, as Outlook publishes to userSMIMECertificate.
func SignedPKCS7(leaf *x509.Certificate, key crypto.Signer, chain ...*x509.Certificate) ([]byte, error) {
	sd, err := pkcs7.NewSignedData([]byte("certsync"))
	if err != nil {
		return nil, fmt.Errorf("pkitest: signed data: %w", err)
	}
	if err := sd.AddSignerChain(leaf, key, chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("pkitest: add signer: %w", err)
	}
	out, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("pkitest: finish PKCS#7: %w", err)
	}
	return out, nil
}

func keyID(pub crypto.PublicKey) []byte {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Keys generated here always marshal.
		panic(err)
	}
	h := sha1.Sum(b)
	return h[:]
}

// SIDExtension is the SID extension AD CS puts in certificates since
// KB5014754 (szOID_NTDS_CA_SECURITY_EXT): GeneralNames holding one
// otherName of type szOID_NTDS_OBJECTSID with the SID as text.
func SIDExtension(sid string) pkix.Extension {
	value, _ := asn1.Marshal([]byte(sid)) // OCTET STRING
	// The value is [0] EXPLICIT; a RawValue ignores tag parameters when
	// marshalled, so the wrapper is written by hand.
	other, _ := asn1.Marshal(struct {
		TypeID asn1.ObjectIdentifier
		Value  asn1.RawValue
	}{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2, 1}, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value}})
	// [0] IMPLICIT: the otherName SEQUENCE retagged as context 0.
	other[0] = 0xA0
	names, _ := asn1.Marshal([]asn1.RawValue{{FullBytes: other}})
	return pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}, Value: names}
}
