package ldapsrc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping"
)

// AttrAltSecurityIdentities is Active Directory's explicit certificate
// mapping attribute ([MS-ADA1] Alt-Security-Identities): multi-valued
// strings the KDC and Schannel match a logon certificate against, and the
// attribute Entra Connect can sync into certificateUserIds. It is
// Microsoft's: OpenLDAP's standard schema has no such attribute.
const AttrAltSecurityIdentities = "altSecurityIdentities"

// AltSecuritySettings is the altSecurityIdentities target of one
// directory (a source's altSecurityIdentities key): certsync writes strong
// certificate mappings (KB5014754) to the users it reads there, in their
// own entries.
type AltSecuritySettings struct {
	Enabled bool `yaml:"enabled"`
	// Mappings are the mapping kinds written per certificate, in this
	// order: ISSUER-SERIAL (default), SKI, SHA1-PUKEY.
	Mappings []string `yaml:"mappings"`
	// MaxValues is the most values the attribute may hold, the admin's
	// own included (default 5, the limit Microsoft gives for syncing it
	// to certificateUserIds).
	MaxValues int `yaml:"maxValues"`
	// MapSIDCertificates also writes mappings for certificates whose SID
	// extension already binds them to the user (strongly mapped without
	// any value); off by default.
	MapSIDCertificates bool `yaml:"mapSIDCertificates"`
	// Withdraw is set by `certsync sync --withdraw ad.altSecurityIdentities`,
	// never by the file: the target then wants nothing for this
	// directory's users, so the pass removes every mapping certsync wrote
	// there (behind the deletion limit, shown by the dry run), whether or
	// not Enabled still says so.
	Withdraw bool `yaml:"-"`
}

// DefaultAltSecurityMaxValues is maxValues' default.
const DefaultAltSecurityMaxValues = 5

// maxAltSecurityValues bounds maxValues: Entra ID's certificateUserIds,
// where a sync rule may carry the values, holds 10.
const maxAltSecurityValues = 10

// Defaults fills in what the file left out.
func (a *AltSecuritySettings) Defaults() {
	if len(a.Mappings) == 0 {
		a.Mappings = []string{string(mapping.BindingIssuerSerial)}
	}
	if a.MaxValues == 0 {
		a.MaxValues = DefaultAltSecurityMaxValues
	}
}

// validate checks the settings of the source s; key names the section
// ("source.altSecurityIdentities").
func (a AltSecuritySettings) validate(key string, s Settings) error {
	if !a.Enabled {
		return nil
	}
	// OpenLDAP (and other non-AD servers) have no altSecurityIdentities in
	// their standard schema, and no objectGUID: the anchor tells them
	// apart when the file is loaded, before any connection. The target
	// checks the server's rootDSE again before its first write.
	if !strings.EqualFold(s.AnchorAttribute, attrObjectGUID) {
		return fmt.Errorf("%s.enabled: needs Active Directory (anchorAttribute objectGUID, not %q): altSecurityIdentities is Microsoft's attribute and OpenLDAP's standard schema has none", key, s.AnchorAttribute)
	}
	for i, m := range a.Mappings {
		if _, err := mapping.ParseBindingKind(m); err != nil {
			return fmt.Errorf("%s.mappings[%d]: %q is not one of ISSUER-SERIAL, SKI, SHA1-PUKEY", key, i, m)
		}
	}
	if a.MaxValues < 1 || a.MaxValues > maxAltSecurityValues {
		return fmt.Errorf("%s.maxValues: %d is outside 1..%d", key, a.MaxValues, maxAltSecurityValues)
	}
	return nil
}

// ErrWriteRefused: the directory answered a write with a definite no
// (no right to write, a constraint, a value that changed meanwhile), so
// nothing of it was applied.
var ErrWriteRefused = errors.New("the directory refused the write")

// ErrNotActiveDirectory: the server does not announce Active Directory's
// capability, so it has no altSecurityIdentities.
var ErrNotActiveDirectory = errors.New("the directory is not Active Directory")

// AltSecurityEntry is a user's entry as the altSecurityIdentities target
// needs it.
type AltSecurityEntry struct {
	DN     string
	Values []string // altSecurityIdentities, as stored
}

// AltSecurityIdentities reads the entry whose objectGUID is guid (the
// standard base64 of its 16 bytes, as anchors hold it) under the base DN;
// ErrUserNotFound when there is none.
func (s *Source) AltSecurityIdentities(ctx context.Context, guid string) (AltSecurityEntry, error) {
	raw, err := base64.StdEncoding.DecodeString(guid)
	if err != nil || len(raw) != guidLen {
		return AltSecurityEntry{}, fmt.Errorf("ldapsrc: %q is not an objectGUID", guid)
	}
	conn, err := s.connection(ctx)
	if err != nil {
		return AltSecurityEntry{}, err
	}
	var filter strings.Builder
	filter.WriteString("(objectGUID=")
	for _, b := range raw {
		fmt.Fprintf(&filter, "\\%02x", b)
	}
	filter.WriteString(")")
	req := ldap.NewSearchRequest(s.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
		filter.String(), []string{AttrAltSecurityIdentities}, nil)
	entries, _, err := s.search(ctx, conn, req)
	switch {
	case err != nil:
		return AltSecurityEntry{}, fmt.Errorf("ldapsrc: reading %s of objectGUID %s under %s on %s: %w", AttrAltSecurityIdentities, formatGUID(raw), s.cfg.BaseDN, s.cfg.URL, err)
	case len(entries) == 0:
		return AltSecurityEntry{}, fmt.Errorf("ldapsrc: objectGUID %s under %s: %w", formatGUID(raw), s.cfg.BaseDN, ErrUserNotFound)
	}
	return AltSecurityEntry{DN: entries[0].DN, Values: entries[0].GetAttributeValues(AttrAltSecurityIdentities)}, nil
}

// AltSecurityHolders lists the entries under base (the domain:
// ActiveDirectoryDomain) whose altSecurityIdentities holds value, by DN.
func (s *Source) AltSecurityHolders(ctx context.Context, base, value string) ([]string, error) {
	conn, err := s.connection(ctx)
	if err != nil {
		return nil, err
	}
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"("+AttrAltSecurityIdentities+"="+ldap.EscapeFilter(value)+")", []string{"1.1"}, nil)
	entries, _, err := s.search(ctx, conn, req)
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: looking for %s %q under %s on %s: %w", AttrAltSecurityIdentities, value, base, s.cfg.URL, err)
	}
	dns := make([]string, len(entries))
	for i, e := range entries {
		dns[i] = e.DN
	}
	return dns, nil
}

// ModifyAltSecurityIdentities removes and adds single values of dn's
// altSecurityIdentities in one modify request, which the directory applies
// whole or not at all. It never replaces the attribute: a value an admin
// adds meanwhile stays. A definite refusal wraps ErrWriteRefused.
func (s *Source) ModifyAltSecurityIdentities(ctx context.Context, dn string, add, remove []string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	conn, err := s.connection(ctx)
	if err != nil {
		return err
	}
	req := ldap.NewModifyRequest(dn, nil)
	for _, v := range remove {
		req.Delete(AttrAltSecurityIdentities, []string{v})
	}
	for _, v := range add {
		req.Add(AttrAltSecurityIdentities, []string{v})
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.Modify(req); err != nil {
		err = ctxOr(ctx, err)
		if definiteRefusal(err) {
			err = fmt.Errorf("%w: %w", ErrWriteRefused, err)
		}
		return fmt.Errorf("ldapsrc: modify %s of %s on %s as %s (add %d, remove %d values): %w",
			AttrAltSecurityIdentities, dn, s.cfg.URL, s.cfg.Bind.Username, len(add), len(remove), err)
	}
	return nil
}

// definiteRefusal reports whether err is an answer saying the modify was
// not applied and trying again unchanged will not help.
func definiteRefusal(err error) bool {
	for _, code := range []uint16{
		ldap.LDAPResultInsufficientAccessRights, ldap.LDAPResultConstraintViolation, ldap.LDAPResultAttributeOrValueExists,
		ldap.LDAPResultNoSuchAttribute, ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultNoSuchObject,
		ldap.LDAPResultObjectClassViolation, ldap.LDAPResultUndefinedAttributeType, ldap.LDAPResultInvalidAttributeSyntax,
	} {
		if ldap.IsErrorWithCode(err, code) {
			return true
		}
	}
	return false
}

// ActiveDirectoryDomain returns the domain's DN (rootDSE
// defaultNamingContext, else the base DN), or ErrNotActiveDirectory when
// the server does not announce Active Directory's capability
// (supportedCapabilities 1.2.840.113556.1.4.800): then it has no
// altSecurityIdentities to write.
func (s *Source) ActiveDirectoryDomain(ctx context.Context) (string, error) {
	conn, err := s.connection(ctx)
	if err != nil {
		return "", err
	}
	d, err := s.readRootDSE(ctx, conn, &Stats{})
	if err != nil {
		return "", err
	}
	if !d.ad {
		return "", fmt.Errorf("ldapsrc: %s: %w: it has no %s (OpenLDAP's standard schema has none)", s.cfg.URL, ErrNotActiveDirectory, AttrAltSecurityIdentities)
	}
	if d.defaultNamingContext == "" {
		return s.cfg.BaseDN, nil
	}
	return d.defaultNamingContext, nil
}

// checkAltSecurityIdentities asks Active Directory which attributes the
// account may write on the first users in scope (allowedAttributesEffective,
// [MS-ADTS] 3.1.1.4.5.7) and fails when altSecurityIdentities is not among
// them for any of them.
func (d *doctor) checkAltSecurityIdentities(ctx context.Context) Check {
	if !d.dse.ad {
		return fail(fmt.Sprintf("%s is not Active Directory: it has no %s", d.cfg.URL, AttrAltSecurityIdentities),
			"turn altSecurityIdentities off for this source (OpenLDAP's standard schema has no such attribute)")
	}
	if len(d.sample) == 0 {
		return Check{Status: StatusSkip, Detail: "no users in scope to look at"}
	}
	var denied []string
	for _, dn := range d.sample {
		req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
			[]string{"allowedAttributesEffective"}, nil)
		entries, _, err := d.s.search(ctx, d.conn, req)
		if err != nil || len(entries) != 1 {
			return fail(fmt.Sprintf("read allowedAttributesEffective of %s: %v", dn, err), "check the account's read rights on the users in scope")
		}
		if !slices.ContainsFunc(entries[0].GetAttributeValues("allowedAttributesEffective"), func(a string) bool {
			return strings.EqualFold(a, AttrAltSecurityIdentities)
		}) {
			denied = append(denied, dn)
		}
	}
	if len(denied) > 0 {
		return fail(fmt.Sprintf("%s may not write %s on %d of the %d users looked at: %s", d.account, AttrAltSecurityIdentities, len(denied), len(d.sample), strings.Join(denied, "; ")),
			fmt.Sprintf("delegate it on the OU holding the users (README: Strong certificate mappings, Delegation), e.g. dsacls \"%s\" /I:S /G \"DOMAIN\\account:RPWP;altSecurityIdentities;user\"", d.cfg.BaseDN))
	}
	return ok(fmt.Sprintf("%s may write %s on the %d users looked at", d.account, AttrAltSecurityIdentities, len(d.sample)))
}
