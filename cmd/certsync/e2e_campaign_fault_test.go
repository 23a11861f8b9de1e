package main

import (
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/faulttest"
)

// TestCampaignFaultStorm: a fifth of the Graph and Exchange calls answer
// 429 (with Retry-After), 503, or are carried out and then have their
// connection cut. Passes run until one ends clean; then the cloud holds
// exactly what the directory says (nothing lost), no value was written
// twice, and certsync still owns everything it published: when every
// certificate leaves the directory, one pass takes all of it back.
func TestCampaignFaultStorm(t *testing.T) {
	n := campaignScale(40, 1000)
	people := campaignPeople(n)
	w := newWorld(t, people, "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n", withExchange(""))
	front := w.behindFront(faulttest.Options{Rate: 0.2, Seed: campaignSeed(t), RetryAfter: time.Second})

	const maxPasses = 12
	passes := 0
	for ; passes < maxPasses; passes++ {
		code, out, errOut := w.run("sync", "--output", "json")
		if code == 0 {
			break
		}
		t.Logf("pass %d: exit %d: %s", passes+1, code, campaignTail(errOut))
		if code != 1 {
			t.Fatalf("pass %d in the storm: exit %d\n%s\n%s", passes+1, code, campaignTail(out), campaignTail(errOut))
		}
	}
	if passes == maxPasses {
		t.Fatalf("no clean pass in %d passes under 20%% faults", maxPasses)
	}
	injected := front.Injected()
	total := injected[faulttest.Throttle] + injected[faulttest.Unavailable] + injected[faulttest.DropAfterApply]
	if total == 0 {
		t.Fatal("the storm injected no fault: the test proves nothing")
	}
	graph, boxes := w.expectedCloud(people)
	diffs, lost := w.cloudDiff(graph, boxes)
	for _, d := range diffs {
		t.Error(d)
	}
	audit := auditWrites(w.initialWrites(people), front.Writes())
	if len(audit.twice) > 0 || audit.redundant > 0 {
		t.Errorf("written twice: %d values added twice %v, %d redundant writes", len(audit.twice), audit.twice, audit.redundant)
	}
	if err := w.checkStateFile(); err != nil {
		t.Error(err)
	}
	t.Logf("fault storm: %d users, %d calls, faults injected: %d (429 %d, 503 %d, dropped after applied %d), %d passes to converge, %d writes applied, values lost %d",
		n, front.Calls(), total, injected[faulttest.Throttle], injected[faulttest.Unavailable], injected[faulttest.DropAfterApply], passes+1, audit.writes, lost)

	// Ownership survived the storm: withdraw everything, still in it.
	for _, d := range w.withdrawAll(people, maxPasses) {
		t.Errorf("after the withdrawal: %s", d)
	}
}
