package mapping

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	fx := newFixture(t)
	withTrailing := append(append([]byte{}, fx.der("alice")...), 0)
	tests := []struct {
		name    string
		data    []byte
		want    []string // certificate names, in order
		wantErr []string // substrings of the error, in order
	}{
		{name: "DER leaf", data: fx.der("alice"), want: []string{"alice"}},
		{name: "DER CA is returned for Evaluate to reject", data: fx.der("inter"), want: []string{"inter"}},
		{name: "degenerate PKCS#7 with chain", data: fx.degenerate("inter", "alice", "root"), want: []string{"alice"}},
		{name: "degenerate PKCS#7 with two leaves", data: fx.degenerate("alice", "bob"), want: []string{"alice", "bob"}},
		{name: "Outlook signed PKCS#7 with chain", data: fx.outlook("alice", "inter", "root"), want: []string{"alice"}},
		{name: "PKCS#7 of CA certificates only", data: fx.degenerate("inter", "root"),
			wantErr: []string{"mapping: PKCS#7 SignedData holds no end-entity certificate (2 CA certificates only)"}},
		{name: "empty", data: nil, wantErr: []string{"mapping: empty value"}},
		{name: "garbage", data: []byte("definitely not ASN.1"),
			wantErr: []string{"mapping: not a DER certificate (x509: ", ") nor PKCS#7 SignedData (", ")"}},
		{name: "DER with trailing byte", data: withTrailing,
			wantErr: []string{"not a DER certificate (x509: trailing data)", "nor PKCS#7 SignedData ("}},
		{name: "truncated DER", data: fx.der("alice")[:100], wantErr: []string{"not a DER certificate ("}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := Decode(tt.data)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Decode succeeded with %d certificates, want error", len(certs))
				}
				if certs != nil {
					t.Errorf("Decode returned %d certificates with its error", len(certs))
				}
				assertInOrder(t, err.Error(), tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var got []string
			for _, c := range certs {
				got = append(got, fx.name(sha256Hex(c.Raw)))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Decode = %v, want %v", got, tt.want)
			}
		})
	}
}

// assertInOrder fails unless s holds every part, in that order.
func assertInOrder(t *testing.T, s string, parts []string) {
	t.Helper()
	rest := s
	for _, p := range parts {
		i := strings.Index(rest, p)
		if i < 0 {
			t.Errorf("%q: missing %q (in order %q)", s, p, parts)
			return
		}
		rest = rest[i+len(p):]
	}
}
