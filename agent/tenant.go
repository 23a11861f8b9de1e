package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// TenantChange is a tenant-wide setting a target keeps in line with the
// configuration (Exchange's trusted-CA collection): planned once per pass
// that reads the directories, shown in the plan and the report beside
// the users, applied with their changes.
type TenantChange struct {
	Target  string // the target's name
	Setting string // e.g. "SMIMECertificateIssuingCA"
	// Add and Remove show the values (certificates) that come and go.
	Add, Remove []string
	// Problem says why the change cannot be made; nothing is sent.
	Problem string
	Applied bool
	Err     error // the write failed

	// apply makes the change (nil when there is none to make).
	apply func(context.Context) error
}

// Changed says whether the setting is to change (or did).
func (c *TenantChange) Changed() bool {
	return c.Problem == "" && (len(c.Add) > 0 || len(c.Remove) > 0)
}

// tenantTarget is a target that also keeps a tenant-wide setting.
type tenantTarget interface {
	// PlanTenant compares the setting with what the trusted CAs call
	// for; nil when it is in line. recheck: look even when the target
	// confirmed it before (reconciling passes).
	PlanTenant(ctx context.Context, cas []*x509.Certificate, now time.Time, recheck bool) *TenantChange
}

// planTenant adds the targets' tenant-wide changes to the plan.
func (a *Agent) planTenant(ctx context.Context, p *Plan, recheck bool) {
	for _, t := range a.targets {
		if tt, ok := t.(tenantTarget); ok {
			if c := tt.PlanTenant(ctx, a.policy.IssuingCAs, p.Started, recheck); c != nil {
				p.Tenant = append(p.Tenant, c)
			}
		}
	}
}

// applyTenant makes the plan's tenant-wide changes; the error names each
// that could not be made.
func (a *Agent) applyTenant(ctx context.Context, p *Plan) error {
	var errs []error
	for _, c := range p.Tenant {
		switch {
		case c.Problem != "":
			errs = append(errs, fmt.Errorf("agent: %s %s not changed: %s", c.Target, c.Setting, c.Problem))
		case c.Changed() && c.apply != nil:
			c.Err = c.apply(ctx)
			c.Applied = c.Err == nil
			if c.Err != nil {
				errs = append(errs, fmt.Errorf("agent: %s %s: %w", c.Target, c.Setting, c.Err))
			}
		}
	}
	return errors.Join(errs...)
}

// TenantChanges counts the tenant-wide settings the plan changes.
func (p *Plan) TenantChanges() int {
	n := 0
	for _, c := range p.Tenant {
		if c.Changed() {
			n++
		}
	}
	return n
}
