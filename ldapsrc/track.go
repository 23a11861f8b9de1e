package ldapsrc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// watermarkVersion is the version of the watermark encoding; a watermark of
// another version is not trusted and causes a full read.
const watermarkVersion = 1

// watermark is what ReadResult.Next holds, as JSON. Callers treat it as
// opaque bytes; it is versioned so that a later certsync can refuse (read
// everything) rather than misread an older one.
type watermark struct {
	V    int    `json:"v"`
	Mode string `json:"mode"` // TrackUSN, TrackDirSync or TrackTimestamp
	// Scope fingerprints base DN, filter and attributes: a watermark taken
	// under another scope says nothing about users newly in scope.
	Scope string `json:"scope"`

	// Active Directory (usn, dirsync): the DC the watermark belongs to.
	// uSNChanged values are local to one DC and one database: another DC
	// or a restored one (new invocationId) makes them meaningless.
	DNSHostName  string `json:"dnsHostName,omitempty"`
	InvocationID string `json:"invocationId,omitempty"`
	USN          int64  `json:"highestCommittedUSN,omitempty"`
	// Cookie is the DirSync cookie (dirsync).
	Cookie []byte `json:"cookie,omitempty"`

	// Since is the modifyTimestamp bound of the next read (modifyTimestamp).
	Since time.Time `json:"since,omitzero"`
}

func (w watermark) encode() ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: encode watermark: %w", err)
	}
	return b, nil
}

// decodeWatermark parses b; the error says why b cannot be used.
func decodeWatermark(b []byte) (watermark, error) {
	var w watermark
	if err := json.Unmarshal(b, &w); err != nil {
		return w, fmt.Errorf("not a certsync watermark: %w", err)
	}
	if w.V != watermarkVersion {
		return w, fmt.Errorf("watermark version %d, this certsync understands %d", w.V, watermarkVersion)
	}
	switch w.Mode {
	case TrackUSN, TrackDirSync:
		if w.DNSHostName == "" || w.InvocationID == "" || w.USN <= 0 {
			return w, fmt.Errorf("%s watermark without DC name, invocationId or USN", w.Mode)
		}
		if w.Mode == TrackDirSync && len(w.Cookie) == 0 {
			return w, fmt.Errorf("dirsync watermark without a cookie")
		}
	case TrackTimestamp:
		if w.Since.IsZero() {
			return w, fmt.Errorf("modifyTimestamp watermark without a time")
		}
	default:
		return w, fmt.Errorf("watermark of unknown mode %q", w.Mode)
	}
	return w, nil
}

// scopeFingerprint identifies what a read covers: a change of any of
// these makes earlier watermarks unusable.
func scopeFingerprint(cfg Config, attrs []string) string {
	h := sha256.New()
	for _, p := range append([]string{cfg.BaseDN, cfg.Filter, cfg.AnchorAttribute}, attrs...) {
		h.Write([]byte(strings.ToLower(p)))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// normalizeTracking checks Config.ChangeTracking and spells it as the
// Track* constant (case-insensitively); empty means auto. Called from
// Config.withDefaults.
func normalizeTracking(c Config) (string, error) {
	if c.ChangeTracking == "" {
		return TrackAuto, nil
	}
	for _, m := range []string{TrackAuto, TrackUSN, TrackDirSync, TrackTimestamp, TrackFull} {
		if strings.EqualFold(c.ChangeTracking, m) {
			if m == TrackDirSync && !strings.EqualFold(c.AnchorAttribute, attrObjectGUID) {
				// DirSync reports deletions by objectGUID and changed
				// objects are re-read by it.
				return "", fmt.Errorf("ldapsrc: config: changeTracking dirsync needs anchorAttribute objectGUID, not %q", c.AnchorAttribute)
			}
			return m, nil
		}
	}
	return "", fmt.Errorf("ldapsrc: config: changeTracking %q: want auto, usn, dirsync, modifyTimestamp or full", c.ChangeTracking)
}

// OIDs read from rootDSE.
const (
	oidADCapability       = "1.2.840.113556.1.4.800" // supportedCapabilities: Active Directory
	adMaxPageSize         = 1000                     // MaxPageSize of AD's default query policy
	attrUSNChanged        = "uSNChanged"
	attrModifyTimestamp   = "modifyTimestamp"
	attrInvocationID      = "invocationId"
	generalizedTimeLayout = "20060102150405Z"
)

// rootDSE is what Read needs from the server's root entry.
type rootDSE struct {
	dnsHostName          string
	dsServiceName        string // DN of the DC's NTDS Settings object
	highestCommittedUSN  int64  // 0: not offered
	defaultNamingContext string
	namingContexts       []string
	supportedControls    []string
	ad                   bool
	subschemaSubentry    string // for the doctor's schema check
}

func (d rootDSE) supports(oid string) bool { return slices.Contains(d.supportedControls, oid) }

// readRootDSE reads the root entry; one operation.
func (s *Source) readRootDSE(ctx context.Context, conn *ldap.Conn, st *Stats) (rootDSE, error) {
	var d rootDSE
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, defaultFilter,
		[]string{"dnsHostName", "dsServiceName", "highestCommittedUSN", "defaultNamingContext", "namingContexts",
			"supportedControl", "supportedCapabilities", "subschemaSubentry"}, nil)
	st.Operations++
	entries, _, err := s.search(ctx, conn, req)
	if err != nil {
		return d, fmt.Errorf("ldapsrc: read rootDSE of %s: %w", s.cfg.URL, err)
	}
	switch len(entries) {
	case 0:
		// A server that hides its rootDSE from this account offers no
		// USN tracking and no controls certsync can see: reads go on
		// without them (auto tracking falls back to modifyTimestamp).
		s.log.Warn("ldapsrc: the server returned no rootDSE to this account; change tracking by USN and DirSync is unavailable",
			zap.String("url", s.cfg.URL))
		return d, nil
	case 1:
	default:
		return d, fmt.Errorf("ldapsrc: read rootDSE of %s: %d entries returned, want 1", s.cfg.URL, len(entries))
	}
	e := entries[0]
	d.dnsHostName = e.GetAttributeValue("dnsHostName")
	d.dsServiceName = e.GetAttributeValue("dsServiceName")
	d.defaultNamingContext = e.GetAttributeValue("defaultNamingContext")
	d.namingContexts = e.GetAttributeValues("namingContexts")
	d.supportedControls = e.GetAttributeValues("supportedControl")
	d.ad = slices.Contains(e.GetAttributeValues("supportedCapabilities"), oidADCapability)
	d.subschemaSubentry = e.GetAttributeValue("subschemaSubentry")
	if v := e.GetAttributeValue("highestCommittedUSN"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return d, fmt.Errorf("ldapsrc: rootDSE of %s: highestCommittedUSN %q is not a positive number", s.cfg.URL, v)
		}
		d.highestCommittedUSN = n
	}
	return d, nil
}

// readInvocationID reads the invocationId of the DC's NTDS Settings
// object (rootDSE dsServiceName): a restore from backup gives the DC a new
// one, and with it a USN history the watermark knows nothing of. One
// operation.
func (s *Source) readInvocationID(ctx context.Context, conn *ldap.Conn, d rootDSE, st *Stats) (string, error) {
	if d.dsServiceName == "" {
		return "", fmt.Errorf("ldapsrc: rootDSE of %s (%s) has no dsServiceName: cannot tell a restored DC", s.cfg.URL, d.dnsHostName)
	}
	req := ldap.NewSearchRequest(d.dsServiceName, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, defaultFilter,
		[]string{attrInvocationID}, nil)
	st.Operations++
	entries, _, err := s.search(ctx, conn, req)
	if err != nil {
		return "", fmt.Errorf("ldapsrc: read invocationId of %s on %s: %w", d.dsServiceName, s.cfg.URL, err)
	}
	if len(entries) != 1 {
		return "", fmt.Errorf("ldapsrc: read invocationId of %s on %s: %d entries returned, want 1", d.dsServiceName, s.cfg.URL, len(entries))
	}
	raw := entries[0].GetRawAttributeValue(attrInvocationID)
	if len(raw) != guidLen {
		return "", fmt.Errorf("ldapsrc: invocationId of %s on %s is %d bytes, want %d (is the bind account allowed to read the configuration partition?)",
			d.dsServiceName, s.cfg.URL, len(raw), guidLen)
	}
	return formatGUID(raw), nil
}

// resolveMode turns the configured mode into the one this server allows.
func (s *Source) resolveMode(d rootDSE) (string, error) {
	switch s.cfg.ChangeTracking {
	case TrackAuto:
		// DirSync is never chosen on its own: it needs a replication right
		// most read accounts lack, and usn tracks changes as well.
		if d.highestCommittedUSN > 0 && d.dsServiceName != "" {
			return TrackUSN, nil
		}
		return TrackTimestamp, nil
	case TrackUSN:
		if d.highestCommittedUSN == 0 || d.dsServiceName == "" {
			return "", fmt.Errorf("ldapsrc: changeTracking usn: %s offers no highestCommittedUSN/dsServiceName in its rootDSE (not Active Directory?); use modifyTimestamp",
				s.cfg.URL)
		}
	case TrackDirSync:
		if !d.supports(ldap.ControlTypeDirSync) || d.highestCommittedUSN == 0 {
			return "", fmt.Errorf("ldapsrc: changeTracking dirsync: %s does not offer the DirSync control (%s) (not Active Directory?); use modifyTimestamp",
				s.cfg.URL, ldap.ControlTypeDirSync)
		}
	}
	return s.cfg.ChangeTracking, nil
}

// formatGUID renders a 16-byte GUID as Windows shows it: the first three
// groups little-endian.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}
