package cloudsink

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Bulk reads: a pass that looks up many recipients lists them all, page by
// page, instead of asking for each: Get-Mailbox and Get-MailUser with
// -ResultSize Unlimited, $select of what certsync reads, Prefer:
// odata.maxpagesize=1000, following @odata.nextLink (the same body POSTed
// to it, as the module does). 20,000 mailboxes are 20 pages, not 20,000
// calls.

// BulkLookupMin is the fewest distinct lookups for which Prefetch lists
// every recipient: below it, one Get-Mailbox per user costs less than
// listing a large tenant.
const BulkLookupMin = 200

// exchangePageSize is the page size certsync asks for (the most the
// service gives).
const exchangePageSize = 1000

// Prefetch prepares the Lookups of one pass. With at least BulkLookupMin
// distinct lookups it lists every mailbox and mail user and answers the
// following Lookup calls from that listing, keeping only the recipients
// asked for; done ends that. Fewer lookups change nothing. The error is
// for a listing that failed or was cut short: no lookup is then answered
// as "not found" from an incomplete listing.
func (x *Exchange) Prefetch(ctx context.Context, lookups []Lookup) (done func(), err error) {
	want := map[string]bool{}
	for _, l := range lookups {
		if checkExchangeLookup(l) == nil {
			want[indexKey(l.Property, l.Value)] = true
		}
	}
	if len(want) < BulkLookupMin {
		return func() {}, nil
	}
	idx := &recipientIndex{byKey: map[string]LookupResult{}, seen: map[string]int{}}
	for _, cmdlet := range []string{"Get-Mailbox", "Get-MailUser"} {
		mailUsers := cmdlet == "Get-MailUser"
		if err := x.list(ctx, cmdlet, func(raw json.RawMessage) { idx.add(raw, want, mailUsers) }); err != nil {
			return nil, err
		}
	}
	x.known.mu.Lock()
	x.known.listed = idx
	for id, mu := range idx.mailUsers() {
		x.known.mailUsers[id] = mu
	}
	x.known.mu.Unlock()
	return func() {
		x.known.mu.Lock()
		x.known.listed = nil
		x.known.mu.Unlock()
	}, nil
}

// list runs a listing cmdlet to its last page, giving each item to each.
func (x *Exchange) list(ctx context.Context, cmdlet string, each func(json.RawMessage)) error {
	body, err := json.Marshal(map[string]any{"CmdletInput": map[string]any{"CmdletName": cmdlet, "Parameters": map[string]any{"ResultSize": "Unlimited"}}})
	if err != nil {
		return fmt.Errorf("cloudsink: exchange: encode %s: %w", cmdlet, err)
	}
	target := x.invokeURL + "?" + url.Values{"$select": {mailboxSelect}}.Encode()
	for page := 1; target != ""; page++ {
		what := fmt.Sprintf("%s -ResultSize Unlimited, page %d", cmdlet, page)
		ans, err := x.invokeAt(ctx, cmdlet, body, target, what)
		if err != nil {
			return fmt.Errorf("cloudsink: exchange: listing recipients: %w", err)
		}
		for _, v := range ans.Value {
			each(v)
		}
		if target, err = x.nextPage(ans.NextLink); err != nil {
			return fmt.Errorf("cloudsink: exchange: %s: %w", what, err)
		}
	}
	return nil
}

// nextPage checks an @odata.nextLink: it must stay on the host certsync
// sends InvokeCommand to, since the token goes with it.
func (x *Exchange) nextPage(link string) (string, error) {
	if link == "" {
		return "", nil
	}
	next, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("@odata.nextLink %q: %w", link, err)
	}
	base, _ := url.Parse(x.invokeURL)
	if !strings.EqualFold(next.Scheme, base.Scheme) || !strings.EqualFold(next.Host, base.Host) {
		return "", fmt.Errorf("@odata.nextLink %q leaves %s: not following it with the token", link, base.Host)
	}
	return next.String(), nil
}

// listing is the index in force, or nil.
func (x *Exchange) listing() *recipientIndex {
	x.known.mu.Lock()
	defer x.known.mu.Unlock()
	return x.known.listed
}

// noteKind remembers whether an account is a mail user.
func (x *Exchange) noteKind(r recipient) {
	x.known.mu.Lock()
	defer x.known.mu.Unlock()
	x.known.mailUsers[r.acc.ID] = r.mailUser
}

// setCmdlet is the cmdlet that writes an account.
func (x *Exchange) setCmdlet(accountID string) string {
	x.known.mu.Lock()
	defer x.known.mu.Unlock()
	if x.known.mailUsers[accountID] {
		return "Set-MailUser"
	}
	return "Set-Mailbox"
}

// recipientIndex answers lookups from a complete listing.
type recipientIndex struct {
	byKey map[string]LookupResult
	seen  map[string]int // key -> recipients listed with it
	kinds []recipient
}

func indexKey(prop, value string) string { return prop + "\x00" + strings.ToLower(value) }

// add indexes one listed recipient under the keys asked for. A recipient
// the answer leaves unreadable is an error for every key it names.
func (ix *recipientIndex) add(raw json.RawMessage, want map[string]bool, mailUser bool) {
	r, err := parseMailbox(raw)
	r.mailUser = r.mailUser || mailUser
	var keys []string
	if err != nil {
		var id struct {
			ID   string `json:"ExternalDirectoryObjectId"`
			UPN  string `json:"UserPrincipalName"`
			Mail string `json:"PrimarySmtpAddress"`
		}
		_ = json.Unmarshal(raw, &id)
		keys = []string{indexKey("id", id.ID), indexKey("userPrincipalName", id.UPN), indexKey("mail", id.Mail)}
	} else {
		keys = append(keys, indexKey("id", r.acc.ID), indexKey("userPrincipalName", r.acc.UserPrincipalName))
		for _, a := range r.addresses {
			keys = append(keys, indexKey("mail", a))
		}
	}
	kept := false
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if !want[k] {
			continue
		}
		ix.seen[k]++
		switch {
		case ix.seen[k] > 1:
			ix.byKey[k] = LookupResult{Err: ErrAmbiguous}
		case err != nil:
			ix.byKey[k] = LookupResult{Err: fmt.Errorf("cloudsink: exchange: listed recipient: %w", err)}
		default:
			ix.byKey[k] = LookupResult{Account: r.acc}
			kept = true
		}
	}
	if kept {
		ix.kinds = append(ix.kinds, r)
	}
}

// find answers one lookup: the listing is complete, so a key it does not
// hold is not found.
func (ix *recipientIndex) find(prop, value string) LookupResult {
	if res, ok := ix.byKey[indexKey(prop, value)]; ok {
		return res
	}
	return LookupResult{Err: ErrNotFound}
}

func (ix *recipientIndex) mailUsers() map[string]bool {
	out := make(map[string]bool, len(ix.kinds))
	for _, r := range ix.kinds {
		out[r.acc.ID] = r.mailUser
	}
	return out
}
