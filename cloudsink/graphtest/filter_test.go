package graphtest

import (
	"strings"
	"testing"
)

// FuzzParseFilter: quoting a value the OData way and parsing it back gives
// the value, and no input makes the parser panic or exceed Graph's limits.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{"", "a", "O'Brien", "''", "x' or id eq 'y", "ops+certs@contoso.example", "(')", strings.Repeat("z", 121)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		quoted := "'" + strings.ReplaceAll(v, "'", "''") + "'"
		for _, expr := range []string{"mail eq " + quoted, "userPrincipalName in (" + quoted + ",'other')"} {
			got, qerr := parseFilter(expr)
			if len(v) > maxFilterValue {
				if qerr == nil {
					t.Fatalf("%q: a %d-character value was accepted", expr, len(v))
				}
				continue
			}
			if qerr != nil {
				t.Fatalf("%q: %s: %s", expr, qerr.code, qerr.message)
			}
			if got.values[0] != v {
				t.Fatalf("%q: value %q, want %q", expr, got.values[0], v)
			}
		}
		// Raw input: refusals are fine, panics and oversized answers are not.
		if got, qerr := parseFilter(v); qerr == nil {
			if len(got.values) == 0 || len(got.values) > maxInValues || !filterable[got.prop] {
				t.Fatalf("%q parsed to %+v", v, got)
			}
		}
	})
}
