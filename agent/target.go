package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/mapping"
)

// Target is one place certsync publishes to: Entra ID's certificateUserIds
// (GraphTarget) or an Exchange Online mailbox's certificate attributes
// (ExchangeTarget). One type per target owns every rule of it: the values
// it wants from a user's accepted certificates, how a value is shown to
// people, its limits, what it adds to the tracking fingerprint, how a
// directory user's account is found, and the sink that writes. The pass
// knows targets only through this interface, so adding a target is one
// new type here plus its configuration key.
type Target interface {
	// Name is the target's name in logs and errors ("graph", "exchange").
	Name() string
	// Attributes are the multi-valued attributes it writes, each with the
	// most values it holds. Their names are unique across targets
	// ("graph.certificateUserIds", "exchange.UserCertificate").
	Attributes() []cloudsink.Target
	// Want is what attribute attr should hold for a user read from the
	// directory named source whose certificates got verdict ev, most
	// wanted first.
	Want(attr, source string, ev mapping.Evaluation) []string
	// Describe shows one value of attr to people.
	Describe(attr, value string) string
	// Fingerprint digests every setting of the target: when it changes,
	// what users should hold may have changed, so a change-tracking
	// watermark taken before is not trusted.
	Fingerprint() string
	// Match says how a directory user is found in the target's service.
	Match() Match
	// Account names an account of the service for people ("cloud user",
	// "mailbox").
	Account() string
	// AdoptExisting: values already there that certsync did not publish
	// become its own (kept when wanted, removed when not). For a cutover
	// from a tool that published the same values, such as Entra Connect.
	AdoptExisting() bool
	// SourceAttributes are the directory attributes the target needs read:
	// identity attributes (to find accounts) and certificate attributes.
	SourceAttributes() (identity, certificates []string)
	// Lookup and Apply are the target's sink (cloudsink.Sink).
	Lookup(ctx context.Context, lookups []cloudsink.Lookup) (map[string]cloudsink.LookupResult, error)
	Apply(ctx context.Context, updates []cloudsink.Update) []cloudsink.Result
}

// Match says how a directory user is found in a target's service.
type Match struct {
	// SourceAttribute is the directory attribute whose value is looked up,
	// e.g. objectGUID (its base64 is onPremisesImmutableId) or mail.
	SourceAttribute string `yaml:"sourceAttribute"`
	// CloudProperty is the service's property it is compared with:
	// onPremisesImmutableId, mail or userPrincipalName.
	CloudProperty string `yaml:"cloudProperty"`
}

// validate checks m against the properties the service resolves; key
// names the setting in errors ("cloud.match").
func (m Match) validate(key string, properties []string) error {
	if !slices.Contains(properties, m.CloudProperty) {
		return fmt.Errorf("%s.cloudProperty: %q is not one of %s", key, m.CloudProperty, strings.Join(properties, ", "))
	}
	if m.SourceAttribute == "" || strings.ContainsAny(m.SourceAttribute, "; ,()*=") {
		return fmt.Errorf("%s.sourceAttribute: %q is not an LDAP attribute name", key, m.SourceAttribute)
	}
	if m.CloudProperty == "onPremisesImmutableId" && !slices.ContainsFunc(immutableIDSources(), func(a string) bool { return strings.EqualFold(a, m.SourceAttribute) }) {
		return fmt.Errorf("%s.sourceAttribute: %q cannot match onPremisesImmutableId (use %s)", key, m.SourceAttribute, strings.Join(immutableIDSources(), ", "))
	}
	return nil
}

// immutableIDSources are the directory attributes whose value (as
// ldapsrc gives it) Entra Connect and Cloud Sync put in
// onPremisesImmutableId.
func immutableIDSources() []string {
	return []string{"objectGUID", "mS-DS-ConsistencyGuid", "entryUUID"}
}

// settingsFingerprint digests a target's name and settings. Every exported
// field of settings takes part (it is JSON-encoded whole), so a setting
// added later cannot be left out by mistake; TestTargetFingerprints checks
// each field.
func settingsFingerprint(name string, settings any) string {
	raw, err := json.Marshal(struct {
		Name     string
		Settings any
	}{name, settings})
	if err != nil {
		// Settings are plain data; should this ever fail, no watermark is
		// trusted, which is safe.
		return "unfingerprintable"
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// attrObjectSID is Active Directory's account SID, which ldapsrc gives as
// its string form.
const attrObjectSID = "objectSid"

// attrProxyAddresses holds a user's further addresses (smtp:...), which
// the identity check (mapping/identity.go) takes as the user's too.
const attrProxyAddresses = "proxyAddresses"

// addNames appends the names list does not hold yet (LDAP attribute names
// compare case-insensitively).
func addNames(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.ContainsFunc(list, func(l string) bool { return strings.EqualFold(l, n) }) {
			list = append(list, n)
		}
	}
	return list
}

// SourceAttributes lists the directory attributes every target together
// needs: identity attributes (those the report names users by first) and
// certificate attributes.
func SourceAttributes(targets []Target) (identity, certificates []string) {
	// objectSid (Active Directory) is the account a certificate's SID
	// extension must name (mapping.Policy.AccountSID).
	identity = []string{"mail", "userPrincipalName", "sAMAccountName", "uid", attrObjectSID, attrProxyAddresses}
	certificates = []string{mapping.AttrUserCertificate, mapping.AttrUserSMIMECertificate}
	for _, t := range targets {
		id, certs := t.SourceAttributes()
		identity = addNames(identity, id...)
		certificates = addNames(certificates, certs...)
	}
	return identity, certificates
}
