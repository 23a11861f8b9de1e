package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/mapping"
)

// fingerprint digests what decides the values each user should hold: the
// trusted CAs, the policy and the cloud targets. Which users are in scope
// (base DN, filter, attributes, tracking mode) is not in it: ldapsrc keeps
// that in its own watermark and reads everything when it changes, and a
// different DC is recognised there too (its dnsHostName and invocationId).
func fingerprint(cfg *config.Config, pol mapping.Policy) string {
	var cas []string
	for _, c := range pol.IssuingCAs {
		sum := sha256.Sum256(c.Raw)
		cas = append(cas, hex.EncodeToString(sum[:]))
	}
	raw, err := json.Marshal(struct {
		CAs      []string
		Policy   config.Policy
		Match    config.Match
		CUIDs    config.CertificateUserIDs
		Exchange config.Exchange
	}{cas, cfg.Policy, cfg.Cloud.Match, cfg.Cloud.CertificateUserIDs, cfg.Cloud.Exchange})
	if err != nil {
		// Only plain data goes in; should it ever fail, no watermark is
		// ever trusted, which is safe.
		return "unfingerprintable"
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
