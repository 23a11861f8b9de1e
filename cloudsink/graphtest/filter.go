package graphtest

import (
	"fmt"
	"strings"
)

// maxInValues is Graph's documented limit on an `in` clause for directory
// objects without advanced query parameters.
const maxInValues = 15

// maxFilterValue is Graph's documented limit on the value of an `eq`; the
// emulator applies it to every compared value.
const maxFilterValue = 120

// userProps are the user properties the emulator knows, in Graph's casing.
var userProps = []string{"id", "userPrincipalName", "mail", "onPremisesImmutableId", "onPremisesSyncEnabled", "authorizationInfo"}

// defaultSelect is what a listing without $select returns: the part of
// Graph's default property set the emulator stores. authorizationInfo and
// onPremises* are not in Graph's default set either.
var defaultSelect = []string{"id", "userPrincipalName", "mail"}

// filterable are the properties $filter supports.
var filterable = map[string]bool{"id": true, "userPrincipalName": true, "mail": true, "onPremisesImmutableId": true}

func canonicalProp(name string) (string, bool) {
	for _, p := range userProps {
		if strings.EqualFold(p, name) {
			return p, true
		}
	}
	return "", false
}

// filter is one `prop eq 'v'` or `prop in ('a','b')` clause.
type filter struct {
	prop   string
	values []string
}

// queryError is a refusal of a query, in Graph's terms.
type queryError struct {
	code, message string
}

// parseFilter reads the one-clause subset of OData $filter the emulator
// supports. Everything else is refused, never ignored.
func parseFilter(expr string) (filter, *queryError) {
	p := &filterParser{s: expr}
	p.space()
	name := p.ident()
	if name == "" {
		return filter{}, &queryError{"BadRequest", fmt.Sprintf("Invalid filter clause: expected a property name at position %d of '%s'.", p.i, expr)}
	}
	prop, known := canonicalProp(name)
	if !known {
		return filter{}, &queryError{"BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", name)}
	}
	if !filterable[prop] {
		return filter{}, &queryError{"Request_UnsupportedQuery", fmt.Sprintf("Unsupported or invalid query filter clause specified for property '%s' of resource 'User'.", prop)}
	}
	p.space()
	op := p.ident()
	f := filter{prop: prop}
	switch strings.ToLower(op) {
	case "eq":
		p.space()
		v, err := p.literal()
		if err != nil {
			return filter{}, &queryError{"BadRequest", "Invalid filter clause: " + err.Error()}
		}
		f.values = []string{v}
	case "in":
		p.space()
		if !p.consume('(') {
			return filter{}, &queryError{"BadRequest", "Invalid filter clause: 'in' needs a parenthesized list of values."}
		}
		for {
			p.space()
			v, err := p.literal()
			if err != nil {
				return filter{}, &queryError{"BadRequest", "Invalid filter clause: " + err.Error()}
			}
			f.values = append(f.values, v)
			p.space()
			if p.consume(',') {
				continue
			}
			if p.consume(')') {
				break
			}
			return filter{}, &queryError{"BadRequest", fmt.Sprintf("Invalid filter clause: expected ',' or ')' at position %d.", p.i)}
		}
	case "":
		return filter{}, &queryError{"BadRequest", "Invalid filter clause: expected an operator after '" + name + "'."}
	default:
		return filter{}, &queryError{"Request_UnsupportedQuery", fmt.Sprintf("Operator '%s' is not supported by the emulator for property '%s' (eq and in are).", op, prop)}
	}
	p.space()
	if p.i < len(p.s) {
		return filter{}, &queryError{"Request_UnsupportedQuery", fmt.Sprintf("The emulator supports a single eq or in clause; '%s' is not supported.", p.s[p.i:])}
	}
	if len(f.values) > maxInValues {
		return filter{}, &queryError{"Request_UnsupportedQuery", fmt.Sprintf("Too many child clauses specified in search filter expression containing 'OR' operators: %d. Max allowed: %d.", len(f.values), maxInValues)}
	}
	for _, v := range f.values {
		if len(v) > maxFilterValue {
			return filter{}, &queryError{"Request_UnsupportedQuery", fmt.Sprintf("The value to match for property '%s' is %d characters long; filters take at most %d.", prop, len(v), maxFilterValue)}
		}
	}
	return f, nil
}

// match compares as the directory does: case-insensitively, except the
// immutable ID (base64, where case is meaningful).
func (f filter) match(u *User) bool {
	var have string
	fold := true
	switch f.prop {
	case "id":
		have = u.ID
	case "userPrincipalName":
		have = u.UserPrincipalName
	case "mail":
		have = u.Mail
	case "onPremisesImmutableId":
		have, fold = u.OnPremisesImmutableID, false
	}
	if have == "" {
		return false
	}
	for _, v := range f.values {
		if (fold && strings.EqualFold(have, v)) || (!fold && have == v) {
			return true
		}
	}
	return false
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *filterParser) consume(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) ident() string {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '_' || c == '/' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i]
}

// literal reads an OData string literal: quoted with ', a quote doubled.
func (p *filterParser) literal() (string, error) {
	if !p.consume('\'') {
		return "", fmt.Errorf("expected a quoted string at position %d", p.i)
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		if c != '\'' {
			b.WriteByte(c)
			continue
		}
		if p.consume('\'') {
			b.WriteByte('\'')
			continue
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unterminated string literal")
}
