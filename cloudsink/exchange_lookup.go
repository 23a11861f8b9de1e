package cloudsink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// mailboxSelect is every Get-Mailbox property certsync reads; the rest of
// a mailbox (some 15 KB) stays on the server.
const mailboxSelect = "ExternalDirectoryObjectId,UserPrincipalName,PrimarySmtpAddress,EmailAddresses,RecipientTypeDetails,IsDirSynced,UserCertificate,UserSMimeCertificate"

// Lookup resolves mailboxes with one Get-Mailbox -Identity per distinct
// value, Concurrency at a time. Properties: "mail" and
// "userPrincipalName" (Exchange resolves either as an -Identity; a
// userPrincipalName must then match the mailbox's), and "id", the Entra
// object ID, which must come back as the mailbox's
// ExternalDirectoryObjectId. Account.ID is always that object ID, the one
// Apply's AccountID takes. A mailbox Entra Connect syncs comes back with
// Refusal set. When Exchange cannot be asked at all (no token, no
// connection), the whole call fails.
func (x *Exchange) Lookup(ctx context.Context, lookups []Lookup) (map[string]LookupResult, error) {
	out := make(map[string]LookupResult, len(lookups))
	type query struct{ prop, value string }
	var queries []query
	index := map[string]int{} // prop + normalized value -> queries index
	for _, l := range lookups {
		if err := checkExchangeLookup(l); err != nil {
			out[l.Key] = LookupResult{Err: err}
			continue
		}
		k := l.Property + "\x00" + strings.ToLower(l.Value)
		if _, ok := index[k]; !ok {
			index[k] = len(queries)
			queries = append(queries, query{l.Property, l.Value})
		}
	}
	results := make([]LookupResult, len(queries))
	listed := x.listing()
	fatal := x.runEach(ctx, len(queries), func(i int) error {
		if listed != nil {
			results[i] = listed.find(queries[i].prop, queries[i].value)
			return nil
		}
		res, err := x.getRecipient(ctx, queries[i].prop, queries[i].value)
		results[i] = res
		return err
	})
	if fatal != nil {
		return nil, fmt.Errorf("cloudsink: exchange: lookup: %w", fatal)
	}
	for _, l := range lookups {
		if _, done := out[l.Key]; done {
			continue
		}
		res := results[index[l.Property+"\x00"+strings.ToLower(l.Value)]]
		if res.Account != nil {
			// Keys that asked for the same value get accounts of their own.
			acc := *res.Account
			acc.Values = map[string][]string{
				TargetUserCertificate:      append([]string{}, acc.Values[TargetUserCertificate]...),
				TargetUserSMimeCertificate: append([]string{}, acc.Values[TargetUserSMimeCertificate]...),
			}
			res.Account = &acc
		}
		out[l.Key] = res
	}
	return out, nil
}

func checkExchangeLookup(l Lookup) error {
	switch l.Property {
	case "id", "mail", "userPrincipalName":
	default:
		return fmt.Errorf("cloudsink: exchange: lookup %s: property %q is not one Exchange resolves (id, mail, userPrincipalName)", l.Key, l.Property)
	}
	if strings.TrimSpace(l.Value) == "" {
		return fmt.Errorf("cloudsink: exchange: lookup %s: empty %s", l.Key, l.Property)
	}
	return nil
}

// getRecipient runs Get-Mailbox, and Get-MailUser when no mailbox has
// that identity. The error is for failures that will repeat for every
// lookup; per-recipient answers go in the result.
func (x *Exchange) getRecipient(ctx context.Context, prop, value string) (LookupResult, error) {
	res, err := x.getOne(ctx, "Get-Mailbox", prop, value)
	if err != nil || !errors.Is(res.Err, ErrNotFound) {
		return res, err
	}
	return x.getOne(ctx, "Get-MailUser", prop, value)
}

// getOne runs one Get-Mailbox or Get-MailUser -Identity.
func (x *Exchange) getOne(ctx context.Context, cmdlet, prop, value string) (LookupResult, error) {
	what := fmt.Sprintf("%s -Identity %q", cmdlet, value)
	ans, err := x.invoke(ctx, cmdlet, map[string]any{"Identity": value}, url.Values{"$select": {mailboxSelect}}.Encode(), what)
	var e *Error
	switch {
	case errors.As(err, &e) && e.Code == exoNotFound:
		return LookupResult{Err: ErrNotFound}, nil
	case errors.As(err, &e) && e.Code == exoAmbiguous:
		return LookupResult{Err: ErrAmbiguous}, nil
	case err != nil && isExchangeFatal(err):
		return LookupResult{}, err
	case err != nil:
		return LookupResult{Err: err}, nil
	case len(ans.Value) == 0:
		return LookupResult{Err: ErrNotFound}, nil
	case len(ans.Value) > 1 || ans.NextLink != "":
		return LookupResult{Err: ErrAmbiguous}, nil
	}
	r, err := parseMailbox(ans.Value[0])
	if err != nil {
		return LookupResult{Err: fmt.Errorf("cloudsink: exchange: %s: %w", what, err)}, nil
	}
	r.mailUser = r.mailUser || cmdlet == "Get-MailUser"
	if !r.has(prop, value) {
		// -Identity also resolves names and aliases; this lookup wants the
		// recipient whose property has this value.
		return LookupResult{Err: ErrNotFound}, nil
	}
	x.noteKind(r)
	return LookupResult{Account: r.acc}, nil
}

// has reports whether the recipient's prop is value: its object ID, its
// userPrincipalName, or, for mail, one of its SMTP addresses (primary or
// proxy), so that a lookup by mail never takes a recipient -Identity
// resolved by some other name.
func (r recipient) has(prop, value string) bool {
	switch prop {
	case "id":
		return strings.EqualFold(r.acc.ID, value)
	case "userPrincipalName":
		return strings.EqualFold(r.acc.UserPrincipalName, value)
	}
	return slices.ContainsFunc(r.addresses, func(a string) bool { return strings.EqualFold(a, value) })
}

// parseMailbox builds the Account. A mailbox without its certificate
// collections is refused rather than read as "no values": the merge
// before a write would then drop values certsync does not own.
func parseMailbox(raw json.RawMessage) (recipient, error) {
	var m struct {
		EmailAddresses            []string    `json:"EmailAddresses"`
		RecipientTypeDetails      string      `json:"RecipientTypeDetails"`
		ExternalDirectoryObjectID string      `json:"ExternalDirectoryObjectId"`
		UserPrincipalName         string      `json:"UserPrincipalName"`
		PrimarySmtpAddress        string      `json:"PrimarySmtpAddress"`
		IsDirSynced               *bool       `json:"IsDirSynced"`
		UserCertificate           *byteArrays `json:"UserCertificate"`
		UserSMimeCertificate      *byteArrays `json:"UserSMimeCertificate"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return recipient{}, fmt.Errorf("not a mailbox: %w", err)
	}
	switch {
	case m.ExternalDirectoryObjectID == "":
		return recipient{}, errors.New("the mailbox has no ExternalDirectoryObjectId (not an Entra user's mailbox)")
	case m.UserCertificate == nil || m.UserSMimeCertificate == nil:
		return recipient{}, fmt.Errorf("mailbox %s: the answer lacks UserCertificate or UserSMimeCertificate; refusing to guess them", m.ExternalDirectoryObjectID)
	case m.IsDirSynced == nil:
		return recipient{}, fmt.Errorf("mailbox %s: the answer lacks IsDirSynced", m.ExternalDirectoryObjectID)
	}
	r := recipient{mailUser: strings.EqualFold(m.RecipientTypeDetails, "MailUser")}
	if m.PrimarySmtpAddress != "" {
		r.addresses = append(r.addresses, m.PrimarySmtpAddress)
	}
	for _, a := range m.EmailAddresses {
		if proto, addr, ok := strings.Cut(a, ":"); ok && strings.EqualFold(proto, "smtp") {
			r.addresses = append(r.addresses, addr)
		}
	}
	acc := &Account{
		ID:                m.ExternalDirectoryObjectID,
		UserPrincipalName: m.UserPrincipalName,
		Mail:              m.PrimarySmtpAddress,
		Values: map[string][]string{
			TargetUserCertificate:      normalizeCertValues(*m.UserCertificate),
			TargetUserSMimeCertificate: normalizeCertValues(*m.UserSMimeCertificate),
		},
	}
	if *m.IsDirSynced {
		acc.Refusal = RefusalExchangeSynced
	}
	r.acc = acc
	return r, nil
}

// recipient is a mailbox or mail user as Exchange answered it.
type recipient struct {
	acc       *Account
	mailUser  bool     // RecipientTypeDetails MailUser: Set-MailUser writes it
	addresses []string // its SMTP addresses, primary first
}

// byteArrays reads a byte[] collection in either shape the admin API is
// seen to use: base64 strings (a captured Get-Mailbox answer types the
// collection "#Collection(String)"), or {"Data":"<base64>"} items with an
// optional "#Exchange.ByteArrayType" annotation, as the module writes them.
// null reads as empty.
type byteArrays []string

func (b *byteArrays) UnmarshalJSON(raw []byte) error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("a byte-array collection is not an array: %w", err)
	}
	out := make(byteArrays, 0, len(items))
	for i, it := range items {
		var s string
		if json.Unmarshal(it, &s) == nil && s != "" {
			out = append(out, s)
			continue
		}
		var obj byteArrayItem
		if err := json.Unmarshal(it, &obj); err != nil || obj.Data == "" || (obj.Type != "" && obj.Type != odataByteArray) {
			return fmt.Errorf("item %d of a byte-array collection is neither a base64 string nor {\"Data\":\"<base64>\"}", i+1)
		}
		out = append(out, obj.Data)
	}
	*b = out
	return nil
}

// normalizeCertValues brings values to the form certsync writes, standard
// padded base64, so that comparing them with planned values works however
// Exchange spelled them. A value that is not base64 at all is kept as it
// came: certsync did not write it and must not lose it.
func normalizeCertValues(vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, normalizeCertValue(v))
	}
	return out
}

func normalizeCertValue(v string) string {
	s := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil && len(b) > 0 {
			return base64.StdEncoding.EncodeToString(b)
		}
	}
	return v
}

// isExchangeFatal: the failure will repeat for every request.
func isExchangeFatal(err error) bool {
	var f errFatal
	return errors.As(err, &f)
}
