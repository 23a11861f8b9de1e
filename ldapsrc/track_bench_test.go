package ldapsrc_test

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// BenchmarkSambaRead compares a full read with incremental reads that find
// nothing, on 5,000 users (one certificate each) of the shared Samba DC,
// read from the domain root with pages of 1000. It reports LDAP
// operations and users per read besides time:
//
//   - full: every user (rootDSE, invocationId, 5 pages);
//   - incremental-no-change: the DC's USN moved (a change out of scope),
//     so rootDSE, invocationId and one search that returns nothing;
//   - incremental-idle-dc: nothing committed on the DC since the
//     watermark: no search at all;
//   - dirsync-no-change: DirSync from a cookie with nothing in scope changed.
func BenchmarkSambaRead(b *testing.B) {
	const n = 5000
	dc := sharedSamba(b)
	dept := fmt.Sprintf("bench-%d", time.Now().UnixNano()) // -count=N adds its own users
	start := time.Now()
	adUsers(b, dc, dept, n)
	b.Logf("added %d users in %s", n, time.Since(start).Round(time.Millisecond))

	open := func(mode string) *ldapsrc.Source {
		cfg := adConfig(dc, dept, mode)
		cfg.PageSize = 1000
		return openAD(b, cfg, zap.NewNop())
	}
	usn, dirsync := open(ldapsrc.TrackUSN), open(ldapsrc.TrackDirSync)
	usersFull, full := readAD(b, usn, nil)
	if len(usersFull) != n {
		b.Fatalf("full read: %d users, want %d", len(usersFull), n)
	}
	_, dsFull := readAD(b, dirsync, nil)
	outside, _ := adUsers(b, dc, dept+"-outside", 1)
	dc.SetCertificates(b, outside[0].DN, "userCertificate", [][]byte{newCert(b, "bench outside")})
	// A watermark at the DC's current USN, for the idle-DC case.
	_, now := readAD(b, usn, full.Next)

	bench := func(name string, src *ldapsrc.Source, since []byte, wantUsers int) {
		b.Run(name, func(b *testing.B) {
			var res ldapsrc.ReadResult
			for b.Loop() {
				var users int
				users, res = countRead(b, src, since)
				if users != wantUsers {
					b.Fatalf("%d users, want %d", users, wantUsers)
				}
			}
			b.ReportMetric(float64(res.Operations), "ldap-ops/op")
			b.ReportMetric(float64(wantUsers), "users/op")
		})
	}
	bench("full", usn, nil, n)
	bench("incremental-no-change", usn, full.Next, 0)
	bench("incremental-idle-dc", usn, now.Next, 0)
	bench("dirsync-no-change", dirsync, dsFull.Next, 0)
}

// countRead is readAD without keeping the users.
func countRead(b *testing.B, src *ldapsrc.Source, since []byte) (int, ldapsrc.ReadResult) {
	b.Helper()
	users := 0
	res, err := src.Read(b.Context(), ldapsrc.ReadRequest{Since: since}, func(u mapping.SourceUser) error {
		users++
		return nil
	})
	if err != nil {
		b.Fatalf("Read: %v", err)
	}
	return users, res
}
