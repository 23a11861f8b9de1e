package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// Config is agent.yaml. Every key is documented in agent.yaml.example.
// Each section belongs to the package that uses it, which supplies its
// defaults, its validation and its allowed values; Config composes them.
type Config struct {
	// Source is the one directory of a configuration that has one;
	// Parse moves it into Sources, so that code reads Sources only.
	Source *ldapsrc.Settings `yaml:"source"`
	// Sources are the directories read, in order (several AD forests or
	// domains, or AD and OpenLDAP); each names itself.
	Sources  []ldapsrc.Settings `yaml:"sources"`
	Cloud    Cloud              `yaml:"cloud"`
	Policy   Policy             `yaml:"policy"`
	State    State              `yaml:"state"`
	Schedule Schedule           `yaml:"schedule"`
	Safety   Safety             `yaml:"safety"`
	Log      Log                `yaml:"log"`

	// dir is the config file's directory: relative paths are taken from it.
	dir string
	// single: the file has source, not sources (errors name keys as
	// written).
	single bool
	// noCloud: the file has no cloud section.
	noCloud bool
}

// Cloud is the cloud section: the connection (cloudsink's) and the two
// cloud targets' settings (agent's).
type Cloud struct {
	cloudsink.Settings `yaml:",inline"`
	// Match is how a directory user is found in Entra ID (the Graph
	// target's).
	Match              agent.Match            `yaml:"match"`
	CertificateUserIDs agent.GraphSettings    `yaml:"certificateUserIds"`
	Exchange           agent.ExchangeSettings `yaml:"exchange"`
}

// Policy decides which certificates may be published (mapping.Policy,
// with its CAs in a file).
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
	// match | matchNamed | off: must a certificate name the user it sits
	// on (mapping.IdentityMatch)? Default match.
	Identity string `yaml:"identity"`
}

type State struct {
	Path string `yaml:"path"`
}

type Schedule struct {
	Interval     time.Duration `yaml:"interval"`
	FullInterval time.Duration `yaml:"fullInterval"`
	// PassTimeout bounds one pass; a pass past it fails. Default 30m.
	PassTimeout time.Duration `yaml:"passTimeout"`
}

// Safety is the deletion limit. In the file a limit is a number or the
// word unlimited (held as 0 here): a 0 in the file is refused, so no limit
// is ever turned off by a value that reads like "none may go".
type Safety struct {
	MaxDeletes       *int `yaml:"maxDeletes"`
	MaxDeletePercent *int `yaml:"maxDeletePercent"`
}

// UnmarshalYAML reads each limit as a number or unlimited, refusing 0.
func (s *Safety) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("safety: line %d: want a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := n.Content[i].Value, n.Content[i+1]
		var dst **int
		switch key {
		case "maxDeletes":
			dst = &s.MaxDeletes
		case "maxDeletePercent":
			dst = &s.MaxDeletePercent
		default:
			return keyErr("safety."+key, fmt.Sprintf("line %d: unknown key", n.Content[i].Line))
		}
		var limit int
		switch {
		case v.Kind == yaml.ScalarNode && v.Value == "unlimited":
		case v.Decode(&limit) != nil:
			return keyErr("safety."+key, fmt.Sprintf("line %d: %q is neither a number nor unlimited", v.Line, v.Value))
		case limit == 0:
			return keyErr("safety."+key, fmt.Sprintf("line %d: 0 would turn the limit off; write unlimited if that is meant", v.Line))
		}
		*dst = &limit
	}
	return nil
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
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o002 != 0 {
		// Whoever may write it decides where certsync sends its tokens.
		return nil, fmt.Errorf("config: %s may be written by every user of the machine (mode %04o): chmod o-w %s", path, fi.Mode().Perm(), path)
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
	c := &Config{dir: dir, noCloud: !hasKey(&root, "cloud")}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case c.Source != nil && len(c.Sources) > 0:
		return nil, errors.New("source and sources: use one of them (sources for several directories)")
	case c.Source != nil:
		c.Sources, c.Source, c.single = []ldapsrc.Settings{*c.Source}, nil, true
	case len(c.Sources) == 0:
		return nil, errors.New("sources: required (or source, for one directory)")
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

// hasKey reports whether the document's top-level mapping has key.
func hasKey(doc *yaml.Node, key string) bool {
	for _, n := range doc.Content {
		if n.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return true
			}
		}
	}
	return false
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
	if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := yamlFields(t)
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

// yamlFields maps a struct's YAML keys to their types, with the keys of
// inlined structs at the same level.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		switch {
		case slices.Contains(tag[1:], "inline"):
			for k, v := range yamlFields(f.Type) {
				fields[k] = v
			}
		case tag[0] != "" && tag[0] != "-":
			fields[tag[0]] = f.Type
		}
	}
	return fields
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

// Defaults fills in what the file left out, each section by its owner.
func (c *Config) Defaults() {
	for i := range c.Sources {
		c.Sources[i].Defaults()
	}
	if c.noCloud && c.ADTarget() {
		// Strong mappings in AD alone: KB5014754 is an on-premises
		// problem first, and needs no tenant.
		c.Cloud.CertificateUserIDs.Enabled = ptr(false)
	}
	c.Cloud.Settings.Defaults()
	if c.Cloud.Match == (agent.Match{}) {
		c.Cloud.Match = agent.DefaultGraphMatch()
	}
	c.Cloud.CertificateUserIDs.Defaults()
	c.Cloud.Exchange.Defaults()
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
	if p.RevocationUnavailable == "" {
		p.RevocationUnavailable = mapping.RevocationKeep
	}
	if p.Identity == "" {
		p.Identity = mapping.IdentityMatch
	}
	if c.State.Path == "" {
		c.State.Path = DefaultStatePath()
	}
	if c.Schedule.Interval == 0 {
		c.Schedule.Interval = 5 * time.Minute
	}
	if c.Schedule.PassTimeout == 0 {
		c.Schedule.PassTimeout = 30 * time.Minute
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
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

func ptr[T any](v T) *T { return &v }

// Validate checks every key, each section by its owner; the first problem
// is returned, naming the key.
func (c *Config) Validate() error {
	if err := c.validateSources(); err != nil {
		return err
	}
	if !c.CloudTargets() {
		if !c.ADTarget() {
			return keyErr("cloud.certificateUserIds.enabled", "false, and cloud.exchange.enabled is false too: enable at least one cloud target, or a source's altSecurityIdentities (to withdraw the mappings certsync wrote there, keep it enabled, stop `certsync run` and use `certsync sync --withdraw ad.altSecurityIdentities`)")
		}
		// No cloud target: the cloud section, if any, is not used.
		return c.validateLocal()
	}
	cl := c.Cloud
	if err := cl.Settings.Validate("cloud"); err != nil {
		return err
	}
	if cl.Credential.Method == cloudsink.MethodCertificate {
		if err := c.fileKey("cloud.credential.certificateFile", cl.Credential.CertificateFile, true); err != nil {
			return err
		}
	}
	if err := c.fileKey("cloud.caFile", cl.CAFile, false); err != nil {
		return err
	}
	if err := cl.CertificateUserIDs.Validate("cloud.certificateUserIds", cl.Match, "cloud.match"); err != nil {
		return err
	}
	if cl.Exchange.Endpoint != "" {
		if _, err := cl.Settings.CheckOverride("cloud.exchange.endpoint", cl.Exchange.Endpoint); err != nil {
			return err
		}
	}
	if err := cl.Exchange.Validate("cloud.exchange"); err != nil {
		return err
	}
	return c.validateLocal()
}

// validateLocal checks the sections that do not depend on the cloud.
func (c *Config) validateLocal() error {
	if err := c.validatePolicy(); err != nil {
		return err
	}
	return c.validateRest()
}

// CloudTargets reports whether a cloud target (Entra ID, Exchange Online)
// is enabled: only then are the cloud section and its credential used.
func (c *Config) CloudTargets() bool {
	return c.Cloud.CertificateUserIDs.On() || c.Cloud.Exchange.Enabled
}

// ADTarget reports whether a source enables its altSecurityIdentities
// target, or withdraws the mappings certsync wrote there (sync --withdraw).
func (c *Config) ADTarget() bool {
	return slices.ContainsFunc(c.Sources, func(s ldapsrc.Settings) bool {
		return s.AltSecurityIdentities.Enabled || s.AltSecurityIdentities.Withdraw
	})
}

func (c *Config) validateSources() error {
	key := func(i int) string {
		if c.single {
			return "source"
		}
		return fmt.Sprintf("sources[%d]", i)
	}
	names := map[string]int{}
	for i, s := range c.Sources {
		if j, dup := names[s.Name]; dup {
			return keyErr(key(i)+".name", fmt.Sprintf("%q is also the name of %s: each directory needs its own name (state records remember it)", s.Name, key(j)))
		}
		names[s.Name] = i
		if err := s.Validate(key(i), c.Path); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validatePolicy() error {
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
	if p.RevocationUnavailable != mapping.RevocationKeep && p.RevocationUnavailable != mapping.RevocationReject {
		return keyErr("policy.revocationUnavailable", fmt.Sprintf("%q is not one of %s, %s", p.RevocationUnavailable, mapping.RevocationKeep, mapping.RevocationReject))
	}
	if !slices.Contains(mapping.IdentityModes(), p.Identity) {
		return keyErr("policy.identity", fmt.Sprintf("%q is not one of %s", p.Identity, strings.Join(mapping.IdentityModes(), ", ")))
	}
	return nil
}

func (c *Config) validateRest() error {
	if err := c.validateSecretFiles(); err != nil {
		return err
	}
	if c.Schedule.Interval < time.Second {
		return keyErr("schedule.interval", fmt.Sprintf("%s is shorter than 1s", c.Schedule.Interval))
	}
	if c.Schedule.PassTimeout < time.Second {
		return keyErr("schedule.passTimeout", fmt.Sprintf("%s is shorter than 1s", c.Schedule.PassTimeout))
	}
	if c.Schedule.FullInterval < c.Schedule.Interval {
		return keyErr("schedule.fullInterval", fmt.Sprintf("%s is shorter than schedule.interval (%s)", c.Schedule.FullInterval, c.Schedule.Interval))
	}
	if *c.Safety.MaxDeletes < 0 {
		return keyErr("safety.maxDeletes", "must be 1 or more, or unlimited")
	}
	if pc := *c.Safety.MaxDeletePercent; pc < 0 || pc > 100 {
		return keyErr("safety.maxDeletePercent", fmt.Sprintf("%d is outside 1..100 (or unlimited)", pc))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return keyErr("log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		return keyErr("log.format", fmt.Sprintf("%q is not one of json, console", c.Log.Format))
	}
	return nil
}

func keyErr(key, msg string) error { return fmt.Errorf("%s: %s", key, msg) }

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

// SourceNames lists the directories' names, in order.
func (c *Config) SourceNames() []string {
	names := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		names[i] = s.Name
	}
	return names
}
