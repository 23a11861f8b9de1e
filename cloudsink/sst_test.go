package cloudsink

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// sstEntry is one {id, encodingType, length, value} entry.
func sstEntry(id, enc uint32, value []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, id)
	out = binary.LittleEndian.AppendUint32(out, enc)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(value)))
	return append(out, value...)
}

// windowsSST is a store shaped as Export-Certificate -Type SST writes
// one: before each certificate, property entries (the SHA-1 hash, id 3;
// the key identifier, id 0x14; a friendly name, id 0x0B, UTF-16 with its
// terminator), then the certificate entry with X509_ASN_ENCODING, then
// the end marker.
func windowsSST(certs ...*x509.Certificate) []byte {
	out := []byte{0, 0, 0, 0, 'C', 'E', 'R', 'T'}
	for _, c := range certs {
		sum := sha1.Sum(c.Raw)
		out = append(out, sstEntry(0x03, 1, sum[:])...)
		out = append(out, sstEntry(0x14, 1, c.SubjectKeyId)...)
		out = append(out, sstEntry(0x0B, 1, []byte{'C', 0, 'A', 0, 0, 0})...)
		out = append(out, sstEntry(0x20, 1, c.Raw)...)
	}
	return append(out, make([]byte, 12)...)
}

func sstCAs(t testing.TB) []*x509.Certificate {
	t.Helper()
	root, err := pkitest.NewRootCA("certsync sst root")
	if err != nil {
		t.Fatal(err)
	}
	mid, err := root.NewIntermediate("certsync sst issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{root.Cert, mid.Cert}
}

func TestSSTRoundTrip(t *testing.T) {
	cas := sstCAs(t)
	ders := [][]byte{cas[0].Raw, cas[1].Raw}
	for _, tt := range []struct {
		name  string
		store []byte
		want  [][]byte
	}{
		{"written by certsync", WriteSST(ders), ders},
		{"exported by Windows, with properties", windowsSST(cas...), ders},
		{"empty store", WriteSST(nil), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSST(tt.store)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, bytes.Equal) {
				t.Fatalf("parsed %d certificates, want %d, or their bytes differ", len(got), len(tt.want))
			}
			for _, der := range got {
				if _, err := x509.ParseCertificate(der); err != nil {
					t.Errorf("a parsed certificate does not parse: %v", err)
				}
			}
			// Writing what was read and reading it again is stable.
			again, err := ParseSST(WriteSST(got))
			if err != nil || !slices.EqualFunc(again, got, bytes.Equal) {
				t.Errorf("write-then-parse changed the certificates (err %v)", err)
			}
		})
	}
	// The layout itself, byte for byte.
	w := WriteSST([][]byte{{0xAA, 0xBB}})
	want := []byte{0, 0, 0, 0, 0x43, 0x45, 0x52, 0x54, 0x20, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0xAA, 0xBB, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(w, want) {
		t.Errorf("WriteSST = % x\nwant       % x", w, want)
	}
}

func TestParseSSTRefuses(t *testing.T) {
	cert := sstCAs(t)[0].Raw
	good := WriteSST([][]byte{cert})
	end := make([]byte, 12)
	head := []byte{0, 0, 0, 0, 'C', 'E', 'R', 'T'}
	for _, tt := range []struct {
		name, in, want string
	}{
		{"short", "\x00\x00", "shorter than its header"},
		{"PKCS#7, not a store", string([]byte{0x30, 0x82, 0x01, 0x00, 0x06, 0x09, 0x2a, 0x86}), "header"},
		{"no end marker", string(good[:len(good)-12]), "without its end marker"},
		{"cut certificate", string(good[:40]), "claims"},
		{"bytes after the end", string(good) + "x", "after the end marker"},
		{"end marker not zero", string(slices.Concat(head, []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})), "not all zeros"},
		{"property without its certificate", string(slices.Concat(head, sstEntry(3, 1, make([]byte, 20)), end)), "belong to no certificate"},
		{"id above 0xFFFF", string(slices.Concat(head, sstEntry(0x10000, 1, nil), end)), "above the largest property id"},
		{"certificate not X.509 encoded", string(slices.Concat(head, sstEntry(0x20, 0x10000, cert), end)), "not X509_ASN_ENCODING"},
		{"empty certificate", string(slices.Concat(head, sstEntry(0x20, 1, nil), end)), "is empty"},
		{"length overflows", string(slices.Concat(head, binary.LittleEndian.AppendUint32([]byte{0x20, 0, 0, 0, 1, 0, 0, 0}, 0xFFFFFFFF), end)), "claims"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSST([]byte(tt.in))
			if !errors.Is(err, ErrNotSST) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSST = %v, want ErrNotSST saying %q", err, tt.want)
			}
		})
	}
}

func TestSmimeStore(t *testing.T) {
	cas := sstCAs(t)
	now := time.Now()
	a, err := SmimeStore([]*x509.Certificate{cas[1], cas[0], cas[1]}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SmimeStore([]*x509.Certificate{cas[0], cas[1]}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the same CAs in another order (or repeated) make another store")
	}
	got, _ := ParseSST(a)
	if len(got) != 2 || !SameCertificates(got, [][]byte{cas[0].Raw, cas[1].Raw}) {
		t.Errorf("the store holds %d certificates, want the 2 CAs once each", len(got))
	}

	if _, err := SmimeStore(cas, cas[0].NotAfter.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "certsync sst") {
		t.Errorf("a store with an expired CA: %v, want a refusal naming it", err)
	}
	var many []*x509.Certificate
	for len(many) < 200 {
		many = append(many, sstCAs(t)...)
	}
	if _, err := SmimeStore(many, now); err == nil || !strings.Contains(err.Error(), "70000") {
		t.Errorf("a store over 70,000 bytes: %v, want a refusal naming the limit", err)
	}
	if _, err := SmimeStore(nil, now); err == nil {
		t.Error("an empty store was built")
	}
}

func TestSameCertificates(t *testing.T) {
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	for _, tt := range []struct {
		x, y [][]byte
		want bool
	}{
		{[][]byte{a, b}, [][]byte{b, a}, true},
		{[][]byte{a, b, b}, [][]byte{a, b}, true},
		{[][]byte{a, b}, [][]byte{a, c}, false},
		{[][]byte{a}, [][]byte{a, b}, false},
		{nil, [][]byte{}, true},
	} {
		if got := SameCertificates(tt.x, tt.y); got != tt.want {
			t.Errorf("SameCertificates(%q, %q) = %v, want %v", tt.x, tt.y, got, tt.want)
		}
	}
}

// FuzzParseSST: no input panics or reads past its end; whatever parses
// writes back to a store that parses to the same certificates.
func FuzzParseSST(f *testing.F) {
	cas := sstCAs(f)
	f.Add(WriteSST([][]byte{cas[0].Raw, cas[1].Raw}))
	f.Add(windowsSST(cas...))
	f.Add(WriteSST(nil))
	f.Add([]byte{0, 0, 0, 0, 'C', 'E', 'R', 'T', 3, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseSST(b)
		if err != nil {
			if !errors.Is(err, ErrNotSST) {
				t.Fatalf("error not ErrNotSST: %v", err)
			}
			return
		}
		n := 0
		for _, c := range certs {
			if len(c) == 0 {
				t.Fatal("an empty certificate was returned")
			}
			n += len(c)
		}
		if n > len(b) {
			t.Fatalf("%d certificate bytes from %d input bytes", n, len(b))
		}
		again, err := ParseSST(WriteSST(certs))
		if err != nil || !slices.EqualFunc(again, certs, bytes.Equal) {
			t.Fatalf("round trip changed the certificates (err %v)", err)
		}
	})
}
