package cloudsink

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// pipelineFunc answers the handler's next step.
type pipelineFunc func(*http.Request) (*http.Response, error)

func (f pipelineFunc) Next(req *http.Request, _ int) (*http.Response, error) { return f(req) }

// The gzip handler sends the body compressed and seekable (a retry sends
// it again), sends it again uncompressed when the service answers 415,
// and leaves alone a body that is already encoded.
func TestGzipHandler(t *testing.T) {
	body := strings.Repeat(`{"id":"1","method":"PATCH","url":"/users/x","body":{"authorizationInfo":{"certificateUserIds":["X509:<PN>a@x"]}}},`, 20)
	h := newGzipHandler()
	for _, tc := range []struct {
		name     string
		encoding string // already on the request
		statuses []int  // answered in turn
		want     []string
	}{
		{"compressed", "", []int{200}, []string{"gzip"}},
		{"415: again uncompressed", "", []int{415, 200}, []string{"gzip", ""}},
		{"already encoded", "identity", []int{200}, []string{"identity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second time with a writer from the pool
				var got []string
				next := pipelineFunc(func(req *http.Request) (*http.Response, error) {
					enc := req.Header.Get("Content-Encoding")
					got = append(got, enc)
					r := io.Reader(req.Body)
					if enc == "gzip" {
						if _, ok := req.Body.(io.Seeker); !ok {
							t.Error("the compressed body cannot be sent again")
						}
						zr, err := gzip.NewReader(req.Body)
						if err != nil {
							t.Fatal(err)
						}
						r = zr
					}
					b, err := io.ReadAll(r)
					if err != nil || string(b) != body {
						t.Fatalf("body (%q) read back as %d bytes, %v", enc, len(b), err)
					}
					if enc == "gzip" && req.ContentLength >= int64(len(body)) {
						t.Errorf("compressed to %d of %d bytes", req.ContentLength, len(body))
					}
					status := tc.statuses[len(got)-1]
					return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(""))}, nil
				})
				req, _ := http.NewRequest(http.MethodPost, "https://graph.microsoft.com/v1.0/$batch", bytes.NewBufferString(body))
				if tc.encoding != "" {
					req.Header.Set("Content-Encoding", tc.encoding)
				}
				resp, err := h.Intercept(next, 0, req)
				if err != nil || resp.StatusCode != 200 || strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Fatalf("status %v, error %v, encodings sent %q; want 200 after %q", resp, err, got, tc.want)
				}
			}
		})
	}
}
