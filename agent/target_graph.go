package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/mapping"
)

// GraphSettings is the Entra ID target's configuration
// (cloud.certificateUserIds), with cloud.match saying how users are found.
type GraphSettings struct {
	// Enabled: default on.
	Enabled *bool `yaml:"enabled"`
	// Bindings are the binding kinds written per certificate, in this
	// order (mapping.BindingKind names).
	Bindings []string `yaml:"bindings"`
}

// On reports whether the target is enabled (default on).
func (s GraphSettings) On() bool { return s.Enabled == nil || *s.Enabled }

// Defaults fills in what the file left out.
func (s *GraphSettings) Defaults() {
	if len(s.Bindings) == 0 {
		s.Bindings = []string{string(mapping.BindingSKI)}
	}
}

// DefaultGraphMatch is cloud.match's default: objectGUID ↔
// onPremisesImmutableId, as Entra Connect links users.
func DefaultGraphMatch() Match {
	return Match{SourceAttribute: "objectGUID", CloudProperty: "onPremisesImmutableId"}
}

// Validate checks the settings; key names the section in errors
// ("cloud.certificateUserIds"), matchKey the match's ("cloud.match").
func (s GraphSettings) Validate(key string, m Match, matchKey string) error {
	if err := m.validate(matchKey, cloudsink.GraphMatchProperties()); err != nil {
		return err
	}
	for i, b := range s.Bindings {
		if _, err := mapping.ParseBindingKind(b); err != nil {
			return fmt.Errorf("%s.bindings[%d]: %q is not one of SKI, SHA1-PUKEY, ISSUER-SERIAL", key, i, b)
		}
	}
	return nil
}

// GraphTarget publishes certificate bindings ("X509:<SKI>…") to Entra ID
// users' authorizationInfo.certificateUserIds, through Microsoft Graph.
type GraphTarget struct {
	settings GraphSettings
	match    Match
	kinds    []mapping.BindingKind
	sink     *cloudsink.Graph // non-nil
}

var _ Target = (*GraphTarget)(nil)

// NewGraphTarget builds the target over its sink; the settings must have
// passed Validate.
func NewGraphTarget(s GraphSettings, m Match, sink *cloudsink.Graph) (*GraphTarget, error) {
	if sink == nil {
		return nil, errors.New("agent: graph target: no sink")
	}
	s.Defaults()
	t := &GraphTarget{settings: s, match: m, sink: sink}
	for _, b := range s.Bindings {
		k, err := mapping.ParseBindingKind(b)
		if err != nil {
			return nil, fmt.Errorf("agent: graph target: %w", err)
		}
		t.kinds = append(t.kinds, k)
	}
	return t, nil
}

func (t *GraphTarget) Name() string                   { return "graph" }
func (t *GraphTarget) Attributes() []cloudsink.Target { return t.sink.Targets() }
func (t *GraphTarget) Match() Match                   { return t.match }
func (t *GraphTarget) Account() string                { return "cloud user" }
func (t *GraphTarget) AdoptExisting() bool            { return false }

// Want is one binding per certificate and kind (mapping.CertificateUserIDs).
func (t *GraphTarget) Want(attr, _ string, ev mapping.Evaluation) []string {
	if attr != cloudsink.TargetCertificateUserIDs {
		return nil
	}
	return mapping.CertificateUserIDs(ev.Accepted, t.kinds)
}

// Describe: bindings are text made for people already.
func (t *GraphTarget) Describe(_, v string) string { return v }

func (t *GraphTarget) Fingerprint() string {
	return settingsFingerprint(t.Name(), struct {
		Settings GraphSettings
		Match    Match
	}{t.settings, t.match})
}

func (t *GraphTarget) SourceAttributes() (identity, certificates []string) {
	return []string{t.match.SourceAttribute}, nil
}

func (t *GraphTarget) Lookup(ctx context.Context, l []cloudsink.Lookup) (map[string]cloudsink.LookupResult, error) {
	return t.sink.Lookup(ctx, l)
}

func (t *GraphTarget) Apply(ctx context.Context, u []cloudsink.Update) []cloudsink.Result {
	return t.sink.Apply(ctx, u)
}
