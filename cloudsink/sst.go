package cloudsink

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Microsoft serialized certificate store (.sst), the format of
// Exchange's trusted-CA collection (Set-SmimeConfig
// -SMIMECertificateIssuingCA). Layout, [MS-OSHARED] 2.3.9.1 and
// 2.3.2.5.1–4 (see exchange_notes.md, "The trusted-CA collection"), all
// integers little-endian:
//
//	version 0x00000000, fileType 0x54524543 ("CERT")
//	per certificate: property entries {id, encodingType, length, value}
//	  (id 1..0xFFFF, not 0x20), then the certificate entry
//	  {0x00000020, encodingType (X509_ASN_ENCODING), length, DER}
//	end marker: id 0x00000000 and 8 zero bytes
const (
	sstVersion      = 0x00000000
	sstFileType     = 0x54524543 // "CERT"
	sstCertificate  = 0x00000020 // CERT_CERT_PROP_ID, FILE_ELEMENT_CERT_TYPE
	sstX509Encoding = 0x00000001 // X509_ASN_ENCODING
	sstMaxPropID    = 0x0000FFFF
	sstEntryHeader  = 12
)

// WriteSST serializes DER certificates, in the order given, as a store
// holding each with no properties: what Exchange needs to build chains,
// and nothing a Windows machine would add about its own use of them.
func WriteSST(certs [][]byte) []byte {
	n := 8 + sstEntryHeader
	for _, c := range certs {
		n += sstEntryHeader + len(c)
	}
	out := make([]byte, 0, n)
	out = binary.LittleEndian.AppendUint32(out, sstVersion)
	out = binary.LittleEndian.AppendUint32(out, sstFileType)
	for _, c := range certs {
		out = binary.LittleEndian.AppendUint32(out, sstCertificate)
		out = binary.LittleEndian.AppendUint32(out, sstX509Encoding)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(c)))
		out = append(out, c...)
	}
	// The end marker: id 0, then eight zero bytes.
	return append(out, make([]byte, sstEntryHeader)...)
}

// ErrNotSST is returned (wrapped) by ParseSST for bytes that are not a
// serialized certificate store.
var ErrNotSST = errors.New("not a serialized certificate store (.sst)")

// ParseSST reads a serialized certificate store and returns the bytes of
// each certificate entry, in store order. Property entries (a Windows
// export carries hashes, key identifiers, friendly names) are skipped.
// The store must end with its end marker and nothing after it; a
// property entry must be followed by its certificate. The certificates'
// bytes are not parsed here.
func ParseSST(b []byte) ([][]byte, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("cloudsink: %w: %d bytes, shorter than its header", ErrNotSST, len(b))
	}
	if v, ft := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]); v != sstVersion || ft != sstFileType {
		return nil, fmt.Errorf("cloudsink: %w: header %08x %08x, want %08x %08x (\"CERT\")", ErrNotSST, v, ft, sstVersion, sstFileType)
	}
	var certs [][]byte
	properties := 0 // property entries waiting for their certificate
	for off := 8; ; {
		if len(b)-off < sstEntryHeader {
			return nil, fmt.Errorf("cloudsink: %w: ends at byte %d without its end marker", ErrNotSST, len(b))
		}
		id := binary.LittleEndian.Uint32(b[off:])
		enc := binary.LittleEndian.Uint32(b[off+4:])
		length := binary.LittleEndian.Uint32(b[off+8:])
		if id == 0 {
			switch {
			case enc != 0 || length != 0:
				return nil, fmt.Errorf("cloudsink: %w: the end marker at byte %d is not all zeros", ErrNotSST, off)
			case properties > 0:
				return nil, fmt.Errorf("cloudsink: %w: %d property entries before the end marker belong to no certificate", ErrNotSST, properties)
			case off+sstEntryHeader != len(b):
				return nil, fmt.Errorf("cloudsink: %w: %d bytes after the end marker", ErrNotSST, len(b)-off-sstEntryHeader)
			}
			return certs, nil
		}
		if id > sstMaxPropID {
			return nil, fmt.Errorf("cloudsink: %w: entry at byte %d has id %#x, above the largest property id %#x", ErrNotSST, off, id, sstMaxPropID)
		}
		start := off + sstEntryHeader
		if uint64(length) > uint64(len(b)-start) {
			return nil, fmt.Errorf("cloudsink: %w: entry at byte %d claims %d bytes, %d are left", ErrNotSST, off, length, len(b)-start)
		}
		value := b[start : start+int(length)]
		off = start + int(length)
		if id != sstCertificate {
			properties++
			continue
		}
		if enc&sstX509Encoding == 0 {
			return nil, fmt.Errorf("cloudsink: %w: certificate %d has encoding type %#x, not X509_ASN_ENCODING", ErrNotSST, len(certs)+1, enc)
		}
		if length == 0 {
			return nil, fmt.Errorf("cloudsink: %w: certificate %d is empty", ErrNotSST, len(certs)+1)
		}
		certs = append(certs, value)
		properties = 0
	}
}
