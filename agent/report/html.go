package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/certsync/certsync/agent"
)

//go:embed html.tmpl
var htmlTemplate string

// page is what html.tmpl shows.
type page struct {
	Head
	Title      string
	Verb       string // "Plan" (dry run) or "Pass"
	Generated  string
	Several    bool
	Users      iter.Seq[htmlUser]
	Sources    []string // directory names, for the filter
	Codes      []string // rejection codes present, for the filter
	CountShown int
}

type htmlUser struct {
	User
	// Kinds are the filter classes the user belongs to: changes, removes,
	// problem, rejected, departed, unmatched, skipped, failed, quiet.
	Kinds   []string
	Search  string // lower-case text the search box matches
	Targets []htmlTarget
}

// htmlTarget is a target's part of a user, its values shown as its
// target shows them (an Exchange value as subject, serial and SHA-256).
type htmlTarget struct {
	Target
	Values []htmlValue
}

type htmlValue struct {
	Op   string // "+", "-", "=", "!"
	What string // add, remove, kept (not certsync's), adopted, dropped
	Text string
}

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and script, nothing fetched from the network. Everything from the
// directory or the cloud is escaped by html/template.
func WriteHTML(w io.Writer, p *agent.Plan, dryRun bool, passErr error) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"join":   strings.Join,
		"time":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
		"date":   func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"short":  short,
		"plural": plural,
	}).Parse(htmlTemplate)
	if err != nil {
		return fmt.Errorf("report: the HTML template: %w", err)
	}
	pg := page{Head: toHead(p, dryRun, passErr), Verb: "Pass", Generated: time.Now().UTC().Format(time.RFC3339), Several: len(p.Sources) > 1}
	if dryRun {
		pg.Verb = "Plan"
	}
	pg.Title = fmt.Sprintf("certsync %s, %s, %s", strings.ToLower(pg.Verb), p.Mode, p.Started.UTC().Format("2006-01-02 15:04 MST"))
	for _, s := range p.Sources {
		pg.Sources = append(pg.Sources, s.Name)
	}
	// The users twice, never all at once: their rejection codes for the
	// filter, then the page.
	for u := range p.Users() {
		for _, r := range u.Rejected {
			if !slices.Contains(pg.Codes, r.Code) {
				pg.Codes = append(pg.Codes, r.Code)
			}
		}
	}
	slices.Sort(pg.Codes)
	pg.Users = func(yield func(htmlUser) bool) {
		for u := range p.Users() {
			if !yield(toHTMLUser(u)) {
				return
			}
		}
	}
	if err := t.Execute(w, pg); err != nil {
		return err
	}
	return p.UsersErr()
}

func toHTMLUser(u *agent.UserPlan) htmlUser {
	hu := htmlUser{User: toUser(u)}
	kind := func(k string, on bool) {
		if on && !slices.Contains(hu.Kinds, k) {
			hu.Kinds = append(hu.Kinds, k)
		}
	}
	kind("problem", u.Problem != "")
	kind("failed", u.Failed())
	kind("departed", u.Departed || u.OutOfScope)
	kind("rejected", len(u.Rejected) > 0)
	search := []string{u.Name, u.DN, u.Source, u.Anchor, hu.AnchorGUID, u.Problem}
	for i, t := range u.Targets {
		ht := htmlTarget{Target: hu.User.Targets[i]}
		add := func(op, what string, vs []string) {
			for _, v := range vs {
				ht.Values = append(ht.Values, htmlValue{op, what, t.Describe(v)})
			}
		}
		add("+", "add", t.Change.Add)
		add("-", "remove", t.Change.Remove)
		var adoptedKept []string
		for _, v := range t.Adopted {
			if !slices.Contains(t.Change.Remove, v) {
				adoptedKept = append(adoptedKept, v)
			}
		}
		add("=", "adopted", adoptedKept)
		add("=", "kept", t.Change.Unowned)
		add("!", "dropped", t.Change.Dropped)
		kind("changes", t.Change.Changed())
		kind("removes", len(t.Change.Remove) > 0)
		kind("unmatched", t.Unmatched)
		kind("skipped", t.Skipped)
		search = append(search, t.CloudID, t.CloudName, ht.Problem)
		hu.Targets = append(hu.Targets, ht)
	}
	for _, c := range hu.Accepted {
		search = append(search, c.Subject, c.Serial, c.SHA256)
	}
	for _, r := range hu.Rejected {
		search = append(search, r.Subject, r.Serial, r.SHA256, r.Code, r.Reason)
	}
	if len(hu.Kinds) == 0 {
		hu.Kinds = []string{"quiet"}
	}
	hu.Search = strings.ToLower(strings.Join(search, " "))
	return hu
}
