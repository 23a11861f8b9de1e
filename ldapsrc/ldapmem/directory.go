package ldapmem

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Entry is one directory entry. Attribute names may carry options
// ("userCertificate;binary"); they are matched without them.
type Entry struct {
	DN         string
	Attributes map[string][][]byte
}

// directory is the read-only data of a Server and the searches on it.
type directory struct {
	bindDN       *ldap.DN
	bindPassword string
	entries      []memEntry
	noPaging     bool
	hideRootDSE  bool
}

type memEntry struct {
	dn     string
	parsed *ldap.DN
	attrs  []entryAttr // sorted by name
}

type entryAttr struct {
	name   string
	values [][]byte
}

// operational attributes are returned only when asked for by name or "+".
func isOperational(name string) bool { return strings.EqualFold(name, "entryUUID") }

func isObjectClass(name string) bool { return strings.EqualFold(name, "objectClass") }

// values returns the values of every attribute named name, options aside.
func (e *memEntry) values(name string) [][]byte {
	var out [][]byte
	for _, a := range e.attrs {
		if strings.EqualFold(baseName(a.name), name) {
			out = append(out, a.values...)
		}
	}
	return out
}

func baseName(attr string) string {
	name, _, _ := strings.Cut(attr, ";")
	return name
}

func newDirectory(opts Options) (*directory, error) {
	if opts.BindDN == "" || opts.BindPassword == "" {
		return nil, errors.New("BindDN and BindPassword are required")
	}
	d := &directory{bindPassword: opts.BindPassword, noPaging: opts.NoPaging, hideRootDSE: opts.HideRootDSE}
	var err error
	if d.bindDN, err = ldap.ParseDN(opts.BindDN); err != nil {
		return nil, fmt.Errorf("bind DN %q: %w", opts.BindDN, err)
	}
	seen := map[string]bool{}
	for _, e := range opts.Entries {
		parsed, err := ldap.ParseDN(e.DN)
		if err != nil {
			return nil, fmt.Errorf("entry DN %q: %w", e.DN, err)
		}
		key := strings.ToLower(parsed.String())
		if seen[key] {
			return nil, fmt.Errorf("entry %q appears twice", e.DN)
		}
		seen[key] = true
		me := memEntry{dn: e.DN, parsed: parsed}
		for name, vals := range e.Attributes {
			me.attrs = append(me.attrs, entryAttr{name: name, values: vals})
		}
		if len(me.values("entryUUID")) == 0 {
			me.attrs = append(me.attrs, entryAttr{name: "entryUUID", values: [][]byte{[]byte(dnUUID(key))}})
		}
		sort.Slice(me.attrs, func(i, j int) bool { return me.attrs[i].name < me.attrs[j].name })
		d.entries = append(d.entries, me)
	}
	return d, nil
}

// dnUUID derives a stable name-based (version 5 layout) UUID from a DN.
func dnUUID(dn string) string {
	h := sha1.Sum([]byte(dn))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (d *directory) checkBind(name string, password []byte) bool {
	dn, err := ldap.ParseDN(name)
	return err == nil && len(password) > 0 && d.bindDN.EqualFold(dn) && string(password) == d.bindPassword
}

// resultError is an LDAP result code with its diagnostic message.
type resultError struct {
	code uint16
	msg  string
}

func (e *resultError) Error() string { return e.msg }

func fail(code uint16, format string, args ...any) *resultError {
	return &resultError{code: code, msg: fmt.Sprintf(format, args...)}
}

// find returns the entries in scope of base that match filter.
func (d *directory) find(baseDN string, scope int64, filter string) ([]*memEntry, *resultError) {
	base, err := ldap.ParseDN(baseDN)
	if err != nil {
		return nil, fail(ldap.LDAPResultInvalidDNSyntax, "invalid base DN %q", baseDN)
	}
	compiled, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, fail(ldap.LDAPResultProtocolError, "filter %s: %v", filter, err)
	}
	// Every LDAP server answers a base search of "" with its rootDSE.
	if len(base.RDNs) == 0 && scope == ldap.ScopeBaseObject {
		if d.hideRootDSE {
			return nil, nil
		}
		return []*memEntry{d.rootDSE()}, nil
	}
	var out []*memEntry
	baseExists := false
	for i := range d.entries {
		e := &d.entries[i]
		isBase := base.EqualFold(e.parsed)
		under := base.AncestorOfFold(e.parsed)
		baseExists = baseExists || isBase || under
		var inScope bool
		switch scope {
		case ldap.ScopeBaseObject:
			inScope = isBase
		case ldap.ScopeSingleLevel:
			inScope = under && len(e.parsed.RDNs) == len(base.RDNs)+1
		case ldap.ScopeWholeSubtree:
			inScope = isBase || under
		default:
			return nil, fail(ldap.LDAPResultProtocolError, "unknown scope %d", scope)
		}
		if !inScope {
			continue
		}
		ok, err := matchFilter(compiled, e)
		if err != nil {
			return nil, fail(ldap.LDAPResultUnwillingToPerform, "%v", err)
		}
		if ok {
			out = append(out, e)
		}
	}
	if !baseExists {
		return nil, fail(ldap.LDAPResultNoSuchObject, "no such object: %s", baseDN)
	}
	return out, nil
}

// rootDSE describes the server as a minimal LDAPv3 server does: no
// change tracking, paging unless turned off.
func (d *directory) rootDSE() *memEntry {
	e := &memEntry{parsed: &ldap.DN{}}
	add := func(name string, values ...string) {
		a := entryAttr{name: name}
		for _, v := range values {
			a.values = append(a.values, []byte(v))
		}
		e.attrs = append(e.attrs, a)
	}
	add("objectClass", "top")
	if !d.noPaging {
		add("supportedControl", ldap.ControlTypePaging)
	}
	add("supportedLDAPVersion", "3")
	return e
}
