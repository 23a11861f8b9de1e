package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certsync/certsync/mapping"
)

// Config is agent.yaml. Every key is documented in agent.yaml.example.
type Config struct {
	Source   Source   `yaml:"source"`
	Cloud    Cloud    `yaml:"cloud"`
	Policy   Policy   `yaml:"policy"`
	State    State    `yaml:"state"`
	Schedule Schedule `yaml:"schedule"`
	Safety   Safety   `yaml:"safety"`
	Log      Log      `yaml:"log"`

	// dir is the config file's directory: relative paths are taken from it.
	dir string
}

type Source struct {
	URL             string    `yaml:"url"`
	BaseDN          string    `yaml:"baseDN"`
	Filter          string    `yaml:"filter"`
	AnchorAttribute string    `yaml:"anchorAttribute"`
	PageSize        int       `yaml:"pageSize"`
	ChangeTracking  string    `yaml:"changeTracking"`
	Bind            Bind      `yaml:"bind"`
	TLS             SourceTLS `yaml:"tls"`
}

type Bind struct {
	Method       string `yaml:"method"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
	PasswordEnv  string `yaml:"passwordEnv"`
	// Kerberos (method gssapi).
	KeytabFile   string `yaml:"keytabFile"`
	CCacheFile   string `yaml:"ccacheFile"`
	Realm        string `yaml:"realm"`
	SPN          string `yaml:"spn"`
	Krb5ConfFile string `yaml:"krb5ConfFile"`
}

type SourceTLS struct {
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
	// The name is loud on purpose: turning verification off must stand out
	// in any review of the file.
	DangerouslySkipVerify bool `yaml:"dangerouslySkipCertificateVerification"`
}

type Cloud struct {
	Environment        string             `yaml:"environment"`
	TenantID           string             `yaml:"tenantID"`
	ClientID           string             `yaml:"clientID"`
	Credential         Credential         `yaml:"credential"`
	GraphEndpoint      string             `yaml:"graphEndpoint"`
	AuthorityHost      string             `yaml:"authorityHost"`
	CAFile             string             `yaml:"caFile"`
	Match              Match              `yaml:"match"`
	CertificateUserIDs CertificateUserIDs `yaml:"certificateUserIds"`
	Exchange           Exchange           `yaml:"exchange"`
}

// Exchange is the Exchange Online target (mailbox S/MIME certificates).
type Exchange struct {
	Enabled  bool   `yaml:"enabled"`
	Endpoint string `yaml:"endpoint"`
	// Match says how a directory user's mailbox is found.
	Match Match `yaml:"match"`
	// Mapping: LDAP attribute -> mailbox attribute it feeds.
	Mapping       map[string]string `yaml:"mapping"`
	AdoptExisting bool              `yaml:"adoptExisting"`
}

// Mailbox attributes Exchange Online holds certificates in.
const (
	MailboxUserCertificate      = "UserCertificate"
	MailboxUserSMimeCertificate = "UserSMimeCertificate"
)

type Credential struct {
	Method          string `yaml:"method"`
	CertificateFile string `yaml:"certificateFile"`
	SecretFile      string `yaml:"secretFile"`
	SecretEnv       string `yaml:"secretEnv"`
	TokenFile       string `yaml:"tokenFile"`
}

type Match struct {
	SourceAttribute string `yaml:"sourceAttribute"`
	CloudProperty   string `yaml:"cloudProperty"`
}

type CertificateUserIDs struct {
	Enabled  *bool    `yaml:"enabled"`
	Bindings []string `yaml:"bindings"`
}

// On reports whether the certificateUserIds target is enabled (default on).
func (c CertificateUserIDs) On() bool { return c.Enabled == nil || *c.Enabled }

type Policy struct {
	IssuingCAFile     string   `yaml:"issuingCAFile"`
	RequireSKI        *bool    `yaml:"requireSKI"`
	ExtendedKeyUsages []string `yaml:"extendedKeyUsages"`
	SkipExpired       *bool    `yaml:"skipExpired"`
	MaxCertificates   int      `yaml:"maxCertificates"`
	CheckRevocation   bool     `yaml:"checkRevocation"`
	// keep | reject: what to do with a certificate whose CA's CRL cannot
	// be read or is past its nextUpdate.
	RevocationUnavailable string `yaml:"revocationUnavailable"`
}

type State struct {
	Path string `yaml:"path"`
}

type Schedule struct {
	Interval     time.Duration `yaml:"interval"`
	FullInterval time.Duration `yaml:"fullInterval"`
}

type Safety struct {
	MaxDeletes       *int `yaml:"maxDeletes"`
	MaxDeletePercent *int `yaml:"maxDeletePercent"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c, err := Parse(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML (relative paths taken from dir), applies defaults and
// validates.
func Parse(data []byte, dir string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if err := checkKeys(&root, reflect.TypeOf(Config{}), ""); err != nil {
		return nil, err
	}
	c := &Config{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// The state path is handed to other packages as is: make it absolute
	// here so it never depends on the working directory.
	c.State.Path = c.Path(c.State.Path)
	return c, nil
}

// checkKeys reports an unknown key by its full dotted path and line, which
// yaml.v3's own message ("field x not found in type config.Source") does not.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			fields[tag] = f.Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %s", k.Line, key)
		}
		if err := checkKeys(v, ft, key); err != nil {
			return err
		}
	}
	return nil
}

// DefaultStatePath is where the state file lives when state.path is unset.
func DefaultStatePath() string {
	if runtime.GOOS == "windows" {
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "certsync", "state.db")
		}
	}
	return "/var/lib/certsync/state.db"
}

// Defaults fills in what the file left out.
func (c *Config) Defaults() {
	s := &c.Source
	def(&s.AnchorAttribute, "objectGUID")
	def(&s.Filter, "(&(objectCategory=person)(objectClass=user)(mail=*))")
	if s.PageSize == 0 {
		s.PageSize = 500
	}
	def(&s.Bind.Method, "simple")
	def(&s.ChangeTracking, "auto")
	cl := &c.Cloud
	def(&cl.Environment, "global")
	def(&cl.Credential.Method, "secret")
	def(&cl.Match.SourceAttribute, "objectGUID")
	def(&cl.Match.CloudProperty, "onPremisesImmutableId")
	if len(cl.CertificateUserIDs.Bindings) == 0 {
		cl.CertificateUserIDs.Bindings = []string{"SKI"}
	}
	def(&cl.Exchange.Match.SourceAttribute, "mail")
	def(&cl.Exchange.Match.CloudProperty, "mail")
	if len(cl.Exchange.Mapping) == 0 {
		cl.Exchange.Mapping = map[string]string{
			mapping.AttrUserCertificate:      MailboxUserCertificate,
			mapping.AttrUserSMIMECertificate: MailboxUserSMimeCertificate,
		}
	}
	p := &c.Policy
	if p.RequireSKI == nil {
		p.RequireSKI = ptr(true)
	}
	if p.SkipExpired == nil {
		p.SkipExpired = ptr(true)
	}
	if p.ExtendedKeyUsages == nil {
		p.ExtendedKeyUsages = []string{"emailProtection", "clientAuth"}
	}
	if p.MaxCertificates == 0 {
		p.MaxCertificates = 15
	}
	def(&p.RevocationUnavailable, "keep")
	def(&c.State.Path, DefaultStatePath())
	if c.Schedule.Interval == 0 {
		c.Schedule.Interval = 5 * time.Minute
	}
	if c.Schedule.FullInterval == 0 {
		c.Schedule.FullInterval = 24 * time.Hour
	}
	if c.Safety.MaxDeletes == nil {
		c.Safety.MaxDeletes = ptr(500)
	}
	if c.Safety.MaxDeletePercent == nil {
		c.Safety.MaxDeletePercent = ptr(10)
	}
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "json")
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func ptr[T any](v T) *T { return &v }

// Validate checks every key; the first problem is returned, naming the key.
func (c *Config) Validate() error {
	s := c.Source
	if s.URL == "" {
		return keyErr("source.url", "required (ldaps://host or ldap://host, which always uses StartTLS)")
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return keyErr("source.url", fmt.Sprintf("%q is not an ldap:// or ldaps:// URL with a host", s.URL))
	}
	if s.BaseDN == "" {
		return keyErr("source.baseDN", "required")
	}
	if !strings.HasPrefix(strings.TrimSpace(s.Filter), "(") {
		return keyErr("source.filter", fmt.Sprintf("%q is not an LDAP filter in parentheses", s.Filter))
	}
	if s.PageSize < 1 || s.PageSize > 1000 {
		return keyErr("source.pageSize", fmt.Sprintf("%d is outside 1..1000 (AD caps a page at 1000)", s.PageSize))
	}
	switch s.Bind.Method {
	case "simple":
		if s.Bind.Username == "" {
			return keyErr("source.bind.username", "required for method simple")
		}
		if err := oneSecret("source.bind", "passwordFile", s.Bind.PasswordFile, "passwordEnv", s.Bind.PasswordEnv); err != nil {
			return err
		}
	case "gssapi":
		// Without a keytab the process's Kerberos credential cache is used
		// (on Windows, the service account's own logon).
		if s.Bind.PasswordFile != "" || s.Bind.PasswordEnv != "" {
			return keyErr("source.bind.passwordFile", "not used with method gssapi (use keytabFile or the credential cache)")
		}
		if s.Bind.KeytabFile != "" && s.Bind.Username == "" {
			return keyErr("source.bind.username", "required with keytabFile: the principal to take from the keytab (svc-certsync@CONTOSO.COM)")
		}
		if err := c.fileKey("source.bind.keytabFile", s.Bind.KeytabFile, false); err != nil {
			return err
		}
		if err := c.fileKey("source.bind.krb5ConfFile", s.Bind.Krb5ConfFile, false); err != nil {
			return err
		}
	default:
		return keyErr("source.bind.method", fmt.Sprintf("%q is not one of simple, gssapi", s.Bind.Method))
	}
	if s.Bind.Method == "simple" {
		for _, k := range []struct{ key, val string }{{"keytabFile", s.Bind.KeytabFile}, {"ccacheFile", s.Bind.CCacheFile}, {"realm", s.Bind.Realm}, {"spn", s.Bind.SPN}, {"krb5ConfFile", s.Bind.Krb5ConfFile}} {
			if k.val != "" {
				return keyErr("source.bind."+k.key, "only used with method gssapi")
			}
		}
	}
	switch s.ChangeTracking {
	case "auto", "usn", "dirsync", "modifyTimestamp", "full":
	default:
		return keyErr("source.changeTracking", fmt.Sprintf("%q is not one of auto, usn, dirsync, modifyTimestamp, full", s.ChangeTracking))
	}
	if err := c.fileKey("source.tls.caFile", s.TLS.CAFile, false); err != nil {
		return err
	}

	cl := c.Cloud
	switch cl.Environment {
	case "global", "usgov", "usgovdod", "china":
	default:
		return keyErr("cloud.environment", fmt.Sprintf("%q is not one of global, usgov, usgovdod, china", cl.Environment))
	}
	if cl.TenantID == "" {
		return keyErr("cloud.tenantID", "required")
	}
	if cl.ClientID == "" && cl.Credential.Method != "managedIdentity" {
		return keyErr("cloud.clientID", "required")
	}
	switch cl.Credential.Method {
	case "secret":
		if err := oneSecret("cloud.credential", "secretFile", cl.Credential.SecretFile, "secretEnv", cl.Credential.SecretEnv); err != nil {
			return err
		}
	case "certificate":
		if err := c.fileKey("cloud.credential.certificateFile", cl.Credential.CertificateFile, true); err != nil {
			return err
		}
	case "managedIdentity", "workloadIdentity":
	default:
		return keyErr("cloud.credential.method", fmt.Sprintf("%q is not one of secret, certificate, managedIdentity, workloadIdentity", cl.Credential.Method))
	}
	for _, k := range []struct{ key, val string }{{"cloud.graphEndpoint", cl.GraphEndpoint}, {"cloud.authorityHost", cl.AuthorityHost}, {"cloud.exchange.endpoint", cl.Exchange.Endpoint}} {
		if k.val == "" {
			continue
		}
		if u, err := url.Parse(k.val); err != nil || u.Scheme != "https" || u.Host == "" {
			return keyErr(k.key, fmt.Sprintf("%q is not an https URL (the Microsoft identity library refuses anything else)", k.val))
		}
	}
	if err := c.fileKey("cloud.caFile", cl.CAFile, false); err != nil {
		return err
	}
	switch cl.Match.CloudProperty {
	case "onPremisesImmutableId", "mail", "userPrincipalName":
	default:
		return keyErr("cloud.match.cloudProperty", fmt.Sprintf("%q is not one of onPremisesImmutableId, mail, userPrincipalName", cl.Match.CloudProperty))
	}
	if cl.Match.CloudProperty == "onPremisesImmutableId" && !strings.EqualFold(cl.Match.SourceAttribute, "objectGUID") && !strings.EqualFold(cl.Match.SourceAttribute, "mS-DS-ConsistencyGuid") && !strings.EqualFold(cl.Match.SourceAttribute, "entryUUID") {
		return keyErr("cloud.match.sourceAttribute", fmt.Sprintf("%q cannot match onPremisesImmutableId (use objectGUID, mS-DS-ConsistencyGuid or entryUUID)", cl.Match.SourceAttribute))
	}
	for i, b := range cl.CertificateUserIDs.Bindings {
		switch strings.ToUpper(b) {
		case "SKI", "SHA1-PUKEY", "ISSUER-SERIAL":
		default:
			return keyErr(fmt.Sprintf("cloud.certificateUserIds.bindings[%d]", i), fmt.Sprintf("%q is not one of SKI, SHA1-PUKEY, ISSUER-SERIAL", b))
		}
	}

	if err := c.validateExchange(); err != nil {
		return err
	}
	if !cl.CertificateUserIDs.On() && !cl.Exchange.Enabled {
		return keyErr("cloud.certificateUserIds.enabled", "false, and cloud.exchange.enabled is false too: enable at least one cloud target")
	}

	p := c.Policy
	if err := c.fileKey("policy.issuingCAFile", p.IssuingCAFile, true); err != nil {
		return err
	}
	for i, e := range p.ExtendedKeyUsages {
		if _, err := mapping.ParseExtKeyUsage(e); err != nil {
			return keyErr(fmt.Sprintf("policy.extendedKeyUsages[%d]", i), strings.TrimPrefix(err.Error(), "mapping: "))
		}
	}
	if p.MaxCertificates < 1 || p.MaxCertificates > 15 {
		return keyErr("policy.maxCertificates", fmt.Sprintf("%d is outside 1..15 (Exchange Online holds at most 15 per attribute)", p.MaxCertificates))
	}
	switch p.RevocationUnavailable {
	case "keep", "reject":
	default:
		return keyErr("policy.revocationUnavailable", fmt.Sprintf("%q is not one of keep, reject", p.RevocationUnavailable))
	}
	if c.Schedule.Interval < 10*time.Second {
		return keyErr("schedule.interval", fmt.Sprintf("%s is shorter than 10s", c.Schedule.Interval))
	}
	if c.Schedule.FullInterval < c.Schedule.Interval {
		return keyErr("schedule.fullInterval", fmt.Sprintf("%s is shorter than schedule.interval (%s)", c.Schedule.FullInterval, c.Schedule.Interval))
	}
	if *c.Safety.MaxDeletes < 0 {
		return keyErr("safety.maxDeletes", "must be 0 (no limit) or more")
	}
	if pc := *c.Safety.MaxDeletePercent; pc < 0 || pc > 100 {
		return keyErr("safety.maxDeletePercent", fmt.Sprintf("%d is outside 0..100", pc))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return keyErr("log.format", fmt.Sprintf("%q is not one of json, console", c.Log.Format))
	}
	return nil
}

func (c *Config) validateExchange() error {
	x := c.Cloud.Exchange
	switch x.Match.CloudProperty {
	case "mail", "userPrincipalName":
	default:
		return keyErr("cloud.exchange.match.cloudProperty", fmt.Sprintf("%q is not one of mail, userPrincipalName", x.Match.CloudProperty))
	}
	for attr, box := range x.Mapping {
		if attr == "" || strings.ContainsAny(attr, "; ,()*=") {
			return keyErr("cloud.exchange.mapping", fmt.Sprintf("%q is not an LDAP attribute name", attr))
		}
		switch box {
		case MailboxUserCertificate, MailboxUserSMimeCertificate:
		default:
			return keyErr("cloud.exchange.mapping."+attr, fmt.Sprintf("%q is not one of %s, %s", box, MailboxUserCertificate, MailboxUserSMimeCertificate))
		}
	}
	return nil
}

func keyErr(key, msg string) error { return fmt.Errorf("%s: %s", key, msg) }

func oneSecret(prefix, fileKey, file, envKey, env string) error {
	switch {
	case file == "" && env == "":
		return keyErr(prefix+"."+fileKey, fmt.Sprintf("required (or %s.%s); secrets are never written in the config file", prefix, envKey))
	case file != "" && env != "":
		return keyErr(prefix+"."+fileKey, fmt.Sprintf("set only one of %s and %s", fileKey, envKey))
	}
	return nil
}

// fileKey checks that a configured file is readable now, so a typo fails at
// start-up rather than at the first pass.
func (c *Config) fileKey(key, path string, required bool) error {
	if path == "" {
		if required {
			return keyErr(key, "required")
		}
		return nil
	}
	f, err := os.Open(c.Path(path))
	if err != nil {
		return keyErr(key, fmt.Sprintf("cannot read: %v", err))
	}
	return f.Close()
}

// Path resolves a path from the file against the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}
