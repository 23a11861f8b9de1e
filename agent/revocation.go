package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// CRLSource is a Source that can also read the CRLs the issuing CAs
// publish in the directory (ldapsrc.Source).
type CRLSource interface {
	CRLs(ctx context.Context, opts ldapsrc.CRLOptions) ([]ldapsrc.CRLEntry, error)
}

// CRLCache keeps the CRLs read from the directory between passes of one
// agent, until the CAs are due to publish new ones. The zero value is
// empty and ready.
type CRLCache struct {
	set    *mapping.RevocationSet
	digest string // of the CRL values the set was built from
	ok     bool   // the set is usable until RefreshAt
}

// revocation makes sure the policy's revocation set is current. It reads
// the CRLs when there is none yet, when the CAs are due to publish, or
// when the last read had problems. A read that fails leaves no set: each
// certificate is then handled by policy.revocationUnavailable, never
// silently passed. Under revocationUnavailable: reject, a directory
// whose CRLs could not be read (an outage, not a CA without a CRL) fails
// the pass instead: rejecting every certificate of its CAs would
// withdraw them all because of a transient error.
func (a *Agent) revocation(ctx context.Context, now time.Time) (string, error) {
	if !a.policy.CheckRevocation {
		return "", nil
	}
	c := a.crls
	if c.ok && now.Before(c.set.RefreshAt()) {
		a.policy.Revocation = c.set
		return c.digest, nil
	}
	// Each directory (each AD forest) publishes the CRLs of its own CAs;
	// together they cover the trusted CAs. A CA none of them could give a
	// CRL for is then handled by policy.revocationUnavailable.
	var entries []ldapsrc.CRLEntry
	readable, failed := 0, false
	for _, s := range a.sources {
		src, ok := s.Source.(CRLSource)
		if !ok {
			continue
		}
		readable++
		es, err := src.CRLs(ctx, ldapsrc.CRLOptions{})
		if errors.Is(err, ldapsrc.ErrNoCRLContainer) {
			// No CA ever published here: nothing to read, not an outage.
			a.log.Warn("the directory holds no CRLs; certificates of CAs without a CRL are handled by policy.revocationUnavailable",
				zap.String("source", s.Name), zap.String("revocationUnavailable", a.policy.RevocationUnavailable), zap.Error(err))
			continue
		}
		if err != nil && a.policy.RevocationUnavailable != mapping.RevocationKeep {
			*c = CRLCache{}
			return "", fmt.Errorf("agent: reading the CRLs from directory %s: %w; with policy.revocationUnavailable: %s every certificate of its CAs would be rejected and withdrawn, so nothing is changed in this pass",
				s.Name, err, a.policy.RevocationUnavailable)
		}
		if err != nil {
			a.log.Warn("could not read the CRLs from a directory; certificates of CAs without a CRL are handled by policy.revocationUnavailable",
				zap.String("source", s.Name), zap.String("revocationUnavailable", a.policy.RevocationUnavailable), zap.Error(err))
			failed = true
			continue
		}
		entries = append(entries, es...)
	}
	if readable == 0 {
		a.log.Warn("no directory source can read CRLs; every certificate is handled by policy.revocationUnavailable")
		a.policy.Revocation = nil
		return "no-crl-source", nil
	}
	if failed && len(entries) == 0 {
		*c = CRLCache{}
		a.policy.Revocation = nil
		return "unreadable", nil
	}
	crls := ldapsrc.MappingCRLs(entries)
	set, problems := mapping.NewRevocationSet(crls, a.policy.IssuingCAs, now)
	for _, p := range problems {
		if p.Unavailable {
			a.log.Warn("no usable CRL for an issuing CA", zap.String("ca", p.CA), zap.String("source", p.Source), zap.String("reason", p.Reason),
				zap.String("revocationUnavailable", a.policy.RevocationUnavailable))
		} else {
			a.log.Info("CRL not used", zap.String("ca", p.CA), zap.String("source", p.Source), zap.String("reason", p.Reason))
		}
	}
	// A directory that could not be read leaves the set incomplete: read
	// again next pass rather than keep it until the CAs publish.
	*c = CRLCache{set: set, digest: crlDigest(crls), ok: !failed && len(problems) == 0 && !set.RefreshAt().IsZero()}
	a.policy.Revocation = set
	return c.digest, nil
}

// crlDigest identifies a set of CRL values, whatever order they came in.
func crlDigest(crls []mapping.CRL) string {
	sums := make([]string, 0, len(crls))
	for _, c := range crls {
		s := sha256.Sum256(c.DER)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	slices.Sort(sums)
	h := sha256.New()
	for _, s := range sums {
		fmt.Fprintln(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}
