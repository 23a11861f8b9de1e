package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Check is one line of `certsync doctor`, from the directory or the cloud
// side.
type Check struct {
	Area, Name, Status, Detail, Fix string
}

// WriteChecks prints the doctor's checks, one line each, with the fix
// under any that is not ok; it returns how many failed.
func WriteChecks(w io.Writer, checks []Check) (failed int) {
	tw := tabwriter.NewWriter(terminal{w}, 2, 4, 2, ' ', 0)
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(c.Status), c.Area, c.Name, oneLine(c.Detail))
		if c.Fix != "" && c.Status != "ok" {
			fmt.Fprintf(tw, "\t\t\tfix: %s\n", oneLine(c.Fix))
		}
		if c.Status == "fail" {
			failed++
		}
	}
	_ = tw.Flush()
	return failed
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
