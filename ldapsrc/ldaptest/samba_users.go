package ldaptest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

// SambaUser is one Active Directory user for Samba.AddUser.
type SambaUser struct {
	// Name is the sAMAccountName and the CN: CN=Name,OU=People,<base>.
	Name string
	// UPN is the userPrincipalName; default Name@<realm in lower case>.
	UPN  string
	Mail string // left out when empty
	// UserCertificates are userCertificate values (DER, as ADCS writes).
	UserCertificates [][]byte
	// SMIMECertificates are userSMIMECertificate values (PKCS#7 blobs as
	// Outlook writes them, or raw DER).
	SMIMECertificates [][]byte
	// Password, when set, enables the account with it, so that it can get
	// Kerberos tickets (ExportKeytab then exports usable keys). Without
	// one, AD creates the account disabled, which reading does not mind.
	// Setting passwords is slow: leave it empty for bulk data.
	Password string
	// Attributes are further attributes, e.g. employeeType or department.
	Attributes map[string][]string
}

// SambaAdded is where AddUsers put a user and its objectGUID.
type SambaAdded struct {
	DN   string
	GUID []byte // objectGUID, 16 bytes as AD stores them
}

// sambaAddWorkers is how many adds are in flight on the one connection:
// enough to hide the round trips, few enough for samba's single process.
const sambaAddWorkers = 8

// UserDN is the DN AddUser gives u.
func (s *Samba) UserDN(u SambaUser) string {
	return "CN=" + ldap.EscapeDN(u.Name) + "," + s.PeopleDN
}

// AddUser creates u under OU=People (created on first use) and returns its
// DN and objectGUID.
func (s *Samba) AddUser(t testing.TB, u SambaUser) (dn string, guid []byte) {
	t.Helper()
	added := s.AddUsers(t, []SambaUser{u})
	return added[0].DN, added[0].GUID
}

// AddUsers creates users over one connection, several adds in flight, and
// returns their DNs and objectGUIDs in the order given. It is the way to
// seed thousands of users.
func (s *Samba) AddUsers(t testing.TB, users []SambaUser) []SambaAdded {
	t.Helper()
	conn, err := s.dialAdmin()
	if err != nil {
		t.Fatalf("ldaptest: samba admin connection: %v", err)
	}
	defer conn.Close()
	if err := s.ensurePeople(conn); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	reqs := make([]*ldap.AddRequest, len(users))
	for i, u := range users {
		if reqs[i], err = s.addRequest(u); err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
	}
	errs := make([]error, len(users))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(sambaAddWorkers, len(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := conn.Add(reqs[i]); err != nil {
					errs[i] = fmt.Errorf("add %s: %w", reqs[i].DN, err)
				}
			}
		}()
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}

	guids, err := s.guids(conn, len(users))
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	out := make([]SambaAdded, len(users))
	for i, r := range reqs {
		g, ok := guids[strings.ToLower(r.DN)]
		if !ok {
			t.Fatalf("ldaptest: %s added but not found under %s", r.DN, s.PeopleDN)
		}
		out[i] = SambaAdded{DN: r.DN, GUID: g}
	}
	return out
}

func (s *Samba) addRequest(u SambaUser) (*ldap.AddRequest, error) {
	if u.Name == "" {
		return nil, fmt.Errorf("samba user without a Name")
	}
	upn := u.UPN
	if upn == "" {
		upn = u.Name + "@" + strings.ToLower(s.Realm)
	}
	req := ldap.NewAddRequest(s.UserDN(u), nil)
	req.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	req.Attribute("sAMAccountName", []string{u.Name})
	req.Attribute("userPrincipalName", []string{upn})
	if u.Mail != "" {
		req.Attribute("mail", []string{u.Mail})
	}
	if len(u.UserCertificates) > 0 {
		req.Attribute("userCertificate", bytesToStrings(u.UserCertificates))
	}
	if len(u.SMIMECertificates) > 0 {
		req.Attribute("userSMIMECertificate", bytesToStrings(u.SMIMECertificates))
	}
	if u.Password != "" {
		req.Attribute("unicodePwd", []string{unicodePwd(u.Password)})
		req.Attribute("userAccountControl", []string{"512"}) // a normal, enabled account
	}
	names := make([]string, 0, len(u.Attributes))
	for n := range u.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		req.Attribute(n, u.Attributes[n])
	}
	return req, nil
}

// ensurePeople creates OU=People once per DC.
func (s *Samba) ensurePeople(conn *ldap.Conn) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	if s.peopleSet {
		return nil
	}
	req := ldap.NewAddRequest(s.PeopleDN, nil)
	req.Attribute("objectClass", []string{"top", "organizationalUnit"})
	req.Attribute("ou", []string{"People"})
	if err := conn.Add(req); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return fmt.Errorf("add %s: %w", s.PeopleDN, err)
	}
	s.peopleSet = true
	return nil
}

// guids maps the lower-cased DNs of the users under OU=People to their
// objectGUIDs: one paged search rather than one per user.
func (s *Samba) guids(conn *ldap.Conn, hint int) (map[string][]byte, error) {
	req := ldap.NewSearchRequest(s.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=user)", []string{"objectGUID"}, nil)
	var res *ldap.SearchResult
	var err error
	if hint == 1 {
		res, err = conn.Search(req)
	} else {
		res, err = conn.SearchWithPaging(req, 1000)
	}
	if err != nil {
		return nil, fmt.Errorf("search %s for objectGUIDs: %w", s.PeopleDN, err)
	}
	out := make(map[string][]byte, len(res.Entries))
	for _, e := range res.Entries {
		out[strings.ToLower(e.DN)] = e.GetRawAttributeValue("objectGUID")
	}
	return out, nil
}

// SetCertificates replaces attr (userCertificate or userSMIMECertificate)
// of dn with values; no values deletes the attribute.
func (s *Samba) SetCertificates(t testing.TB, dn, attr string, values [][]byte) {
	t.Helper()
	s.SetValues(t, dn, attr, bytesToStrings(values))
}

// DeleteUser deletes dn.
func (s *Samba) DeleteUser(t testing.TB, dn string) {
	t.Helper()
	conn, err := s.dialAdmin()
	if err != nil {
		t.Fatalf("ldaptest: samba admin connection: %v", err)
	}
	defer conn.Close()
	if err := conn.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("ldaptest: delete %s: %v", dn, err)
	}
}

func bytesToStrings(values [][]byte) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// unicodePwd encodes a password the way AD takes it: the quoted password
// in UTF-16LE.
func unicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 0, 2*len(u))
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return string(b)
}

// Values reads attr of dn as strings (as the admin sees them).
func (s *Samba) Values(t testing.TB, dn, attr string) []string {
	t.Helper()
	return s.readEntry(t, dn, attr).GetAttributeValues(attr)
}

// RawValue reads the first value of attr of dn as bytes (objectSid, ...).
func (s *Samba) RawValue(t testing.TB, dn, attr string) []byte {
	t.Helper()
	return s.readEntry(t, dn, attr).GetRawAttributeValue(attr)
}

func (s *Samba) readEntry(t testing.TB, dn, attr string) *ldap.Entry {
	t.Helper()
	conn, err := s.dialAdmin()
	if err != nil {
		t.Fatalf("ldaptest: samba admin connection: %v", err)
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("ldaptest: read %s of %s: %v", attr, dn, err)
	}
	return res.Entries[0]
}

// SetValues replaces attr of dn with string values (an admin's
// altSecurityIdentities, ...); no values deletes the attribute.
func (s *Samba) SetValues(t testing.TB, dn, attr string, values []string) {
	t.Helper()
	conn, err := s.dialAdmin()
	if err != nil {
		t.Fatalf("ldaptest: samba admin connection: %v", err)
	}
	defer conn.Close()
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace(attr, values)
	if err := conn.Modify(req); err != nil {
		t.Fatalf("ldaptest: replace %s of %s: %v", attr, dn, err)
	}
}
