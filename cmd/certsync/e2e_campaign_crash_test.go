package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/faulttest"
)

// TestCampaignCrashAnywhere SIGKILLs the real binary at a random moment of
// a pass (the cloud answering slowly, so the kill lands among the writes
// as often as in the read), trial after trial, each trial with
// certificates renewed in the directory so that there is work to cut
// short. After every kill the state file passes bbolt's check; after the
// next uninterrupted pass the cloud holds exactly what the directory says
// and nothing was written twice (every write the emulators applied is
// replayed: no value added to an account twice, no write that changed
// nothing). At the end every certificate leaves the directory and one
// pass takes back every value certsync ever published: it still owns them
// all, however often it was killed.
func TestCampaignCrashAnywhere(t *testing.T) {
	n := campaignScale(300, 10000)
	trials := campaignScale(5, 50)
	people := campaignPeople(n)
	w := newWorld(t, people, "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n", withExchange(""))
	front := w.behindFront(faulttest.Options{Latency: 2 * time.Millisecond})
	rng := rand.New(rand.NewPCG(campaignSeed(t), 1))
	conn := w.slapd.Admin(t)

	// estimate is how long an uninterrupted pass takes: a pass that ended
	// before its kill sets it; the pass after a kill (which redoes what the
	// killed one did not) can only raise it. The first trial publishes
	// every user and says nothing about the renewals after it.
	estimate := time.Second
	var killed, finished int
	var killedAt []time.Duration
	for trial := 1; trial <= trials; trial++ {
		if trial > 1 {
			// Renew a tenth of the users' certificates: the pass to kill
			// has writes and withdrawals to make.
			for _, i := range rng.Perm(n)[:max(n/10, 1)] {
				uid := people[i].uid
				c := w.leaf(uid, time.Now().Add(-time.Duration(trial)*time.Minute), false)
				req := ldapModify(uid)
				req.Replace("userCertificate;binary", []string{string(c)})
				if err := conn.Modify(req); err != nil {
					t.Fatalf("trial %d: renewing %s: %v", trial, uid, err)
				}
				w.ldapCert[uid] = [][]byte{c}
			}
		}
		at := time.Duration(rng.Int64N(int64(estimate)))
		took, wasKilled := w.killDuring(at)
		if wasKilled {
			killed++
			killedAt = append(killedAt, at)
		} else {
			finished++
			estimate = took
		}
		// Killed before the first pass created it, there is no state file
		// yet; after that there always is one.
		if _, err := os.Stat(filepath.Join(w.dir, "state", "state.db")); trial > 1 || err == nil {
			if err := w.checkStateFile(); err != nil {
				t.Fatalf("trial %d, killed at %s: %v", trial, at, err)
			}
		}
		start := time.Now()
		code, out, errOut := w.run("sync", "--output", "json")
		if trial > 1 {
			estimate = max(estimate, time.Since(start))
		}
		if code != 0 {
			t.Fatalf("trial %d: the pass after the kill at %s: exit %d\n%s\n%s", trial, at, code, campaignTail(out), campaignTail(errOut))
		}
		if err := w.checkStateFile(); err != nil {
			t.Fatalf("trial %d after the next pass: %v", trial, err)
		}
		graph, boxes := w.expectedCloud(people)
		if diffs, lost := w.cloudDiff(graph, boxes); len(diffs) > 0 {
			t.Fatalf("trial %d, killed at %s: %d values lost, %d accounts differ, e.g. %v", trial, at, lost, len(diffs), diffs[:min(len(diffs), 5)])
		}
		audit := auditWrites(w.initialWrites(people), front.Writes())
		t.Logf("trial %d: kill at %s (mid-pass %v), then a clean pass; %d writes applied so far", trial, at, wasKilled, audit.writes)
		if len(audit.twice) > 0 || audit.redundant > 0 {
			t.Fatalf("trial %d, killed at %s: written twice: %d values added twice (%v), %d redundant writes",
				trial, at, len(audit.twice), audit.twice[:min(len(audit.twice), 5)], audit.redundant)
		}
	}
	audit := auditWrites(w.initialWrites(people), front.Writes())
	if left := w.withdrawAll(people, 1); len(left) > 0 {
		t.Fatalf("after the kills, certsync no longer owns what it published: %d accounts keep values, e.g. %v", len(left), left[:min(len(left), 5)])
	}
	if err := w.checkStateFile(); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no pass was killed before it ended: the campaign proves nothing")
	}
	t.Logf("crash anywhere: %d users, %d trials, %d killed mid-pass (at %v), %d finished before the kill; %d writes applied, 0 written twice, values lost 0; pass estimate %s",
		n, trials, killed, killedAt, finished, audit.writes, estimate)
}

// killDuring starts `certsync sync` and SIGKILLs it after d; it reports
// how long the process ran and whether the kill found it running.
func (w *world) killDuring(d time.Duration) (time.Duration, bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, certsyncBin, "sync", "--output", "json", "--config", w.cfg)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			w.t.Fatalf("the pass meant to be killed failed on its own: %v\n%s", err, campaignTail(errb.String()))
		}
		return time.Since(start), false
	case <-time.After(d):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		return time.Since(start), true
	}
	return time.Since(start), false
}
