package cloudsink

import (
	"context"
	"encoding/base64"
	"fmt"
)

// exchangeParams maps targets to Set-Mailbox parameters.
var exchangeParams = map[string]string{
	TargetUserCertificate:      "UserCertificate",
	TargetUserSMimeCertificate: "UserSMimeCertificate",
}

// mailboxWrite is one Set-Mailbox: every update of one account in this
// Apply, so both targets of a mailbox change in one call.
type mailboxWrite struct {
	accountID string
	params    map[string]any
	updates   []int // indexes into the Apply's updates
}

// Apply replaces whole collections with Set-Mailbox -Identity <AccountID>
// -UserCertificate @(…) / -UserSMimeCertificate @(…); an empty collection
// clears the attribute. Updates of one account go out in one call and get
// its outcome each. Throttled calls are retried (see invoke); refusals
// (out of write scope, no such mailbox, a value Exchange rejects) come
// back per update as *Error, and never stop the others. After a failure
// that will repeat for every call (no token, no connection), the calls not
// yet sent get the same error instead of repeating it.
func (x *Exchange) Apply(ctx context.Context, updates []Update) []Result {
	results := make([]Result, len(updates))
	var writes []*mailboxWrite
	byAccount := map[string]*mailboxWrite{}
	for i, u := range updates {
		results[i] = Result{Key: u.Key, Target: u.Target}
		param, err := checkExchangeUpdate(u)
		if err != nil {
			results[i].Err = err
			continue
		}
		w := byAccount[u.AccountID]
		if w == nil {
			w = &mailboxWrite{accountID: u.AccountID, params: map[string]any{"Identity": u.AccountID}}
			byAccount[u.AccountID] = w
			writes = append(writes, w)
		}
		if _, dup := w.params[param]; dup {
			results[i].Err = fmt.Errorf("cloudsink: exchange: update %s (mailbox %s): a second update of %s in the same Apply; send one", u.Key, u.AccountID, u.Target)
			continue
		}
		for k, v := range byteArrayParam(param, u.Values) {
			w.params[k] = v
		}
		w.updates = append(w.updates, i)
	}
	errs := make([]error, len(writes))
	// runEach skips writes after a fatal error or the context's end; they
	// have no outcome of their own and must not read as confirmed.
	sent := make([]bool, len(writes))
	fatal := x.runEach(ctx, len(writes), func(n int) error {
		w := writes[n]
		cmdlet := x.setCmdlet(w.accountID)
		what := fmt.Sprintf("%s -Identity %q", cmdlet, w.accountID)
		_, err := x.invoke(ctx, cmdlet, w.params, "", what)
		errs[n], sent[n] = err, true
		if err != nil && isExchangeFatal(err) {
			return err
		}
		return nil
	})
	for n, w := range writes {
		err := errs[n]
		if !sent[n] {
			err = fatal
		}
		if err == nil {
			continue
		}
		for _, i := range w.updates {
			results[i].Err = fmt.Errorf("cloudsink: exchange: update %s (mailbox %s, %s): %w", updates[i].Key, w.accountID, updates[i].Target, err)
		}
	}
	return results
}

// byteArrayParam encodes a byte[][] cmdlet parameter as the
// ExchangeOnlineManagement module does (exchange_notes.md, "Byte-array
// values"): the collection annotated "#Collection(Exchange.ByteArrayType)",
// each item {"@odata.type":"#Exchange.ByteArrayType","Data":"<base64>"}.
// No values is JSON null, what the module sends for -Param $null, which
// clears the attribute. values are standard base64 already.
func byteArrayParam(param string, values []string) map[string]any {
	if len(values) == 0 {
		return map[string]any{param: nil}
	}
	items := make([]byteArrayItem, len(values))
	for i, v := range values {
		items[i] = byteArrayItem{Type: odataByteArray, Data: v}
	}
	return map[string]any{param + "@odata.type": odataByteArrayCollection, param: items}
}

// The OData types of byte arrays in InvokeCommand bodies.
const (
	odataByteArray           = "#Exchange.ByteArrayType"
	odataByteArrayCollection = "#Collection(Exchange.ByteArrayType)"
)

// byteArrayItem is one byte[] of a collection parameter.
type byteArrayItem struct {
	Type string `json:"@odata.type,omitempty"`
	Data string `json:"Data"`
}

// checkExchangeUpdate checks an update against what certsync sends to
// Exchange and returns its Set-Mailbox parameter.
func checkExchangeUpdate(u Update) (string, error) {
	param, ok := exchangeParams[u.Target]
	switch {
	case !ok:
		return "", fmt.Errorf("cloudsink: exchange: update %s: target %q is not one the Exchange sink writes (%s, %s)", u.Key, u.Target, TargetUserCertificate, TargetUserSMimeCertificate)
	case u.AccountID == "":
		return "", fmt.Errorf("cloudsink: exchange: update %s: no account ID", u.Key)
	case len(u.Values) > exchangeValuesMax:
		return "", fmt.Errorf("cloudsink: exchange: update %s (mailbox %s): %d values for %s, certsync sends at most %d", u.Key, u.AccountID, len(u.Values), param, exchangeValuesMax)
	}
	for n, v := range u.Values {
		if b, err := base64.StdEncoding.Strict().DecodeString(v); err != nil || len(b) == 0 {
			return "", fmt.Errorf("cloudsink: exchange: update %s (mailbox %s): %s value %d is not the standard base64 of a DER certificate", u.Key, u.AccountID, param, n+1)
		}
	}
	return param, nil
}
