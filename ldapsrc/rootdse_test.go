package ldapsrc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
)

// A server that hides its rootDSE from the account still serves full reads;
// USN tracking, which needs the rootDSE, says so. This server keeps no
// modifyTimestamp either, so auto tracking gives no watermark: every read
// is full rather than incremental reads that would never see a change.
func TestReadWithoutRootDSE(t *testing.T) {
	srv := startMemory(t, newDataset(t), false, func(o *ldaptest.MemoryOptions) { o.HideRootDSE = true })
	want, _ := readAll(t, srv.open(t, srv.config()))

	for _, tc := range []struct {
		tracking string
		wantErr  string
		wantNext bool
	}{
		{ldapsrc.TrackAuto, "", false},
		{ldapsrc.TrackFull, "", false},
		{ldapsrc.TrackUSN, "highestCommittedUSN", false},
	} {
		t.Run(tc.tracking, func(t *testing.T) {
			cfg := srv.config()
			cfg.ChangeTracking = tc.tracking
			n := 0
			res, err := srv.open(t, cfg).Read(context.Background(), ldapsrc.ReadRequest{}, func(mapping.SourceUser) error { n++; return nil })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || res.Next != nil {
					t.Fatalf("Read = %v (next %q), want an error naming %s and no watermark", err, res.Next, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Full || n != len(want) || (res.Next != nil) != tc.wantNext {
				t.Fatalf("Read: full %v, %d users (want %d), watermark %q", res.Full, n, len(want), res.Next)
			}
		})
	}
}
