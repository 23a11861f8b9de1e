package agent

import (
	"crypto/x509"
	"reflect"
	"testing"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// perturbations returns copies of v (a settings struct), each with one
// leaf field changed, named by its path: a fingerprint that leaves out a
// setting fails the test for that path.
func perturbations(v any) map[string]any {
	out := map[string]any{}
	var walk func(path string, val reflect.Value, set func(func(reflect.Value)) any)
	walk = func(path string, val reflect.Value, set func(func(reflect.Value)) any) {
		switch val.Kind() {
		case reflect.Struct:
			for i := 0; i < val.NumField(); i++ {
				f := val.Type().Field(i)
				if !f.IsExported() {
					continue
				}
				walk(path+"."+f.Name, val.Field(i), func(change func(reflect.Value)) any {
					return set(func(root reflect.Value) { change(root.Field(i)) })
				})
			}
		default:
			out[path] = set(func(leaf reflect.Value) { perturb(leaf) })
		}
	}
	walk("", reflect.ValueOf(v), func(change func(reflect.Value)) any {
		c := reflect.New(reflect.TypeOf(v)).Elem()
		c.Set(reflect.ValueOf(v))
		deepCopy(c)
		change(c)
		return c.Interface()
	})
	return out
}

// deepCopy gives a copy its own maps and slices, so perturbing it leaves
// the original alone.
func deepCopy(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				deepCopy(v.Field(i))
			}
		}
	case reflect.Map:
		if !v.IsNil() {
			m := reflect.MakeMap(v.Type())
			for _, k := range v.MapKeys() {
				m.SetMapIndex(k, v.MapIndex(k))
			}
			v.Set(m)
		}
	case reflect.Slice:
		if !v.IsNil() {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(s, v)
			v.Set(s)
		}
	}
}

func perturb(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int:
		v.SetInt(v.Int() + 1)
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem())) // nil ↔ set is the change
			return
		}
		n := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			n.Elem().Set(v.Elem())
		}
		perturb(n.Elem())
		v.Set(n)
	case reflect.Slice:
		// One more element: a copy of the last keeps it valid.
		next := reflect.Zero(v.Type().Elem())
		if v.Len() > 0 {
			next = v.Index(v.Len() - 1)
		}
		v.Set(reflect.Append(v, next))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range v.MapKeys() {
			m.SetMapIndex(k, v.MapIndex(k))
		}
		m.SetMapIndex(reflect.ValueOf("zz"), reflect.Zero(v.Type().Elem()))
		v.Set(m)
	default:
		panic("perturb: no rule for " + v.Kind().String())
	}
}

// TestTargetFingerprints fails when a target's setting is not part of
// its fingerprint: a change to it would leave a stale watermark trusted,
// and incremental passes would not apply it to unchanged users.
func TestTargetFingerprints(t *testing.T) {
	graphSink, exoSink := &cloudsink.Graph{}, &cloudsink.Exchange{}
	type settings struct {
		Graph    GraphSettings
		Match    Match
		Exchange ExchangeSettings
		AD       ldapsrc.AltSecuritySettings
	}
	base := settings{
		AD:    ldapsrc.AltSecuritySettings{Enabled: true, Mappings: []string{"ISSUER-SERIAL"}, MaxValues: 5},
		Graph: GraphSettings{Enabled: new(bool), Bindings: []string{"SKI"}},
		Match: DefaultGraphMatch(),
		Exchange: ExchangeSettings{Enabled: true, Endpoint: "https://127.0.0.1:1", Match: Match{"mail", "mail"},
			Mapping: map[string]string{"userCertificate": MailboxUserCertificate}},
	}
	build := func(s settings) []Target {
		g, err := NewGraphTarget(s.Graph, s.Match, graphSink)
		if err != nil {
			t.Fatal(err)
		}
		// A perturbed mapping may name no mailbox attribute: fingerprint
		// the settings all the same.
		x := &ExchangeTarget{settings: s.Exchange, sink: exoSink}
		ad := &ADTarget{sources: map[string]*adSource{"contoso": {settings: s.AD}}}
		return []Target{g, x, ad}
	}
	want := build(base)
	for path, changed := range perturbations(base) {
		got := build(changed.(settings))
		differs := false
		for i := range got {
			differs = differs || got[i].Fingerprint() != want[i].Fingerprint()
		}
		if !differs {
			t.Errorf("changing %s leaves every target's fingerprint as it was", path)
		}
		if Fingerprint(mapping.Policy{}, got) == Fingerprint(mapping.Policy{}, want) {
			t.Errorf("changing %s leaves the pass's fingerprint as it was", path)
		}
	}
}

// TestPolicyFingerprint: every policy field but the revocation set (read
// from the directory each pass, tracked by its own digest) and the
// account SID (set per user) changes the fingerprint.
func TestPolicyFingerprint(t *testing.T) {
	ca := &x509.Certificate{Raw: []byte("ca one")}
	base := mapping.Policy{IssuingCAs: []*x509.Certificate{ca}, ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, RevocationUnavailable: mapping.RevocationKeep}
	want := Fingerprint(base, nil)
	for path, changed := range perturbations(base) {
		p := changed.(mapping.Policy)
		if path == ".Revocation" || path == ".AccountSID" || path == ".AccountIdentities" {
			continue // read each pass; set per user (SID, identities)
		}
		if path == ".IssuingCAs" {
			p.IssuingCAs = []*x509.Certificate{ca, {Raw: []byte("ca two")}}
		}
		if Fingerprint(p, nil) == want {
			t.Errorf("changing policy%s leaves the fingerprint as it was", path)
		}
	}
	other := base
	other.IssuingCAs = []*x509.Certificate{{Raw: []byte("another ca")}}
	if Fingerprint(other, nil) == want {
		t.Error("another trusted CA leaves the fingerprint as it was")
	}
}
