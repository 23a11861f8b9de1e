package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping"
)

// Sentinels of FindUser; the errors returned wrap them and name the id.
var (
	ErrUserNotFound  = errors.New("user not found")
	ErrAmbiguousUser = errors.New("id matches more than one user")
)

// FoundUser is the answer of FindUser.
type FoundUser struct {
	User mapping.SourceUser
	// InScope tells whether the user also matches the configured Filter,
	// i.e. whether a full read would include it.
	InScope bool
}

// findByAttributes are the attributes FindUser compares a non-DN id with.
var findByAttributes = [...]string{"mail", "userPrincipalName", "sAMAccountName", "uid"}

// maxNamedDNs caps the DNs an ambiguity error lists.
const maxNamedDNs = 5

// FindUser finds one user by DN (when id parses as a DN and has '='), else
// by mail, userPrincipalName, sAMAccountName or uid equal to id, under
// BaseDN. InScope tells whether it also matches the configured Filter.
func (s *Source) FindUser(ctx context.Context, id string) (FoundUser, error) {
	if strings.TrimSpace(id) == "" {
		return FoundUser{}, fmt.Errorf("ldapsrc: find user: empty id")
	}
	conn, err := s.connection(ctx)
	if err != nil {
		return FoundUser{}, err
	}
	req, err := s.findRequest(id)
	if err != nil {
		return FoundUser{}, err
	}
	entries, _, err := s.search(ctx, conn, req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return FoundUser{}, fmt.Errorf("ldapsrc: user %q under %s: %w", id, s.cfg.BaseDN, ErrUserNotFound)
	case err != nil:
		return FoundUser{}, fmt.Errorf("ldapsrc: find user %q under %s on %s: %w", id, s.cfg.BaseDN, s.cfg.URL, err)
	case len(entries) == 0:
		return FoundUser{}, fmt.Errorf("ldapsrc: user %q under %s: %w", id, s.cfg.BaseDN, ErrUserNotFound)
	case len(entries) > 1:
		dns := make([]string, 0, maxNamedDNs)
		for _, e := range entries[:min(len(entries), maxNamedDNs)] {
			dns = append(dns, e.DN)
		}
		return FoundUser{}, fmt.Errorf("ldapsrc: user %q under %s: %w: %d entries (%s)",
			id, s.cfg.BaseDN, ErrAmbiguousUser, len(entries), strings.Join(dns, "; "))
	}
	u, err := s.conv.user(entries[0])
	if err != nil {
		return FoundUser{}, fmt.Errorf("ldapsrc: user %q is %s, which has no usable anchor: %w", id, entries[0].DN, err)
	}
	in, err := s.inScope(ctx, conn, u.DN)
	if err != nil {
		return FoundUser{}, err
	}
	return FoundUser{User: u, InScope: in}, nil
}

// findRequest builds the search for id: a base search of the DN, or an
// equality search on the identity attributes under BaseDN.
func (s *Source) findRequest(id string) (*ldap.SearchRequest, error) {
	if strings.Contains(id, "=") {
		if dn, err := ldap.ParseDN(id); err == nil {
			base, err := ldap.ParseDN(s.cfg.BaseDN)
			if err != nil {
				return nil, fmt.Errorf("ldapsrc: baseDN %q: %w", s.cfg.BaseDN, err)
			}
			if !base.EqualFold(dn) && !base.AncestorOfFold(dn) {
				return nil, fmt.Errorf("ldapsrc: user %q is not under %s: %w", id, s.cfg.BaseDN, ErrUserNotFound)
			}
			return ldap.NewSearchRequest(id, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
				0, 0, false, defaultFilter, s.attrs, nil), nil
		}
	}
	var f strings.Builder
	f.WriteString("(|")
	v := ldap.EscapeFilter(id)
	for _, a := range findByAttributes {
		fmt.Fprintf(&f, "(%s=%s)", a, v)
	}
	f.WriteString(")")
	return ldap.NewSearchRequest(s.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, f.String(), s.attrs, nil), nil
}

// inScope tells whether the entry at dn matches the configured Filter.
func (s *Source) inScope(ctx context.Context, conn *ldap.Conn, dn string) (bool, error) {
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, s.cfg.Filter, []string{"1.1"}, nil)
	entries, _, err := s.search(ctx, conn, req)
	if err != nil {
		return false, fmt.Errorf("ldapsrc: check %s against filter %s on %s: %w", dn, s.cfg.Filter, s.cfg.URL, err)
	}
	return len(entries) == 1, nil
}
