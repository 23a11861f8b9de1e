package config

import (
	"fmt"
	"strings"

	"github.com/certsync/certsync/agent"
)

// Withdraw marks target ("" for none) to be withdrawn in every Active
// Directory source (anchored by objectGUID), for `sync --withdraw`: the
// pass wants nothing there, so it removes the values certsync wrote.
// Only altSecurityIdentities can be: turning a target off never removes
// what it wrote (README: Strong certificate mappings, turning it off).
func (c *Config) Withdraw(target string) error {
	if target == "" {
		return nil
	}
	if target != agent.TargetAltSecurityIdentities {
		return fmt.Errorf("--withdraw %q: only %s can be withdrawn", target, agent.TargetAltSecurityIdentities)
	}
	n := 0
	for i := range c.Sources {
		if strings.EqualFold(c.Sources[i].AnchorAttribute, "objectGUID") {
			c.Sources[i].AltSecurityIdentities.Withdraw = true
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("--withdraw %s: no source is Active Directory (anchorAttribute objectGUID)", target)
	}
	return nil
}
