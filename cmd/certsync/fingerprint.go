package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// fingerprint digests everything that decides which users are in scope and
// what values they should hold. The directory's URL is left out on
// purpose: another DC of the same domain is recognised by the watermark
// itself (its dnsHostName and invocationId).
func fingerprint(cfg *config.Config, pol mapping.Policy, src ldapsrc.Config) string {
	var cas []string
	for _, c := range pol.IssuingCAs {
		sum := sha256.Sum256(c.Raw)
		cas = append(cas, hex.EncodeToString(sum[:]))
	}
	raw, err := json.Marshal(struct {
		BaseDN, Filter, Anchor string
		CertAttrs, IDAttrs     []string
		Tracking               string
		CAs                    []string
		Policy                 config.Policy
		Match                  config.Match
		CUIDs                  config.CertificateUserIDs
		Exchange               config.Exchange
	}{src.BaseDN, src.Filter, src.AnchorAttribute, src.CertificateAttributes, src.IdentityAttributes, src.ChangeTracking,
		cas, cfg.Policy, cfg.Cloud.Match, cfg.Cloud.CertificateUserIDs, cfg.Cloud.Exchange})
	if err != nil {
		// Only plain data goes in; should it ever fail, no watermark is
		// ever trusted, which is safe.
		return "unfingerprintable"
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
