package ldaptest

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// DenyRead adds a deny ACE to the security descriptor of each of dns:
// the account named by sAMAccountName may no longer read attrs (LDAP
// display names) there, as an admin would do with "Deny Read
// userCertificate" in the Security tab. Other accounts keep their rights.
// (samba-tool writes the database directly, which does not propagate an
// inherited ACE to existing children: each object gets its own.)
func (s *Samba) DenyRead(t testing.TB, sAMAccountName string, attrs []string, dns ...string) {
	t.Helper()
	conn := s.Admin(t)
	sid, err := s.accountSID(conn, sAMAccountName)
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	var sddl strings.Builder
	for _, a := range attrs {
		g, err := s.schemaIDGUID(conn, a)
		if err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		fmt.Fprintf(&sddl, "(OD;;RP;%s;;%s)", g, sid)
	}
	samDB := filepath.Join(filepath.Dir(filepath.Dir(s.smbConf)), "private", "sam.ldb")
	for _, dn := range dns {
		cmd := exec.Command(findTool("samba-tool"), "dsacl", "set", "-H", samDB, "-s", s.smbConf,
			"--objectdn="+dn, "--sddl="+sddl.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ldaptest: samba-tool dsacl set on %s (%s): %v\n%s", dn, sddl.String(), err, tail(out))
		}
	}
}

// accountSID is the objectSid of the account, as S-1-5-....
func (s *Samba) accountSID(conn *ldap.Conn, name string) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		fmt.Sprintf("(sAMAccountName=%s)", ldap.EscapeFilter(name)), []string{"objectSid"}, nil))
	if err != nil || len(res.Entries) != 1 {
		return "", fmt.Errorf("find account %s: %v (%d entries)", name, err, len(res.Entries))
	}
	b := res.Entries[0].GetRawAttributeValue("objectSid")
	if len(b) < 8 || len(b) != 8+4*int(b[1]) {
		return "", fmt.Errorf("account %s: objectSid of %d bytes", name, len(b))
	}
	var auth uint64
	for _, c := range b[2:8] {
		auth = auth<<8 | uint64(c)
	}
	out := fmt.Sprintf("S-%d-%d", b[0], auth)
	for i := range int(b[1]) {
		out += fmt.Sprintf("-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return out, nil
}

// schemaIDGUID is the attribute's schemaIDGUID as a GUID string.
func (s *Samba) schemaIDGUID(conn *ldap.Conn, attr string) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest("CN=Schema,"+s.ConfigDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 1, 0, false,
		fmt.Sprintf("(lDAPDisplayName=%s)", ldap.EscapeFilter(attr)), []string{"schemaIDGUID"}, nil))
	if err != nil || len(res.Entries) != 1 {
		return "", fmt.Errorf("schema attribute %s: %v", attr, err)
	}
	b := res.Entries[0].GetRawAttributeValue("schemaIDGUID")
	if len(b) != 16 {
		return "", fmt.Errorf("schema attribute %s: schemaIDGUID of %d bytes", attr, len(b))
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16]), nil
}
