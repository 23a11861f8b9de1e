package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/mapping/pkitest"
)

// validYAML is a complete configuration; the table below breaks one thing
// at a time.
const validYAML = `source:
  url: ldaps://dc01.contoso.com
  baseDN: "DC=contoso,DC=com"
  bind: {method: simple, username: "svc@contoso.com", passwordFile: pw}
  tls: {caFile: ca.pem}
cloud:
  tenantID: "t"
  clientID: "c"
  credential: {method: secret, secretEnv: CERTSYNC_TEST_SECRET}
policy:
  issuingCAFile: ca.pem
state: {path: state.db}
`

func writeFiles(t *testing.T) string {
	t.Helper()
	ca, err := pkitest.NewRootCA("config test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string]string{"pw": "s3cret\n", "ca.pem": string(pkitest.CertPEM(ca.Cert))} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseValidAppliesDefaults(t *testing.T) {
	dir := writeFiles(t)
	c, err := Parse([]byte(validYAML), dir)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"anchor", c.Sources[0].AnchorAttribute, "objectGUID"},
		{"pageSize", c.Sources[0].PageSize, 500},
		{"environment", c.Cloud.Environment, "global"},
		{"match", c.Cloud.Match, agent.Match{SourceAttribute: "objectGUID", CloudProperty: "onPremisesImmutableId"}},
		{"bindings", strings.Join(c.Cloud.CertificateUserIDs.Bindings, ","), "SKI"},
		{"cuid on", c.Cloud.CertificateUserIDs.On(), true},
		{"requireSKI", *c.Policy.RequireSKI, true},
		{"skipExpired", *c.Policy.SkipExpired, true},
		{"maxCertificates", c.Policy.MaxCertificates, 15},
		{"ekus", len(c.ExtKeyUsageList()), 2},
		{"interval", c.Schedule.Interval, 5 * time.Minute},
		{"maxDeletes", *c.Safety.MaxDeletes, 500},
		{"maxDeletePercent", *c.Safety.MaxDeletePercent, 10},
		{"state path is relative to the file", c.Path(c.State.Path), filepath.Join(dir, "state.db")},
		{"log", c.Log, Log{"info", "json"}},
		{"changeTracking", c.Sources[0].ChangeTracking, "auto"},
		{"one source, named default", len(c.Sources), 1},
		{"source name", c.Sources[0].Name, "default"},
		{"source folded into sources", c.Source == nil, true},
		{"fullInterval", c.Schedule.FullInterval, 24 * time.Hour},
		{"checkRevocation", c.Policy.CheckRevocation, false},
		{"revocationUnavailable", c.Policy.RevocationUnavailable, "keep"},
		{"exchange off", c.Cloud.Exchange.Enabled, false},
		{"exchange match", c.Cloud.Exchange.Match, agent.Match{SourceAttribute: "mail", CloudProperty: "mail"}},
		{"exchange mapping", c.Cloud.Exchange.Mapping["userSMIMECertificate"], "UserSMimeCertificate"},
		{"exchange mapping size", len(c.Cloud.Exchange.Mapping), 2},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	pw, err := c.LDAPPassword(0)
	if err != nil || pw.Reveal() != "s3cret" {
		t.Errorf("password: %v %q", err, pw.Reveal())
	}
	if s := pw.String(); strings.Contains(s, "s3cret") {
		t.Errorf("Secret.String leaks the secret: %q", s)
	}
}

// A limit is turned off only by the word unlimited (held as 0, which the
// agent reads as no limit); the other limit keeps its default.
func TestSafetyUnlimited(t *testing.T) {
	dir := writeFiles(t)
	c, err := Parse([]byte(strings.Replace(validYAML, "state: {path: state.db}", "state: {path: state.db}\nsafety: {maxDeletes: unlimited}", 1)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Safety.MaxDeletes != 0 || *c.Safety.MaxDeletePercent != 10 {
		t.Fatalf("maxDeletes %d, maxDeletePercent %d; want 0 (unlimited) and the default 10", *c.Safety.MaxDeletes, *c.Safety.MaxDeletePercent)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	dir := writeFiles(t)
	cases := []struct {
		name, from, to, wantErr string
	}{
		{"unknown top key", "state: {path: state.db}", "state: {path: state.db}\nstat: 1", "unknown key stat"},
		{"unknown nested key", "tls: {caFile: ca.pem}", "tls: {caFile: ca.pem, cafile: x}", "unknown key source.tls.cafile"},
		{"missing url", "url: ldaps://dc01.contoso.com", "url: \"\"", "source.url: required"},
		{"http url", "url: ldaps://dc01.contoso.com", "url: http://dc01", "source.url"},
		{"missing baseDN", `baseDN: "DC=contoso,DC=com"`, `baseDN: ""`, "source.baseDN: required"},
		{"page size", "  bind:", "  pageSize: 5000\n  bind:", "source.pageSize"},
		{"no password source", "passwordFile: pw", "passwordFile: \"\"", "source.bind.passwordFile: required"},
		{"two password sources", "passwordFile: pw", "passwordFile: pw, passwordEnv: X", "set only one"},
		{"bind method", "method: simple", "method: ntlm", "source.bind.method"},
		{"unreadable CA file", "tls: {caFile: ca.pem}", "tls: {caFile: nope.pem}", "source.tls.caFile: cannot read"},
		{"environment", `tenantID: "t"`, "tenantID: \"t\"\n  environment: mars", "cloud.environment"},
		{"tenant", `tenantID: "t"`, `tenantID: ""`, "cloud.tenantID: required"},
		{"credential method", "method: secret", "method: password", "cloud.credential.method"},
		{"http graph override", `clientID: "c"`, "clientID: \"c\"\n  graphEndpoint: http://127.0.0.1:1", "cloud.graphEndpoint"},
		{"graph override elsewhere", `clientID: "c"`, "clientID: \"c\"\n  graphEndpoint: https://graph.attacker.example", "cloud.graphEndpoint: graph.attacker.example is neither loopback nor a host of the global cloud"},
		{"authority override elsewhere", `clientID: "c"`, "clientID: \"c\"\n  authorityHost: https://login.attacker.example/", "cloud.authorityHost: login.attacker.example is neither loopback"},
		{"authority of another cloud", `clientID: "c"`, "clientID: \"c\"\n  authorityHost: https://login.chinacloudapi.cn/", "cloud.authorityHost: login.chinacloudapi.cn is neither loopback nor a host of the global cloud"},
		{"exchange override elsewhere", `clientID: "c"`, "clientID: \"c\"\n  exchange: {enabled: true, endpoint: \"https://10.0.0.8:8443\"}", "cloud.exchange.endpoint: 10.0.0.8 is neither loopback"},
		{"allowed host is another", `clientID: "c"`, "clientID: \"c\"\n  graphEndpoint: https://graph.attacker.example\n  dangerouslyAllowedHosts: [proxy.contoso.com]", "cloud.graphEndpoint: graph.attacker.example"},
		{"binding kind", `clientID: "c"`, "clientID: \"c\"\n  certificateUserIds: {bindings: [UPN]}", "cloud.certificateUserIds.bindings[0]"},
		{"match pair", `clientID: "c"`, "clientID: \"c\"\n  match: {sourceAttribute: mail, cloudProperty: onPremisesImmutableId}", "cloud.match.sourceAttribute"},
		{"missing issuing CA", "issuingCAFile: ca.pem", "issuingCAFile: \"\"", "policy.issuingCAFile: required"},
		{"eku", "issuingCAFile: ca.pem", "issuingCAFile: ca.pem\n  extendedKeyUsages: [smime]", "policy.extendedKeyUsages[0]"},
		{"max certificates", "issuingCAFile: ca.pem", "issuingCAFile: ca.pem\n  maxCertificates: 16", "policy.maxCertificates"},
		{"interval", "state: {path: state.db}", "state: {path: state.db}\nschedule: {interval: 500ms}", "schedule.interval"},
		{"bad duration", "state: {path: state.db}", "state: {path: state.db}\nschedule: {interval: soon}", "soon"},
		{"percent", "state: {path: state.db}", "state: {path: state.db}\nsafety: {maxDeletePercent: 150}", "safety.maxDeletePercent"},
		{"count limit 0", "state: {path: state.db}", "state: {path: state.db}\nsafety: {maxDeletes: 0}", "safety.maxDeletes: line 13: 0 would turn the limit off; write unlimited"},
		{"percent limit 0", "state: {path: state.db}", "state: {path: state.db}\nsafety: {maxDeletes: unlimited, maxDeletePercent: 0}", "safety.maxDeletePercent: line 13: 0 would turn the limit off"},
		{"limit word", "state: {path: state.db}", "state: {path: state.db}\nsafety: {maxDeletes: none}", `safety.maxDeletes: line 13: "none" is neither a number nor unlimited`},
		{"log level", "state: {path: state.db}", "state: {path: state.db}\nlog: {level: loud}", "log.level"},
		{"change tracking", "  bind:", "  changeTracking: usnchanged\n  bind:", "source.changeTracking"},
		{"keytab with simple", "passwordFile: pw}", "passwordFile: pw, keytabFile: pw}", "source.bind.keytabFile: only used with method gssapi"},
		{"gssapi with password", "method: simple", "method: gssapi", "source.bind.passwordFile: not used with method gssapi"},
		{"gssapi keytab missing", "method: simple, username: \"svc@contoso.com\", passwordFile: pw", "method: gssapi, username: \"svc@CONTOSO.COM\", keytabFile: nope.keytab", "source.bind.keytabFile: cannot read"},
		{"gssapi keytab without principal", "method: simple, username: \"svc@contoso.com\", passwordFile: pw", "method: gssapi, keytabFile: pw", "source.bind.username: required with keytabFile"},
		{"revocation choice", "issuingCAFile: ca.pem", "issuingCAFile: ca.pem\n  revocationUnavailable: ignore", "policy.revocationUnavailable"},
		{"full interval", "state: {path: state.db}", "state: {path: state.db}\nschedule: {interval: 1h, fullInterval: 30m}", "schedule.fullInterval"},
		{"exchange mailbox attribute", `clientID: "c"`, "clientID: \"c\"\n  exchange: {enabled: true, mapping: {userCertificate: Certificate}}", "cloud.exchange.mapping.userCertificate"},
		{"exchange match", `clientID: "c"`, "clientID: \"c\"\n  exchange: {enabled: true, match: {sourceAttribute: mail, cloudProperty: onPremisesImmutableId}}", "cloud.exchange.match.cloudProperty"},
		{"exchange http endpoint", `clientID: "c"`, "clientID: \"c\"\n  exchange: {enabled: true, endpoint: http://127.0.0.1:1}", "cloud.exchange.endpoint"},
		{"exchange CA collection without exchange", `clientID: "c"`, "clientID: \"c\"\n  exchange: {smimeIssuingCAs: true}", "cloud.exchange.smimeIssuingCAs: needs cloud.exchange.enabled"},
		{"no target", `clientID: "c"`, "clientID: \"c\"\n  certificateUserIds: {enabled: false}", "enable at least one cloud target"},
		{"unparsable filter", "  bind:", "  filter: \"(&(mail=*)\"\n  bind:", "source.filter"},
		{"source and sources", "cloud:", "sources: [{name: b, url: ldaps://b, baseDN: \"DC=b\"}]\ncloud:", "use one of them"},
		{"bad source name", "  bind:", "  name: \"two words\"\n  bind:", "source.name"},
		{"no source", "source:\n  url:", "ignored:\n  url:", "unknown key ignored"},
		{"altSecurityIdentities on OpenLDAP", "  bind:", "  anchorAttribute: entryUUID\n  altSecurityIdentities: {enabled: true}\n  bind:", "source.altSecurityIdentities.enabled: needs Active Directory"},
		{"altSecurityIdentities mapping kind", "  bind:", "  altSecurityIdentities: {enabled: true, mappings: [UPN]}\n  bind:", "source.altSecurityIdentities.mappings[0]"},
		{"altSecurityIdentities maxValues", "  bind:", "  altSecurityIdentities: {enabled: true, maxValues: 11}\n  bind:", "source.altSecurityIdentities.maxValues"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(validYAML, tc.from) {
				t.Fatalf("test broken: %q not in the valid config", tc.from)
			}
			_, err := Parse([]byte(strings.Replace(validYAML, tc.from, tc.to, 1)), dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// Kerberos from the credential cache needs neither password nor keytab;
// Exchange alone is a valid set of targets.
func TestParseValidVariants(t *testing.T) {
	dir := writeFiles(t)
	for name, edit := range map[string][2]string{
		"gssapi from the cache":              {`method: simple, username: "svc@contoso.com", passwordFile: pw`, "method: gssapi"},
		"gssapi with a keytab":               {`method: simple, username: "svc@contoso.com", passwordFile: pw`, `method: gssapi, username: "svc@CONTOSO.COM", keytabFile: pw, spn: ldap/dc01.contoso.com`},
		"exchange only":                      {`clientID: "c"`, "clientID: \"c\"\n  certificateUserIds: {enabled: false}\n  exchange: {enabled: true}"},
		"dirsync":                            {"  bind:", "  changeTracking: dirsync\n  bind:"},
		"revocation, reject unknown":         {"issuingCAFile: ca.pem", "issuingCAFile: ca.pem\n  checkRevocation: true\n  revocationUnavailable: reject"},
		"overrides on loopback":              {`clientID: "c"`, "clientID: \"c\"\n  graphEndpoint: https://127.0.0.1:8443\n  authorityHost: https://localhost:8443/\n  exchange: {enabled: true, endpoint: \"https://[::1]:8443\"}"},
		"overrides on the cloud's own hosts": {`clientID: "c"`, "clientID: \"c\"\n  environment: usgov\n  graphEndpoint: https://graph.microsoft.us\n  authorityHost: https://login.microsoftonline.us/"},
		"an override on a listed host":       {`clientID: "c"`, "clientID: \"c\"\n  graphEndpoint: https://graph-proxy.contoso.com:8443\n  dangerouslyAllowedHosts: [Graph-Proxy.contoso.com]"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(validYAML, edit[0]) {
				t.Fatalf("test broken: %q not in the valid config", edit[0])
			}
			if _, err := Parse([]byte(strings.Replace(validYAML, edit[0], edit[1], 1)), dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sources: a list of directories, each validated under its own key.
func TestParseSeveralSources(t *testing.T) {
	dir := writeFiles(t)
	several := severalSourcesYAML()
	c, err := Parse([]byte(several), dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, several)
	}
	if got := strings.Join(c.SourceNames(), ","); got != "contoso,lab" {
		t.Fatalf("source names %q", got)
	}
	if c.Sources[1].AnchorAttribute != "entryUUID" || c.Sources[0].AnchorAttribute != "objectGUID" || c.Sources[1].PageSize != 500 {
		t.Fatalf("each source gets its own settings and defaults: %+v", c.Sources)
	}
	for name, edit := range map[string][2]string{
		"duplicate name": {"name: lab", "name: contoso"},
		"second url":     {"url: ldap://ldap.lab.test", "url: ftp://ldap.lab.test"},
		"second unknown": {"anchorAttribute: entryUUID", "anchorAttribute: entryUUID\n  anchor: x"},
	} {
		want := map[string]string{"duplicate name": "sources[1].name", "second url": "sources[1].url", "second unknown": "unknown key sources[1].anchor"}[name]
		_, err := Parse([]byte(strings.Replace(several, edit[0], edit[1], 1)), dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %s", name, err, want)
		}
	}
}

func TestSecretFromEnvironment(t *testing.T) {
	dir := writeFiles(t)
	c, err := Parse([]byte(validYAML), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClientSecret(); err == nil || !strings.Contains(err.Error(), "CERTSYNC_TEST_SECRET") {
		t.Fatalf("unset variable: got %v", err)
	}
	t.Setenv("CERTSYNC_TEST_SECRET", "xyz")
	s, err := c.ClientSecret()
	if err != nil || s.Reveal() != "xyz" {
		t.Fatalf("got %v %q", err, s.Reveal())
	}
}

func TestReadCerts(t *testing.T) {
	dir := writeFiles(t)
	c, err := Parse([]byte(validYAML), dir)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := c.ReadCerts("policy.issuingCAFile", "ca.pem")
	if err != nil || len(certs) != 1 || certs[0].Subject.CommonName != "config test CA" {
		t.Fatalf("got %v, %v", certs, err)
	}
	if _, err := c.ReadCerts("policy.issuingCAFile", "pw"); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a file without certificates: got %v", err)
	}
}

// TestADTargetNeedsNoCloud: strong mappings in AD alone need no cloud
// section and no credential; a cloud section that enables a cloud target
// is still checked in full.
func TestADTargetNeedsNoCloud(t *testing.T) {
	dir := writeFiles(t)
	withAD := strings.Replace(validYAML, "  bind:", "  altSecurityIdentities: {enabled: true}\n  bind:", 1)
	start, end := strings.Index(withAD, "cloud:"), strings.Index(withAD, "policy:")
	alone := withAD[:start] + withAD[end:]
	for _, tc := range []struct {
		name, yaml, wantErr string
		cloud               bool
	}{
		{"no cloud section", alone, "", false},
		{"cloud section beside it", withAD, "", true},
		{"cloud section beside it, checked", strings.Replace(withAD, `tenantID: "t"`, `tenantID: ""`, 1), "cloud.tenantID: required", true},
		{"cloud targets off beside it: not checked", strings.Replace(withAD, `tenantID: "t"`, "tenantID: \"\"\n  certificateUserIds: {enabled: false}", 1), "", false},
		{"no cloud section and no AD target", strings.Replace(alone, "altSecurityIdentities: {enabled: true}", "altSecurityIdentities: {enabled: false}", 1), "cloud.tenantID: required", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.CloudTargets() != tc.cloud || !c.ADTarget() {
				t.Fatalf("cloud targets %v, AD target %v; want %v, true", c.CloudTargets(), c.ADTarget(), tc.cloud)
			}
			if s := c.Sources[0].AltSecurityIdentities; strings.Join(s.Mappings, ",") != "ISSUER-SERIAL" || s.MaxValues != 5 {
				t.Fatalf("defaults: %+v", s)
			}
		})
	}
}

// A secret file every user may read is refused, naming the key and the
// file; so is a configuration file every user may write.
func TestWorldOpenFilesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		mode       os.FileMode
		want       string
	}{
		{"password file world-readable", "pw", 0o644, "source.bind.passwordFile: "},
		{"password file world-writable", "pw", 0o602, "source.bind.passwordFile: "},
		{"group-readable is fine", "pw", 0o640, ""},
		{"config world-writable", "agent.yaml", 0o666, "may be written by every user"},
		{"config world-readable is fine", "agent.yaml", 0o644, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t)
			cfg := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(cfg, []byte(validYAML), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, tc.file), tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(dir, tc.file))):
				t.Fatalf("Load: %v; want an error with %q naming %s", err, tc.want, tc.file)
			}
		})
	}
}

// severalSourcesYAML is validYAML with two directories: Active Directory
// (contoso) and OpenLDAP (lab).
func severalSourcesYAML() string {
	return `sources:
- name: contoso
  url: ldaps://dc01.contoso.com
  baseDN: "DC=contoso,DC=com"
  bind: {method: simple, username: "svc@contoso.com", passwordFile: pw}
  tls: {caFile: ca.pem}
- name: lab
  url: ldap://ldap.lab.test
  baseDN: "dc=lab,dc=test"
  anchorAttribute: entryUUID
  filter: "(objectClass=inetOrgPerson)"
  bind: {method: simple, username: "cn=certsync,dc=lab,dc=test", passwordEnv: LAB_PW}
` + validYAML[strings.Index(validYAML, "cloud:"):]
}
