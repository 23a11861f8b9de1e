package cloudsink

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SmimeStoreMax is the largest trusted-CA store certsync sends to
// Set-SmimeConfig: Exchange Online refuses larger ones (the issue's
// figure of about 70,000 bytes; see exchange_notes.md for what is and is
// not evidenced).
const SmimeStoreMax = 70000

// smimeIssuingCAParam is Set-SmimeConfig's parameter, and
// Get-SmimeConfig's property, holding the trusted-CA store.
const smimeIssuingCAParam = "SMIMECertificateIssuingCA"

// SmimeStore builds the trusted-CA store Exchange Online validates
// S/MIME certificates with (its "virtual certificate collection") from
// cas: each certificate once, in the order of its DER bytes so the same
// CAs always give the same store. Exchange refuses a store holding an
// expired certificate, or one too large; SmimeStore refuses them first,
// naming the certificate or the size.
func SmimeStore(cas []*x509.Certificate, now time.Time) ([]byte, error) {
	if len(cas) == 0 {
		return nil, fmt.Errorf("cloudsink: exchange trusted-CA store: no CA certificates")
	}
	ders := make([][]byte, 0, len(cas))
	for _, c := range cas {
		if now.After(c.NotAfter) {
			return nil, fmt.Errorf("cloudsink: exchange trusted-CA store: CA certificate %q (serial %s) expired on %s, and Set-SmimeConfig refuses a store with an expired certificate: remove it from policy.issuingCAFile",
				c.Subject, strings.ToUpper(c.SerialNumber.Text(16)), c.NotAfter.UTC().Format(time.DateOnly))
		}
		ders = append(ders, c.Raw)
	}
	slices.SortFunc(ders, bytes.Compare)
	ders = slices.CompactFunc(ders, bytes.Equal)
	sst := WriteSST(ders)
	if len(sst) > SmimeStoreMax {
		return nil, fmt.Errorf("cloudsink: exchange trusted-CA store: %d certificates make %d bytes, more than the %d Exchange Online accepts: keep only the roots and intermediates that issue S/MIME certificates in policy.issuingCAFile",
			len(ders), len(sst), SmimeStoreMax)
	}
	return sst, nil
}

// SameCertificates says whether two lists hold the same certificates,
// whatever their order or repetitions.
func SameCertificates(a, b [][]byte) bool {
	set := func(l [][]byte) []string {
		s := make([]string, len(l))
		for i, c := range l {
			s[i] = string(c)
		}
		slices.Sort(s)
		return slices.Compact(s)
	}
	return slices.Equal(set(a), set(b))
}

// SmimeIssuingCAs reads the tenant's trusted-CA store (Get-SmimeConfig's
// SMIMECertificateIssuingCA) and returns the DER of each certificate in
// it; none when it is not set.
func (x *Exchange) SmimeIssuingCAs(ctx context.Context) ([][]byte, error) {
	ans, err := x.invoke(ctx, "Get-SmimeConfig", map[string]any{}, "", "Get-SmimeConfig")
	if err != nil {
		return nil, err
	}
	if len(ans.Value) != 1 {
		return nil, fmt.Errorf("cloudsink: exchange: Get-SmimeConfig answered %d objects, want the organization's one", len(ans.Value))
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(ans.Value[0], &cfg); err != nil {
		return nil, fmt.Errorf("cloudsink: exchange: Get-SmimeConfig: the answer is not an object: %w", err)
	}
	store, err := readByteArray(cfg[smimeIssuingCAParam])
	if err != nil {
		return nil, fmt.Errorf("cloudsink: exchange: Get-SmimeConfig %s: %w", smimeIssuingCAParam, err)
	}
	if len(store) == 0 {
		return nil, nil
	}
	certs, err := ParseSST(store)
	if err != nil {
		return nil, fmt.Errorf("cloudsink: exchange: Get-SmimeConfig %s: %w", smimeIssuingCAParam, err)
	}
	return certs, nil
}

// SetSmimeIssuingCAs replaces the tenant's trusted-CA store with sst
// (from SmimeStore) by Set-SmimeConfig -SMIMECertificateIssuingCA, the
// byte[] sent as the module sends one: {"@odata.type":
// "#Exchange.ByteArrayType","Data":"<base64>"}. It refuses, unsent, what
// is not a store or is over SmimeStoreMax.
func (x *Exchange) SetSmimeIssuingCAs(ctx context.Context, sst []byte) error {
	if _, err := ParseSST(sst); err != nil {
		return fmt.Errorf("cloudsink: exchange: Set-SmimeConfig: not sent: %w", err)
	}
	if len(sst) > SmimeStoreMax {
		return fmt.Errorf("cloudsink: exchange: Set-SmimeConfig: not sent: the store is %d bytes, more than the %d Exchange Online accepts", len(sst), SmimeStoreMax)
	}
	params := map[string]any{smimeIssuingCAParam: byteArrayItem{Type: odataByteArray, Data: base64.StdEncoding.EncodeToString(sst)}}
	_, err := x.invoke(ctx, "Set-SmimeConfig", params, "", "Set-SmimeConfig -"+smimeIssuingCAParam)
	return err
}

// readByteArray reads a byte[] property in the shapes it may come in:
// absent or null (not set), a base64 string (how the captured answers
// give byte[][] items), {"Data":"<base64>"} with an optional
// "#Exchange.ByteArrayType" (what the module sends), or an array of
// numbers (PowerShell's ConvertTo-Json of a byte[]).
func readByteArray(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return decodeAnyBase64(s)
	}
	var obj byteArrayItem
	if json.Unmarshal(raw, &obj) == nil && obj.Data != "" {
		if obj.Type != "" && obj.Type != odataByteArray {
			return nil, fmt.Errorf("typed %q, not %s", obj.Type, odataByteArray)
		}
		return decodeAnyBase64(obj.Data)
	}
	var nums []int
	if err := json.Unmarshal(raw, &nums); err != nil {
		return nil, fmt.Errorf("neither a base64 string, {\"Data\":\"<base64>\"} nor an array of bytes")
	}
	out := make([]byte, len(nums))
	for i, n := range nums {
		if n < 0 || n > 255 {
			return nil, fmt.Errorf("item %d of the byte array is %d, not a byte", i+1, n)
		}
		out[i] = byte(n)
	}
	return out, nil
}

// decodeAnyBase64 reads base64 in any flavour (normalizeCertValue's).
func decodeAnyBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(normalizeCertValue(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	return b, nil
}
