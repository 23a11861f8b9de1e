package cloudsink

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	khttp "github.com/microsoft/kiota-http-go"
)

// gzipHandler does what kiota's CompressionHandler does (gzip a request
// body, send it again uncompressed when the service answers 415), with
// one gzip writer per request taken from a pool at the fastest level
// instead of a new writer at the default level: kiota's cost a first
// sync of 100,000 users 7 s of CPU (13%) and 1.2 MB of garbage per
// request, for bodies of about 15 KB of JSON that level 1 still shrinks
// several times over.
type gzipHandler struct {
	writers sync.Pool // *gzip.Writer
}

func newGzipHandler() *gzipHandler { return &gzipHandler{} }

func (h *gzipHandler) Intercept(pipeline khttp.Pipeline, index int, req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Header.Get("Content-Encoding") != "" || strings.Contains(strings.ToLower(req.Header.Get("Content-Range")), "bytes") {
		return pipeline.Next(req, index)
	}
	plain, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("cloudsink: reading the body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	packed, err := h.compress(plain)
	if err != nil {
		return nil, fmt.Errorf("cloudsink: compressing the body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	req.Header.Set("Content-Encoding", "gzip")
	// Seekable, so that the retry handler after this one can send it again.
	req.Body, req.ContentLength = khttp.NopCloser(bytes.NewReader(packed)), int64(len(packed))
	resp, err := pipeline.Next(req, index)
	if err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	req.Header.Del("Content-Encoding")
	req.Body, req.ContentLength = khttp.NopCloser(bytes.NewReader(plain)), int64(len(plain))
	return pipeline.Next(req, index)
}

func (h *gzipHandler) compress(plain []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(plain)/4 + 64)
	zw, _ := h.writers.Get().(*gzip.Writer)
	if zw == nil {
		var err error
		if zw, err = gzip.NewWriterLevel(&out, gzip.BestSpeed); err != nil {
			return nil, err
		}
	} else {
		zw.Reset(&out)
	}
	_, err := zw.Write(plain)
	if err == nil {
		err = zw.Close()
	}
	h.writers.Put(zw)
	return out.Bytes(), err
}
