package cloudsink

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink/exotest"
)

// recipientsFixture: a mailbox with a proxy address, a mail user, and a
// mailbox whose alias is another user's address.
func recipientsFixture(certs [][]byte) []exotest.Mailbox {
	return []exotest.Mailbox{
		{UserPrincipalName: "ada@contoso.example", ExternalDirectoryObjectID: "11111111-1111-4111-8111-111111111111",
			EmailAddresses: []string{"ada.lovelace@contoso.example"}, UserCertificate: certs[0:1]},
		{UserPrincipalName: "guest@contoso.example", PrimarySmtpAddress: "guest@partner.example", ExternalDirectoryObjectID: "22222222-2222-4222-8222-222222222222", MailUser: true},
		{Identity: "cyd@contoso.example", UserPrincipalName: "zed@contoso.example", ExternalDirectoryObjectID: "33333333-3333-4333-8333-333333333333"},
	}
}

// Per-user and bulk lookups agree: mail users are found, a mail lookup
// takes only a recipient holding that address (primary or proxy), and a
// mail user is written with Set-MailUser.
func TestExchangeRecipients(t *testing.T) {
	certs := testCerts(t, 2)
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			env := startExchange(t, recipientsFixture(certs), ExchangeConfig{})
			cases := []struct {
				key    string
				lookup Lookup
				wantID string // "" = not found
			}{
				{"proxy", Lookup{Property: "mail", Value: "Ada.Lovelace@contoso.example"}, "11111111-1111-4111-8111-111111111111"},
				{"mail user", Lookup{Property: "mail", Value: "guest@partner.example"}, "22222222-2222-4222-8222-222222222222"},
				{"mail user by upn", Lookup{Property: "userPrincipalName", Value: "guest@contoso.example"}, "22222222-2222-4222-8222-222222222222"},
				// -Identity resolves cyd@ to zed's mailbox by its name; zed
				// does not have that address.
				{"name, not address", Lookup{Property: "mail", Value: "cyd@contoso.example"}, ""},
				{"missing", Lookup{Property: "mail", Value: "nobody@contoso.example"}, ""},
			}
			var lookups []Lookup
			for _, c := range cases {
				l := c.lookup
				l.Key = c.key
				lookups = append(lookups, l)
			}
			if bulk {
				// Enough distinct lookups to make listing pay.
				for i := len(lookups); i < BulkLookupMin; i++ {
					lookups = append(lookups, Lookup{Key: fmt.Sprint(i), Property: "mail", Value: fmt.Sprintf("u%d@contoso.example", i)})
				}
			}
			done, err := env.x.Prefetch(context.Background(), lookups)
			if err != nil {
				t.Fatal(err)
			}
			env.exo.ResetRequests()
			got, err := env.x.Lookup(context.Background(), lookups)
			done()
			if err != nil {
				t.Fatal(err)
			}
			if n := len(env.exo.Requests()); bulk && n != 0 {
				t.Errorf("bulk: %d requests after the listing, want 0", n)
			}
			for _, c := range cases {
				res := got[c.key]
				switch {
				case c.wantID == "" && !errors.Is(res.Err, ErrNotFound):
					t.Errorf("%s: %+v, want not found", c.key, res)
				case c.wantID != "" && (res.Err != nil || res.Account.ID != c.wantID):
					t.Errorf("%s: %+v (%v), want %s", c.key, res.Account, res.Err, c.wantID)
				}
			}
			r := env.x.Apply(context.Background(), []Update{{Key: "g", AccountID: "22222222-2222-4222-8222-222222222222", Target: TargetUserCertificate, Values: b64(certs[1])}})
			if r[0].Err != nil {
				t.Fatal(r[0].Err)
			}
			if m, _ := env.exo.Mailbox("22222222-2222-4222-8222-222222222222"); len(m.UserCertificate) != 1 {
				t.Errorf("the mail user holds %d values after Set-MailUser", len(m.UserCertificate))
			}
		})
	}
}

// A listing follows every page and is strict about where it follows them.
func TestExchangeListingPages(t *testing.T) {
	var boxes []exotest.Mailbox
	for i := range 2500 {
		boxes = append(boxes, exotest.Mailbox{UserPrincipalName: fmt.Sprintf("u%d@contoso.example", i)})
	}
	env := startExchange(t, boxes, ExchangeConfig{})
	var lookups []Lookup
	for i := range 2500 {
		lookups = append(lookups, Lookup{Key: fmt.Sprint(i), Property: "mail", Value: fmt.Sprintf("u%d@contoso.example", i)})
	}
	done, err := env.x.Prefetch(context.Background(), lookups)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.x.Lookup(context.Background(), lookups)
	done()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lookups {
		if got[l.Key].Account == nil {
			t.Fatalf("%s not found in the listing: %v", l.Value, got[l.Key].Err)
		}
	}
	// 3 pages of mailboxes, 1 (empty) of mail users.
	var pages []string
	for _, r := range env.exo.Requests() {
		pages = append(pages, r.Cmdlet)
		if q, _ := url.ParseQuery(r.Query); !strings.Contains(q.Get("$select"), "UserSMimeCertificate") {
			t.Errorf("a page without $select: %+v", r)
		}
	}
	if strings.Join(pages, ",") != "Get-Mailbox,Get-Mailbox,Get-Mailbox,Get-MailUser" {
		t.Errorf("requests %v", pages)
	}
	for _, link := range []string{"https://evil.example/adminapi/beta/x/InvokeCommand?$skiptoken=1", "http://" + strings.TrimPrefix(env.exo.URL(), "https://") + "/x"} {
		if _, err := env.x.nextPage(link); err == nil {
			t.Errorf("nextLink %s followed", link)
		}
	}
}
