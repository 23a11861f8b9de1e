package cloudsink

import (
	"encoding/json"
	"slices"
	"testing"
)

// The byte[][] wire format: what certsync sends, byte for byte, and both
// shapes it reads.
func TestByteArrayParam(t *testing.T) {
	for _, tt := range []struct {
		name   string
		values []string
		want   string
	}{
		{"two values", []string{"AAE=", "AgM="},
			`{"UserCertificate":[{"@odata.type":"#Exchange.ByteArrayType","Data":"AAE="},{"@odata.type":"#Exchange.ByteArrayType","Data":"AgM="}],"UserCertificate@odata.type":"#Collection(Exchange.ByteArrayType)"}`},
		{"clear", nil, `{"UserCertificate":null}`},
		{"clear, empty", []string{}, `{"UserCertificate":null}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(byteArrayParam("UserCertificate", tt.values))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestByteArraysRead(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []string
		wantErr  bool
	}{
		{name: "strings", in: `["AAE=","AgM="]`, want: []string{"AAE=", "AgM="}},
		{name: "module items", in: `[{"@odata.type":"#Exchange.ByteArrayType","Data":"AAE="},{"Data":"AgM="}]`, want: []string{"AAE=", "AgM="}},
		{name: "mixed", in: `["AAE=",{"Data":"AgM="}]`, want: []string{"AAE=", "AgM="}},
		{name: "empty", in: `[]`, want: []string{}},
		{name: "another type", in: `[{"@odata.type":"#Exchange.GenericHashTable","Data":"AAE="}]`, wantErr: true},
		{name: "no data", in: `[{"@odata.type":"#Exchange.ByteArrayType"}]`, wantErr: true},
		{name: "a number", in: `[1]`, wantErr: true},
		{name: "not an array", in: `"AAE="`, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got byteArrays
			err := json.Unmarshal([]byte(tt.in), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzByteArrays: whatever Exchange answers, reading never panics, and
// what reads back from certsync's own encoding is what was encoded.
func FuzzByteArrays(f *testing.F) {
	for _, s := range []string{`["AAE="]`, `[{"@odata.type":"#Exchange.ByteArrayType","Data":"AAE="}]`, `[{"Data":""}]`, `[null]`, `{}`, `[[]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got byteArrays
		if json.Unmarshal(raw, &got) != nil {
			return
		}
		enc, err := json.Marshal(byteArrayParam("P", got)["P"])
		if err != nil {
			t.Fatal(err)
		}
		var back byteArrays
		if len(got) > 0 {
			if err := json.Unmarshal(enc, &back); err != nil || !slices.Equal(back, got) {
				t.Fatalf("round trip of %q: %q, %v", got, back, err)
			}
		}
	})
}
