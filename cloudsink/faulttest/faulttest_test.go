package faulttest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestFaultKinds(t *testing.T) {
	for _, tc := range []struct {
		kind       Kind
		wantStatus int // 0: no answer
		wantCalled int32
	}{
		{Throttle, http.StatusTooManyRequests, 0},
		{Unavailable, http.StatusServiceUnavailable, 0},
		{DropAfterApply, 0, 1},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			var called atomic.Int32
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called.Add(1)
				w.WriteHeader(http.StatusNoContent)
			})
			f, err := Serve(inner, "https://emulator.invalid", Options{Rate: 1, Kinds: []Kind{tc.kind}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			client := f.client(t)
			req, _ := http.NewRequest(http.MethodPatch, f.URL()+"/v1.0/users/u1", strings.NewReader(`{"authorizationInfo":{"certificateUserIds":["X509:<SKI>AB"]}}`))
			resp, err := client.Do(req)
			switch {
			case tc.wantStatus == 0 && err == nil:
				t.Fatalf("dropped answer arrived: %d", resp.StatusCode)
			case tc.wantStatus != 0 && err != nil:
				t.Fatal(err)
			case tc.wantStatus != 0 && resp.StatusCode != tc.wantStatus:
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			case tc.kind == Throttle && resp.Header.Get("Retry-After") != "1":
				t.Fatalf("429 without Retry-After: %v", resp.Header)
			}
			if called.Load() != tc.wantCalled {
				t.Fatalf("emulator called %d times, want %d", called.Load(), tc.wantCalled)
			}
			if got := f.Injected()[tc.kind]; got != 1 {
				t.Fatalf("injected %d, want 1", got)
			}
			ws := f.Writes()
			if tc.kind == DropAfterApply && (len(ws) != 1 || !ws[0].Dropped || ws[0].Account != "u1" || ws[0].Values[0] != "X509:<SKI>AB") {
				t.Fatalf("write log: %+v", ws)
			}
			if tc.kind != DropAfterApply && len(ws) != 0 {
				t.Fatalf("a refused call logged writes: %+v", ws)
			}
		})
	}
}

func TestNoFaultPassesThroughAndRewritesLinks(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"@odata.nextLink":"https://emulator.invalid/v1.0/users?$skiptoken=x"}`)
	})
	f, err := Serve(inner, "https://emulator.invalid", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := f.client(t).Get(f.URL() + "/v1.0/users")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), f.URL()+"/v1.0/users?") || f.Calls() != 1 {
		t.Fatalf("%d %s (calls %d)", resp.StatusCode, body, f.Calls())
	}
}

func (f *Front) client(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.CAPEM()) {
		t.Fatal("front CA")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}
