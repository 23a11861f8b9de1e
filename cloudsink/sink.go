package cloudsink

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TargetCertificateUserIDs is Entra ID's user.authorizationInfo.certificateUserIds.
const TargetCertificateUserIDs = "graph.certificateUserIds"

// Sink is one cloud service certsync writes to.
type Sink interface {
	// Targets lists the multi-valued attributes this sink owns, with their
	// value limits.
	Targets() []Target
	// Lookup resolves cloud accounts. The result holds one entry per
	// Lookup.Key; a whole-call error means nothing can be trusted.
	Lookup(ctx context.Context, lookups []Lookup) (map[string]LookupResult, error)
	// Apply writes whole collections; one Result per Update, same order.
	Apply(ctx context.Context, updates []Update) []Result
}

// Target is one multi-valued cloud attribute.
type Target struct {
	Name  string // e.g. TargetCertificateUserIDs
	Limit int    // most values the service accepts (10 for certificateUserIds)
	// Unique: a value may sit on one account only; a value two users of
	// one pass want is refused for both.
	Unique bool
}

// Lookup asks for the cloud account whose Property equals Value.
type Lookup struct {
	Key      string // the caller's key (the anchor); echoed in the result map
	Source   string // the directory the user was read from (by name)
	Property string // "id", "onPremisesImmutableId", "mail" or "userPrincipalName"
	Value    string
	// Wanted are the values the caller wants the account to hold, for
	// services that refuse some before any write (a value another account
	// holds); others ignore them.
	Wanted []string
}

// LookupResult is a found account, or why none was.
type LookupResult struct {
	Account *Account // nil when Err is set
	Err     error    // ErrNotFound, ErrAmbiguous, or an *Error
}

// Account is a cloud user as certsync needs it.
type Account struct {
	ID                string
	UserPrincipalName string
	Mail              string
	// Values holds the current values of each of the sink's targets.
	Values map[string][]string
	// Refusal, when not empty, says why the service will refuse writes to
	// this account (e.g. it is still synced by Entra Connect). certsync
	// reports it and does not try.
	Refusal string
}

// Update writes one target of one account: services that replace the
// whole collection write Values; those that change single values (a
// directory attribute) remove Remove and add Add, leaving the rest alone.
type Update struct {
	Key       string // the caller's key, echoed in the Result
	Source    string // the directory the user was read from (by name)
	AccountID string
	Target    string
	Values    []string // the whole collection after the write
	Add       []string // values to add, not there now
	Remove    []string // values to remove, there now
}

// Result is the service's answer to one Update. Err nil means confirmed.
type Result struct {
	Key    string
	Target string
	Err    error
}

var (
	// ErrNotFound: no cloud account matches the lookup.
	ErrNotFound = errors.New("no matching cloud user")
	// ErrAmbiguous: more than one cloud account matches the lookup.
	ErrAmbiguous = errors.New("more than one cloud user matches")
)

// Error is an error answer from a cloud service, per request or per
// $batch item.
type Error struct {
	Service    string // "graph"
	Method     string
	Path       string
	Status     int
	Code       string // the service's error code, e.g. "Request_BadRequest"
	Message    string
	RetryAfter time.Duration // from Retry-After, when given
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s %s: %d %s: %s", e.Service, e.Method, e.Path, e.Status, e.Code, e.Message)
}

// Temporary reports whether trying again later may succeed (throttling,
// service unavailable, gateway errors).
func (e *Error) Temporary() bool {
	return e.Status == 429 || e.Status == 502 || e.Status == 503 || e.Status == 504
}
