package ldapsrc

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

func TestFormatSID(t *testing.T) {
	for _, tc := range []struct {
		name, hex, want, err string
	}{
		// The well-known examples of [MS-DTYP] and of AD's own accounts.
		{"local system", "010100000000000512000000", "S-1-5-18", ""},
		{"domain administrator", "010500000000000515000000c7f7fed77c7755c894ec0e01f4010000", "S-1-5-21-3623811015-3361044348-17755284-500", ""},
		{"everyone", "010100000000000100000000", "S-1-1-0", ""},
		{"no sub-authority", "010000000000000f", "S-1-15", ""},
		{"large authority in hex", "0101ffffffffffff00000000", "S-1-0xFFFFFFFFFFFF-0", ""},
		{"short header", "0105000000", "", "shorter than its 8-byte header"},
		{"revision 2", "020100000000000512000000", "", "revision 2"},
		{"count past the end", "010500000000000515000000", "", "want 28"},
		{"too many sub-authorities", "0110000000000005", "", "more than 15"},
		{"trailing byte", "01010000000000051200000000", "", "want 12"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FormatSID(b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("FormatSID = %q, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FormatSID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

var sidForm = regexp.MustCompile(`^S-1-(0x[0-9A-F]{12}|[0-9]+)(-[0-9]+){0,15}$`)

func FuzzFormatSID(f *testing.F) {
	for _, h := range []string{"010100000000000512000000", "010500000000000515000000c7f7fed77c7755c894ec0e01f4010000", "01", ""} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := FormatSID(b)
		if err != nil {
			return
		}
		if !sidForm.MatchString(s) {
			t.Fatalf("FormatSID(%x) = %q, not a SID string", b, s)
		}
		if n := strings.Count(s, "-") - 2; n != int(b[1]) {
			t.Fatalf("FormatSID(%x) = %q: %d sub-authorities, header says %d", b, s, n, b[1])
		}
	})
}
