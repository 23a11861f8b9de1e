package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// JSON is the report scripts read. Its schema is documented in README.md
// ("JSON output"); schemaVersion changes whenever a field changes meaning
// or goes away.
type JSON struct {
	Head
	Users []User `json:"users"`
}

// Head is the report without its users, which are streamed one by one
// so a plan over many users is never held twice in memory.
type Head struct {
	SchemaVersion int       `json:"schemaVersion"`
	Mode          string    `json:"mode"`
	FullReason    string    `json:"fullReason,omitempty"`
	DryRun        bool      `json:"dryRun"`
	Started       time.Time `json:"started"`
	Error         string    `json:"error,omitempty"`
	Guard         Guard     `json:"guard"`
	Summary       Summary   `json:"summary"`
	Sources       []Source  `json:"sources"`
	// Orphaned: values certsync wrote to targets no longer configured,
	// left in place (counted on full reads).
	Orphaned []Orphaned `json:"orphaned,omitempty"`
	// Tenant: tenant-wide settings changed (or to change), such as
	// Exchange's trusted-CA collection.
	Tenant []Tenant `json:"tenant,omitempty"`
}

// Orphaned is one target no longer configured whose values certsync
// wrote stay in place.
type Orphaned struct {
	Target   string `json:"target"`
	Users    int    `json:"users"`
	Withdraw string `json:"withdraw,omitempty"` // the command that removes them
}

// Tenant is one tenant-wide setting's change.
type Tenant struct {
	Target  string   `json:"target"`
	Setting string   `json:"setting"`
	Status  string   `json:"status"` // as a Target's
	Add     []string `json:"add"`
	Remove  []string `json:"remove"`
	Problem string   `json:"problem,omitempty"`
}

func toTenant(c *agent.TenantChange) Tenant {
	jt := Tenant{Target: c.Target, Setting: c.Setting, Status: StatusPlanned, Add: nonNil(c.Add), Remove: nonNil(c.Remove), Problem: c.Problem}
	switch {
	case c.Err != nil:
		jt.Status, jt.Problem = StatusFailed, c.Err.Error()
	case c.Problem != "":
		jt.Status = StatusFailed
	case c.Applied:
		jt.Status = StatusApplied
	}
	return jt
}

// Source is one directory's part of the pass.
type Source struct {
	Name           string `json:"name"`
	Mode           string `json:"mode"`
	FullReason     string `json:"fullReason,omitempty"`
	UsersRead      int    `json:"usersRead"`
	LDAPOperations int    `json:"ldapOperations"`
	Error          string `json:"error,omitempty"`
}

type Guard struct {
	Tripped          bool   `json:"tripped"`
	Reason           string `json:"reason,omitempty"`
	UsersRemoving    int    `json:"usersRemoving"`
	UsersInState     int    `json:"usersInState"`
	UsersPublished   int    `json:"usersPublished"`
	MaxDeletes       int    `json:"maxDeletes"`
	MaxDeletePercent int    `json:"maxDeletePercent"`
}

type Summary struct {
	UsersRead            int `json:"usersRead"`
	LDAPOperations       int `json:"ldapOperations"`
	UsersInState         int `json:"usersInState"`
	UsersChanged         int `json:"usersChanged"`
	UsersRemoving        int `json:"usersRemoving"`
	UsersUnmatched       int `json:"usersUnmatched"`
	UsersSkipped         int `json:"usersSkipped"`
	UsersFailed          int `json:"usersFailed"`
	ValuesAdded          int `json:"valuesAdded"`
	ValuesRemoved        int `json:"valuesRemoved"`
	CertificatesAccepted int `json:"certificatesAccepted"`
	CertificatesRejected int `json:"certificatesRejected"`
}

type User struct {
	Anchor     string     `json:"anchor"`
	AnchorGUID string     `json:"anchorGuid,omitempty"` // an objectGUID anchor as people write it
	Source     string     `json:"source"`
	DN         string     `json:"dn"`
	Name       string     `json:"name"`
	CloudID    string     `json:"cloudId"`
	Departed   bool       `json:"departed"`
	OutOfScope bool       `json:"outOfScope"`
	Problem    string     `json:"problem,omitempty"`
	Accepted   []Cert     `json:"accepted"`
	Rejected   []Rejected `json:"rejected"`
	// Values are the directory values published as they are (Exchange),
	// Withheld those that are not because a certificate in them failed.
	Values   []Value    `json:"values"`
	Withheld []Withheld `json:"withheld"`
	Targets  []Target   `json:"targets"`
}

// Value is a directory value published byte for byte: a target value is
// its base64, its sha256 this one's.
type Value struct {
	Attribute    string   `json:"attribute"`
	SHA256       string   `json:"sha256"`
	Form         string   `json:"form"` // "pkcs7" or "der"
	Certificates []string `json:"certificates"`
}

type Withheld struct {
	Attribute string `json:"attribute"`
	SHA256    string `json:"sha256"`
	Reason    string `json:"reason"`
}

type Cert struct {
	Subject    string    `json:"subject"`
	Serial     string    `json:"serial"`
	SHA256     string    `json:"sha256"`
	NotBefore  time.Time `json:"notBefore"`
	NotAfter   time.Time `json:"notAfter"`
	Attributes []string  `json:"attributes"`
	Warnings   []string  `json:"warnings,omitempty"`
	// SID is the account its SID extension binds it to (always the
	// user's: a certificate naming another account is rejected).
	SID string `json:"sid,omitempty"`
}

type Rejected struct {
	Attribute string `json:"attribute"`
	Subject   string `json:"subject"`
	Serial    string `json:"serial"`
	SHA256    string `json:"sha256"`
	Code      string `json:"code"`
	Reason    string `json:"reason"`
}

type Target struct {
	Target  string   `json:"target"`
	CloudID string   `json:"cloudId"`
	Status  string   `json:"status"`
	Add     []string `json:"add"`
	Remove  []string `json:"remove"`
	Unowned []string `json:"unowned"`
	Adopted []string `json:"adopted"`
	Dropped []string `json:"dropped"`
	Problem string   `json:"problem,omitempty"`
	// Warning: what the change stops working (a removed logon mapping).
	Warning string `json:"warning,omitempty"`
	// Certificates: the target's own verdict on each certificate, for a
	// target that judges them by a purpose of its own (AD: logon).
	Certificates []TargetCert `json:"certificates,omitempty"`
}

// TargetCert is a target's own verdict on one certificate.
type TargetCert struct {
	Subject string `json:"subject"`
	Serial  string `json:"serial"`
	SHA256  string `json:"sha256"`
	Verdict string `json:"verdict"` // used, refused or not-needed
	Reason  string `json:"reason"`
	// PolicyRejected: policy.extendedKeyUsages refused it for the other
	// targets (it is in the user's rejected list too).
	PolicyRejected bool `json:"policyRejected"`
}

// Target statuses in reports.
const (
	StatusUnchanged = "unchanged" // nothing to write
	StatusPlanned   = "planned"   // would be written (dry run, or not applied)
	StatusApplied   = "applied"   // the cloud confirmed the write
	StatusFailed    = "failed"    // the write failed
	StatusSkipped   = "skipped"   // not written: see problem
)

func TargetStatus(t *agent.TargetPlan) string {
	switch {
	case t.Problem != "":
		return StatusSkipped
	case t.Err != nil:
		return StatusFailed
	case t.Applied:
		return StatusApplied
	case t.Change.Changed():
		return StatusPlanned
	}
	return StatusUnchanged
}

func toHead(p *agent.Plan, dryRun bool, passErr error) Head {
	r := Head{SchemaVersion: 1, Mode: p.Mode, FullReason: p.FullReason, DryRun: dryRun, Started: p.Started}
	if passErr != nil {
		r.Error = passErr.Error()
	}
	g := p.Guard
	r.Guard = Guard{g.Tripped, g.Reason, g.UsersRemoving, g.UsersInState, g.UsersPublished, g.MaxDeletes, g.MaxDeletePercent}
	s := p.Stats
	r.Summary = Summary{s.UsersRead, s.LDAPOperations, s.UsersInState, s.UsersChanged, s.UsersRemoving, s.UsersUnmatched, s.UsersSkipped, s.UsersFailed,
		s.ValuesAdded, s.ValuesRemoved, s.CertificatesAccepted, s.CertificatesRejected}
	r.Sources = []Source{}
	for _, src := range p.Sources {
		js := Source{Name: src.Name, Mode: src.Mode, FullReason: src.FullReason, UsersRead: src.UsersRead, LDAPOperations: src.LDAPOperations}
		if src.Err != nil {
			js.Error = src.Err.Error()
		}
		r.Sources = append(r.Sources, js)
	}
	for _, o := range p.Orphaned {
		r.Orphaned = append(r.Orphaned, Orphaned{o.Target, o.Users, o.Withdraw})
	}
	for _, c := range p.Tenant {
		r.Tenant = append(r.Tenant, toTenant(c))
	}
	return r
}

func toUser(u *agent.UserPlan) User {
	guid, _ := ldapsrc.GUIDString(u.Anchor)
	ju := User{Anchor: u.Anchor, AnchorGUID: guid, Source: u.Source, DN: u.DN, Name: u.Name, Departed: u.Departed, OutOfScope: u.OutOfScope,
		Problem: u.Problem, Accepted: []Cert{}, Rejected: []Rejected{}, Values: []Value{}, Withheld: []Withheld{}, Targets: []Target{}}
	for _, v := range u.Values {
		form := "der"
		if v.PKCS7 {
			form = "pkcs7"
		}
		ju.Values = append(ju.Values, Value{v.Attribute, v.SHA256, form, nonNil(v.Certificates)})
	}
	for _, w := range u.Withheld {
		ju.Withheld = append(ju.Withheld, Withheld{w.Attribute, w.SHA256, w.Reason})
	}
	for _, c := range u.Accepted {
		ju.Accepted = append(ju.Accepted, Cert{c.Subject, c.Serial, c.SHA256, c.NotBefore, c.NotAfter, nonNil(c.Attributes), c.Warnings, c.SID})
	}
	for _, rj := range u.Rejected {
		ju.Rejected = append(ju.Rejected, Rejected{rj.Attribute, rj.Subject, rj.Serial, rj.SHA256, rj.Code, rj.Reason})
	}
	for _, t := range u.Targets {
		if ju.CloudID == "" {
			ju.CloudID = t.CloudID
		}
		jt := Target{Target: t.Target, CloudID: t.CloudID, Status: TargetStatus(t), Problem: t.Problem,
			Add: nonNil(t.Change.Add), Remove: nonNil(t.Change.Remove), Unowned: nonNil(t.Change.Unowned), Adopted: nonNil(t.Adopted), Dropped: nonNil(t.Change.Dropped), Warning: t.Warning}
		if t.Err != nil {
			jt.Problem = t.Err.Error()
		}
		for _, c := range t.Certificates {
			jt.Certificates = append(jt.Certificates, TargetCert{c.Subject, c.Serial, c.SHA256, c.Verdict, c.Reason, c.PolicyRejected})
		}
		ju.Targets = append(ju.Targets, jt)
	}
	return ju
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WriteJSON writes the report as one indented JSON object, streaming the
// users.
func WriteJSON(w io.Writer, p *agent.Plan, dryRun bool, passErr error) error {
	bw := bufio.NewWriter(w)
	head, err := json.MarshalIndent(toHead(p, dryRun, passErr), "", "  ")
	if err != nil {
		return err
	}
	// head ends with "\n}": reopen the object to append the users.
	bw.Write(head[:len(head)-2])
	bw.WriteString(",\n  \"users\": [")
	shown := false
	for u := range p.Users() {
		b, err := json.MarshalIndent(toUser(u), "    ", "  ")
		if err != nil {
			return err
		}
		if shown {
			bw.WriteString(",")
		}
		shown = true
		bw.WriteString("\n    ")
		bw.Write(b)
	}
	if err := p.UsersErr(); err != nil {
		return err
	}
	if shown {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

// WriteTable prints a plan for people: one block per user, then a summary.
func WriteTable(w io.Writer, p *agent.Plan, dryRun bool) error {
	tw := tabwriter.NewWriter(terminal{w}, 2, 4, 2, ' ', 0)
	verb := "Plan"
	if !dryRun {
		verb = "Pass"
	}
	fmt.Fprintf(tw, "%s (%s", verb, p.Mode)
	if dryRun {
		fmt.Fprint(tw, ", dry run: nothing is written")
	}
	fmt.Fprintf(tw, ") at %s\n", p.Started.Format(time.RFC3339))
	if p.FullReason != "" {
		fmt.Fprintf(tw, "Reading every user: %s.\n", p.FullReason)
	}
	several := len(p.Sources) > 1
	for _, src := range p.Sources {
		switch {
		case src.Err != nil:
			fmt.Fprintf(tw, "Directory %s: NOT READ, its users are left as they were: %v\n", src.Name, src.Err)
		case several:
			fmt.Fprintf(tw, "Directory %s: %s read, %s (%s)\n", src.Name, src.Mode, plural(src.UsersRead, "user"), plural(src.LDAPOperations, "LDAP operation"))
		}
	}
	fmt.Fprintln(tw)
	for u := range p.Users() {
		writeUser(tw, u, p.Mode == agent.ModeUser, several)
		// Columns line up within a user's block; flushing each block keeps
		// the output streaming however many users the plan holds.
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := p.UsersErr(); err != nil {
		return err
	}
	for _, c := range p.Tenant {
		jt := toTenant(c)
		fmt.Fprintf(tw, "Tenant %s %s: %s", jt.Target, jt.Setting, jt.Status)
		if jt.Problem != "" {
			fmt.Fprintf(tw, ": %s", jt.Problem)
		}
		fmt.Fprintln(tw)
		for _, v := range jt.Add {
			fmt.Fprintf(tw, "  + %s\n", v)
		}
		for _, v := range jt.Remove {
			fmt.Fprintf(tw, "  - %s\n", v)
		}
	}
	s := p.Stats
	added, removed := "to add", "to remove"
	if !dryRun {
		added, removed = "added", "removed"
	}
	fmt.Fprintf(tw, "Summary: %s read (%s), %d with changes (%s %s, %d %s), %d losing values; %s accepted, %d rejected; %s not in the cloud, %d skipped, %d failed.\n",
		plural(s.UsersRead, "user"), plural(s.LDAPOperations, "LDAP operation"), s.UsersChanged, plural(s.ValuesAdded, "value"), added, s.ValuesRemoved, removed, s.UsersRemoving,
		plural(s.CertificatesAccepted, "certificate"), s.CertificatesRejected, plural(s.UsersUnmatched, "user"), s.UsersSkipped, s.UsersFailed)
	for _, o := range p.Orphaned {
		fmt.Fprintf(tw, "Left in place: the %s values certsync wrote for %s while the target was on; it is off now, so they stay (and keep working).", o.Target, plural(o.Users, "user"))
		if o.Withdraw != "" {
			fmt.Fprintf(tw, " Withdraw them with: %s --config FILE (dry run first).", o.Withdraw)
		}
		fmt.Fprintln(tw)
	}
	if p.Guard.Tripped {
		fmt.Fprintf(tw, "Deletion limit: %s. Nothing is applied; run once with --allow-deletes=%d to accept.\n", p.Guard.Reason, p.Guard.UsersRemoving)
	}
	return tw.Flush()
}

func writeUser(w io.Writer, u *agent.UserPlan, steps, several bool) {
	fmt.Fprintf(w, "%s\t%s\n", u.Name, u.DN)
	if several || steps {
		fmt.Fprintf(w, "  source:\t%s\n", u.Source)
	}
	switch {
	case u.Departed:
		fmt.Fprintln(w, "  directory:\tno longer returned (deleted or out of the filter): certsync withdraws what it published")
	case u.OutOfScope:
		fmt.Fprintln(w, "  directory:\tfound, but outside the source's filter: certsync withdraws what it published")
	case steps:
		fmt.Fprintf(w, "  directory:\tfound at %s\n", u.DN)
	}
	if steps {
		if guid, ok := ldapsrc.GUIDString(u.Anchor); ok {
			fmt.Fprintf(w, "  anchor:\tobjectGUID %s (onPremisesImmutableId %s)\n", guid, u.Anchor)
		} else {
			fmt.Fprintf(w, "  anchor:\t%s\n", u.Anchor)
		}
	}
	if u.Problem != "" {
		fmt.Fprintf(w, "  problem:\t%s\n", u.Problem)
	}
	if steps {
		for _, c := range u.Accepted {
			fmt.Fprintf(w, "  accepted:\t%s  serial %s  sha256 %s  valid to %s  (%s)\n", c.Subject, c.Serial, short(c.SHA256), c.NotAfter.Format("2006-01-02"), strings.Join(c.Attributes, ", "))
			if c.SID != "" {
				fmt.Fprintf(w, "  \tSID extension %s: this account's; domain controllers map it strongly without an altSecurityIdentities value\n", c.SID)
			}
		}
		if len(u.Accepted) == 0 && len(u.Rejected) == 0 && !u.Departed {
			fmt.Fprintln(w, "  certificates:\tnone")
		}
	}
	for _, c := range u.Accepted {
		for _, warn := range c.Warnings {
			fmt.Fprintf(w, "  warning:\t%s  serial %s: %s\n", c.Subject, c.Serial, warn)
		}
	}
	for _, r := range u.Rejected {
		writeRejected(w, r)
	}
	if steps {
		for _, v := range u.Values {
			form := "DER certificate"
			if v.PKCS7 {
				form = fmt.Sprintf("PKCS#7 of %s", plural(len(v.Certificates), "certificate"))
			}
			fmt.Fprintf(w, "  value:\t%s %s  sha256 %s: published as it is\n", v.Attribute, form, short(v.SHA256))
		}
	}
	for _, wv := range u.Withheld {
		fmt.Fprintf(w, "  withheld:\t%s value  sha256 %s: %s\n", wv.Attribute, short(wv.SHA256), wv.Reason)
	}
	for _, t := range u.Targets {
		// A target's own verdict, where it differs from the policy's (or
		// for one user): a certificate it uses that the policy rejected,
		// one it leaves out that the policy accepted.
		for _, c := range t.Certificates {
			if steps || c.PolicyRejected == (c.Verdict == agent.VerdictUsed) {
				fmt.Fprintf(w, "  %s:\t%s %s  serial %s: %s\n", t.Target, c.Verdict, c.Subject, c.Serial, c.Reason)
			}
		}
		switch {
		case t.Problem != "":
			fmt.Fprintf(w, "  %s:\tskipped: %s\n", t.Target, t.Problem)
			continue
		case t.CloudID != "" && steps:
			fmt.Fprintf(w, "  cloud user:\t%s (%s)\n", t.CloudID, t.CloudName)
		}
		for _, v := range t.Change.Add {
			fmt.Fprintf(w, "  %s:\t+ %s\n", t.Target, t.Describe(v))
		}
		for _, v := range t.Change.Remove {
			note := ""
			if slices.Contains(t.Adopted, v) {
				note = " (adopted: not published by certsync and not wanted)"
			}
			fmt.Fprintf(w, "  %s:\t- %s%s\n", t.Target, t.Describe(v), note)
		}
		if t.Warning != "" {
			fmt.Fprintf(w, "  %s:\tWARNING: %s\n", t.Target, t.Warning)
		}
		for _, v := range t.Adopted {
			if !slices.Contains(t.Change.Remove, v) {
				fmt.Fprintf(w, "  %s:\t= %s (adopted: certsync owns it from now on)\n", t.Target, t.Describe(v))
			}
		}
		for _, v := range t.Change.Unowned {
			fmt.Fprintf(w, "  %s:\t= %s (not published by certsync: kept)\n", t.Target, t.Describe(v))
		}
		for _, v := range t.Change.Dropped {
			fmt.Fprintf(w, "  %s:\t! %s (left out: the target holds at most this many values)\n", t.Target, t.Describe(v))
		}
		switch st := TargetStatus(t); {
		case st == StatusFailed:
			fmt.Fprintf(w, "  %s:\tFAILED: %v\n", t.Target, t.Err)
		case st == StatusApplied:
			fmt.Fprintf(w, "  %s:\tapplied\n", t.Target)
		case st == StatusUnchanged && steps:
			fmt.Fprintf(w, "  %s:\tno change\n", t.Target)
		}
	}
	fmt.Fprintln(w)
}

func writeRejected(w io.Writer, r mapping.Rejection) {
	subject := r.Subject
	if subject == "" {
		subject = "(undecodable value)"
	}
	serial := ""
	if r.Serial != "" {
		serial = "  serial " + r.Serial
	}
	fmt.Fprintf(w, "  rejected:\t%s%s  sha256 %s  [%s] %s: %s\n", subject, serial, short(r.SHA256), r.Attribute, r.Code, r.Reason)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// Write writes the report in format (table, json, html or csv).
func Write(w io.Writer, format string, p *agent.Plan, dryRun bool, passErr error) error {
	switch format {
	case "json":
		return WriteJSON(w, p, dryRun, passErr)
	case "html":
		return WriteHTML(w, p, dryRun, passErr)
	case "csv":
		return WriteCSV(w, p)
	}
	return WriteTable(w, p, dryRun)
}

// Format resolves an --output flag: table or json, or one of more (html,
// csv) where the command offers them. The default is a table for people at
// a terminal and JSON for scripts.
func Format(flag string, out io.Writer, more ...string) (string, error) {
	switch {
	case flag == "table", flag == "json", flag != "" && slices.Contains(more, flag):
		return flag, nil
	case flag == "":
		if f, ok := out.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return "table", nil
			}
		}
		return "json", nil
	}
	return "", fmt.Errorf("--output %q: use %s", flag, strings.Join(append([]string{"table", "json"}, more...), ", "))
}
