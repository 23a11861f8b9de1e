package agent

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"

	"github.com/certsync/certsync/mapping"
)

// Fingerprint digests what decides the values each user should hold: the
// trusted CAs, the rest of the policy, and every target's settings. Which
// users are in scope (base DN, filter, attributes, tracking mode) is not
// in it: ldapsrc keeps that in each source's watermark and reads
// everything when it changes.
func Fingerprint(p mapping.Policy, targets []Target) string {
	// The revocation set is read from the directory at each pass; its
	// identity is tracked on its own (tracking.CRLs).
	p.Revocation = nil
	cas := make([]string, 0, len(p.IssuingCAs))
	for _, c := range p.IssuingCAs {
		sum := sha256.Sum256(c.Raw)
		cas = append(cas, hex.EncodeToString(sum[:]))
	}
	p.IssuingCAs = []*x509.Certificate{}
	var ts []string
	for _, t := range targets {
		ts = append(ts, t.Name()+":"+t.Fingerprint())
	}
	raw, err := json.Marshal(struct {
		CAs     []string
		Policy  mapping.Policy
		Targets []string
	}{cas, p, ts})
	if err != nil {
		// Only plain data goes in; should it ever fail, no watermark is
		// ever trusted, which is safe.
		return "unfingerprintable"
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
