package ldapmem

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// errUnsupportedFilter answers filters Memory does not evaluate: an error,
// never a guess, so a test cannot pass on a filter that was not applied.
var errUnsupportedFilter = errors.New("filter not supported by ldapmem")

// matchFilter evaluates a compiled filter (ldap.CompileFilter) against e:
// equality (case-insensitive), presence, substrings, >=, <= (numeric when
// both sides are integers), ~= (as equality), &, |, !.
func matchFilter(f *ber.Packet, e *memEntry) (bool, error) {
	switch f.Tag {
	case ldap.FilterAnd:
		for _, c := range f.Children {
			ok, err := matchFilter(c, e)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case ldap.FilterOr:
		for _, c := range f.Children {
			ok, err := matchFilter(c, e)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case ldap.FilterNot:
		if len(f.Children) != 1 {
			return false, fmt.Errorf("malformed NOT filter: %d children", len(f.Children))
		}
		ok, err := matchFilter(f.Children[0], e)
		return !ok, err
	case ldap.FilterPresent:
		name := f.Data.String()
		return isObjectClass(name) || len(e.values(name)) > 0, nil
	case ldap.FilterEqualityMatch, ldap.FilterApproxMatch:
		name, want, err := assertion(f)
		if err != nil {
			return false, err
		}
		for _, v := range e.values(name) {
			if bytes.EqualFold(v, want) {
				return true, nil
			}
		}
		return false, nil
	case ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual:
		name, want, err := assertion(f)
		if err != nil {
			return false, err
		}
		for _, v := range e.values(name) {
			c := compareValues(v, want)
			if (f.Tag == ldap.FilterGreaterOrEqual && c >= 0) || (f.Tag == ldap.FilterLessOrEqual && c <= 0) {
				return true, nil
			}
		}
		return false, nil
	case ldap.FilterSubstrings:
		if len(f.Children) != 2 {
			return false, fmt.Errorf("malformed substrings filter: %d children", len(f.Children))
		}
		// RFC 4511 4.5.1.7.2: one component at least, and (RFC 4515) none
		// empty: "(uid=**)" is no filter, whatever a client library
		// encodes for it.
		parts := f.Children[1].Children
		if len(parts) == 0 {
			return false, errors.New("malformed substrings filter: no component")
		}
		for _, p := range parts {
			if len(p.Data.Bytes()) == 0 {
				return false, errors.New("malformed substrings filter: an empty component")
			}
		}
		for _, v := range e.values(f.Children[0].Data.String()) {
			if matchSubstrings(bytes.ToLower(v), f.Children[1].Children) {
				return true, nil
			}
		}
		return false, nil
	default:
		return false, fmt.Errorf("%w: %s", errUnsupportedFilter, ldap.FilterMap[uint64(f.Tag)])
	}
}

func assertion(f *ber.Packet) (string, []byte, error) {
	if len(f.Children) != 2 {
		return "", nil, fmt.Errorf("malformed %s filter: %d children", ldap.FilterMap[uint64(f.Tag)], len(f.Children))
	}
	return f.Children[0].Data.String(), f.Children[1].Data.Bytes(), nil
}

func matchSubstrings(v []byte, parts []*ber.Packet) bool {
	for _, p := range parts {
		s := bytes.ToLower(p.Data.Bytes())
		switch p.Tag {
		case ldap.FilterSubstringsInitial:
			if !bytes.HasPrefix(v, s) {
				return false
			}
			v = v[len(s):]
		case ldap.FilterSubstringsAny:
			i := bytes.Index(v, s)
			if i < 0 {
				return false
			}
			v = v[i+len(s):]
		case ldap.FilterSubstringsFinal:
			if !bytes.HasSuffix(v, s) {
				return false
			}
			v = v[len(v):]
		default:
			return false
		}
	}
	return true
}

// compareValues orders integers numerically (uSNChanged, employeeNumber),
// everything else case-insensitively.
func compareValues(a, b []byte) int {
	x, errA := strconv.ParseInt(string(a), 10, 64)
	y, errB := strconv.ParseInt(string(b), 10, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return bytes.Compare(bytes.ToLower(a), bytes.ToLower(b))
}
