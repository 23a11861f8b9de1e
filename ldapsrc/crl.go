package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
)

// Names of the Active Directory objects and attributes CAs publish their
// CRLs in. ADCS writes each CA key's CRLs to
// CN=<CA name>,CN=<CA host>,CN=CDP,CN=Public Key Services,CN=Services,
// CN=Configuration,<forest root>.
const (
	cdpContainer      = "CN=CDP,CN=Public Key Services,CN=Services"
	attrConfigNC      = "configurationNamingContext"
	attrBaseCRL       = "certificateRevocationList"
	attrDeltaCRL      = "deltaRevocationList"
	classCRLDistPoint = "cRLDistributionPoint"
	crlSearchFilter   = "(objectClass=" + classCRLDistPoint + ")"
	attrCommonName    = "cn"
)

// ErrNoCRLContainer: the base the CRLs are searched under does not exist
// (no enterprise CA ever published to this forest, or a wrong base).
var ErrNoCRLContainer = errors.New("CRL container not found")

// CRLOptions says where to look for CRLs.
type CRLOptions struct {
	// Base is searched (subtree) for cRLDistributionPoint objects. Empty
	// means Active Directory's CN=CDP,CN=Public Key Services,CN=Services
	// under the rootDSE's configurationNamingContext; set it for other
	// directories, which have no configuration partition.
	Base string
	// MaxBytes caps one CRL value; default DefaultMaxCRLBytes. A larger
	// value fails the read (as an unreadable CRL does: never as a CA
	// without revocations), so that the parser is never handed it.
	MaxBytes int
}

// DefaultMaxCRLBytes is CRLOptions.MaxBytes's default: the CRLs of large
// enterprise CAs run to a few megabytes.
const DefaultMaxCRLBytes = 64 << 20

// CRLEntry is one cRLDistributionPoint object: the CRLs one CA key
// published, as stored.
type CRLEntry struct {
	DN string
	// CA is the object's CN: the CA's name as ADCS writes it, with a
	// "(n)" suffix for the CA's n-th renewed key.
	CA    string
	Base  [][]byte // certificateRevocationList values
	Delta [][]byte // deltaRevocationList values
}

// CRLs reads every cRLDistributionPoint object under the CRL base with one
// subtree search (plus one rootDSE read when the base is derived). Values
// come back as stored: verifying them is mapping.NewRevocationSet's job.
// An object without CRL values is returned with none, so that callers can
// tell a CA that has not published from one that is absent.
func (s *Source) CRLs(ctx context.Context, opts CRLOptions) ([]CRLEntry, error) {
	conn, err := s.connection(ctx)
	if err != nil {
		return nil, err
	}
	base := opts.Base
	if base == "" {
		if base, err = s.cdpBase(ctx, conn); err != nil {
			return nil, err
		}
	}
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		crlSearchFilter, []string{attrCommonName, attrBaseCRL, attrDeltaCRL}, nil)
	entries, _, err := s.search(ctx, conn, req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, fmt.Errorf("ldapsrc: read CRLs under %s from %s: %w", base, s.cfg.URL, ErrNoCRLContainer)
	case err != nil:
		return nil, fmt.Errorf("ldapsrc: read CRLs under %s from %s: %w", base, s.cfg.URL, err)
	}
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxCRLBytes
	}
	out := make([]CRLEntry, 0, len(entries))
	for _, e := range entries {
		ce := crlEntry(e)
		for _, v := range slices.Concat(ce.Base, ce.Delta) {
			if len(v) > limit {
				return nil, fmt.Errorf("ldapsrc: read CRLs under %s from %s: a CRL of %s is %d bytes, larger than the %d bytes certsync reads",
					base, s.cfg.URL, ce.DN, len(v), limit)
			}
		}
		out = append(out, ce)
	}
	s.log.Debug("ldapsrc: CRLs read", zap.String("base", base), zap.Int("objects", len(out)))
	return out, nil
}

// cdpBase derives Active Directory's CDP container from the rootDSE.
func (s *Source) cdpBase(ctx context.Context, conn *ldap.Conn) (string, error) {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		defaultFilter, []string{attrConfigNC}, nil)
	entries, _, err := s.search(ctx, conn, req)
	if err != nil {
		return "", fmt.Errorf("ldapsrc: read %s from the rootDSE of %s: %w", attrConfigNC, s.cfg.URL, err)
	}
	if len(entries) != 1 || entries[0].GetAttributeValue(attrConfigNC) == "" {
		return "", fmt.Errorf("ldapsrc: the rootDSE of %s has no %s (not Active Directory?): set the CRL base explicitly",
			s.cfg.URL, attrConfigNC)
	}
	return cdpContainer + "," + entries[0].GetAttributeValue(attrConfigNC), nil
}

// crlEntry converts one object. Names are matched without options:
// OpenLDAP answers "certificateRevocationList;binary".
func crlEntry(e *ldap.Entry) CRLEntry {
	out := CRLEntry{DN: e.DN}
	for _, a := range e.Attributes {
		switch name := baseName(a.Name); {
		case strings.EqualFold(name, attrCommonName) && out.CA == "" && len(a.Values) > 0:
			out.CA = a.Values[0]
		case strings.EqualFold(name, attrBaseCRL):
			out.Base = append(out.Base, a.ByteValues...)
		case strings.EqualFold(name, attrDeltaCRL):
			out.Delta = append(out.Delta, a.ByteValues...)
		}
	}
	if out.CA == "" {
		if dn, err := ldap.ParseDN(e.DN); err == nil && len(dn.RDNs) > 0 && len(dn.RDNs[0].Attributes) > 0 {
			out.CA = dn.RDNs[0].Attributes[0].Value
		}
	}
	return out
}

// MappingCRLs flattens entries into the input of mapping.NewRevocationSet;
// each value's Source names its object and attribute.
func MappingCRLs(entries []CRLEntry) []mapping.CRL {
	var out []mapping.CRL
	for _, e := range entries {
		for _, v := range e.Base {
			out = append(out, mapping.CRL{Source: e.DN + " " + attrBaseCRL, DER: v})
		}
		for _, v := range e.Delta {
			out = append(out, mapping.CRL{Source: e.DN + " " + attrDeltaCRL, DER: v})
		}
	}
	return out
}
