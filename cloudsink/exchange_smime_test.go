package cloudsink

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// The trusted-CA store through the sink against the emulator: unset,
// set, read back as the same certificates, an administrator's Windows
// export read through its properties.
func TestExchangeSmimeIssuingCAs(t *testing.T) {
	env := startExchange(t, nil, ExchangeConfig{})
	ctx := context.Background()
	cas := sstCAs(t)

	got, err := env.x.SmimeIssuingCAs(ctx)
	if err != nil || got != nil {
		t.Fatalf("unset store: %d certificates, %v; want none", len(got), err)
	}
	sst, err := SmimeStore(cas, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.x.SetSmimeIssuingCAs(ctx, sst); err != nil {
		t.Fatal(err)
	}
	if string(env.exo.SmimeIssuingCA()) != string(sst) {
		t.Error("Exchange does not hold the store byte for byte")
	}
	got, err = env.x.SmimeIssuingCAs(ctx)
	if err != nil || !SameCertificates(got, [][]byte{cas[0].Raw, cas[1].Raw}) {
		t.Fatalf("read back %d certificates, %v; want the 2 CAs", len(got), err)
	}

	env.exo.SetSmimeIssuingCA(windowsSST(cas[1]))
	got, err = env.x.SmimeIssuingCAs(ctx)
	if err != nil || !SameCertificates(got, [][]byte{cas[1].Raw}) {
		t.Fatalf("an exported store: %d certificates, %v; want the issuing CA", len(got), err)
	}

	if err := env.x.SetSmimeIssuingCAs(ctx, []byte("not a store")); err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("a non-store was not refused before sending: %v", err)
	}
}

// The emulator refuses what Exchange refuses: other shapes of the
// byte[], a malformed store, an expired certificate, over 70,000 bytes.
func TestExchangeSmimeEmulatorRefuses(t *testing.T) {
	env := startExchange(t, nil, ExchangeConfig{MaxAttempts: 1})
	ctx := context.Background()
	cas := sstCAs(t)
	good := WriteSST([][]byte{cas[0].Raw})
	ca, err := pkitest.NewRootCA("expiring")
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "long gone", NotBefore: time.Now().AddDate(-3, 0, 0), NotAfter: time.Now().AddDate(-2, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	item := func(b []byte) any {
		return byteArrayItem{Type: odataByteArray, Data: base64.StdEncoding.EncodeToString(b)}
	}
	var big [][]byte
	for range 200 {
		big = append(big, cas[0].Raw)
	}
	for _, tt := range []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"plain base64", map[string]any{"SMIMECertificateIssuingCA": base64.StdEncoding.EncodeToString(good)}, "Cannot bind parameter"},
		{"a collection", map[string]any{"SMIMECertificateIssuingCA": []any{item(good)}, "SMIMECertificateIssuingCA@odata.type": odataByteArrayCollection}, "cannot be found"},
		{"item without its type", map[string]any{"SMIMECertificateIssuingCA": byteArrayItem{Data: base64.StdEncoding.EncodeToString(good)}}, "Cannot bind parameter"},
		{"malformed store", map[string]any{"SMIMECertificateIssuingCA": item(good[:len(good)-3])}, "cut short"},
		{"a PKCS#7, not a store", map[string]any{"SMIMECertificateIssuingCA": item(cas[0].Raw)}, "not a serialized certificate store"},
		{"expired certificate", map[string]any{"SMIMECertificateIssuingCA": item(WriteSST([][]byte{cas[0].Raw, old.Raw}))}, "has expired"},
		{"over 70,000 bytes", map[string]any{"SMIMECertificateIssuingCA": item(WriteSST(big))}, "maximum length is 70000"},
		{"an unknown parameter", map[string]any{"SMIMECertificateIssuingCAs": item(good)}, "cannot be found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.x.invoke(ctx, "Set-SmimeConfig", tt.params, "", "Set-SmimeConfig")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
	if env.exo.SmimeIssuingCA() != nil || env.exo.Writes() != 0 {
		t.Error("a refused Set-SmimeConfig changed the store")
	}
	if _, err := env.x.invoke(ctx, "Set-SmimeConfig", map[string]any{"SMIMECertificateIssuingCA": item(good)}, "", "Set-SmimeConfig"); err != nil {
		t.Fatalf("the module's shape was refused: %v", err)
	}
	if env.exo.Writes() != 1 {
		t.Errorf("the store was not written once (writes %d)", env.exo.Writes())
	}
}

func TestReadByteArray(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: ``, want: ""},
		{in: `null`, want: ""},
		{in: `"AAEC"`, want: "\x00\x01\x02"},
		{in: `"AAE"`, want: "\x00\x01"},
		{in: `{"@odata.type":"#Exchange.ByteArrayType","Data":"AAEC"}`, want: "\x00\x01\x02"},
		{in: `{"Data":"AAEC"}`, want: "\x00\x01\x02"},
		{in: `[0,1,2]`, want: "\x00\x01\x02"},
		{in: `[0,1,256]`, wantErr: true},
		{in: `{"@odata.type":"#String","Data":"AAEC"}`, wantErr: true},
		{in: `"%%%"`, wantErr: true},
		{in: `true`, wantErr: true},
	} {
		got, err := readByteArray([]byte(tt.in))
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("readByteArray(%s) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
