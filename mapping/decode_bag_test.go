package mapping

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

func tlv(tag byte, indefinite bool, parts ...[]byte) []byte {
	return pkitest.TLV(tag, indefinite, parts...)
}

func bagOf(ber bool, certs ...[]byte) []byte { return pkitest.Bag(ber, certs...) }

func unparseableCert() []byte { return pkitest.Unparseable() }

// nested is depth constructed elements inside each other, indefinite.
func nested(depth int) []byte {
	out := []byte{0x04, 0}
	for range depth {
		out = tlv(tagSequence, true, out)
	}
	return out
}

func TestParseBag(t *testing.T) {
	fx := newFixture(t)
	alice, inter, root := fx.der("alice"), fx.der("inter"), fx.der("root")
	tests := []struct {
		name    string
		data    []byte
		want    []string // certificate names, or "broken" per unparseable one
		wantErr string
	}{
		{name: "DER bag", data: bagOf(false, alice, inter, root), want: []string{"alice", "inter", "root"}},
		{name: "BER bag", data: bagOf(true, alice, inter), want: []string{"alice", "inter"}},
		{name: "root first, leaf in the middle", data: bagOf(true, root, alice, inter), want: []string{"root", "alice", "inter"}},
		{name: "two leaves", data: bagOf(false, fx.der("bob"), alice), want: []string{"bob", "alice"}},
		{name: "one broken among good ones", data: bagOf(true, alice, unparseableCert(), inter), want: []string{"alice", "broken", "inter"}},
		{name: "a BER certificate is broken alone", data: bagOf(true, tlv(tagSequence, true, []byte{5, 0}), alice), want: []string{"broken", "alice"}},
		{name: "attribute certificates are skipped", data: bagOf(false, tlv(0xa1, false), alice), want: []string{"alice"}},
		{name: "no certificates", data: bagOf(false), want: nil},
		{name: "Outlook signed", data: fx.outlook("alice", "inter"), want: []string{"alice", "inter"}},
		{name: "Outlook signed, BER", data: fx.ber(fx.outlook("alice", "inter")), want: []string{"alice", "inter"}},
		{name: "not signedData", data: tlv(tagSequence, false, []byte{tagOID, 3, 1, 2, 3}), wantErr: "content type is not PKCS#7 signedData"},
		{name: "trailing bytes", data: append(bagOf(false, alice), 0), wantErr: "1 bytes after the ContentInfo"},
		{name: "truncated", data: bagOf(true, alice)[:300], wantErr: "truncated"},
		{name: "too deep", data: tlv(tagSequence, true, []byte{tagOID, 1, 1}, tlv(tagContext0, true, nested(100))), wantErr: "nested deeper than 32"},
		{name: "too large", data: make([]byte, maxValueSize+1), wantErr: "larger than"},
		{name: "indefinite primitive", data: []byte{0x04, 0x80, 0, 0}, wantErr: "indefinite length on a primitive element"},
		{name: "five-byte length", data: []byte{0x30, 0x85, 1, 1, 1, 1, 1}, wantErr: "bad length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := parseBag(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseBag error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseBag: %v", err)
			}
			var got []string
			for _, c := range certs {
				if c.Err != nil {
					got = append(got, "broken")
					continue
				}
				got = append(got, fx.name(sha256Hex(c.Cert.Raw)))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("parseBag = %v, want %v", got, tt.want)
			}
		})
	}
}

// A hostile value costs time linear in its size: many indefinite-length
// elements side by side, and nesting at the limit repeated.
func TestParseBagBounded(t *testing.T) {
	var flat []byte
	for len(flat) < maxValueSize-64 {
		flat = append(flat, 0x30, 0x80, 0, 0)
	}
	deep := bytes.Repeat(nested(maxBERDepth-4), maxValueSize/(4*maxBERDepth))
	for _, tt := range []struct {
		name  string
		inner []byte
	}{{"flat", flat}, {"deep", deep}} {
		t.Run(tt.name, func(t *testing.T) {
			data := tlv(tagSequence, true, append([]byte{tagOID, byte(len(oidSignedData))}, oidSignedData...), tlv(tagContext0, true, tlv(tagSequence, true, tt.inner)))
			if len(data) > maxValueSize {
				data = data[:maxValueSize]
			}
			start := time.Now()
			_, _ = parseBag(data)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("parseBag of %d bytes took %v", len(data), d)
			}
		})
	}
}
