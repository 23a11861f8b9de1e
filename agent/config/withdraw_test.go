package config

import (
	"strings"
	"testing"
)

// Withdraw marks the Active Directory sources only, and refuses what it
// cannot withdraw.
func TestWithdraw(t *testing.T) {
	dir := writeFiles(t)
	ldapOnly := strings.Replace(validYAML, `  tls: {caFile: ca.pem}`, "  tls: {caFile: ca.pem}\n  anchorAttribute: entryUUID", 1)
	several := severalSourcesYAML()
	for _, tc := range []struct {
		name, yaml, target string
		want               []bool // Withdraw per source
		err                string
	}{
		{"nothing asked", validYAML, "", []bool{false}, ""},
		{"AD source", validYAML, "ad.altSecurityIdentities", []bool{true}, ""},
		{"AD and OpenLDAP", several, "ad.altSecurityIdentities", []bool{true, false}, ""},
		{"OpenLDAP only", ldapOnly, "ad.altSecurityIdentities", nil, "no source is Active Directory"},
		{"another target", validYAML, "graph.certificateUserIds", nil, "only ad.altSecurityIdentities can be withdrawn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), dir)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Withdraw(tc.target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				if got := c.Sources[i].AltSecurityIdentities.Withdraw; got != want {
					t.Fatalf("source %d: Withdraw %v, want %v", i, got, want)
				}
			}
			if got := c.ADTarget(); got != (tc.target != "") {
				t.Fatalf("ADTarget() = %v", got)
			}
		})
	}
}
