package ldapsrc

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// attrObjectSID is Active Directory's security identifier of an account:
// binary on the wire, "S-1-5-21-…" in certificates' SID extension and in
// every Windows tool.
const attrObjectSID = "objectSid"

// maxSubAuthorities is the most sub-authorities a SID has ([MS-DTYP]
// 2.4.2.2, SID_MAX_SUB_AUTHORITIES).
const maxSubAuthorities = 15

// FormatSID writes a binary SID ([MS-DTYP] 2.4.2.2: revision, the count of
// sub-authorities, a 6-byte big-endian identifier authority, then each
// sub-authority as 4 little-endian bytes) as its string form ("S-1-5-21-…",
// [MS-DTYP] 2.4.2.1). Anything else is an error naming what is wrong.
func FormatSID(b []byte) (string, error) {
	if len(b) < 8 {
		return "", fmt.Errorf("ldapsrc: SID of %d bytes, shorter than its 8-byte header", len(b))
	}
	if b[0] != 1 {
		return "", fmt.Errorf("ldapsrc: SID revision %d, want 1", b[0])
	}
	n := int(b[1])
	if n > maxSubAuthorities {
		return "", fmt.Errorf("ldapsrc: SID with %d sub-authorities, more than %d", n, maxSubAuthorities)
	}
	if len(b) != 8+4*n {
		return "", fmt.Errorf("ldapsrc: SID of %d bytes, want %d for %d sub-authorities", len(b), 8+4*n, n)
	}
	var auth uint64
	for _, c := range b[2:8] {
		auth = auth<<8 | uint64(c)
	}
	var sb strings.Builder
	sb.WriteString("S-1-")
	// [MS-DTYP]: authorities of 2^32 and above are written in hex.
	if auth >= 1<<32 {
		fmt.Fprintf(&sb, "0x%012X", auth)
	} else {
		sb.WriteString(strconv.FormatUint(auth, 10))
	}
	for i := 0; i < n; i++ {
		sb.WriteByte('-')
		sb.WriteString(strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[8+4*i:])), 10))
	}
	return sb.String(), nil
}
