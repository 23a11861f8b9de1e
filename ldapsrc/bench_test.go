package ldapsrc_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"go.uber.org/zap"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// BenchmarkUsers reads 10,000 users (each with a certificate and a PKCS#7
// S/MIME blob) from a real slapd. Besides time and allocations it reports
// live-heap-KiB: the largest heap still in use, measured after a GC every
// 337 users in one extra pass. Bounded streaming shows as a live heap that
// follows the page size, not the directory size.
func BenchmarkUsers(b *testing.B) {
	const users = 10000
	ca, err := pkitest.NewRootCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	cert, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "bench", Email: "bench@example.test"})
	if err != nil {
		b.Fatal(err)
	}
	p7, err := pkitest.DegeneratePKCS7(cert, ca.Cert)
	if err != nil {
		b.Fatal(err)
	}
	var seed bytes.Buffer
	for i := range users {
		uid := fmt.Sprintf("u%05d", i)
		seed.Write(ldaptest.PersonLDIF(peopleDN, ldaptest.Person{UID: uid, Mail: uid + "@example.test",
			UserCertificates: [][]byte{cert.Raw}, SMIMECertificates: [][]byte{p7}}))
	}
	s := ldaptest.StartSlapd(b, ldaptest.SlapdOptions{Suffix: suffix, SeedLDIF: seed.Bytes()})

	for _, pageSize := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("page=%d", pageSize), func(b *testing.B) {
			src, err := ldapsrc.Open(context.Background(), ldapsrc.Config{
				URL: s.URL, BaseDN: s.BaseDN, Filter: "(objectClass=inetOrgPerson)", AnchorAttribute: "entryUUID",
				PageSize: pageSize, Bind: ldapsrc.Bind{Username: s.AdminDN, Password: s.AdminPassword},
				TLS: ldapsrc.TLS{RootCAs: s.RootCAs},
			}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			read := func(each func(n int)) {
				n := 0
				st, err := src.Users(context.Background(), func(u mapping.SourceUser) error {
					n++
					if len(u.Values) != 2 {
						return fmt.Errorf("%s: %d values", u.DN, len(u.Values))
					}
					each(n)
					return nil
				})
				if err != nil || st.Entries != users {
					b.Fatalf("Users: %+v, %v", st, err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				read(func(int) {})
			}
			b.StopTimer()
			var ms runtime.MemStats
			var live uint64
			read(func(n int) {
				if n%337 == 0 { // not a divisor of the page sizes: samples land mid-page
					runtime.GC()
					runtime.ReadMemStats(&ms)
					live = max(live, ms.HeapAlloc)
				}
			})
			b.ReportMetric(users, "users/op")
			b.ReportMetric(float64(live)/1024, "live-heap-KiB")
		})
	}
}
