package exotest

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// MaxSmimeStore is the largest trusted-CA store Set-SmimeConfig takes
// (the "about 70,000 bytes"; exchange_notes.md says what is
// evidenced).
const MaxSmimeStore = 70000

// SmimeIssuingCA is the tenant's trusted-CA store (Get-SmimeConfig's
// SMIMECertificateIssuingCA) as last set; nil when not set.
func (s *Server) SmimeIssuingCA() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.smimeStore)
}

// SetSmimeIssuingCA sets the store as an administrator would (not
// checked, not counted as a write).
func (s *Server) SetSmimeIssuingCA(sst []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.smimeStore = bytes.Clone(sst)
}

// getSmimeConfig is Get-SmimeConfig: the organization's one S/MIME
// configuration, its store as a base64 string (how the admin API is seen
// to give byte arrays in answers), null when not set.
func (s *Server) getSmimeConfig(tenant string, params map[string]json.RawMessage) response {
	if resp, ok := checkParams(params, "identity"); !ok {
		return resp
	}
	s.mu.Lock()
	var store any
	if s.smimeStore != nil {
		store = base64.StdEncoding.EncodeToString(s.smimeStore)
	}
	s.mu.Unlock()
	cfg := map[string]any{
		"Identity":                               "SmimeConfig",
		"Name":                                   "SmimeConfig",
		"OWAAllowUserChoiceOfSigningCertificate": false,
		"OWAAlwaysEncrypt":                       false,
		"OWAAlwaysSign":                          false,
		"OWACheckCRLOnSend":                      false,
		"SMIMECertificateIssuingCA":              store,
		"SMIMECertificatesExpiryDate":            nil,
		"SMIMEExpiredCertificateThumbprint":      nil,
	}
	return jsonResponse(http.StatusOK, s.envelope(tenant, []any{cfg}, nil, ""))
}

// setSmimeConfig is Set-SmimeConfig -SMIMECertificateIssuingCA: the
// byte[] must come as the module sends one, {"@odata.type":
// "#Exchange.ByteArrayType","Data":"<base64>"} (null clears); the store
// must be a serialized certificate store of X.509 certificates, none
// expired ("Each certificate is checked, and if any certificates are
// expired, the operation will fail", Set-SmimeConfig's reference), at
// most MaxSmimeStore bytes.
func (s *Server) setSmimeConfig(params map[string]json.RawMessage) response {
	if resp, ok := checkParams(params, "identity", "confirm", "smimecertificateissuingca"); !ok {
		return resp
	}
	raw, ok := params["smimecertificateissuingca"]
	if !ok {
		return jsonResponse(http.StatusOK, s.envelope(s.TenantID(), []any{}, []string{
			"The command completed successfully but no settings of 'SmimeConfig' have been modified.",
		}, ""))
	}
	var store []byte
	if string(bytes.TrimSpace(raw)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var item struct {
			Type *string `json:"@odata.type"`
			Data *string `json:"Data"`
		}
		if err := dec.Decode(&item); err != nil || item.Type == nil || *item.Type != byteArrayType || item.Data == nil {
			return cmdletError(typeParameter, "Cannot bind parameter 'SMIMECertificateIssuingCA'. Cannot convert the value to type \"System.Byte[]\": send {\"@odata.type\":\"%s\",\"Data\":\"<base64>\"}.", byteArrayType)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(*item.Data)
		if err != nil || len(b) == 0 {
			return cmdletError(typeParameter, "Cannot bind parameter 'SMIMECertificateIssuingCA'. The value is not a non-empty base64 string.")
		}
		if len(b) > MaxSmimeStore {
			return cmdletError(typeInvalidValue, "The length of the property is too long. The maximum length is %d and the length of the value provided is %d.", MaxSmimeStore, len(b))
		}
		if err := checkStore(b, time.Now()); err != nil {
			return cmdletError(typeInvalidValue, "The SMIMECertificateIssuingCA value is not valid: %v", err)
		}
		store = b
	}
	s.mu.Lock()
	s.smimeStore = store
	s.writes++
	s.mu.Unlock()
	resp := jsonResponse(http.StatusOK, s.envelope(s.TenantID(), []any{}, nil, ""))
	resp.isWrite = true
	return resp
}

// checkStore reads a serialized certificate store ([MS-OSHARED]
// 2.3.9.1: "\0\0\0\0CERT", entries of {id, encoding, length, value}
// where id 0x20 is a certificate and any other id up to 0xFFFF one of
// its properties, then twelve zero bytes) and checks every certificate.
func checkStore(b []byte, now time.Time) error {
	if !bytes.HasPrefix(b, []byte("\x00\x00\x00\x00CERT")) {
		return errors.New("it is not a serialized certificate store (no \"CERT\" header)")
	}
	rest := b[8:]
	certs, pending := 0, false
	for {
		if len(rest) < 12 {
			return errors.New("the store is cut short")
		}
		id, enc, n := binary.LittleEndian.Uint32(rest), binary.LittleEndian.Uint32(rest[4:]), binary.LittleEndian.Uint32(rest[8:])
		rest = rest[12:]
		if id == 0 {
			if enc != 0 || n != 0 || len(rest) != 0 || pending {
				return errors.New("the store's end is malformed")
			}
			return nil
		}
		if id > 0xFFFF || uint64(n) > uint64(len(rest)) {
			return fmt.Errorf("entry %#x is malformed", id)
		}
		value := rest[:n]
		rest = rest[n:]
		pending = id != 0x20
		if id != 0x20 {
			continue
		}
		certs++
		c, err := x509.ParseCertificate(value)
		if err != nil || enc != 1 {
			return fmt.Errorf("certificate %d is not an X.509 certificate", certs)
		}
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			return fmt.Errorf("the certificate '%s' (thumbprint %s) has expired or is not yet valid", c.Subject, thumbprint(c.Raw))
		}
	}
}

// thumbprint is a certificate's SHA-1 as Windows shows it.
func thumbprint(der []byte) string {
	sum := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
