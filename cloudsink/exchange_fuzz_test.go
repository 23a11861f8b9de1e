package cloudsink

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzExchangeAnswer: whatever the admin API answers (an InvokeCommand
// page, a recipient in it, an error body), reading it never panics; a
// recipient read as an account has an ID and both certificate collections
// (never read "missing" as "none"); an error keeps its status.
func FuzzExchangeAnswer(f *testing.F) {
	for _, s := range []string{
		`{"@odata.context":"https://outlook.office365.com/adminapi/beta/t/$metadata#Collection(Exchange.GenericHashTable)","adminapi.warnings@odata.type":"#Collection(String)","@adminapi.warnings":[],"value":[{"ExternalDirectoryObjectId":"9d4b1a1e-56b8-4a4e-9c5a-2f0c4c2c1f10","UserPrincipalName":"alice@contoso.com","PrimarySmtpAddress":"alice@contoso.com","EmailAddresses@odata.type":"#Collection(String)","EmailAddresses":["SMTP:alice@contoso.com","smtp:a@contoso.onmicrosoft.com","X500:/o=ExchangeLabs/ou=x"],"RecipientTypeDetails":"UserMailbox","IsDirSynced":false,"UserCertificate@odata.type":"#Collection(String)","UserCertificate":["MIIBszCCAVmgAwIBAgIUQ=="],"UserSMimeCertificate":[{"@odata.type":"#Exchange.ByteArrayType","Data":"MIAGCSqGSIb3DQEHAqCAMIACAQE="}]}]}`,
		`{"value":[{"ExternalDirectoryObjectId":"1","RecipientTypeDetails":"MailUser","IsDirSynced":true,"UserCertificate":[],"UserSMimeCertificate":null}],"@odata.nextLink":"https://outlook.office365.com/adminapi/beta/t/InvokeCommand?$skiptoken=x"}`,
		`{"value":[{"ExternalDirectoryObjectId":"1"}]}`,
		`{"value":[]}`,
		`{"value":[null,1,"x",[]]}`,
		`{"error":{"code":"NotFound","message":"|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x' couldn't be found on 'EMU01'.","details":[{"code":"Context","target":"","message":"Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x' couldn't be found."}],"innererror":{"message":"m","type":"Microsoft.Exchange.Admin.OData.Core.ODataServiceException","internalException":{"message":"inner"}}}}`,
		`{"error":{"details":[{"message":"a|b"}]}}`,
		`{"error":{"details":[{"message":"||"}]}}`,
		`The request was throttled because the maximum number of concurrent requests per tenant was exceeded.`,
	} {
		f.Add(200, []byte(s))
		f.Add(404, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		var ans exchangeAnswer
		if json.Unmarshal(raw, &ans) == nil {
			for _, v := range ans.Value {
				r, err := parseMailbox(v)
				if err != nil {
					continue
				}
				if r.acc == nil || r.acc.ID == "" || r.acc.Values[TargetUserCertificate] == nil || r.acc.Values[TargetUserSMimeCertificate] == nil {
					t.Fatalf("recipient read without its ID or collections: %+v", r.acc)
				}
				_ = r.has("mail", "alice@contoso.com")
			}
			ix := &recipientIndex{byKey: map[string]LookupResult{}, seen: map[string]int{}}
			for _, v := range ans.Value {
				ix.add(v, map[string]bool{"mail": true, "id": true, "userPrincipalName": true}, false)
			}
			_ = ix.find("mail", "alice@contoso.com")
		}
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {"2"}}}
		if e := exchangeError(resp, raw, "Get-Mailbox"); e.Status != status {
			t.Fatalf("exchangeError lost the status: %+v", e)
		}
	})
}
